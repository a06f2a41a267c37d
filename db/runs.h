/*
 * runs.h — the named queries about runs that the runner and the read-only commands
 * (`caddie status`, `ls`, `show`) need beyond db/db.h's row access and state machine:
 * the runner's checks while a run lives (status, NaN losses, failure budget, resume) and
 * the listings the commands print.
 *
 * Listings hand each row to a callback (no arrays to free): the row's strings are borrowed
 * and valid only during the call. A callback returns 0 to go on; anything else stops the
 * listing, which then returns that value. Text columns are NULL when the column is NULL;
 * the caller chooses what to print for them.
 * Not here: state changes and run.json (db/db.h), run directories (db/ingest.h), printing
 * (cli/cmd_runs.c).
 */
#ifndef CADDIE_DB_RUNS_H
#define CADDIE_DB_RUNS_H

#include "db/db.h"

#include <stdint.h>

/* ---- the runner's checks ------------------------------------------------------------- */

/* The run's status: *found = 0 when the run is no longer in the DB (deleted). */
int cad_db_run_status(cad_db *db, const char *run_id, cad_run_status *out, int *found,
                      cad_err *e);

/* The first (lowest step) train_loss/val_loss/val_bpb row of the run whose value is NaN
 * (stored NULL) or +-Inf: *found = 1 and its name and step in *out (value, wall_ms unset). */
int cad_db_find_nonfinite_loss(cad_db *db, const char *run_id, cad_metric *out, int *found,
                               cad_err *e);

/* Failures of the run since the user last said `caddie retry` (which resets the budget of
 * automatic retries); interruptions are not failures. */
int cad_db_count_failures(cad_db *db, const char *run_id, int *n, cad_err *e);

/* *yes = 1 when the next start of this run continues from its checkpoint as far as the DB
 * knows: a caddie-engine run whose config says resume: true and whose last final status
 * was interrupted (a failure is retried from scratch). The checkpoint file is the caller's
 * to check. */
int cad_db_run_resumes(cad_db *db, const char *run_id, int *yes, cad_err *e);

/* Delete what an earlier attempt left in the DB before a new attempt: results and
 * artifacts, and the metrics too unless keep_metrics (a resumed run keeps its curve; a step
 * logged twice replaces, never adds). One transaction unless the caller holds one. */
int cad_db_clear_attempt(cad_db *db, const char *run_id, int keep_metrics, cad_err *e);

/* ---- Slurm jobs (runner/exec_slurm.c; table slurm_jobs) ----------------------------------- */

/* The Slurm job of one attempt of a run. */
typedef struct cad_slurm_job {
    char job_name[64];       /* sbatch --job-name of its array */
    int array_index;         /* its task in that array */
    char job_id[64];         /* "<array job id>_<task>", "" until sbatch answered */
} cad_slurm_job;

/* Record (insert or replace) the job of attempt `attempt` before sbatch runs. */
int cad_db_slurm_job_record(cad_db *db, const char *run_id, int attempt, const char *job_name,
                            int array_index, cad_err *e);
/* Fill its job id once sbatch answered. */
int cad_db_slurm_job_set_id(cad_db *db, const char *run_id, int attempt, const char *job_id,
                            cad_err *e);
/* The job of an attempt: *found = 0 when that attempt was not handed to Slurm. */
int cad_db_slurm_job_get(cad_db *db, const char *run_id, int attempt, cad_slurm_job *out,
                         int *found, cad_err *e);
/* Running runs of a target (a run id, or every run of a sweep of that name) whose current
 * attempt is a Slurm job with a known id: fn(ctx, run_id, job_id) for each (`caddie cancel`). */
typedef int (*cad_slurm_job_fn)(void *ctx, const char *run_id, const char *job_id);
int cad_db_each_running_slurm_job(cad_db *db, const char *target, cad_slurm_job_fn fn, void *ctx,
                                  cad_err *e);

/* ---- early stopping (runner/earlystop.h) -------------------------------------------------- */

/* The YAML text a sweep was queued with (sweeps.spec), malloc'd into *text; *text = NULL when
 * there is no such sweep. */
int cad_db_sweep_spec_text(cad_db *db, const char *sweep, char **text, cad_err *e);

/* Every finite point of one metric of the sweep's running, done and stopped runs, ordered
 * by run id, then step. */
typedef int (*cad_curve_point_fn)(void *ctx, const char *run_id, long step, double value);
int cad_db_each_sweep_curve_point(cad_db *db, const char *sweep, const char *metric,
                                  cad_curve_point_fn fn, void *ctx, cad_err *e);

/* ---- listings for the commands ----------------------------------------------------------- */

/* A running run with its progress. */
typedef struct cad_running_row {
    const char *run_id;
    const char *devices_assigned;
    int attempts;
    double elapsed_s;        /* whole seconds since started_at (0 when unknown) */
    int has_step;            /* 0: no train_loss point yet */
    int64_t step;            /* last train_loss step */
    const char *train_loss;  /* its value as SQLite prints it (NULL: NaN) */
} cad_running_row;
typedef int (*cad_running_fn)(void *ctx, const cad_running_row *row);
/* Running runs, oldest start first. */
int cad_db_each_running(cad_db *db, cad_running_fn fn, void *ctx, cad_err *e);

/* A failed run: when it ended and the first line of its error. */
typedef struct cad_failure_row {
    const char *run_id, *ended_at, *error_line;
} cad_failure_row;
typedef int (*cad_failure_fn)(void *ctx, const cad_failure_row *row);
/* The `limit` most recently ended failed runs, newest first. */
int cad_db_each_recent_failure(cad_db *db, int limit, cad_failure_fn fn, void *ctx,
                               cad_err *e);

/* One row of the run_summary view, as `caddie ls` shows it. */
typedef struct cad_summary_row {
    const char *run_id, *status, *name;
    int attempts, devices;
    double val_bpb;          /* NAN: no result */
    int64_t artifact_bytes;  /* -1: unknown */
    double duration_s;       /* NAN: not ended */
} cad_summary_row;
typedef int (*cad_summary_fn)(void *ctx, const cad_summary_row *row);
/* run_summary rows, restricted to a sweep name and/or a status name when not NULL, in
 * queue order (queued_at, run_id). */
int cad_db_each_summary(cad_db *db, const char *sweep, const char *status,
                        cad_summary_fn fn, void *ctx, cad_err *e);

/* Every non-NULL column of the run's run_summary row, in the view's column order, as text
 * (the view is the public interface: `caddie show` follows it as it grows). Nothing when
 * the run has no row. */
typedef int (*cad_field_fn)(void *ctx, const char *column, const char *value);
int cad_db_each_summary_field(cad_db *db, const char *run_id, cad_field_fn fn, void *ctx,
                              cad_err *e);

/* One metric name of a run: how many points, the step range, the value at the last step. */
typedef struct cad_metric_stats {
    const char *name;
    int points;
    int64_t min_step, max_step;
    const char *last_value;  /* as SQLite prints it (NULL: NaN) */
} cad_metric_stats;
typedef int (*cad_metric_stats_fn)(void *ctx, const cad_metric_stats *row);
/* The run's metric names, sorted by name. */
int cad_db_each_metric_stats(cad_db *db, const char *run_id, cad_metric_stats_fn fn,
                             void *ctx, cad_err *e);

/* One events row (from_status NULL: the run's first event). */
typedef struct cad_event_row {
    const char *at, *from_status, *to_status, *reason;
} cad_event_row;
typedef int (*cad_event_fn)(void *ctx, const cad_event_row *row);
/* The run's events, oldest first. */
int cad_db_each_event(cad_db *db, const char *run_id, cad_event_fn fn, void *ctx, cad_err *e);

#endif
