/*
 * greedy.h — driving a `kind: greedy` sweep (sweep/spec.h) through its rounds in the database:
 * tables greedy and greedy_rounds (schema/0005_prepare.sql).
 *
 * `caddie sweep add` of a greedy file records it (its YAML, where it was added) and queues
 * round 1, an ordinary sweep "<name>.r1". The runner calls cad_greedy_tick whenever runs end:
 * a round whose runs (by config hash, so runs deduplicated into other sweeps count) are none
 * queued or running is decided from the results of its done runs (the mean over seeds of
 * the spec's metric per config), the decision is stored, and the next round is queued or
 * the selection ends. Everything lives in the DB, so a restarted runner carries on.
 *
 * Not here: the YAML shape and the choice rule (sweep/spec.h: cad_sweep_greedy_round,
 * cad_sweep_greedy_pick), queueing a plan (db/queue.h), printing.
 */
#ifndef CADDIE_GREEDY_H
#define CADDIE_GREEDY_H

#include "db/db.h"
#include "sweep/plan.h"

typedef struct cad_greedy_info {
    int found;
    int done;            /* status 'done' */
    int round;           /* the current (last queued) round */
    int n_accepted;
    int *accepted;       /* candidate indices in the order kept (spec order resolved by name) */
    char *result;        /* why it ended ("" while running) */
} cad_greedy_info;

void cad_greedy_info_free(cad_greedy_info *gi);

/* What the DB knows of greedy sweep g->name (gi->found = 0: nothing yet). Candidate names
 * the spec no longer has are an error naming them. */
int cad_greedy_info_get(cad_db *db, const cad_sweep_spec *g, cad_greedy_info *gi, cad_err *e);

/* Round `round` of g with gi's accepted candidates, expanded and checked against the DB
 * (dedup), ready to print or queue: *round_spec (free with cad_sweep_spec_free before g) and
 * *plan (cad_plan_free). */
int cad_greedy_plan_round(cad_db *db, const cad_sweep_spec *g, int round, const int *accepted, int n_accepted,
                          const cad_plan_opts *po, cad_sweep_spec **round_spec, cad_plan *plan, cad_err *e);

/* sweep add: record g (spec_path and cwd absolute) and queue round 1. *queued gets the runs
 * queued. A greedy already recorded is left as it is: *already = 1. */
int cad_greedy_add(cad_db *db, const cad_sweep_spec *g, const char *spec_path, const char *cwd,
                   const char *runs_dir, int *already, int *queued, cad_err *e);

/* One greedy sweep as `caddie status` shows it (strings borrowed for the call). */
typedef struct cad_greedy_row {
    const char *name, *status, *accepted, *result;
    int round;
} cad_greedy_row;
typedef int (*cad_greedy_row_fn)(void *ctx, const cad_greedy_row *r);
/* Every greedy sweep, by name; fn returning nonzero stops. */
int cad_greedy_each(cad_db *db, cad_greedy_row_fn fn, void *ctx, cad_err *e);

/* Decide every running greedy whose current round is over; queue the next rounds. say (may
 * be NULL) gets one line per decision. *queued gets the runs queued. */
typedef void (*cad_greedy_say_fn)(void *ctx, const char *line);
int cad_greedy_tick(cad_db *db, cad_greedy_say_fn say, void *ctx, int *queued, cad_err *e);

#endif
