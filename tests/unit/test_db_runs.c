/*
 * test_db_runs.c — the named queries of db/runs.h: the runner's checks (status, first
 * non-finite loss, failures since `caddie retry`, resume of an interrupted run, clearing an
 * attempt) and the listings behind `caddie status`, `ls` and `show`.
 */
#include "db/db.h"
#include "db/runs.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"

static int add_run(cad_db *db, const char *id, const char *config) {
    cad_run_new r = {.run_id = id, .sweep_id = -1, .name = id, .engine = "caddie",
                     .config = config, .config_hash = id, .group_hash = id,
                     .status = CAD_RUN_QUEUED, .devices_requested = 1, .git_dirty = -1,
                     .run_dir = "", .reason = "test"};
    cad_err e;
    int rc = cad_db_insert_run(db, &r, &e);
    if (rc) printf("insert_run: %s\n", e.msg);
    return rc;
}

static void test_runner_checks(void) {
    cad_db *db = check_db_open(check_tmp_fresh("runs.db"));
    cad_err e;
    CHECK_EQ_INT(add_run(db, "a", "{\"resume\":true}"), CAD_OK);
    cad_run_status st = CAD_RUN_DONE;
    int found = -1;
    CHECK_EQ_INT(cad_db_run_status(db, "a", &st, &found, &e), CAD_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(st, CAD_RUN_QUEUED);
    CHECK_EQ_INT(cad_db_run_status(db, "nope", &st, &found, &e), CAD_OK);
    CHECK_EQ_INT(found, 0);

    cad_run_claim c = {"0", "host", "boot"};
    CHECK_EQ_INT(cad_db_claim(db, "a", &c, &e), CAD_OK);
    cad_metric m[3] = {{"train_loss", 1, 2.5, -1}, {"train_loss", 7, INFINITY, -1},
                       {"val_bpb", 5, NAN, -1}};
    CHECK_EQ_INT(cad_db_insert_metrics(db, "a", m, 1, &e), CAD_OK);
    cad_metric bad;
    CHECK_EQ_INT(cad_db_find_nonfinite_loss(db, "a", &bad, &found, &e), CAD_OK);
    CHECK_EQ_INT(found, 0);
    CHECK_EQ_INT(cad_db_insert_metrics(db, "a", m + 1, 2, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_find_nonfinite_loss(db, "a", &bad, &found, &e), CAD_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_STR(bad.name, "val_bpb"); /* the lowest step first */
    CHECK_EQ_INT(bad.step, 5);

    /* failures count until the user's `caddie retry`, interruptions never */
    int n = -1;
    CHECK_EQ_INT(cad_db_finish(db, "a", CAD_RUN_FAILED, 1, 1, "boom", "exit code 1", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_count_failures(db, "a", &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(cad_db_requeue(db, "a", 0, "automatic retry 1 of 2", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_claim(db, "a", &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, "a", CAD_RUN_INTERRUPTED, 0, 0, NULL, "runner died", &e),
                 CAD_OK);
    CHECK_EQ_INT(cad_db_count_failures(db, "a", &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 1);
    int yes = -1;
    CHECK_EQ_INT(cad_db_run_resumes(db, "a", &yes, &e), CAD_OK);
    CHECK_EQ_INT(yes, 1); /* resume: true and interrupted */
    CHECK_EQ_INT(cad_db_retry(db, "a", "caddie retry a", &n, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_count_failures(db, "a", &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(cad_db_claim(db, "a", &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, "a", CAD_RUN_FAILED, 1, 1, "boom", "exit code 1", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_run_resumes(db, "a", &yes, &e), CAD_OK);
    CHECK_EQ_INT(yes, 0); /* a failure starts from scratch */

    /* a resumed attempt keeps its curve, a fresh one does not; results always go */
    cad_result r;
    cad_result_init(&r);
    r.val_bpb = 1.25;
    CHECK_EQ_INT(cad_db_set_result(db, "a", &r, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_clear_attempt(db, "a", 1, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics WHERE run_id='a'") == 3);
    CHECK(check_sql_double(db, "SELECT count(*) FROM results WHERE run_id='a'") == 0);
    CHECK_EQ_INT(cad_db_clear_attempt(db, "a", 0, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM metrics WHERE run_id='a'") == 0);
    cad_db_close(db);
}

typedef struct seen {
    int n;
    char text[512];
} seen;

static void seen_add(seen *s, const char *t) {
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof s->text - len, "%s|", t ? t : "NULL");
    s->n++;
}

static int on_running(void *ctx, const cad_running_row *r) {
    seen_add(ctx, r->run_id);
    seen_add(ctx, r->has_step ? r->train_loss : "no step");
    return 0;
}

static int on_failure(void *ctx, const cad_failure_row *r) {
    seen_add(ctx, r->run_id);
    seen_add(ctx, r->error_line);
    return 0;
}

static int on_summary(void *ctx, const cad_summary_row *r) {
    seen_add(ctx, r->run_id);
    seen_add(ctx, isnan(r->val_bpb) ? "no bpb" : "bpb");
    return 0;
}

static int on_field(void *ctx, const char *column, const char *value) {
    if (strcmp(column, "run_id") == 0 || strcmp(column, "status") == 0) seen_add(ctx, value);
    return 0;
}

static int on_metric(void *ctx, const cad_metric_stats *m) {
    char t[128];
    snprintf(t, sizeof t, "%s:%d:%lld..%lld:%s", m->name, m->points, (long long)m->min_step,
             (long long)m->max_step, m->last_value ? m->last_value : "NULL");
    seen_add(ctx, t);
    return 0;
}

static int on_event(void *ctx, const cad_event_row *ev) {
    seen_add(ctx, ev->from_status);
    seen_add(ctx, ev->to_status);
    return 0;
}

static int stop_at_first(void *ctx, const cad_summary_row *r) {
    seen_add(ctx, r->run_id);
    return 7;
}

static void test_listings(void) {
    cad_db *db = check_db_open(check_tmp_fresh("list.db"));
    cad_err e;
    CHECK_EQ_INT(add_run(db, "r1", "{}"), CAD_OK);
    CHECK_EQ_INT(add_run(db, "r2", "{}"), CAD_OK);
    cad_run_claim c = {"0", "host", "boot"};
    CHECK_EQ_INT(cad_db_claim(db, "r1", &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_claim(db, "r2", &c, &e), CAD_OK);
    cad_metric m[2] = {{"train_loss", 1, 3.5, -1}, {"train_loss", 2, 2.5, -1}};
    CHECK_EQ_INT(cad_db_insert_metrics(db, "r1", m, 2, &e), CAD_OK);
    seen s = {0, ""};
    CHECK_EQ_INT(cad_db_each_running(db, on_running, &s, &e), CAD_OK);
    CHECK_STR(s.text, "r1|2.5|r2|no step|");
    CHECK_EQ_INT(cad_db_finish(db, "r2", CAD_RUN_FAILED, 1, 3, "first line\nsecond", "x", &e),
                 CAD_OK);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(cad_db_each_recent_failure(db, 5, on_failure, &s, &e), CAD_OK);
    CHECK_STR(s.text, "r2|first line|");
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(cad_db_each_summary(db, NULL, "failed", on_summary, &s, &e), CAD_OK);
    CHECK_STR(s.text, "r2|no bpb|");
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(cad_db_each_summary(db, NULL, NULL, stop_at_first, &s, &e), 7);
    CHECK_EQ_INT(s.n, 1);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(cad_db_each_summary_field(db, "r1", on_field, &s, &e), CAD_OK);
    CHECK_STR(s.text, "r1|running|");
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(cad_db_each_metric_stats(db, "r1", on_metric, &s, &e), CAD_OK);
    CHECK_STR(s.text, "train_loss:2:1..2:2.5|");
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(cad_db_each_event(db, "r2", on_event, &s, &e), CAD_OK);
    CHECK_STR(s.text, "NULL|queued|queued|running|running|failed|");
    cad_db_close(db);
}

/* An infinite timeout (and result score) reaches the DB as NULL, so run.json — built by
 * SQLite's json_object — stays valid JSON that 'caddie db rebuild' can read back (an Inf
 * there is written as 9.0e+999 and refused, t0412's bad-inf). */
static void test_non_finite_reals(void) {
    cad_db *db = check_db_open(check_tmp_fresh("inf.db"));
    cad_err e;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/inf-run", check_tmpdir());
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST);
    cad_run_new r = {.run_id = "inf", .sweep_id = -1, .name = "inf", .engine = "caddie",
                     .config = "{}", .config_hash = "inf", .group_hash = "inf",
                     .status = CAD_RUN_QUEUED, .devices_requested = 1, .git_dirty = -1,
                     .timeout_s = INFINITY, .run_dir = dir, .reason = "test"};
    CHECK_MSG(cad_db_insert_run(db, &r, &e) == CAD_OK, "%s", e.msg);
    CHECK(isnan(check_sql_double(db, "SELECT timeout_s FROM runs WHERE run_id = 'inf'")));
    CHECK_MSG(cad_db_write_run_json(db, "inf", &e) == CAD_OK, "%s", e.msg);
    char path[4300];
    snprintf(path, sizeof path, "%s/run.json", dir);
    char *text = check_slurp(path, NULL);
    CHECK(text && strstr(text, "\"timeout_s\":null") && !strstr(text, "e+999"));
    free(text);
    cad_result res;
    cad_result_init(&res);
    res.val_bpb = INFINITY, res.val_loss = -INFINITY;
    CHECK_MSG(cad_db_set_result(db, "inf", &res, &e) == CAD_OK, "%s", e.msg);
    CHECK(check_sql_double(db, "SELECT count(*) FROM results WHERE run_id = 'inf' "
                               "AND val_bpb IS NULL AND val_loss IS NULL") == 1);
    cad_db_close(db);
}

int main(void) {
    RUN(test_non_finite_reals);
    RUN(test_runner_checks);
    RUN(test_listings);
    return check_report();
}
