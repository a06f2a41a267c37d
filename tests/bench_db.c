/*
 * bench_db.c — results-database benchmark for `make bench`: metric ingest rate and query
 * latency on a generated DB (issue 5 targets: >= 200,000 rows/s; < 50 ms for one run's
 * curve and for the run_summary of one sweep).
 *
 *   bench_db RUNS STEPS DB_PATH [JSONL_RUNS [query]]
 * builds DB_PATH from scratch with RUNS runs in RUNS/100 sweeps (at least 1), STEPS
 * train_loss points per run (plus a val_bpb point every 100 steps) inserted with
 * cad_db_insert_metrics, one transaction per run (how the runner batches), and a result per
 * run; then times JSONL_RUNS runs (default 10) through the full ingestion path
 * (metrics.jsonl read by cad_ingest_run_dir, as the runner does), and the queries.
 * With "query" as 5th argument, only the queries run, on a DB built before with the same
 * RUNS and STEPS (the run ids are a function of the run index).
 * Prints figures only; never pass/fail. Not a test: nothing here checks correctness.
 */
#include "db/db.h"
#include "db/db_internal.h"
#include "db/ingest.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU seconds of this process (user + system): on a shared machine wall time also counts
 * other processes' turns, so both are printed. */
static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Run sql with one text parameter to completion; returns rows. */
static long run_query(cad_db *db, const char *sql, const char *arg) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cad_db_sqlite(db), sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_db: %s: %s\n", sql, sqlite3_errmsg(cad_db_sqlite(db)));
        exit(1);
    }
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    long rows = 0;
    double sink = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        /* read each value in its own type, as a report does (no number-to-text work) */
        for (int i = 0; i < sqlite3_column_count(st); i++) switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER: sink += (double)sqlite3_column_int64(st, i); break;
            case SQLITE_FLOAT: sink += sqlite3_column_double(st, i); break;
            case SQLITE_TEXT: sink += sqlite3_column_bytes(st, i); break;
            default: break;
            }
        rows++;
    }
    if (sink == -1.0) fputs("", stderr); /* keep the reads */
    sqlite3_finalize(st);
    return rows;
}

/* Median and max latency (ms) of sql over `reps` different arguments. */
static void time_query(cad_db *db, const char *label, const char *sql, char **args, int reps) {
    double *ms = malloc(sizeof(double) * (size_t)reps);
    long rows = 0;
    for (int i = 0; i < reps; i++) {
        double t = now_s();
        rows = run_query(db, sql, args[i]);
        ms[i] = (now_s() - t) * 1e3;
    }
    double first = ms[0];
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    printf("  %-44s median %7.2f ms  max %7.2f ms  first %7.2f ms  (%ld rows, %d samples)\n", label,
           ms[reps / 2], ms[reps - 1], first, rows, reps);
    free(ms);
}

static void die(const cad_err *e) {
    fprintf(stderr, "bench_db: %s\n", e->msg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_db RUNS STEPS DB_PATH [JSONL_RUNS]\n");
        return 2;
    }
    int n_runs = atoi(argv[1]);
    long n_steps = atol(argv[2]);
    const char *path = argv[3];
    int n_jsonl = argc > 4 ? atoi(argv[4]) : 10;
    int n_sweeps = n_runs / 100 > 0 ? n_runs / 100 : 1;
    int query_only = argc > 5 && strcmp(argv[5], "query") == 0;
    char p[4400];
    cad_err e;
    cad_db *db;
    char **ids = calloc((size_t)n_runs, sizeof *ids);
    for (int r = 0; r < n_runs; r++) {
        char id[64];
        snprintf(id, sizeof id, "sweep%03d-%08x", r % n_sweeps, (unsigned)r * 2654435761u);
        ids[r] = strdup(id);
    }
    int64_t *sweep_ids = calloc((size_t)n_sweeps, sizeof *sweep_ids);
    long total = 0;
    if (query_only) goto queries;
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    if (cad_db_open(path, 0, &db, &e)) die(&e);

    /* runs + sweeps */
    double t0 = now_s();
    if (cad_db_begin(db, &e)) die(&e);
    for (int s = 0; s < n_sweeps; s++) {
        char name[32];
        snprintf(name, sizeof name, "sweep%03d", s);
        if (cad_db_sweep_upsert(db, name, "bench", "name: x\n", "h", &sweep_ids[s], &e)) die(&e);
    }
    for (int r = 0; r < n_runs; r++) {
        char cfg[160], hash[32], group[32];
        const char *id = ids[r];
        snprintf(cfg, sizeof cfg, "{\"qk_gain_init\":%.2f,\"matrix_lr\":%.3f,\"seed\":%d}", 1.5 + (r % 7) * 0.5,
                 0.02 + (r % 3) * 0.01, r % 3);
        snprintf(hash, sizeof hash, "h%d", r);
        snprintf(group, sizeof group, "g%d", r / 3);
        cad_run_new nr = {.run_id = id, .sweep_id = sweep_ids[r % n_sweeps], .name = id, .engine = "caddie",
                          .config = cfg, .config_hash = hash, .group_hash = group, .has_seed = 1,
                          .seed = r % 3, .status = CAD_RUN_DONE, .devices_requested = 1, .git_dirty = -1,
                          .run_dir = "", .reason = "bench"};
        if (cad_db_insert_run(db, &nr, &e)) die(&e);
    }
    if (cad_db_commit(db, &e)) die(&e);
    printf("  %-44s %.2f s (%d runs, %d sweeps)\n", "runs inserted (with params, events)", now_s() - t0,
           n_runs, n_sweeps);

    /* metrics through cad_db_insert_metrics: one transaction per run */
    long per_run = n_steps + n_steps / 100;
    cad_metric *rows = malloc(sizeof *rows * (size_t)per_run);
    t0 = now_s();
    double c0 = cpu_s();
    for (int r = 0; r < n_runs; r++) {
        long k = 0;
        for (long s = 0; s < n_steps; s++) {
            cad_metric *m = &rows[k++];
            memcpy(m->name, "train_loss", 11);
            m->step = s;
            m->value = 7.0 * exp(-s / 5000.0) + 2.0 + (r % 17) * 1e-3;
            m->wall_ms = s * 43.5;
            if (s % 100 == 99) {
                m = &rows[k++];
                memcpy(m->name, "val_bpb", 8);
                m->step = s + 1;
                m->value = 1.2 + 3.0 * exp(-s / 4000.0) + (r % 13) * 1e-4;
                m->wall_ms = s * 43.5;
            }
        }
        if (cad_db_insert_metrics(db, ids[r], rows, (size_t)k, &e)) die(&e);
        total += k;
        if (n_runs >= 10 && (r + 1) % (n_runs / 10) == 0)
            fprintf(stderr, "\r  ... %d/%d runs, %.0f rows/s", r + 1, n_runs, total / (now_s() - t0));
    }
    double dt = now_s() - t0, dc = cpu_s() - c0;
    fprintf(stderr, "\n");
    printf("  %-44s %.0f rows/s wall, %.0f rows/s CPU (%ld rows in %.1f s wall, %.1f s CPU)\n",
           "metric ingest, cad_db_insert_metrics", total / dt, total / dc, total, dt, dc);

    /* results */
    t0 = now_s();
    if (cad_db_begin(db, &e)) die(&e);
    for (int r = 0; r < n_runs; r++) {
        cad_result res;
        cad_result_init(&res);
        res.val_bpb = 1.2 + (r % 101) * 1e-4;
        res.val_loss = res.val_bpb * 1.69;
        res.prequant_val_bpb = res.val_bpb - 0.007;
        res.artifact_bytes = 15800000 + (r % 5) * 100000;
        res.train_ms = 599000;
        res.eval_ms = 40000;
        res.steps = n_steps;
        if (cad_db_set_result(db, ids[r], &res, &e)) die(&e);
    }
    if (cad_db_commit(db, &e)) die(&e);
    printf("  %-44s %.2f s\n", "results inserted", now_s() - t0);

    /* the full ingestion path: metrics.jsonl -> cad_ingest_run_dir (what the runner calls) */
    char dir[4300];
    snprintf(dir, sizeof dir, "%s.rundir", path);
    mkdir(dir, 0777);
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (long k = 0; k < per_run; k++) cad_ingest_write_metric(f, &rows[k]);
    fclose(f);
    long jrows = 0;
    t0 = now_s();
    c0 = cpu_s();
    for (int r = 0; r < n_jsonl && r < n_runs; r++) {
        cad_ingest_state st;
        cad_ingest_state_init(&st);
        if (cad_ingest_run_dir(db, ids[r], dir, &st, &e)) die(&e); /* replaces the same rows */
        jrows += st.metrics_rows;
    }
    dt = now_s() - t0;
    dc = cpu_s() - c0;
    printf("  %-44s %.0f rows/s wall, %.0f rows/s CPU (%ld rows of %d runs)\n",
           "metric ingest, metrics.jsonl (runner path)", jrows / dt, jrows / dc, jrows, n_jsonl);
    unlink(p);
    rmdir(dir);
    free(rows);

    /* queries (fresh connection, as a user's sqlite3 would be) */
    cad_db_close(db);
queries:
    if (cad_db_open(path, CAD_DB_READONLY, &db, &e)) die(&e);
    int reps = 21;
    char *run_args[21], *sweep_args[21];
    for (int i = 0; i < reps; i++) {
        run_args[i] = ids[(long)i * 7919 % n_runs];
        sweep_args[i] = malloc(16);
        snprintf(sweep_args[i], 16, "sweep%03d", (i * 37) % n_sweeps);
    }
    time_query(db, "curves: one run's train_loss curve",
               "SELECT step, value, wall_ms FROM curves WHERE run_id = ?1 AND name = 'train_loss' ORDER BY step",
               run_args, reps);
    time_query(db, "curves: one run's val_bpb curve",
               "SELECT step, value FROM curves WHERE run_id = ?1 AND name = 'val_bpb' ORDER BY step", run_args,
               reps);
    time_query(db, "run_summary of one sweep", "SELECT * FROM run_summary WHERE sweep = ?1 ORDER BY val_bpb",
               sweep_args, reps);
    time_query(db, "sweep_groups of one sweep", "SELECT * FROM sweep_groups WHERE sweep = ?1", sweep_args, reps);
    char *none[21] = {0};
    time_query(db, "leaderboard top 10 (all runs)", "SELECT * FROM leaderboard LIMIT 10", none, 5);
    time_query(db, "last train_loss of every run of one sweep",
               "SELECT run_id, (SELECT step FROM curves c WHERE c.run_id = r.run_id AND c.name = 'train_loss' "
               "ORDER BY step DESC LIMIT 1), (SELECT value FROM curves c WHERE c.run_id = r.run_id AND "
               "c.name = 'train_loss' ORDER BY step DESC LIMIT 1) FROM run_summary r WHERE sweep = ?1",
               sweep_args, reps);
    struct stat sb;
    stat(path, &sb);
    if (total > 0)
        printf("  %-44s %.1f MB (%.1f bytes per metric row)\n", "database size", sb.st_size / 1e6,
               (double)sb.st_size / (double)total);
    else
        printf("  %-44s %.1f MB\n", "database size", sb.st_size / 1e6);
    cad_db_close(db);
    for (int i = 0; i < reps; i++) free(sweep_args[i]);
    for (int r = 0; r < n_runs; r++) free(ids[r]);
    free(ids);
    free(sweep_ids);
    return 0;
}
