/*
 * test_db_schema.c — the results database: migrations (idempotent, version), typed params,
 * the run state machine with events, claim/finish/requeue, metric and result inserts, the
 * valid flag, the sweep_groups statistics, cancel/retry by sweep, run.json and the launch
 * recipe (values stay literal).
 */
#include "db/db.h"
#include "db/db_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static cad_db *fresh_db(void) { return check_db_open(check_tmp_fresh("t.db")); }

static int add_run(cad_db *db, const char *id, int64_t sweep_id, const char *config, long seed,
                   const char *group) {
    cad_run_new r = {.run_id = id, .sweep_id = sweep_id, .name = id, .engine = "caddie",
                     .config = config, .config_hash = id, .group_hash = group, .has_seed = 1,
                     .seed = seed, .status = CAD_RUN_QUEUED, .devices_requested = 1,
                     .launch = "{\"argv\":[\"caddie\",\"train\",\"x.yaml\"],\"env\":{}}",
                     .git_dirty = -1, .run_dir = "", .reason = "test"};
    cad_err e;
    int rc = cad_db_insert_run(db, &r, &e);
    if (rc) printf("insert_run: %s\n", e.msg);
    return rc;
}

static void test_migrations_idempotent(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/mig.db", check_tmpdir());
    cad_err e;
    cad_db *db = NULL;
    CHECK_EQ_INT(cad_db_open(path, CAD_DB_NO_MIGRATE, &db, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_schema_version(db), 0);
    int from = -1, to = -1;
    CHECK_EQ_INT(cad_db_migrate(db, &from, &to, &e), CAD_OK);
    CHECK_EQ_INT(from, 0);
    CHECK_EQ_INT(to, cad_db_schema_latest());
    CHECK(cad_db_schema_latest() >= 1);
    CHECK_EQ_INT(cad_db_migrate(db, &from, &to, &e), CAD_OK);
    CHECK_EQ_INT(from, to);
    cad_db_close(db);
    /* reopen (auto-migrate is a no-op), then read-only */
    CHECK_EQ_INT(cad_db_open(path, 0, &db, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_schema_version(db), cad_db_schema_latest());
    CHECK(check_sql_double(db, "SELECT count(*) FROM sqlite_master WHERE type='view' AND name IN "
                 "('run_summary','leaderboard','sweep_groups','curves')") == 4);
    CHECK(check_sql_double(db, "PRAGMA foreign_keys") == 1);
    {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(cad_db_sqlite(db), "PRAGMA journal_mode", -1, &st, NULL);
        CHECK(sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0);
        sqlite3_finalize(st);
    }
    cad_db_close(db);
    CHECK_EQ_INT(cad_db_open(path, CAD_DB_READONLY, &db, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM run_summary") == 0);
    CHECK(check_sql_double(db, "SELECT count(*) FROM sqlite_master") > 0);
    cad_db_close(db);
    /* a DB newer than this binary is refused */
    sqlite3 *h;
    sqlite3_open(path, &h);
    sqlite3_exec(h, "PRAGMA user_version = 999", 0, 0, 0);
    sqlite3_close(h);
    CHECK_EQ_INT(cad_db_open(path, 0, &db, &e), CAD_EDB);
    CHECK(strstr(e.msg, "newer") != NULL);
}

static void test_db_path_precedence(void) {
    unsetenv("CADDIE_DB");
    CHECK_STR(cad_db_path(NULL), "caddie.db");
    setenv("CADDIE_DB", "/tmp/env.db", 1);
    CHECK_STR(cad_db_path(NULL), "/tmp/env.db");
    CHECK_STR(cad_db_path(""), "/tmp/env.db");
    CHECK_STR(cad_db_path("opt.db"), "opt.db");
    unsetenv("CADDIE_DB");
}

static void test_params_are_typed(void) {
    cad_db *db = fresh_db();
    CHECK(db != NULL);
    if (!db) return;
    CHECK_EQ_INT(add_run(db, "r1", -1, "{\"qk_gain_init\":5.25,\"vocab_size\":1024,"
                                       "\"tokenizer_path\":\"a b.model\",\"tie_embeddings\":true}",
                         1, "g"),
                 CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs r JOIN params p USING(run_id) "
                 "WHERE p.key='qk_gain_init' AND p.num=5.25") == 1);
    CHECK(check_sql_double(db, "SELECT num FROM params WHERE key='vocab_size'") == 1024);
    CHECK(check_sql_double(db, "SELECT num FROM params WHERE key='tie_embeddings'") == 1);
    CHECK(check_sql_double(db, "SELECT text='a b.model' FROM params WHERE key='tokenizer_path'") == 1);
    CHECK(check_sql_double(db, "SELECT num IS NULL FROM params WHERE key='tokenizer_path'") == 1);
    cad_err e;
    CHECK_EQ_INT(add_run(db, "r1", -1, "{}", 1, "g"), CAD_ERR); /* duplicate id */
    /* not a JSON object: nothing is inserted */
    cad_run_new bad = {.run_id = "r2", .sweep_id = -1, .config = "[1,2", .git_dirty = -1};
    CHECK(cad_db_insert_run(db, &bad, &e) != CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE run_id='r2'") == 0);
    cad_db_close(db);
}

static void test_state_machine_and_events(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    add_run(db, "a", -1, "{}", 1, "g");
    /* queued -> done is not a transition */
    CHECK_EQ_INT(cad_db_set_status(db, "a", CAD_RUN_DONE, "x", &e), CAD_ERR);
    CHECK(strstr(e.msg, "queued") && strstr(e.msg, "done"));
    cad_run_claim c = {"0", "hostA", "boot-1"};
    CHECK_EQ_INT(cad_db_claim(db, "a", &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_claim(db, "a", &c, &e), CAD_ERR); /* already running */
    CHECK_EQ_INT(cad_db_set_process(db, "a", 4242, 777, &e), CAD_OK);
    cad_run r;
    CHECK_EQ_INT(cad_db_get_run(db, "a", &r, &e), CAD_OK);
    CHECK_EQ_INT(r.status, CAD_RUN_RUNNING);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK_EQ_INT(r.pid, 4242);
    CHECK_EQ_INT(r.proc_start_time, 777);
    CHECK_STR(r.host, "hostA");
    CHECK_STR(r.boot_id, "boot-1");
    CHECK_STR(r.devices_assigned, "0");
    CHECK(r.started_at && strlen(r.started_at) == 24 && r.started_at[23] == 'Z');
    cad_run_free(&r);
    CHECK_EQ_INT(cad_db_set_status_from(db, "a", CAD_RUN_QUEUED, CAD_RUN_DONE, "x", &e), CAD_ERR);
    CHECK_EQ_INT(cad_db_finish(db, "a", CAD_RUN_FAILED, 1, 3, "boom\nlast line", "exit 3", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_get_run(db, "a", &r, &e), CAD_OK);
    CHECK_EQ_INT(r.status, CAD_RUN_FAILED);
    CHECK(r.has_exit_code && r.exit_code == 3);
    CHECK_STR(r.error, "boom\nlast line");
    CHECK(r.ended_at != NULL);
    cad_run_free(&r);
    CHECK_EQ_INT(cad_db_requeue(db, "a", 0, "retry 1/2", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_get_run(db, "a", &r, &e), CAD_OK);
    CHECK_EQ_INT(r.status, CAD_RUN_QUEUED);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK(r.pid == -1 && r.started_at == NULL && r.host == NULL);
    cad_run_free(&r);
    int claimed = 0;
    CHECK_EQ_INT(cad_db_claim_next(db, 1, &c, &claimed, &r, &e), CAD_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_STR(r.run_id, "a");
    CHECK_EQ_INT(r.attempts, 2);
    cad_run_free(&r);
    CHECK_EQ_INT(cad_db_finish(db, "a", CAD_RUN_DONE, 1, 0, NULL, "exit 0", &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM events WHERE run_id='a'") == 6);
    CHECK(check_sql_double(db, "SELECT count(*) FROM events WHERE run_id='a' AND from_status IS NULL "
                 "AND to_status='queued'") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM events WHERE reason='retry 1/2' AND from_status='failed'") == 1);
    CHECK_EQ_INT(cad_db_claim_next(db, 1, &c, &claimed, &r, &e), CAD_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(cad_db_set_status(db, "nope", CAD_RUN_DONE, "x", &e), CAD_ERR);
    CHECK(strstr(e.msg, "no run 'nope'") != NULL);
    cad_db_close(db);
}

static void test_queue_order_and_devices(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    cad_run_new r = {.sweep_id = -1, .config = "{}", .git_dirty = -1, .status = CAD_RUN_QUEUED};
    const char *ids[] = {"low", "high8", "high1"};
    int prio[] = {0, 5, 5}, dev[] = {1, 8, 1};
    const char *at[] = {"2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z",
                        "2026-01-01T00:00:02.000Z"};
    for (int i = 0; i < 3; i++) {
        r.run_id = ids[i];
        r.priority = prio[i];
        r.devices_requested = dev[i];
        r.queued_at = at[i];
        CHECK_EQ_INT(cad_db_insert_run(db, &r, &e), CAD_OK);
    }
    cad_run *list;
    int n;
    CHECK_EQ_INT(cad_db_list_runs(db, CAD_RUN_MASK(CAD_RUN_QUEUED), NULL, &list, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_STR(list[0].run_id, "high8");
        CHECK_STR(list[1].run_id, "high1");
        CHECK_STR(list[2].run_id, "low");
        CHECK_EQ_INT(list[0].devices_requested, 8);
    }
    cad_run_list_free(list, n);
    /* with 4 free devices the 8-device run does not fit: the next that fits is claimed */
    int claimed;
    cad_run got;
    CHECK_EQ_INT(cad_db_claim_next(db, 4, NULL, &claimed, &got, &e), CAD_OK);
    CHECK(claimed && strcmp(got.run_id, "high1") == 0);
    cad_run_free(&got);
    int counts[CAD_RUN_NSTATUS];
    CHECK_EQ_INT(cad_db_count_by_status(db, NULL, counts, &e), CAD_OK);
    CHECK_EQ_INT(counts[CAD_RUN_QUEUED], 2);
    CHECK_EQ_INT(counts[CAD_RUN_RUNNING], 1);
    cad_db_close(db);
}

static void test_metrics_insert_replaces(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    add_run(db, "m", -1, "{}", 1, "g");
    cad_metric rows[200];
    for (int i = 0; i < 200; i++) {
        snprintf(rows[i].name, sizeof rows[i].name, "%s", i % 2 ? "val_bpb" : "train_loss");
        rows[i].step = i / 2;
        rows[i].value = i == 10 ? NAN : 1.0 + i;
        rows[i].wall_ms = i == 11 ? -1 : 10.0 * i;
    }
    CHECK_EQ_INT(cad_db_insert_metrics(db, "m", rows, 200, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_insert_metrics(db, "m", rows, 200, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics") == 200);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics WHERE value IS NULL") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics WHERE wall_ms IS NULL") == 1);
    rows[0].value = 42;
    CHECK_EQ_INT(cad_db_insert_metrics(db, "m", rows, 1, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT value FROM curves WHERE run_id='m' AND name='train_loss' AND step=0") == 42);
    /* metrics of an unknown run violate the foreign key */
    CHECK(cad_db_insert_metrics(db, "ghost", rows, 1, &e) != CAD_OK);
    cad_db_close(db);
}

static void test_result_valid_flag(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    add_run(db, "ok", -1, "{}", 1, "g");
    add_run(db, "big", -1, "{}", 2, "g");
    add_run(db, "slow", -1, "{}", 3, "g");
    cad_result r;
    cad_result_init(&r);
    r.val_bpb = 1.2;
    r.val_loss = 2.0;
    r.artifact_bytes = 16000000;
    r.train_ms = 600000;
    r.eval_ms = 599999;
    snprintf(r.git_commit, sizeof r.git_commit, "abc123");
    r.git_dirty = 1;
    CHECK_EQ_INT(cad_db_set_result(db, "ok", &r, &e), CAD_OK);
    r.artifact_bytes = 16000001;
    CHECK_EQ_INT(cad_db_set_result(db, "big", &r, &e), CAD_OK);
    r.artifact_bytes = 100;
    r.train_ms = 600001;
    CHECK_EQ_INT(cad_db_set_result(db, "slow", &r, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT valid FROM run_summary WHERE run_id='ok'") == 1);
    CHECK(check_sql_double(db, "SELECT valid FROM run_summary WHERE run_id='big'") == 0);
    CHECK(check_sql_double(db, "SELECT valid FROM run_summary WHERE run_id='slow'") == 0);
    CHECK(check_sql_double(db, "SELECT git_dirty FROM runs WHERE run_id='ok'") == 1);
    cad_result back;
    int found;
    CHECK_EQ_INT(cad_db_get_result(db, "ok", &back, &found, &e), CAD_OK);
    CHECK(found && back.artifact_bytes == 16000000 && back.val_bpb == 1.2 && isnan(back.prequant_val_bpb));
    cad_db_close(db);
}

static void test_sweep_groups_statistics(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    int64_t sid;
    CHECK_EQ_INT(cad_db_sweep_upsert(db, "s", "d", "name: s\n", "h", &sid, &e), CAD_OK);
    double v[3] = {1.2000, 1.2010, 1.2035};
    cad_run_claim c = {"0", "h", "b"};
    for (int i = 0; i < 3; i++) {
        char id[16], cfg[64];
        snprintf(id, sizeof id, "g%d", i);
        snprintf(cfg, sizeof cfg, "{\"lr\":0.04,\"seed\":%d}", i);
        add_run(db, id, sid, cfg, i, "G");
        cad_db_claim(db, id, &c, &e);
        cad_result r;
        cad_result_init(&r);
        r.val_bpb = v[i];
        r.artifact_bytes = 1000;
        r.train_ms = 1000;
        cad_db_set_result(db, id, &r, &e);
        cad_db_finish(db, id, CAD_RUN_DONE, 1, 0, NULL, "ok", &e);
    }
    double mean = (v[0] + v[1] + v[2]) / 3, ss = 0;
    for (int i = 0; i < 3; i++) ss += (v[i] - mean) * (v[i] - mean);
    CHECK(check_sql_double(db, "SELECT n FROM sweep_groups WHERE sweep='s'") == 3);
    CHECK_NEAR(check_sql_double(db, "SELECT mean_val_bpb FROM sweep_groups"), mean, 1e-12, 0);
    CHECK_NEAR(check_sql_double(db, "SELECT std_val_bpb FROM sweep_groups"), sqrt(ss / 2), 1e-9, 0);
    CHECK_NEAR(check_sql_double(db, "SELECT min_val_bpb FROM sweep_groups"), 1.2, 1e-12, 0);
    CHECK(check_sql_double(db, "SELECT config = '{\"lr\":0.04}' FROM sweep_groups") == 1);
    CHECK(check_sql_double(db, "SELECT rank FROM leaderboard WHERE run_id='g0'") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM leaderboard") == 3);
    double mean_s = 0;
    int n = 0;
    CHECK_EQ_INT(cad_db_mean_duration(db, "s", NULL, 1, &mean_s, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 3);
    CHECK(mean_s >= 0 && mean_s < 60);
    cad_db_close(db);
}

static void test_cancel_retry_by_sweep(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    int64_t sid;
    cad_db_sweep_upsert(db, "sw", "", "", "", &sid, &e);
    add_run(db, "x1", sid, "{}", 1, "g");
    add_run(db, "x2", sid, "{}", 2, "g");
    add_run(db, "x3", sid, "{}", 3, "g");
    cad_run_claim c = {"0", "h", "b"};
    cad_db_claim(db, "x3", &c, &e);
    cad_db_finish(db, "x3", CAD_RUN_DONE, 1, 0, NULL, "ok", &e);
    int n = -1;
    CHECK_EQ_INT(cad_db_cancel(db, "sw", NULL, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 2);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE status='cancelled'") == 2);
    CHECK_EQ_INT(cad_db_retry(db, "x1", NULL, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(cad_db_retry(db, "sw", NULL, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE status='queued'") == 2);
    CHECK(check_sql_double(db, "SELECT status='done' FROM runs WHERE run_id='x3'") == 1);
    CHECK_EQ_INT(cad_db_cancel(db, "nothing", NULL, &n, &e), CAD_ERR);
    CHECK(strstr(e.msg, "no run or sweep 'nothing'") != NULL);
    cad_db_close(db);
}

static void test_launch_literal_and_run_json(void) {
    cad_db *db = fresh_db();
    if (!db) return;
    cad_err e;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/rundir_launch", check_tmpdir());
    mkdir(dir, 0777);
    cad_run_new r = {.run_id = "L", .sweep_id = -1, .config = "{}", .git_dirty = -1,
                     .launch = "{\"argv\":[\"python3\",\"train.py\",\"; rm -rf ~\"],"
                               "\"env\":{\"QK\":\"$(touch pwned) \\\"x\\\"\",\"N\":\"8\"},\"cwd\":\"/tmp\"}",
                     .run_dir = dir};
    CHECK_EQ_INT(cad_db_insert_run(db, &r, &e), CAD_OK);
    cad_launch l;
    CHECK_EQ_INT(cad_db_get_launch(db, "L", &l, &e), CAD_OK);
    CHECK_EQ_INT(l.argc, 3);
    if (l.argc == 3) CHECK_STR(l.argv[2], "; rm -rf ~");
    CHECK(l.argv[3] == NULL);
    CHECK_EQ_INT(l.nenv, 2);
    if (l.nenv == 2) {
        CHECK_STR(l.env[0], "QK=$(touch pwned) \"x\"");
        CHECK_STR(l.env[1], "N=8");
    }
    CHECK_STR(l.cwd, "/tmp");
    cad_launch_free(&l);
    /* a state change writes run.json */
    CHECK_EQ_INT(cad_db_set_status(db, "L", CAD_RUN_CANCELLED, "user", &e), CAD_OK);
    char path[4300];
    snprintf(path, sizeof path, "%s/run.json", dir);
    char *buf = check_slurp(path, NULL);
    CHECK(buf != NULL);
    if (buf) {
        CHECK(strstr(buf, "\"status\":\"cancelled\"") != NULL);
        CHECK(strstr(buf, "\"to\":\"cancelled\"") != NULL);
        CHECK(strstr(buf, "; rm -rf ~") != NULL);
    }
    free(buf);
    cad_db_close(db);
}

int main(void) {
    RUN(test_migrations_idempotent);
    RUN(test_db_path_precedence);
    RUN(test_params_are_typed);
    RUN(test_state_machine_and_events);
    RUN(test_queue_order_and_devices);
    RUN(test_metrics_insert_replaces);
    RUN(test_result_valid_flag);
    RUN(test_sweep_groups_statistics);
    RUN(test_cancel_retry_by_sweep);
    RUN(test_launch_literal_and_run_json);
    return check_report();
}
