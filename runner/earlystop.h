/*
 * earlystop.h — the decision of a sweep's `stop:` rule (sweep/stop.h) for one running run,
 * from the curves of its sweep, step-matched.
 *
 * A run's value at step S is its recorded point at S, or the straight line between its
 * points on either side of S (linear interpolation on the step axis); a run whose curve does
 * not cover S (starts after it or has not reached it) has no value there. The other runs are
 * those of the same sweep that are done, stopped or running (a running one counts at the
 * steps it has passed); failed, cancelled and interrupted curves are left out. Lower is
 * better.
 *   median  every recorded point of the run at step S >= min_fraction * planned steps is
 *           judged against the median of the other runs' values at S, once at least
 *           grace_runs of them have one; the run stops at the first point strictly worse.
 *   asha    at each rung step R = ceil(f * planned) the run has passed, with n runs (it
 *           included) having a value at R and at least grace_runs others: it continues
 *           while its rank (1 + runs strictly better) <= max(1, floor(n / eta)).
 * The decision is a pure function of the curves (no state), so a runner killed in the middle
 * decides the same again after a restart.
 * Not here: parsing the rule (sweep/stop.c), signalling the process, the status change
 * (runner/runner.c), the SQL (db/runs.c).
 */
#ifndef CADDIE_RUNNER_EARLYSTOP_H
#define CADDIE_RUNNER_EARLYSTOP_H

#include "db/db.h"
#include "engine/status.h"
#include "sweep/stop.h"

#include <stddef.h>

/* One run's curve of the rule's metric, steps increasing. */
typedef struct cad_es_curve {
    char run_id[CAD_RUN_ID_MAX];
    int n, cap;
    long *step;
    double *value;
} cad_es_curve;

/* The curves of a sweep's done/stopped/running runs for one metric. */
typedef struct cad_es_set {
    int n, cap;
    cad_es_curve *c;
} cad_es_set;

/* Load the set from the DB (replacing what it held). */
int cad_es_load(cad_db *db, const char *sweep, const char *metric, cad_es_set *set, cad_err *e);
void cad_es_set_free(cad_es_set *set);

/* Append a point to the set's curve of run_id (created when new; steps must arrive in
 * increasing order per run). For cad_es_load and tests. */
int cad_es_add(cad_es_set *set, const char *run_id, long step, double value, cad_err *e);

/* *value = the curve at step (see above); 0 when the curve does not cover it. */
int cad_es_value_at(const cad_es_curve *c, long step, double *value);

/* Decide for run_id of the set with planned_steps (> 0) planned: 1 = stop, with *at_step
 * the judged step and why the rule and the numbers ("median: val_bpb 3.4100 at step 60 >
 * median 3.0200 of 5 runs"); 0 = go on. A run absent from the set, or planned_steps <= 0,
 * goes on. */
int cad_es_decide(const cad_sweep_stop *rule, const cad_es_set *set, const char *run_id,
                  long planned_steps, long *at_step, char *why, size_t cap);

#endif
