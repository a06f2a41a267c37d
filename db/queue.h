/*
 * queue.h — putting a sweep's plan (sweep/plan.h) into the run queue of the database.
 *
 * Not here: grid expansion and run identity (sweep/plan.h), the runner that takes runs off
 * the queue (runner/runner.h).
 */
#ifndef CADDIE_QUEUE_H
#define CADDIE_QUEUE_H

#include "db/db.h"
#include "sweep/plan.h"

/* Mark actions against the DB (dedup by config hash; force: queue done/pending ones again
 * under a new "-rN" id). */
int cad_queue_check(cad_db *db, const cad_sweep_spec *s, cad_plan *p, int force, cad_err *e);
/* Estimate duration of the runs to (re)queue on n_devices devices; db may be NULL. Fails
 * when a run needs more devices than n_devices. */
int cad_queue_estimate(cad_db *db, const cad_sweep_spec *s, cad_plan *p, int n_devices, cad_err *e);
/* Queue: upsert the sweep, create each run dir (config.yaml, run.json), insert the runs,
 * requeue REQUEUE ones; one transaction (run dirs made by a failed add are removed). */
int cad_queue_add(cad_db *db, const cad_sweep_spec *s, cad_plan *p, cad_err *e);

#endif
