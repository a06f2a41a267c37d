/*
 * views.h — typed reads of the database's public views for reports/ and the reporting
 * commands: run_summary rows, the typed params of the same runs, and curves points.
 *
 * Each read fills a plain struct per row and hands it to a callback (or fills arrays), so a
 * caller never sees SQL or a statement handle. Strings in a row point into SQLite's row
 * buffer: they are valid only during the callback (copy what you keep). Missing numbers are
 * NaN, missing text is NULL. Nothing here writes; `caddie report` also opens its connection
 * query_only, so even the user's --runs expression cannot change the database.
 *
 * The filter's `where` is the user's --runs text, compiled inside a SELECT over run_summary:
 * anything that is not exactly one expression (a second statement, a trailing clause) fails
 * with CAD_EUSAGE; every other value is bound, never spliced.
 * Not here: grouping, statistics, formatting (reports/), opening the DB (db/db.h).
 */
#ifndef CADDIE_DB_VIEWS_H
#define CADDIE_DB_VIEWS_H

#include "db/db.h"
#include "engine/status.h"

/* Which run_summary rows to read: runs of these sweeps (n_sweeps == 0: all), narrowed by
 * one SQL expression over run_summary's columns (NULL or "": none). */
typedef struct cad_view_filter {
    const char *const *sweeps;
    int n_sweeps;
    const char *where;
} cad_view_filter;

/* One run_summary row (the columns reports use). */
typedef struct cad_view_run {
    const char *run_id, *sweep, *name, *status, *config, *config_hash, *group_hash, *error;
    const char *started_at, *ended_at, *run_dir;
    const char *engine; /* caddie, command, prepare; NULL for imported runs without one */
    int has_seed;
    long long seed;
    double val_loss, val_bpb, prequant_val_bpb;
    double artifact_bytes, model_bytes, code_bytes, train_ms, eval_ms, steps, tokens;
    int valid;   /* 1 within every budget, 0 over one, -1 unknown (no result) */
    int partial; /* 1: evaluation limited to a prefix of val */
    int attempts;
} cad_view_run;

/* A row callback: return CAD_OK to go on, anything else (with e filled) to stop the read,
 * which then returns that status. */
typedef int (*cad_view_run_fn)(const cad_view_run *row, void *ud, cad_err *e);

/* The selected run_summary rows ordered by sweep, group_hash, seed, run_id (so the runs of
 * one config group arrive together, seeds in order). */
int cad_view_runs(cad_db *db, const cad_view_filter *f, cad_view_run_fn fn, void *ud, cad_err *e);

/* One key of a run's resolved config (the params table): num is set (has_num = 1) for
 * numbers and booleans, text holds the value as text otherwise (NULL when none). */
typedef struct cad_view_param {
    const char *run_id, *key;
    int has_num;
    double num;
    const char *text;
} cad_view_param;

typedef int (*cad_view_param_fn)(const cad_view_param *p, void *ud, cad_err *e);

/* The params of the runs the same filter selects, ordered by run_id, key. Rows without a
 * run_id or key are skipped. */
int cad_view_params(cad_db *db, const cad_view_filter *f, cad_view_param_fn fn, void *ud,
                    cad_err *e);

/* A reader of the curves view, prepared once and used for many (run, metric) reads. */
typedef struct cad_view_curves cad_view_curves;

int cad_view_curves_open(cad_db *db, cad_view_curves **out, cad_err *e);
/* The points of one metric of one run ordered by step, points whose value is NULL (a logged
 * NaN) left out: *steps and *values get n malloc'd entries each (NULL when n == 0; the
 * caller frees them). On failure nothing is allocated. */
int cad_view_curve_read(cad_view_curves *c, const char *run_id, const char *metric, double **steps,
                        double **values, int *n, cad_err *e);
/* Same with the training time as x: *wall_ms (ordered), points without a wall_ms left out. */
int cad_view_curve_read_wall(cad_view_curves *c, const char *run_id, const char *metric,
                             double **wall_ms, double **values, int *n, cad_err *e);
void cad_view_curves_close(cad_view_curves *c);

#endif
