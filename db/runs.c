/*
 * runs.c — the runner's checks and the commands' listings over runs (contract in runs.h).
 *
 * Each query is a file-scope SQL text prepared once per connection (cad_db_stmt), values
 * bound, never formatted in. The listings read the public views (run_summary) or the
 * runs/metrics/events tables the same way `sqlite3 caddie.db` would.
 * Not here: the state machine and run rows (db.c), ingestion (ingest.c), printing (cli/).
 */
#include "db/runs.h"

#include "db/db_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char status_sql[] = "SELECT status FROM runs WHERE run_id = ?1";

static const char nonfinite_sql[] =
    "SELECT name, step FROM metrics WHERE run_id = ?1 AND name IN "
    "('train_loss','val_loss','val_bpb') AND (value IS NULL OR abs(value) > 1.7e308) "
    "ORDER BY step LIMIT 1";

/* failures after the newest requeue by `caddie retry` (its reason starts so) */
static const char failures_sql[] =
    "SELECT count(*) FROM events WHERE run_id = ?1 AND to_status = 'failed' AND id > "
    "coalesce((SELECT max(id) FROM events WHERE run_id = ?1 AND to_status = 'queued' "
    "AND reason LIKE 'caddie retry %'), 0)";

static const char resumes_sql[] =
    "SELECT 1 FROM runs WHERE run_id = ?1 AND engine = 'caddie' AND "
    "json_extract(config, '$.resume') IN (1, 'true') AND "
    "(SELECT to_status FROM events WHERE run_id = ?1 AND to_status IN "
    "('done','failed','cancelled','interrupted','stopped') ORDER BY id DESC LIMIT 1) = 'interrupted'";

static const char del_metrics_sql[] = "DELETE FROM metrics WHERE run_id = ?1";
static const char del_results_sql[] = "DELETE FROM results WHERE run_id = ?1";
static const char del_artifacts_sql[] = "DELETE FROM artifacts WHERE run_id = ?1";

static const char running_sql[] =
    "SELECT r.run_id, r.devices_assigned, r.attempts, "
    " round((julianday('now') - julianday(r.started_at)) * 86400.0), "
    " (SELECT step FROM metrics m WHERE m.run_id = r.run_id AND m.name = 'train_loss' "
    "  ORDER BY step DESC LIMIT 1), "
    " (SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.name = 'train_loss' "
    "  ORDER BY step DESC LIMIT 1) "
    "FROM runs r WHERE r.status = 'running' ORDER BY r.started_at, r.run_id";

static const char failures_recent_sql[] =
    "SELECT run_id, ended_at, substr(error, 1, instr(error || char(10), char(10)) - 1) "
    "FROM runs WHERE status = 'failed' ORDER BY ended_at DESC LIMIT ?1";

static const char summary_sql[] =
    "SELECT run_id, status, attempts, devices, val_bpb, artifact_bytes, duration_s, name "
    "FROM run_summary WHERE (?1 IS NULL OR sweep = ?1) AND (?2 IS NULL OR status = ?2) "
    "ORDER BY queued_at, run_id";

static const char summary_row_sql[] = "SELECT * FROM run_summary WHERE run_id = ?1";

static const char metric_stats_sql[] =
    "SELECT name, count(*), min(step), max(step), "
    " (SELECT value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.name = m.name "
    "  ORDER BY step DESC LIMIT 1) "
    "FROM metrics m WHERE run_id = ?1 GROUP BY name ORDER BY name";

static const char events_sql[] =
    "SELECT at, from_status, to_status, reason FROM events WHERE run_id = ?1 ORDER BY id";

static const char slurm_record_sql[] =
    "INSERT OR REPLACE INTO slurm_jobs (run_id, attempt, job_name, array_index, job_id, "
    "submitted_at) VALUES (?1, ?2, ?3, ?4, NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";
static const char slurm_set_id_sql[] =
    "UPDATE slurm_jobs SET job_id = ?3 WHERE run_id = ?1 AND attempt = ?2";
static const char slurm_get_sql[] =
    "SELECT job_name, array_index, job_id FROM slurm_jobs WHERE run_id = ?1 AND attempt = ?2";
static const char slurm_running_sql[] =
    "SELECT r.run_id, j.job_id FROM runs r "
    "JOIN slurm_jobs j ON j.run_id = r.run_id AND j.attempt = r.attempts "
    "LEFT JOIN sweeps s ON s.id = r.sweep_id "
    "WHERE r.status = 'running' AND j.job_id IS NOT NULL AND (r.run_id = ?1 OR "
    "(s.name = ?1 AND NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1))) ORDER BY r.run_id";

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *col_text(sqlite3_stmt *s, int i) {
    return (const char *)sqlite3_column_text(s, i);
}

static int col_null(sqlite3_stmt *s, int i) { return sqlite3_column_type(s, i) == SQLITE_NULL; }

/* The statement for sql with run_id bound as ?1. */
static sqlite3_stmt *stmt_run(cad_db *db, const char *sql, const char *run_id, cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, sql, e);
    if (s) sqlite3_bind_text(s, 1, run_id, -1, SQLITE_TRANSIENT);
    return s;
}

/* Step s once: 1 with a row, 0 at the end, -1 on an error (e filled, s reset). */
static int step_row(cad_db *db, sqlite3_stmt *s, const char *what, cad_err *e) {
    int st = sqlite3_step(s);
    if (st == SQLITE_ROW) return 1;
    if (st != SQLITE_DONE) cad_db_fail(db, e, what);
    sqlite3_reset(s);
    return st == SQLITE_DONE ? 0 : -1;
}

/* The end of a listing: stop is the callback's non-zero answer (0: ran to the end). */
static int end_listing(sqlite3_stmt *s, int got, int stop) {
    sqlite3_reset(s);
    if (got < 0) return CAD_EDB;
    return stop;
}

/* ---- the runner's checks ------------------------------------------------------------------- */

int cad_db_run_status(cad_db *db, const char *run_id, cad_run_status *out, int *found,
                      cad_err *e) {
    *found = 0;
    sqlite3_stmt *s = stmt_run(db, status_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "reading a run's status", e);
    if (got > 0) {
        *found = cad_run_status_parse(col_text(s, 0), out) == CAD_OK;
        sqlite3_reset(s);
    }
    return got < 0 ? CAD_EDB : CAD_OK;
}

int cad_db_find_nonfinite_loss(cad_db *db, const char *run_id, cad_metric *out, int *found,
                               cad_err *e) {
    *found = 0;
    sqlite3_stmt *s = stmt_run(db, nonfinite_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "looking for NaN losses", e);
    if (got > 0) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", col_text(s, 0) ? col_text(s, 0) : "");
        out->step = (long)sqlite3_column_int64(s, 1);
        out->value = NAN;
        out->wall_ms = -1;
        *found = 1;
        sqlite3_reset(s);
    }
    return got < 0 ? CAD_EDB : CAD_OK;
}

int cad_db_count_failures(cad_db *db, const char *run_id, int *n, cad_err *e) {
    *n = 0;
    sqlite3_stmt *s = stmt_run(db, failures_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "counting a run's failures", e);
    if (got > 0) {
        *n = sqlite3_column_int(s, 0);
        sqlite3_reset(s);
    }
    return got < 0 ? CAD_EDB : CAD_OK;
}

int cad_db_run_resumes(cad_db *db, const char *run_id, int *yes, cad_err *e) {
    *yes = 0;
    sqlite3_stmt *s = stmt_run(db, resumes_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "checking whether a run resumes", e);
    if (got > 0) {
        *yes = 1;
        sqlite3_reset(s);
    }
    return got < 0 ? CAD_EDB : CAD_OK;
}

static int exec_run(cad_db *db, const char *sql, const char *run_id, cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, sql, run_id, e);
    if (!s) return CAD_EDB;
    int st = sqlite3_step(s);
    sqlite3_reset(s);
    if (st != SQLITE_DONE)
        return cad_fail(e, CAD_EDB, "%s: run %s: clearing an earlier attempt: %s",
                        cad_db_file(db), run_id, sqlite3_errmsg(cad_db_sqlite(db)));
    return CAD_OK;
}

int cad_db_clear_attempt(cad_db *db, const char *run_id, int keep_metrics, cad_err *e) {
    int owned = !cad_db_in_transaction(db);
    int rc = owned ? cad_db_begin(db, e) : CAD_OK;
    if (rc) return rc;
    if (!keep_metrics) rc = exec_run(db, del_metrics_sql, run_id, e);
    if (!rc) rc = exec_run(db, del_results_sql, run_id, e);
    if (!rc) rc = exec_run(db, del_artifacts_sql, run_id, e);
    if (!owned) return rc;
    if (rc) {
        cad_db_rollback(db);
        return rc;
    }
    return cad_db_commit(db, e);
}

/* ---- Slurm jobs ------------------------------------------------------------------------------ */

/* The statement for sql with run_id ?1 and attempt ?2 bound. */
static sqlite3_stmt *stmt_attempt(cad_db *db, const char *sql, const char *run_id, int attempt,
                                  cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, sql, run_id, e);
    if (s) sqlite3_bind_int(s, 2, attempt);
    return s;
}

static int step_write(cad_db *db, sqlite3_stmt *s, const char *what, const char *run_id,
                      cad_err *e) {
    int st = sqlite3_step(s);
    sqlite3_reset(s);
    if (st != SQLITE_DONE)
        return cad_fail(e, CAD_EDB, "%s: run %s: %s: %s", cad_db_file(db), run_id, what,
                        sqlite3_errmsg(cad_db_sqlite(db)));
    return CAD_OK;
}

int cad_db_slurm_job_record(cad_db *db, const char *run_id, int attempt, const char *job_name,
                            int array_index, cad_err *e) {
    sqlite3_stmt *s = stmt_attempt(db, slurm_record_sql, run_id, attempt, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 3, job_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 4, array_index);
    return step_write(db, s, "recording its Slurm job", run_id, e);
}

int cad_db_slurm_job_set_id(cad_db *db, const char *run_id, int attempt, const char *job_id,
                            cad_err *e) {
    sqlite3_stmt *s = stmt_attempt(db, slurm_set_id_sql, run_id, attempt, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 3, job_id, -1, SQLITE_TRANSIENT);
    return step_write(db, s, "recording its Slurm job id", run_id, e);
}

int cad_db_slurm_job_get(cad_db *db, const char *run_id, int attempt, cad_slurm_job *out,
                         int *found, cad_err *e) {
    *found = 0;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt_attempt(db, slurm_get_sql, run_id, attempt, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "reading a run's Slurm job", e);
    if (got > 0) {
        snprintf(out->job_name, sizeof out->job_name, "%s", col_text(s, 0) ? col_text(s, 0) : "");
        out->array_index = sqlite3_column_int(s, 1);
        snprintf(out->job_id, sizeof out->job_id, "%s", col_text(s, 2) ? col_text(s, 2) : "");
        *found = 1;
        sqlite3_reset(s);
    }
    return got < 0 ? CAD_EDB : CAD_OK;
}

int cad_db_each_running_slurm_job(cad_db *db, const char *target, cad_slurm_job_fn fn, void *ctx,
                                  cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, slurm_running_sql, target, e);
    if (!s) return CAD_EDB;
    int got = 0, stop = 0;
    while (!stop && (got = step_row(db, s, "listing Slurm jobs", e)) > 0)
        stop = fn(ctx, col_text(s, 0), col_text(s, 1));
    return end_listing(s, stop ? 0 : got, stop);
}

/* ---- listings ---------------------------------------------------------------------------------- */

int cad_db_each_running(cad_db *db, cad_running_fn fn, void *ctx, cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, running_sql, e);
    if (!s) return CAD_EDB;
    int got = 0, stop = 0;
    while (!stop && (got = step_row(db, s, "listing running runs", e)) > 0) {
        cad_running_row r = {col_text(s, 0),
                             col_text(s, 1),
                             sqlite3_column_int(s, 2),
                             sqlite3_column_double(s, 3),
                             !col_null(s, 4),
                             sqlite3_column_int64(s, 4),
                             col_text(s, 5)};
        stop = fn(ctx, &r);
    }
    return end_listing(s, stop ? 0 : got, stop);
}

int cad_db_each_recent_failure(cad_db *db, int limit, cad_failure_fn fn, void *ctx,
                               cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, failures_recent_sql, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_int(s, 1, limit);
    int got = 0, stop = 0;
    while (!stop && (got = step_row(db, s, "listing failed runs", e)) > 0) {
        cad_failure_row r = {col_text(s, 0), col_text(s, 1), col_text(s, 2)};
        stop = fn(ctx, &r);
    }
    return end_listing(s, stop ? 0 : got, stop);
}

int cad_db_each_summary(cad_db *db, const char *sweep, const char *status,
                        cad_summary_fn fn, void *ctx, cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, summary_sql, e);
    if (!s) return CAD_EDB;
    if (sweep) sqlite3_bind_text(s, 1, sweep, -1, SQLITE_TRANSIENT);
    if (status) sqlite3_bind_text(s, 2, status, -1, SQLITE_TRANSIENT);
    int got = 0, stop = 0;
    while (!stop && (got = step_row(db, s, "listing runs", e)) > 0) {
        cad_summary_row r;
        r.run_id = col_text(s, 0);
        r.status = col_text(s, 1);
        r.attempts = sqlite3_column_int(s, 2);
        r.devices = sqlite3_column_int(s, 3);
        r.val_bpb = col_null(s, 4) ? NAN : sqlite3_column_double(s, 4);
        r.artifact_bytes = col_null(s, 5) ? -1 : sqlite3_column_int64(s, 5);
        r.duration_s = col_null(s, 6) ? NAN : sqlite3_column_double(s, 6);
        r.name = col_text(s, 7);
        stop = fn(ctx, &r);
    }
    return end_listing(s, stop ? 0 : got, stop);
}

int cad_db_each_summary_field(cad_db *db, const char *run_id, cad_field_fn fn, void *ctx,
                              cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, summary_row_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "reading a run's summary", e), stop = 0;
    if (got <= 0) return got < 0 ? CAD_EDB : CAD_OK;
    for (int i = 0; i < sqlite3_column_count(s) && !stop; i++)
        if (!col_null(s, i)) stop = fn(ctx, sqlite3_column_name(s, i), col_text(s, i));
    sqlite3_reset(s);
    return stop;
}

int cad_db_each_metric_stats(cad_db *db, const char *run_id, cad_metric_stats_fn fn,
                             void *ctx, cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, metric_stats_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = 0, stop = 0;
    while (!stop && (got = step_row(db, s, "summarizing a run's metrics", e)) > 0) {
        cad_metric_stats r = {col_text(s, 0), sqlite3_column_int(s, 1),
                              sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
                              col_text(s, 4)};
        stop = fn(ctx, &r);
    }
    return end_listing(s, stop ? 0 : got, stop);
}

int cad_db_each_event(cad_db *db, const char *run_id, cad_event_fn fn, void *ctx, cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, events_sql, run_id, e);
    if (!s) return CAD_EDB;
    int got = 0, stop = 0;
    while (!stop && (got = step_row(db, s, "listing a run's events", e)) > 0) {
        cad_event_row r = {col_text(s, 0), col_text(s, 1), col_text(s, 2), col_text(s, 3)};
        stop = fn(ctx, &r);
    }
    return end_listing(s, stop ? 0 : got, stop);
}

/* ---- early stopping ------------------------------------------------------------------------ */

static const char sweep_spec_sql[] = "SELECT spec FROM sweeps WHERE name = ?1";

static const char sweep_curve_sql[] =
    "SELECT m.run_id, m.step, m.value FROM metrics m "
    "JOIN runs r ON r.run_id = m.run_id JOIN sweeps s ON s.id = r.sweep_id "
    "WHERE s.name = ?1 AND m.name = ?2 AND r.status IN ('running','done','stopped') "
    "AND m.value IS NOT NULL AND abs(m.value) < 1e308 "
    "ORDER BY m.run_id, m.step";

int cad_db_sweep_spec_text(cad_db *db, const char *sweep, char **text, cad_err *e) {
    *text = NULL;
    sqlite3_stmt *s = stmt_run(db, sweep_spec_sql, sweep, e);
    if (!s) return CAD_EDB;
    int got = step_row(db, s, "reading a sweep's spec", e);
    if (got > 0) {
        const char *t = col_text(s, 0);
        *text = strdup(t ? t : "");
        sqlite3_reset(s);
        if (!*text) return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    return got < 0 ? CAD_EDB : CAD_OK;
}

int cad_db_each_sweep_curve_point(cad_db *db, const char *sweep, const char *metric,
                                  cad_curve_point_fn fn, void *ctx, cad_err *e) {
    sqlite3_stmt *s = stmt_run(db, sweep_curve_sql, sweep, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 2, metric, -1, SQLITE_TRANSIENT);
    int got, stop = 0;
    while (!stop && (got = step_row(db, s, "reading a sweep's curves", e)) > 0)
        stop = fn(ctx, col_text(s, 0), (long)sqlite3_column_int64(s, 1), sqlite3_column_double(s, 2));
    if (stop) got = 0;
    return end_listing(s, got, stop);
}
