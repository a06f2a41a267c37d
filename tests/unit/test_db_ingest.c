/*
 * test_db_ingest.c — run dir -> DB: incremental metrics.jsonl (saved offset, partial last
 * line, malformed lines), result.json, artifacts, re-ingesting without duplicates, import
 * of a standalone `caddie train` dir, and `db rebuild`: a DB rebuilt from the run dirs has
 * the same content as the original (sweeps, runs, params, events, metrics, results,
 * artifacts), including queued runs that never started.
 */
#include "engine/config.h"
#include "db/ingest.h"
#include "db/queue.h"
#include "sweep/plan.h"

#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static int counter;

static cad_db *open_db(const char *name) { return check_db_open(check_tmp_path(name)); }

static void append_file(const char *dir, const char *name, const char *text) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "a");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *make_dir(const char *name) {
    static char d[4][4200];
    static int k;
    k = (k + 1) & 3;
    snprintf(d[k], sizeof d[k], "%s/%s%d", check_tmpdir(), name, counter++);
    mkdir(d[k], 0777);
    return d[k];
}

/* A 100 MB line (with or without its newline) is refused naming the file and line number,
 * after the good lines before it are in; before, getline read it whole into memory and the
 * line was counted as malformed and skipped in silence. */
static void test_huge_metrics_line(void) {
    cad_db *db = open_db("huge.db");
    if (!db) return;
    cad_err e;
    for (int newline = 0; newline < 2; newline++) {
        const char *dir = make_dir("huge");
        char id[16];
        snprintf(id, sizeof id, "huge%d", newline);
        cad_run_new r = {.run_id = id, .sweep_id = -1, .config = "{}", .git_dirty = -1, .run_dir = dir};
        CHECK_EQ_INT(cad_db_insert_run(db, &r, &e), CAD_OK);
        append_file(dir, "metrics.jsonl",
                    "{\"step\":0,\"name\":\"train_loss\",\"value\":6.9}\n"
                    "\n"
                    "{\"step\":1,\"name\":\"train_loss\",\"value\":6.5}\n{\"name\":\"");
        char p[4400];
        snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
        FILE *f = fopen(p, "a");
        static char block[1 << 20];
        memset(block, 'x', sizeof block);
        for (int i = 0; f && i < 100; i++) fwrite(block, 1, sizeof block, f);
        if (f) fputs(newline ? "\"}\n" : "", f), fclose(f);
        cad_ingest_state s;
        cad_ingest_state_init(&s);
        CHECK_EQ_INT(cad_ingest_run_dir(db, id, dir, &s, &e), CAD_EFORMAT);
        CHECK_MSG(strstr(e.msg, "metrics.jsonl: line 4 is longer than 1 MiB") != NULL, "%s", e.msg);
        CHECK_EQ_INT(s.metrics_rows, 2);
        CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 2 + 2 * newline);
        /* with its newline there, the line is passed and what follows it is read */
        append_file(dir, "metrics.jsonl", "{\"step\":2,\"name\":\"train_loss\",\"value\":6.1}\n");
        CHECK_EQ_INT(cad_ingest_run_dir(db, id, dir, &s, &e), newline ? CAD_OK : CAD_EFORMAT);
        CHECK_EQ_INT(s.metrics_rows, 2 + newline);
        unlink(p);
    }
    cad_db_close(db);
}

static void test_incremental_metrics(void) {
    cad_db *db = open_db("inc.db");
    if (!db) return;
    cad_err e;
    const char *dir = make_dir("run");
    cad_run_new r = {.run_id = "inc", .sweep_id = -1, .config = "{}", .git_dirty = -1, .run_dir = dir};
    CHECK_EQ_INT(cad_db_insert_run(db, &r, &e), CAD_OK);
    cad_ingest_state s;
    cad_ingest_state_init(&s);
    CHECK_EQ_INT(cad_ingest_run_dir(db, "inc", dir, &s, &e), CAD_OK); /* nothing yet */
    append_file(dir, "metrics.jsonl",
                "{\"step\":0,\"name\":\"train_loss\",\"value\":6.9,\"wall_ms\":0}\n"
                "{\"step\":1,\"name\":\"train_loss\",\"value\":6.5,\"wall_ms\":40.5}\n"
                "{\"step\":2,\"name\":\"train_lo");
    CHECK_EQ_INT(cad_ingest_run_dir(db, "inc", dir, &s, &e), CAD_OK);
    CHECK_EQ_INT(s.metrics_rows, 2);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 2);
    /* the partial line completes; a malformed line and an unknown name are tolerated */
    append_file(dir, "metrics.jsonl",
                "ss\",\"value\":6.1,\"wall_ms\":80}\n"
                "not json\n"
                "{\"step\":2,\"name\":\"some_new_metric\",\"value\":null}\n"
                "{\"step\":2,\"name\":\"val_bpb\",\"value\":3.5,\"wall_ms\":81}\n");
    CHECK_EQ_INT(cad_ingest_run_dir(db, "inc", dir, &s, &e), CAD_OK);
    CHECK_EQ_INT(s.metrics_rows, 5);
    CHECK_EQ_INT(s.bad_lines, 1);
    CHECK(check_sql_double(db, "SELECT value FROM metrics WHERE name='train_loss' AND step=2") == 6.1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics WHERE name='some_new_metric' AND value IS NULL") == 1);
    /* a garbled line that still looks like an object: the batch falls back line by line */
    append_file(dir, "metrics.jsonl",
                "{\"step\":3,\"name\":\"train_loss\",\"value\":5.9}\n"
                "{\"step\":3,\"name\":\"val_bpb\" \"value\":3.4}\n"
                "{\"step\":3,\"name\":\"val_bpb\",\"value\":\"oops\"}\n"
                "{\"step\":4,\"name\":\"train_loss\",\"value\":5.8}\n");
    CHECK_EQ_INT(cad_ingest_run_dir(db, "inc", dir, &s, &e), CAD_OK);
    CHECK_EQ_INT(s.metrics_rows, 7);
    CHECK_EQ_INT(s.bad_lines, 3);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 7);
    /* re-ingesting from scratch never duplicates */
    cad_ingest_state fresh;
    cad_ingest_state_init(&fresh);
    CHECK_EQ_INT(cad_ingest_run_dir(db, "inc", dir, &fresh, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 7);
    CHECK_EQ_INT(fresh.metrics_rows, 7);
    CHECK_EQ_INT(s.result_done, 0);
    /* result.json finishes it: results row, provenance, artifacts */
    cad_result res;
    cad_result_init(&res);
    res.val_loss = 2.5;
    res.val_bpb = 1.4801234567;
    res.artifact_bytes = 1234;
    res.train_ms = 5000;
    res.steps = 3;
    res.partial = 1;
    snprintf(res.engine_version, sizeof res.engine_version, "caddie 9.9");
    snprintf(res.git_commit, sizeof res.git_commit, "deadbeef");
    res.git_dirty = 0;
    char rp[4400];
    snprintf(rp, sizeof rp, "%s/result.json", dir);
    CHECK_EQ_INT(cad_ingest_write_result(rp, "inc", &res, &e), CAD_OK);
    CHECK_EQ_INT(cad_ingest_run_dir(db, "inc", dir, &s, &e), CAD_OK);
    CHECK_EQ_INT(s.result_done, 1);
    CHECK_EQ_INT(s.artifacts_done, 1);
    CHECK(check_sql_double(db, "SELECT val_bpb FROM results WHERE run_id='inc'") == 1.4801234567);
    CHECK(check_sql_double(db, "SELECT partial FROM results") == 1);
    CHECK(check_sql_double(db, "SELECT prequant_val_bpb IS NULL FROM results") == 1);
    CHECK(check_sql_double(db, "SELECT engine_version='caddie 9.9' AND git_commit='deadbeef' AND git_dirty=0 FROM runs") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM artifacts WHERE kind IN ('metrics','result') AND length(sha256)=64") == 2);
    cad_db_close(db);
}

/* The C reader of metrics lines agrees with JSON1's reading (the definition of a valid
 * line, kept here verbatim as the oracle) on lines that exercise every branch: key order,
 * whitespace, extra keys, nulls, integers vs reals, escapes, nesting, repeats, bad types. */
static void test_metric_lines_read_as_json1_does(void) {
    static const char *lines[] = {
        "{\"step\":1,\"name\":\"a\",\"value\":1.5,\"wall_ms\":2}",
        "{ \"name\" : \"b\" , \"value\" : -0.25e-3 , \"step\" : 2 }",
        "{\"step\":3,\"name\":\"c\",\"value\":7,\"wall_ms\":null,\"extra\":true,\"more\":\"x\"}",
        "{\"step\":4,\"name\":\"d\",\"value\":null}",
        "{\"step\":5,\"name\":\"e\"}",
        "{\"step\":6.0,\"name\":\"f\",\"value\":1}",
        "{\"step\":7,\"name\":\"g\\u00e9\",\"value\":1}",
        "{\"step\":8,\"name\":\"h\",\"value\":\"1\"}",
        "{\"step\":9,\"name\":\"i\",\"value\":[1]}",
        "{\"step\":10,\"name\":\"j\",\"value\":1,\"value\":2}",
        "{\"step\":11,\"name\":12,\"value\":1}",
        "{\"step\":\"12\",\"name\":\"l\",\"value\":1}",
        "{\"step\":13,\"name\":\"m\",\"value\":1e999}",
        "{\"step\":14,\"name\":\"n\",\"value\":01}",
        "{\"step\":15,\"name\":\"o\",\"value\":1.}",
        "{\"step\":16,\"name\":\"p\",\"value\":true}",
        "{\"step\":17,\"name\":\"q\",\"wall_ms\":-5,\"value\":2}",
        "{\"step\":-18,\"name\":\"r\",\"value\":0}",
        "{\"step\":19,\"name\":\"a_very_long_metric_name_beyond_31_chars\",\"value\":3}",
        "{\"step\":20,\"name\":\"s\",\"value\":1,\"nested\":{\"x\":1}}",
        "{\"step\":21,\"name\":\"t\",\"value\":1} trailing",
        "{\"step\":22,\"name\":\"u\",\"value\":1,}",
        "{}",
        "{\"step\":23}",
        "{\"step\":9007199254740993,\"name\":\"v\",\"value\":1}",
        "{\"step\":24,\"name\":\"\",\"value\":1}",
        "{\"step\":1,\"name\":\"a\",\"value\":2.5}", /* replaces the first line's row */
    };
    size_t n = sizeof lines / sizeof *lines;
    cad_db *db = open_db("json1.db");
    if (!db) return;
    cad_err e;
    const char *dir = make_dir("j1");
    cad_run_new r1 = {.run_id = "fast", .sweep_id = -1, .config = "{}", .git_dirty = -1, .run_dir = dir};
    cad_run_new r2 = {.run_id = "oracle", .sweep_id = -1, .config = "{}", .git_dirty = -1, .run_dir = dir};
    CHECK_EQ_INT(cad_db_insert_run(db, &r1, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_insert_run(db, &r2, &e), CAD_OK);
    for (size_t i = 0; i < n; i++) {
        append_file(dir, "metrics.jsonl", lines[i]);
        append_file(dir, "metrics.jsonl", "\n");
    }
    cad_ingest_state s;
    cad_ingest_state_init(&s);
    CHECK_EQ_INT(cad_ingest_run_dir(db, "fast", dir, &s, &e), CAD_OK);
    sqlite3 *h = cad_db_sqlite(db);
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_prepare_v2(h,
                             "INSERT OR REPLACE INTO metrics(run_id, name, step, value, wall_ms) "
                             "SELECT 'oracle', json_extract(?1, '$.name'), json_extract(?1, '$.step'), "
                             "       json_extract(?1, '$.value'), json_extract(?1, '$.wall_ms') "
                             "WHERE json_valid(?1) AND json_type(?1, '$.name') = 'text' "
                             "  AND json_type(?1, '$.step') = 'integer' "
                             "  AND coalesce(json_type(?1, '$.value'), 'null') IN ('integer', 'real', 'null') "
                             "  AND coalesce(json_type(?1, '$.wall_ms'), 'null') IN ('integer', 'real', 'null')",
                             -1, &st, NULL) == SQLITE_OK);
    long oracle_rows = 0;
    for (size_t i = 0; st && i < n; i++) {
        sqlite3_bind_text(st, 1, lines[i], -1, SQLITE_STATIC);
        CHECK(sqlite3_step(st) == SQLITE_DONE);
        oracle_rows += sqlite3_changes(h);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    CHECK_EQ_INT(s.metrics_rows, oracle_rows);
    CHECK_EQ_INT(s.bad_lines, (long)n - oracle_rows);
    /* same rows, same values and storage classes */
    static const char diff_sql[] =
        "SELECT count(*) FROM (SELECT name, step, value, typeof(value), wall_ms, typeof(wall_ms) FROM metrics "
        "WHERE run_id = '%s' EXCEPT SELECT name, step, value, typeof(value), wall_ms, typeof(wall_ms) "
        "FROM metrics WHERE run_id = '%s')";
    char q[512];
    snprintf(q, sizeof q, diff_sql, "fast", "oracle");
    CHECK(check_sql_double(db, q) == 0);
    snprintf(q, sizeof q, diff_sql, "oracle", "fast");
    CHECK(check_sql_double(db, q) == 0);
    CHECK(check_sql_double(db, "SELECT value FROM metrics WHERE run_id='fast' AND name='a' AND step=1") == 2.5);
    cad_db_close(db);
}

static void test_write_metric_roundtrip(void) {
    const char *dir = make_dir("wm");
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    cad_metric m = {"val_bpb", 7, NAN, -1};
    cad_ingest_write_metric(f, &m);
    cad_metric m2 = {"train_loss", 8, 2.25, 12.5};
    cad_ingest_write_metric(f, &m2);
    fclose(f);
    cad_db *db = open_db("wm.db");
    if (!db) return;
    cad_err e;
    cad_run_new r = {.run_id = "wm", .sweep_id = -1, .config = "{}", .git_dirty = -1, .run_dir = dir};
    cad_db_insert_run(db, &r, &e);
    cad_ingest_state s;
    cad_ingest_state_init(&s);
    CHECK_EQ_INT(cad_ingest_run_dir(db, "wm", dir, &s, &e), CAD_OK);
    CHECK_EQ_INT(s.metrics_rows, 2);
    CHECK(check_sql_double(db, "SELECT value IS NULL AND wall_ms IS NULL FROM metrics WHERE step=7") == 1);
    CHECK(check_sql_double(db, "SELECT value FROM metrics WHERE step=8") == 2.25);
    cad_db_close(db);
}

/* cad_ingest_write_metric's number text reads back as exactly the double written, for the
 * shapes its fast paths take (integers, few decimals, leading zeros, negatives) and those they
 * leave to %.17g (tiny, huge, many digits, -0). */
static void test_write_metric_numbers_exact(void) {
    const char *dir = make_dir("wmnum");
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    static const double fixed[] = {0.0, -0.0, 1.0, -1.0, 4.0123, 0.05, 0.000123, -0.0009, 51.37,
                                   3.9999990000000001, 1e-12, 1e20, 9007199254740993.0, 0.1,
                                   123456789.123456789, 2.2250738585072014e-308, -7.5e-5, 4.999999999};
    enum { NF = sizeof fixed / sizeof fixed[0], NR = 20000 };
    double want[NF + NR];
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (!f) return;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < NF + NR; i++) {
        double v;
        if (i < NF) v = fixed[i];
        else { /* xorshift: random decimals of 0-12 places, and random bit patterns */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (i % 2) v = (double)(x % 100000000) / pow(10, (double)((x >> 40) % 13));
            else {
                memcpy(&v, &x, sizeof v);
                if (!isfinite(v)) v = 1.5;
            }
        }
        want[i] = v;
        cad_metric m = {"v", i, v, -1};
        CHECK_EQ_INT(cad_ingest_write_metric(f, &m), 0);
    }
    fclose(f);
    size_t len = 0;
    char *text = check_slurp(p, &len);
    CHECK(text != NULL);
    int line = 0, bad = 0;
    for (char *q = text; q && *q && line < NF + NR; line++) {
        char *val = strstr(q, "\"value\":");
        if (!val) break;
        double got = strtod(val + 8, NULL);
        if (memcmp(&got, &want[line], sizeof got) != 0 && bad++ < 5)
            fprintf(stderr, "line %d: %.17g read back as %.17g\n", line + 1, want[line], got);
        q = strchr(val, '\n');
        if (q) q++;
    }
    CHECK_EQ_INT(line, NF + NR);
    CHECK_EQ_INT(bad, 0);
    free(text);
}

/* A run whose metrics repeat a (name, step): the last row wins, in one batch and across two. */
static void test_insert_metrics_last_wins(void) {
    cad_db *db = open_db("dup.db");
    if (!db) return;
    cad_err e;
    cad_run_new r = {.run_id = "dup", .sweep_id = -1, .config = "{}", .git_dirty = -1, .run_dir = "x"};
    CHECK_EQ_INT(cad_db_insert_run(db, &r, &e), CAD_OK);
    cad_metric rows[3] = {{"a", 1, 1.0, 1}, {"a", 2, 2.0, 2}, {"a", 1, 3.0, 3}};
    CHECK_EQ_INT(cad_db_insert_metrics(db, "dup", rows, 3, &e), CAD_OK);
    cad_metric again = {"a", 2, 4.0, NAN};
    CHECK_EQ_INT(cad_db_insert_metrics(db, "dup", &again, 1, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics WHERE run_id='dup'") == 2);
    CHECK(check_sql_double(db, "SELECT value FROM metrics WHERE run_id='dup' AND step=1") == 3.0);
    CHECK(check_sql_double(db, "SELECT value FROM metrics WHERE run_id='dup' AND step=2") == 4.0);
    CHECK(check_sql_double(db, "SELECT wall_ms IS NULL FROM metrics WHERE run_id='dup' AND step=2") == 1);
    /* a row for a run that does not exist still fails (the foreign key), naming the metric */
    cad_metric orphan = {"a", 9, 1.0, 1};
    CHECK_EQ_INT(cad_db_insert_metrics(db, "nope", &orphan, 1, &e), CAD_EDB);
    CHECK(strstr(e.msg, "inserting metric a step 9") != NULL);
    cad_db_close(db);
}

static void test_import_standalone_train_dir(void) {
    const char *dir = make_dir("standalone");
    cad_config c;
    cad_err e;
    CHECK_EQ_INT(cad_config_init(&c, &e), CAD_OK);
    cad_config_set(&c, "run_id", "solo", NULL, &e);
    cad_config_set(&c, "qk_gain_init", "5.25", NULL, &e);
    char p[4400];
    snprintf(p, sizeof p, "%s/config.yaml", dir);
    FILE *f = fopen(p, "w");
    cad_config_write_yaml(&c, f);
    fclose(f);
    cad_config_free(&c);
    append_file(dir, "metrics.jsonl", "{\"step\":0,\"name\":\"train_loss\",\"value\":6.9,\"wall_ms\":1}\n");
    cad_db *db = open_db("solo.db");
    if (!db) return;
    char id[CAD_RUN_ID_MAX];
    CHECK_EQ_INT(cad_ingest_import(db, dir, 1, id, sizeof id, &e), CAD_OK);
    CHECK_STR(id, "solo");
    CHECK(check_sql_double(db, "SELECT status='failed' AND error LIKE 'no result.json%' FROM runs") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM params WHERE key='qk_gain_init' AND num=5.25") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 1);
    cad_result res;
    cad_result_init(&res);
    res.val_bpb = 1.3;
    snprintf(p, sizeof p, "%s/result.json", dir);
    CHECK_EQ_INT(cad_ingest_write_result(p, "solo", &res, &e), CAD_OK);
    CHECK_EQ_INT(cad_ingest_import(db, dir, 0, id, sizeof id, &e), CAD_ERR); /* exists */
    CHECK_EQ_INT(cad_ingest_import(db, dir, 1, id, sizeof id, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT status='done' FROM runs") == 1);
    CHECK(check_sql_double(db, "SELECT val_bpb FROM run_summary") == 1.3);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs") == 1);
    cad_db_close(db);
}

/* Everything in the DB as text, independent of rowids and sweep ids. */
static char *dump(cad_db *db) {
    static const char *const queries[] = {
        "SELECT name, description, spec, spec_hash, created_at FROM sweeps ORDER BY name",
        "SELECT r.run_id, s.name, r.name, engine, config, config_hash, group_hash, seed, status, "
        "priority, devices_requested, devices_assigned, attempts, retries, timeout_s, launch, host, pid, "
        "boot_id, proc_start_time, queued_at, started_at, ended_at, exit_code, error, git_commit, "
        "git_dirty, engine_version, run_dir FROM runs r LEFT JOIN sweeps s ON s.id=r.sweep_id ORDER BY run_id",
        "SELECT * FROM params ORDER BY run_id, key",
        "SELECT * FROM metrics ORDER BY run_id, name, step",
        "SELECT * FROM results ORDER BY run_id",
        "SELECT * FROM artifacts ORDER BY run_id, path",
        "SELECT run_id, at, from_status, to_status, reason FROM events ORDER BY run_id, id",
        NULL};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (int q = 0; queries[q]; q++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(cad_db_sqlite(db), queries[q], -1, &st, NULL) != SQLITE_OK) {
            fprintf(f, "ERROR %s\n", sqlite3_errmsg(cad_db_sqlite(db)));
            continue;
        }
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const unsigned char *t = sqlite3_column_text(st, i);
                fprintf(f, "%s|", t ? (const char *)t : "NULL");
            }
            fputc('\n', f);
        }
        sqlite3_finalize(st);
        fputs("--\n", f);
    }
    fclose(f);
    return buf;
}

typedef struct skipped_log {
    int n;
    char text[4096];
} skipped_log;

static void note_skip(void *ctx, const char *run_dir, const char *why) {
    skipped_log *l = ctx;
    l->n++;
    size_t len = strlen(l->text);
    snprintf(l->text + len, sizeof l->text - len, "%s: %s\n", run_dir, why);
}

static void test_rebuild_equals_original(void) {
    char runs[4200];
    snprintf(runs, sizeof runs, "%s/rebuild_runs", check_tmpdir());
    char sweep_path[4300];
    snprintf(sweep_path, sizeof sweep_path, "%s/rb.yaml", check_tmpdir());
    FILE *f = fopen(sweep_path, "w");
    fputs("name: rb\ndescription: rebuild test\ngrid:\n  qk_gain_init: [1.5, 5.25, 3]\nseeds: [1, 2]\n", f);
    fclose(f);
    cad_err e;
    cad_err_clear(&e);
    cad_sweep_spec *s = NULL;
    CHECK_EQ_INT(cad_sweep_spec_load(sweep_path, &s, &e), CAD_OK);
    cad_db *db = open_db("orig.db");
    if (!s || !db) return;
    cad_plan p;
    cad_plan_opts o = {runs, NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_check(db, s, &p, 0, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_add(db, s, &p, &e), CAD_OK);
    CHECK_EQ_INT(p.n, 6);
    /* run 0 done with curve + result, run 1 failed, run 2 cancelled, run 3 running
     * (interrupted later), the rest stay queued */
    cad_run_claim c = {"0", "hostX", "boot"};
    const char *r0 = p.runs[0].run_id, *r1 = p.runs[1].run_id, *r2 = p.runs[2].run_id,
               *r3 = p.runs[3].run_id;
    CHECK_EQ_INT(cad_db_claim(db, r0, &c, &e), CAD_OK);
    cad_db_set_process(db, r0, 1234, 99, &e);
    for (int i = 0; i < 50; i++) {
        char line[160];
        snprintf(line, sizeof line, "{\"step\":%d,\"name\":\"train_loss\",\"value\":%.3f,\"wall_ms\":%d}\n", i,
                 7.0 - i * 0.01, i * 10);
        append_file(p.runs[0].run_dir, "metrics.jsonl", line);
    }
    cad_result res;
    cad_result_init(&res);
    res.val_bpb = 1.25;
    res.val_loss = 2.1;
    res.artifact_bytes = 15000000;
    res.train_ms = 590000;
    res.eval_ms = 30000;
    char rp[4400];
    snprintf(rp, sizeof rp, "%s/result.json", p.runs[0].run_dir);
    CHECK_EQ_INT(cad_ingest_write_result(rp, r0, &res, &e), CAD_OK);
    cad_ingest_state st;
    cad_ingest_state_init(&st);
    CHECK_EQ_INT(cad_ingest_run_dir(db, r0, p.runs[0].run_dir, &st, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, r0, CAD_RUN_DONE, 1, 0, NULL, "exit 0", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_claim(db, r1, &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, r1, CAD_RUN_FAILED, 1, 1, "NaN loss at step 3\nlast line", "nan", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_set_status(db, r2, CAD_RUN_CANCELLED, "user", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_claim(db, r3, &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, r3, CAD_RUN_INTERRUPTED, 0, 0, NULL, "runner died", &e), CAD_OK);
    char *before = dump(db);
    cad_db_close(db);
    /* delete the DB (WAL files too) and rebuild from the run dirs */
    char dbp[4300];
    snprintf(dbp, sizeof dbp, "%s/orig.db", check_tmpdir());
    unlink(dbp);
    snprintf(dbp, sizeof dbp, "%s/orig.db-wal", check_tmpdir());
    unlink(dbp);
    snprintf(dbp, sizeof dbp, "%s/orig.db-shm", check_tmpdir());
    unlink(dbp);
    db = open_db("orig.db");
    int n = 0, skipped = -1;
    CHECK_EQ_INT(cad_ingest_rebuild(db, runs, &n, &skipped, NULL, NULL, &e), CAD_OK);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(skipped, 0);
    char *after = dump(db);
    CHECK(before && after && strcmp(before, after) == 0);
    if (before && after && strcmp(before, after) != 0) {
        /* show the first difference */
        size_t i = 0;
        while (before[i] && before[i] == after[i]) i++;
        size_t from = i > 200 ? i - 200 : 0;
        printf("differs at %zu:\nbefore: %.400s\nafter:  %.400s\n", i, before + from, after + from);
    }
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE status='queued'") == 2);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 50);
    /* rebuilding again gives the same again */
    CHECK_EQ_INT(cad_ingest_rebuild(db, runs, &n, &skipped, NULL, NULL, &e), CAD_OK);
    char *again = dump(db);
    CHECK(after && again && strcmp(after, again) == 0);
    /* bad run dirs (invalid JSON, a non-JSON Inf, a truncated file, a status no column
     * takes) are each skipped and named, nothing of them kept; the rest is imported whole */
    static const char *const bad_json[] = {
        "{not json",
        "{\"format\":\"caddie-run/1\",\"run_id\":\"zz-inf\",\"timeout_s\":Inf}",
        "{\"format\":\"caddie-run/1\",\"run_id\":\"zz-trunc\",\"name\":\"x\",\"sta",
        "{\"format\":\"caddie-run/1\",\"run_id\":\"zz-status\",\"status\":\"bogus\"}",
    };
    skipped_log log = {0, ""};
    for (int i = 0; i < 4; i++) {
        char bad[4300];
        snprintf(bad, sizeof bad, "%s/%s-broken%d", runs, i % 2 ? "aaa" : "zzz", i);
        mkdir(bad, 0777);
        append_file(bad, "run.json", bad_json[i]);
    }
    CHECK_EQ_INT(cad_ingest_rebuild(db, runs, &n, &skipped, note_skip, &log, &e), CAD_OK);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(skipped, 4);
    CHECK_EQ_INT(log.n, 4);
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s-broken%d/run.json", i % 2 ? "aaa" : "zzz", i);
        CHECK(strstr(log.text, name) != NULL);
    }
    char *with_bad = dump(db);
    CHECK(after && with_bad && strcmp(after, with_bad) == 0);
    free(with_bad);
    free(before);
    free(after);
    free(again);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE run_id LIKE 'zz-%'") == 0);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
    cad_db_close(db);
}

int main(void) {
    RUN(test_incremental_metrics);
    RUN(test_huge_metrics_line);
    RUN(test_metric_lines_read_as_json1_does);
    RUN(test_write_metric_roundtrip);
    RUN(test_write_metric_numbers_exact);
    RUN(test_insert_metrics_last_wins);
    RUN(test_import_standalone_train_dir);
    RUN(test_rebuild_equals_original);
    return check_report();
}
