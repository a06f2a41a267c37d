/*
 * greedy.c — the rounds of greedy sweeps in the database (contract in greedy.h): recording a
 * greedy file, planning a round against the DB, deciding a finished round from its results
 * and queueing the next. File-scope SQL prepared once per connection, values bound.
 *
 * Not here: the round's shape and the choice rule (sweep/spec.c), queueing (queue.c), the
 * runner loop that calls the tick (runner/runner.c).
 */
#include "db/greedy.h"

#include "db/db_internal.h"
#include "db/queue.h"
#include "engine/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char info_sql[] =
    "SELECT status, round, result, (SELECT json_group_array(value) FROM json_each(accepted)) "
    "FROM greedy WHERE name = ?1";
static const char accepted_sql[] = "SELECT value FROM json_each((SELECT accepted FROM greedy WHERE name = ?1))";
static const char insert_sql[] =
    "INSERT INTO greedy(name, spec, spec_path, runs_dir, cwd, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char round_insert_sql[] =
    "INSERT OR REPLACE INTO greedy_rounds(greedy, round, sweep_id, base) "
    "VALUES (?1, ?2, (SELECT id FROM sweeps WHERE name = ?3), ?4)";
static const char running_sql[] =
    "SELECT name, spec, spec_path, runs_dir, cwd FROM greedy WHERE status = 'running' ORDER BY name";
static const char decide_sql[] =
    "UPDATE greedy_rounds SET decision = ?3, decided_at = ?4 WHERE greedy = ?1 AND round = ?2";
static const char advance_sql[] = "UPDATE greedy SET round = ?2, accepted = ?3 WHERE name = ?1";
static const char delete_sql[] = "DELETE FROM greedy WHERE name = ?1 AND ?2 IS NULL";
static const char finish_sql[] = "UPDATE greedy SET status = 'done', result = ?2 WHERE name = ?1";

void cad_greedy_info_free(cad_greedy_info *gi) {
    free(gi->accepted);
    free(gi->result);
    memset(gi, 0, sizeof *gi);
}

static int cand_index(const cad_sweep_spec *g, const char *name) {
    for (int i = 0; i < g->greedy.n_cands; i++)
        if (strcmp(g->greedy.cands[i].label, name) == 0) return i;
    return -1;
}

int cad_greedy_info_get(cad_db *db, const cad_sweep_spec *g, cad_greedy_info *gi, cad_err *e) {
    memset(gi, 0, sizeof *gi);
    sqlite3_stmt *s = cad_db_stmt(db, info_sql, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 1, g->name, -1, SQLITE_STATIC);
    int st = sqlite3_step(s);
    if (st == SQLITE_DONE) return CAD_OK;
    if (st != SQLITE_ROW) return cad_db_fail(db, e, "reading a greedy sweep");
    gi->found = 1;
    gi->done = strcmp((const char *)sqlite3_column_text(s, 0), "done") == 0;
    gi->round = sqlite3_column_int(s, 1);
    const unsigned char *res = sqlite3_column_text(s, 2);
    gi->result = strdup(res ? (const char *)res : "");
    gi->accepted = calloc((size_t)g->greedy.n_cands + 1, sizeof *gi->accepted);
    if (!gi->result || !gi->accepted) {
        cad_greedy_info_free(gi);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    if (!(s = cad_db_stmt(db, accepted_sql, e))) {
        cad_greedy_info_free(gi);
        return CAD_EDB;
    }
    sqlite3_bind_text(s, 1, g->name, -1, SQLITE_STATIC);
    while ((st = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        int i = cand_index(g, name ? name : "");
        if (i < 0 || gi->n_accepted >= g->greedy.n_cands) {
            int rc = cad_fail(e, CAD_ECONFIG,
                              "%s: greedy '%s' kept candidate '%s' in an earlier round, but the file has no "
                              "such candidate now",
                              g->path, g->name, name ? name : "");
            cad_greedy_info_free(gi);
            return rc;
        }
        gi->accepted[gi->n_accepted++] = i;
    }
    if (st != SQLITE_DONE) {
        cad_greedy_info_free(gi);
        return cad_db_fail(db, e, "reading a greedy sweep's candidates");
    }
    return CAD_OK;
}

int cad_greedy_plan_round(cad_db *db, const cad_sweep_spec *g, int round, const int *accepted, int n_accepted,
                          const cad_plan_opts *po, cad_sweep_spec **round_spec, cad_plan *plan, cad_err *e) {
    memset(plan, 0, sizeof *plan);
    int rc = cad_sweep_greedy_round(g, round, accepted, n_accepted, round_spec, e);
    if (rc) return rc;
    rc = cad_plan_expand(*round_spec, po, plan, e);
    if (!rc && db) rc = cad_queue_check(db, *round_spec, plan, 0, e);
    if (rc) {
        cad_plan_free(plan);
        cad_sweep_spec_free(*round_spec);
        *round_spec = NULL;
    }
    return rc;
}

/* JSON list of the accepted candidates' names. */
static char *accepted_json(const cad_sweep_spec *g, const int *acc, int n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        cad_json_write_string(f, g->greedy.cands[acc[i]].label);
    }
    fputc(']', f);
    fclose(f);
    return buf;
}

/* Queue round `round` (its sweep and runs) and record it in greedy_rounds. */
static int queue_round(cad_db *db, const cad_sweep_spec *g, int round, const int *acc, int n_acc,
                       const cad_plan_opts *po, int *queued, cad_err *e) {
    cad_sweep_spec *rs = NULL;
    cad_plan p;
    int rc = cad_greedy_plan_round(db, g, round, acc, n_acc, po, &rs, &p, e);
    if (rc) return rc;
    rc = cad_queue_add(db, rs, &p, e);
    if (!rc) *queued += p.n_action[CAD_PLAN_QUEUE] + p.n_action[CAD_PLAN_REQUEUE];
    char *base = rc ? NULL : accepted_json(g, acc, n_acc);
    if (!rc && !base) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    sqlite3_stmt *s = rc ? NULL : cad_db_stmt(db, round_insert_sql, e);
    if (!rc && !s) rc = CAD_EDB;
    if (!rc) {
        sqlite3_bind_text(s, 1, g->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, round);
        sqlite3_bind_text(s, 3, rs->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, base, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) rc = cad_db_fail(db, e, "recording a greedy round");
    }
    free(base);
    cad_plan_free(&p);
    cad_sweep_spec_free(rs);
    return rc;
}

static int exec_text2(cad_db *db, const char *sql, const char *a, const char *b, const char *what, cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, sql, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
    return sqlite3_step(s) == SQLITE_DONE ? CAD_OK : cad_db_fail(db, e, what);
}

int cad_greedy_add(cad_db *db, const cad_sweep_spec *g, const char *spec_path, const char *cwd,
                   const char *runs_dir, int *already, int *queued, cad_err *e) {
    *already = 0;
    *queued = 0;
    cad_greedy_info gi;
    int rc = cad_greedy_info_get(db, g, &gi, e);
    if (rc) return rc;
    *already = gi.found;
    cad_greedy_info_free(&gi);
    if (*already) return CAD_OK;
    cad_plan_opts po = {runs_dir, cwd};
    char now[CAD_DB_TIME_MAX];
    cad_db_now(now, sizeof now);
    sqlite3_stmt *s = cad_db_stmt(db, insert_sql, e);
    if (!s) return CAD_EDB;
    const char *vals[] = {g->name, g->doc->text, spec_path, runs_dir, cwd, now};
    for (int i = 0; i < 6; i++) sqlite3_bind_text(s, i + 1, vals[i], -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) return cad_db_fail(db, e, "recording a greedy sweep");
    /* round 1 in its own transaction (queueing's): when it fails the greedy row goes again,
     * so a corrected file can be added */
    if ((rc = queue_round(db, g, 1, NULL, 0, &po, queued, e))) {
        cad_err de = {0};
        exec_text2(db, delete_sql, g->name, NULL, "forgetting a greedy sweep", &de);
    }
    return rc;
}

/* ---- deciding a round -------------------------------------------------------------------- */

/* The metric of a done run: *have = 0 when it has none (a stopped run, no result). */
static int run_metric(cad_db *db, const char *run_id, const char *metric, double *v, int *have, cad_err *e) {
    cad_result res;
    int found = 0;
    *have = 0;
    int rc = cad_db_get_result(db, run_id, &res, &found, e);
    if (rc || !found) return rc;
    *v = strcmp(metric, "val_loss") == 0 ? res.val_loss : res.val_bpb;
    *have = isfinite(*v);
    return CAD_OK;
}

typedef struct round_scores {
    int n;                /* points: 0 = base, then the round's candidates */
    double *mean;
    int *have, *count;
    int pending;          /* some run of the round is queued or running */
} round_scores;

static int score_round(cad_db *db, const cad_sweep_spec *rs, const cad_plan *p, const char *metric,
                       round_scores *sc, cad_err *e) {
    int npts = rs->axes[0].n_points;
    sc->n = npts;
    sc->mean = calloc((size_t)npts, sizeof *sc->mean);
    sc->have = calloc((size_t)npts, sizeof *sc->have);
    sc->count = calloc((size_t)npts, sizeof *sc->count);
    if (!sc->mean || !sc->have || !sc->count) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int i = 0; i < p->n; i++) {
        const cad_plan_run *r = &p->runs[i];
        char id[CAD_RUN_ID_MAX], pend[CAD_RUN_ID_MAX];
        int nd = 0;
        int rc = cad_db_find_pending_by_hash(db, r->config_hash, pend, sizeof pend, e);
        if (!rc) rc = cad_db_find_done_by_hash(db, r->config_hash, &nd, id, sizeof id, e);
        if (rc) return rc;
        if (pend[0]) sc->pending = 1;
        if (sc->pending || nd == 0) continue;
        double v;
        int have;
        if ((rc = run_metric(db, id, metric, &v, &have, e))) return rc;
        if (!have) continue;
        int pt = i % npts; /* seeds outermost, one axis: run i is point i mod points */
        sc->mean[pt] += v;
        sc->count[pt]++;
    }
    for (int k = 0; k < npts; k++)
        if ((sc->have[k] = sc->count[k] > 0)) sc->mean[k] /= sc->count[k];
    return CAD_OK;
}

static void scores_free(round_scores *sc) {
    free(sc->mean);
    free(sc->have);
    free(sc->count);
}

static char *decision_json(const cad_sweep_spec *rs, const round_scores *sc, int winner, const char *reason) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputs("{\"winner\":", f);
    if (winner > 0) cad_json_write_string(f, rs->axes[0].points[winner].label);
    else fputs("null", f);
    fputs(",\"scores\":{", f);
    int first = 1;
    for (int k = 0; k < sc->n; k++) {
        if (!sc->have[k]) continue;
        if (!first) fputc(',', f);
        first = 0;
        cad_json_write_string(f, rs->axes[0].points[k].label);
        fputc(':', f);
        cad_json_write_number(f, sc->mean[k]);
    }
    fputs("},\"reason\":", f);
    cad_json_write_string(f, reason);
    fputc('}', f);
    fclose(f);
    return buf;
}

/* One running greedy: decide its round when it is over. */
static int tick_one(cad_db *db, const cad_sweep_spec *g, const char *runs_dir, const char *cwd,
                    cad_greedy_say_fn say, void *ctx, int *queued, cad_err *e) {
    cad_greedy_info gi;
    int rc = cad_greedy_info_get(db, g, &gi, e);
    if (rc || !gi.found || gi.done) {
        cad_greedy_info_free(&gi);
        return rc;
    }
    cad_plan_opts po = {runs_dir, cwd};
    cad_sweep_spec *rs = NULL;
    cad_plan p;
    round_scores sc = {0};
    char line[1600], reason[512];
    char *dec = NULL, *acc = NULL;
    int winner = 0;
    rc = cad_greedy_plan_round(db, g, gi.round, gi.accepted, gi.n_accepted, &po, &rs, &p, e);
    if (rc) goto out;
    if ((rc = score_round(db, rs, &p, g->greedy.metric, &sc, e)) || sc.pending) goto out;
    const cad_sweep_point *pts = rs->axes[0].points;
    int end = 0;
    if (cad_sweep_greedy_pick(sc.mean, sc.have, sc.n, g->greedy.margin, &winner) != CAD_OK) {
        snprintf(reason, sizeof reason, "round %d: the current config (base) has no %s: its runs failed", gi.round,
                 g->greedy.metric);
        end = 1;
    } else if (winner == 0) {
        int best = 0;
        for (int k = 1; k < sc.n; k++)
            if (sc.have[k] && (best == 0 || sc.mean[k] < sc.mean[best])) best = k;
        if (best)
            snprintf(reason, sizeof reason, "round %d: no candidate beats base %s %.6f by more than %g (best: %s %.6f)",
                     gi.round, g->greedy.metric, sc.mean[0], g->greedy.margin, pts[best].label, sc.mean[best]);
        else snprintf(reason, sizeof reason, "round %d: no candidate has a result", gi.round);
        end = 1;
    } else {
        snprintf(reason, sizeof reason, "round %d: keep %s: %s %.6f vs base %.6f (margin %g)", gi.round,
                 pts[winner].label, g->greedy.metric, sc.mean[winner], sc.mean[0], g->greedy.margin);
        gi.accepted[gi.n_accepted++] = cand_index(g, pts[winner].label);
        if (gi.round >= g->greedy.max_rounds || gi.n_accepted >= g->greedy.n_cands) end = 2;
    }
    if (!(dec = decision_json(rs, &sc, winner, reason)) || !(acc = accepted_json(g, gi.accepted, gi.n_accepted))) {
        rc = cad_fail(e, CAD_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = cad_db_begin(db, e))) goto out;
    sqlite3_stmt *s = cad_db_stmt(db, decide_sql, e);
    char now[CAD_DB_TIME_MAX];
    cad_db_now(now, sizeof now);
    if (!s) rc = CAD_EDB;
    else {
        sqlite3_bind_text(s, 1, g->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, gi.round);
        sqlite3_bind_text(s, 3, dec, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, now, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) rc = cad_db_fail(db, e, "recording a greedy decision");
    }
    if (!rc && end) {
        char result[1400];
        if (end == 2)
            snprintf(result, sizeof result, "%s; %s; kept %s", reason,
                     gi.n_accepted >= g->greedy.n_cands ? "every candidate kept" : "max_rounds reached", acc);
        else snprintf(result, sizeof result, "%s; kept %s", reason, acc);
        rc = exec_text2(db, finish_sql, g->name, result, "ending a greedy sweep", e);
        snprintf(line, sizeof line, "greedy  %s done: %s", g->name, result);
    }
    if (!rc && !end) {
        sqlite3_stmt *a = cad_db_stmt(db, advance_sql, e);
        if (!a) rc = CAD_EDB;
        else {
            sqlite3_bind_text(a, 1, g->name, -1, SQLITE_STATIC);
            sqlite3_bind_int(a, 2, gi.round + 1);
            sqlite3_bind_text(a, 3, acc, -1, SQLITE_STATIC);
            if (sqlite3_step(a) != SQLITE_DONE) rc = cad_db_fail(db, e, "advancing a greedy sweep");
        }
    }
    if (!rc) rc = cad_db_commit(db, e);
    else cad_db_rollback(db);
    if (rc) goto out;
    if (!end) {
        /* after the decision's commit: a runner killed here has the next round recorded as
         * current and queues it when it starts again (queue_round is idempotent by dedup) */
        int before = *queued;
        rc = queue_round(db, g, gi.round + 1, gi.accepted, gi.n_accepted, &po, queued, e);
        snprintf(line, sizeof line, "greedy  %s %s; round %d queued (%d runs)", g->name, reason, gi.round + 1,
                 *queued - before);
    }
    if (!rc && say) say(ctx, line);
out:
    free(dec);
    free(acc);
    scores_free(&sc);
    if (rs) {
        cad_plan_free(&p);
        cad_sweep_spec_free(rs);
    }
    cad_greedy_info_free(&gi);
    return rc;
}

static const char each_sql[] = "SELECT name, status, round, accepted, result FROM greedy ORDER BY name";

int cad_greedy_each(cad_db *db, cad_greedy_row_fn fn, void *ctx, cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, each_sql, e);
    if (!s) return CAD_EDB;
    int st;
    while ((st = sqlite3_step(s)) == SQLITE_ROW) {
        cad_greedy_row r = {(const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
                            (const char *)sqlite3_column_text(s, 3), (const char *)sqlite3_column_text(s, 4),
                            sqlite3_column_int(s, 2)};
        if (fn(ctx, &r)) {
            sqlite3_reset(s);
            return CAD_OK;
        }
    }
    if (st != SQLITE_DONE) return cad_db_fail(db, e, "listing greedy sweeps");
    return CAD_OK;
}

int cad_greedy_tick(cad_db *db, cad_greedy_say_fn say, void *ctx, int *queued, cad_err *e) {
    *queued = 0;
    sqlite3_stmt *s = cad_db_stmt(db, running_sql, e);
    if (!s) return CAD_EDB;
    /* read the list first: deciding writes, and a statement mid-step would see it */
    typedef struct {
        char *name, *spec, *path, *runs_dir, *cwd;
    } row;
    row *rows = NULL;
    int n = 0, st;
    while ((st = sqlite3_step(s)) == SQLITE_ROW) {
        row *nr = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        if (!nr) break;
        rows = nr;
        char **f[] = {&rows[n].name, &rows[n].spec, &rows[n].path, &rows[n].runs_dir, &rows[n].cwd};
        for (int i = 0; i < 5; i++) *f[i] = strdup((const char *)sqlite3_column_text(s, i));
        n++;
    }
    int rc = st == SQLITE_DONE ? CAD_OK : st == SQLITE_ROW ? cad_fail(e, CAD_ENOMEM, "out of memory")
                                                           : cad_db_fail(db, e, "listing greedy sweeps");
    sqlite3_reset(s);
    for (int i = 0; i < n && !rc; i++) {
        cad_sweep_spec *g = NULL;
        if (!rows[i].spec || !rows[i].path || !rows[i].runs_dir || !rows[i].cwd) {
            rc = cad_fail(e, CAD_ENOMEM, "out of memory");
            break;
        }
        cad_err le = {0};
        if (cad_sweep_spec_load_text(rows[i].path, rows[i].spec, strlen(rows[i].spec), &g, &le) != CAD_OK) {
            /* the stored file no longer plans (its base file moved): say so, keep it running */
            if (say) {
                char line[CAD_ERRMSG_MAX + 64];
                snprintf(line, sizeof line, "warning: greedy %s: %s", rows[i].name, le.msg);
                say(ctx, line);
            }
            continue;
        }
        cad_err te = {0};
        int trc = tick_one(db, g, rows[i].runs_dir, rows[i].cwd, say, ctx, queued, &te);
        cad_sweep_spec_free(g);
        if (trc == CAD_EDB || trc == CAD_ENOMEM) {
            *e = te;
            rc = trc;
        } else if (trc) {
            /* a round that cannot be planned (a candidate makes an invalid config) ends the
             * selection with the reason; the runner goes on with everything else */
            char result[CAD_ERRMSG_MAX + 64];
            snprintf(result, sizeof result, "stopped: %s", te.msg);
            rc = exec_text2(db, finish_sql, rows[i].name, result, "ending a greedy sweep", e);
            if (!rc && say) {
                char line[CAD_ERRMSG_MAX + 128];
                snprintf(line, sizeof line, "greedy  %s %s", rows[i].name, result);
                say(ctx, line);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        free(rows[i].name), free(rows[i].spec), free(rows[i].path), free(rows[i].runs_dir), free(rows[i].cwd);
    }
    free(rows);
    return rc;
}
