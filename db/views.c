/*
 * views.c — the read side of the public views for reports: run_summary and params of a
 * filtered selection of runs, and curves points, each as typed rows (see db/views.h).
 *
 * The statements run on the connection of db/db.c (cad_db_sqlite, db/db_internal.h): the caller chose how it
 * was opened (reports make it query_only). The one place user text reaches SQL is the --runs
 * expression, and it is checked here to be exactly one expression.
 * Not here: anything that writes, grouping or statistics (reports/report.c).
 */
#include "db/views.h"

#include "db/db_internal.h"

#include <ctype.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room in the filter text besides the user's expression: " WHERE 1", " AND sweep IN (",
 * ")", " AND (", ")" and the terminating NUL. */
#define FILTER_FIXED_CHARS 64
/* Room per sweep placeholder: ",?NNNN" (the sweep count is limited far below 10^5). */
#define FILTER_CHARS_PER_SWEEP 8

static double col_num(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

/* " WHERE 1 AND sweep IN (?1,..) AND (where)" for run_summary. */
static char *filter_sql(const cad_view_filter *f) {
    size_t cap = FILTER_FIXED_CHARS + (f->where ? strlen(f->where) : 0) + FILTER_CHARS_PER_SWEEP * (size_t)f->n_sweeps;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t o = (size_t)snprintf(s, cap, " WHERE 1");
    if (f->n_sweeps > 0) {
        o += (size_t)snprintf(s + o, cap - o, " AND sweep IN (");
        for (int i = 0; i < f->n_sweeps; i++) o += (size_t)snprintf(s + o, cap - o, "%s?%d", i ? "," : "", i + 1);
        o += (size_t)snprintf(s + o, cap - o, ")");
    }
    if (f->where && *f->where) snprintf(s + o, cap - o, " AND (%s)", f->where);
    return s;
}

/* Prepare head + filter + tail with the sweeps bound. */
static int prepare_filtered(sqlite3 *db, const char *head, const char *tail, const cad_view_filter *f,
                            sqlite3_stmt **st, cad_err *e) {
    char *filter = filter_sql(f);
    if (!filter) return cad_fail(e, CAD_ENOMEM, "out of memory");
    size_t n = strlen(head) + strlen(filter) + strlen(tail) + 1;
    char *sql = malloc(n);
    if (!sql) {
        free(filter);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    snprintf(sql, n, "%s%s%s", head, filter, tail);
    free(filter);
    const char *rest = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, st, &rest);
    if (rc != SQLITE_OK) {
        /* with a user expression in the statement, a compile error is almost surely theirs */
        int code = f->where ? CAD_EUSAGE : CAD_EDB;
        if (f->where) cad_fail(e, code, "--runs '%s': %s", f->where, sqlite3_errmsg(db));
        else cad_fail(e, code, "%s", sqlite3_errmsg(db));
        free(sql);
        return code;
    }
    /* rest points into sql: check it before freeing */
    while (rest && isspace((unsigned char)*rest)) rest++;
    if (rest && *rest) {
        sqlite3_finalize(*st);
        *st = NULL;
        cad_fail(e, CAD_EUSAGE, "--runs must be one SQL expression over run_summary columns, got trailing '%s'", rest);
        free(sql);
        return CAD_EUSAGE;
    }
    free(sql);
    for (int i = 0; i < f->n_sweeps; i++) sqlite3_bind_text(*st, i + 1, f->sweeps[i], -1, SQLITE_STATIC);
    return CAD_OK;
}

static void run_row(sqlite3_stmt *st, cad_view_run *r) {
    memset(r, 0, sizeof *r);
    r->run_id = col_text(st, 0);
    r->sweep = col_text(st, 1);
    r->name = col_text(st, 2);
    r->status = col_text(st, 3);
    r->has_seed = sqlite3_column_type(st, 4) != SQLITE_NULL;
    r->seed = sqlite3_column_int64(st, 4);
    r->val_loss = col_num(st, 5);
    r->val_bpb = col_num(st, 6);
    r->prequant_val_bpb = col_num(st, 7);
    r->artifact_bytes = col_num(st, 8);
    r->model_bytes = col_num(st, 9);
    r->code_bytes = col_num(st, 10);
    r->train_ms = col_num(st, 11);
    r->eval_ms = col_num(st, 12);
    r->steps = col_num(st, 13);
    r->tokens = col_num(st, 14);
    r->valid = sqlite3_column_type(st, 15) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 15) != 0;
    r->partial = sqlite3_column_int(st, 16) != 0;
    r->config = col_text(st, 17);
    r->config_hash = col_text(st, 18);
    r->group_hash = col_text(st, 19);
    r->error = col_text(st, 20);
    r->attempts = sqlite3_column_int(st, 21);
    r->started_at = col_text(st, 22);
    r->ended_at = col_text(st, 23);
    r->run_dir = col_text(st, 24);
    r->engine = col_text(st, 25);
}

int cad_view_runs(cad_db *db, const cad_view_filter *f, cad_view_run_fn fn, void *ud, cad_err *e) {
    sqlite3 *h = cad_db_sqlite(db);
    sqlite3_stmt *st;
    int rc = prepare_filtered(h,
        "SELECT run_id, sweep, name, status, seed, val_loss, val_bpb, prequant_val_bpb,"
        " artifact_bytes, model_bytes, code_bytes, train_ms, eval_ms, steps, tokens, valid, partial,"
        " config, config_hash, group_hash, error, attempts, started_at, ended_at, run_dir, engine"
        " FROM run_summary",
        " ORDER BY sweep, group_hash, seed, run_id", f, &st, e);
    if (rc) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cad_view_run r;
        run_row(st, &r);
        int cb = fn(&r, ud, e);
        if (cb) {
            sqlite3_finalize(st);
            return cb;
        }
    }
    if (rc != SQLITE_DONE) {
        cad_db_fail(db, e, "reading run_summary");
        sqlite3_finalize(st);
        return CAD_EDB;
    }
    sqlite3_finalize(st);
    return CAD_OK;
}

int cad_view_params(cad_db *db, const cad_view_filter *f, cad_view_param_fn fn, void *ud, cad_err *e) {
    sqlite3 *h = cad_db_sqlite(db);
    sqlite3_stmt *st;
    int rc = prepare_filtered(h, "SELECT run_id, key, num, text FROM params WHERE run_id IN (SELECT run_id FROM run_summary",
                              ") ORDER BY run_id, key", f, &st, e);
    if (rc) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cad_view_param p;
        p.run_id = col_text(st, 0);
        p.key = col_text(st, 1);
        if (!p.run_id || !p.key) continue;
        p.has_num = sqlite3_column_type(st, 2) != SQLITE_NULL;
        p.num = p.has_num ? sqlite3_column_double(st, 2) : NAN;
        p.text = col_text(st, 3);
        int cb = fn(&p, ud, e);
        if (cb) {
            sqlite3_finalize(st);
            return cb;
        }
    }
    int ok = rc == SQLITE_DONE;
    if (!ok) cad_db_fail(db, e, "reading params");
    sqlite3_finalize(st);
    return ok ? CAD_OK : CAD_EDB;
}

/* ---- curves ------------------------------------------------------------------------------- */

/* Initial room for one curve's points; doubled as needed. */
#define CURVE_INITIAL_POINTS 256

struct cad_view_curves {
    sqlite3 *db;
    sqlite3_stmt *st;
    sqlite3_stmt *st_wall; /* x = wall_ms (points without one left out), prepared on first use */
};

int cad_view_curves_open(cad_db *db, cad_view_curves **out, cad_err *e) {
    *out = NULL;
    cad_view_curves *c = calloc(1, sizeof *c);
    if (!c) return cad_fail(e, CAD_ENOMEM, "out of memory");
    c->db = cad_db_sqlite(db);
    if (sqlite3_prepare_v2(c->db, "SELECT step, value FROM curves WHERE run_id = ?1 AND name = ?2 ORDER BY step", -1,
                           &c->st, NULL) != SQLITE_OK) {
        cad_fail(e, CAD_EDB, "preparing the curves query: %s", sqlite3_errmsg(c->db));
        free(c);
        return CAD_EDB;
    }
    *out = c;
    return CAD_OK;
}

static int curve_read(cad_view_curves *c, sqlite3_stmt *st, const char *run_id, const char *metric,
                      double **steps, double **values, int *n, cad_err *e);

int cad_view_curve_read(cad_view_curves *c, const char *run_id, const char *metric, double **steps,
                        double **values, int *n, cad_err *e) {
    return curve_read(c, c->st, run_id, metric, steps, values, n, e);
}

int cad_view_curve_read_wall(cad_view_curves *c, const char *run_id, const char *metric,
                             double **wall_ms, double **values, int *n, cad_err *e) {
    *wall_ms = *values = NULL;
    *n = 0;
    if (!c->st_wall &&
        sqlite3_prepare_v2(c->db, "SELECT wall_ms, value FROM curves WHERE run_id = ?1 AND name = ?2 "
                                  "AND wall_ms IS NOT NULL ORDER BY wall_ms, step",
                           -1, &c->st_wall, NULL) != SQLITE_OK)
        return cad_fail(e, CAD_EDB, "preparing the curves query: %s", sqlite3_errmsg(c->db));
    return curve_read(c, c->st_wall, run_id, metric, wall_ms, values, n, e);
}

static int curve_read(cad_view_curves *c, sqlite3_stmt *st, const char *run_id, const char *metric,
                      double **steps, double **values, int *n, cad_err *e) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, metric, -1, SQLITE_STATIC);
    double *xs = NULL, *ys = NULL;
    int cap = 0, count = 0, rc;
    *steps = *values = NULL;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 1) == SQLITE_NULL) continue;
        if (count == cap) {
            cap = cap ? cap * 2 : CURVE_INITIAL_POINTS;
            double *nx = realloc(xs, (size_t)cap * sizeof *nx);
            if (nx) xs = nx;
            double *ny = realloc(ys, (size_t)cap * sizeof *ny);
            if (ny) ys = ny;
            if (!nx || !ny) {
                free(xs);
                free(ys);
                sqlite3_reset(st);
                return cad_fail(e, CAD_ENOMEM, "reading curves of run '%s': out of memory", run_id);
            }
        }
        xs[count] = sqlite3_column_double(st, 0);
        ys[count] = sqlite3_column_double(st, 1);
        count++;
    }
    if (rc != SQLITE_DONE) {
        free(xs);
        free(ys);
        cad_fail(e, CAD_EDB, "reading curves of run '%s': %s", run_id, sqlite3_errmsg(c->db));
        sqlite3_reset(st);
        return CAD_EDB;
    }
    *steps = xs;
    *values = ys;
    *n = count;
    return CAD_OK;
}

void cad_view_curves_close(cad_view_curves *c) {
    if (!c) return;
    sqlite3_finalize(c->st);
    sqlite3_finalize(c->st_wall);
    free(c);
}
