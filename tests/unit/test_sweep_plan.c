/*
 * test_sweep_plan.c — sweep expansion (grid x bundles x zip x seeds, order, names, resolved
 * configs, hashes), duplicates, dedup against the DB by config hash (done, pending, failed,
 * --force), queueing into run dirs, the duration estimate, and value injection: a grid value
 * like "; rm -rf ~" reaches the launch recipe, the DB and the config literally.
 */
#include "engine/buildinfo.h"
#include "db/queue.h"
#include "sweep/plan.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "test_util.h"

static int counter;

static cad_sweep_spec *load(const char *text) {
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    if (cad_sweep_spec_load(check_write_file(check_tmp_fresh("s.yaml"), text), &s, &e)) printf("load: %s\n", e.msg);
    return s;
}

static const char *runs_dir(void) {
    static char d[4200];
    snprintf(d, sizeof d, "%s/runs%d", check_tmpdir(), counter++);
    return d;
}

static cad_db *open_db(void) { return check_db_open(check_tmp_fresh("plan.db")); }

static const char full_sweep[] =
    "name: full\n"
    "set:\n  iterations: 3\n"
    "grid:\n  qk_gain_init: [1.5, 5.25]\n  vocab:\n"
    "    - {vocab_size: 1024, tokenizer_path: a.model}\n"
    "    - {vocab_size: 4096, tokenizer_path: b.model}\n"
    "zip:\n  matrix_lr: [0.02, 0.04]\n  scalar_lr: [0.03, 0.05]\n"
    "seeds: [1337, 42]\ntimeout: 60\n";

static void test_expand_grid_bundle_zip_seeds(void) {
    cad_sweep_spec *s = load(full_sweep);
    if (!s) return;
    cad_plan p;
    cad_err e;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(p.n, 16);
    if (p.n == 16) {
        CHECK_STR(p.runs[0].name, "qk_gain_init=1.5 vocab=1024 matrix_lr=0.02 scalar_lr=0.03 seed=1337");
        CHECK_STR(p.runs[1].name, "qk_gain_init=1.5 vocab=1024 matrix_lr=0.04 scalar_lr=0.05 seed=1337");
        CHECK_STR(p.runs[2].name, "qk_gain_init=1.5 vocab=4096 matrix_lr=0.02 scalar_lr=0.03 seed=1337");
        CHECK_STR(p.runs[4].name, "qk_gain_init=5.25 vocab=1024 matrix_lr=0.02 scalar_lr=0.03 seed=1337");
        CHECK_STR(p.runs[8].name, "qk_gain_init=1.5 vocab=1024 matrix_lr=0.02 scalar_lr=0.03 seed=42");
        /* bundle keys vary together, zip keys in lockstep, set applies to all */
        CHECK(strstr(p.runs[2].config_json, "\"vocab_size\":4096") &&
              strstr(p.runs[2].config_json, "\"tokenizer_path\":\"b.model\""));
        CHECK(strstr(p.runs[1].config_json, "\"matrix_lr\":0.04") &&
              strstr(p.runs[1].config_json, "\"scalar_lr\":0.05"));
        CHECK(strstr(p.runs[4].config_json, "\"qk_gain_init\":5.25") != NULL);
        CHECK(strstr(p.runs[15].config_json, "\"iterations\":3") != NULL);
        CHECK(strstr(p.runs[8].config_json, "\"seed\":42") != NULL);
        CHECK(strstr(p.runs[0].config_json, "\"run_dir\"") == NULL);
        CHECK(p.runs[8].has_seed && p.runs[8].seed == 42);
        /* hashes: distinct configs; seeds share the group */
        for (int i = 0; i < 16; i++)
            for (int j = i + 1; j < 16; j++) CHECK(strcmp(p.runs[i].config_hash, p.runs[j].config_hash) != 0);
        CHECK_STR(p.runs[3].group_hash, p.runs[11].group_hash);
        CHECK(strcmp(p.runs[3].group_hash, p.runs[4].group_hash) != 0);
        /* run id = sweep + hash prefix; config.yaml names it; caddie launch */
        char want[64];
        snprintf(want, sizeof want, "full-%.8s", p.runs[0].config_hash);
        CHECK_STR(p.runs[0].run_id, want);
        CHECK(strstr(p.runs[0].config_yaml, want) != NULL);
        CHECK(strstr(p.runs[0].launch_json, "{\"argv\":[\"caddie\",\"train\",") == p.runs[0].launch_json);
        CHECK_STR(p.engine_version, "caddie " CADDIE_VERSION);
        for (int i = 0; i < 16; i++) CHECK_EQ_INT(p.runs[i].action, CAD_PLAN_QUEUE);
    }
    /* the same file expands identically (stable hashes and ids) */
    cad_plan q;
    CHECK_EQ_INT(cad_plan_expand(s, &o, &q, &e), CAD_OK);
    for (int i = 0; i < p.n && i < q.n; i++) CHECK_STR(p.runs[i].run_id, q.runs[i].run_id);
    cad_plan_free(&q);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
}

/* devices: 2 with the caddie engine: two data-parallel ranks through `caddie launch` */
static void test_caddie_devices_launch(void) {
    cad_sweep_spec *s = load("name: dp\ndevices: 2\ngrid:\n  qk_gain_init: [1.5]\n");
    if (!s) return;
    cad_plan p;
    cad_err e;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK(p.n == 1 && strstr(p.runs[0].launch_json, "{\"argv\":[\"caddie\",\"launch\",\"--nproc\",\"2\",\"train\",") ==
                          p.runs[0].launch_json);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
}

static void test_canonical_numbers_and_duplicates(void) {
    cad_sweep_spec *s = load("name: d\ngrid:\n  qk_gain_init: [1.5, 1.50, 0.1]\n");
    if (!s) return;
    cad_plan p;
    cad_err e;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(p.n, 3);
    if (p.n == 3) {
        CHECK_EQ_INT(p.runs[1].action, CAD_PLAN_SKIP_DUP);
        CHECK_STR(p.runs[1].other_run_id, p.runs[0].run_id);
        CHECK(strstr(p.runs[2].config_json, "\"qk_gain_init\":0.1,") != NULL);
        CHECK_EQ_INT(p.n_action[CAD_PLAN_QUEUE], 2);
    }
    /* the device count is part of a run's identity (multi-device runs: the command engine) */
    static const char cmd_sweep[] = "name: d\nengine: command\ncommand: [prog, \"{qk_gain_init}\"]\n"
                                    "grid:\n  qk_gain_init: [1.5, 0.1]\ndevices: %d\n";
    char t1[256], t8[256];
    snprintf(t1, sizeof t1, cmd_sweep, 1);
    snprintf(t8, sizeof t8, cmd_sweep, 8);
    cad_sweep_spec *s1 = load(t1), *s8 = load(t8);
    cad_plan p1, p8;
    int ok1 = s1 && cad_plan_expand(s1, &o, &p1, &e) == CAD_OK;
    CHECK_MSG(ok1, "%s", e.msg);
    int ok8 = s8 && cad_plan_expand(s8, &o, &p8, &e) == CAD_OK;
    CHECK_MSG(ok8, "%s", e.msg);
    if (ok1 && ok8 && p1.n == 2 && p8.n == 2) CHECK(strcmp(p8.runs[0].config_hash, p1.runs[0].config_hash) != 0);
    if (ok1) cad_plan_free(&p1);
    if (ok8) cad_plan_free(&p8);
    cad_sweep_spec_free(s1);
    cad_sweep_spec_free(s8);
    char b[40];
    cad_plan_format_double(0.04, b, sizeof b);
    CHECK_STR(b, "0.04");
    cad_plan_format_double(30, b, sizeof b);
    CHECK_STR(b, "30");
    cad_plan_format_double(10000, b, sizeof b);
    CHECK_STR(b, "10000");
    cad_plan_format_double(1e-8, b, sizeof b);
    CHECK_STR(b, "1e-08");
    cad_plan_format_double(-0.5, b, sizeof b);
    CHECK_STR(b, "-0.5");
    cad_plan_format_double(1.0 / 3.0, b, sizeof b);
    CHECK(strtod(b, NULL) == 1.0 / 3.0);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
}

static void test_invalid_combination_names_run(void) {
    cad_sweep_spec *s = load("name: bad\ngrid:\n  num_heads: [8, 7]\n");
    if (!s) return;
    cad_plan p;
    cad_err e;
    cad_err_clear(&e);
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK(cad_plan_expand(s, &o, &p, &e) != CAD_OK);
    CHECK(strstr(e.msg, "run 'num_heads=7'") != NULL);
    cad_sweep_spec_free(s);
}

static void test_dedup_against_db(void) {
    cad_sweep_spec *s = load("name: dd\ngrid:\n  qk_gain_init: [1, 2, 3]\ntimeout: 60\n");
    cad_db *db = open_db();
    if (!s || !db) return;
    cad_err e;
    cad_err_clear(&e);
    cad_plan p;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_check(db, s, &p, 0, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_add(db, s, &p, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE status='queued'") == 3);
    CHECK(check_sql_double(db, "SELECT count(*) FROM sweeps WHERE name='dd' AND spec LIKE 'name: dd%'") == 1);
    CHECK(check_sql_double(db, "SELECT count(*) FROM params WHERE key='qk_gain_init' AND num=2") == 1);
    /* the run dir holds config.yaml and run.json */
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/config.yaml", p.runs[0].run_dir);
    CHECK(stat(path, &sb) == 0);
    snprintf(path, sizeof path, "%s/run.json", p.runs[0].run_dir);
    CHECK(stat(path, &sb) == 0);
    char done_id[CAD_RUN_ID_MAX], fail_id[CAD_RUN_ID_MAX];
    snprintf(done_id, sizeof done_id, "%s", p.runs[0].run_id);
    snprintf(fail_id, sizeof fail_id, "%s", p.runs[1].run_id);
    cad_plan_free(&p);
    /* run 0 finishes, run 1 fails, run 2 stays queued */
    cad_run_claim c = {"0", "h", "b"};
    CHECK_EQ_INT(cad_db_claim(db, done_id, &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, done_id, CAD_RUN_DONE, 1, 0, NULL, "ok", &e), CAD_OK);
    CHECK_EQ_INT(cad_db_claim(db, fail_id, &c, &e), CAD_OK);
    CHECK_EQ_INT(cad_db_finish(db, fail_id, CAD_RUN_FAILED, 1, 1, "x", "exit 1", &e), CAD_OK);
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_check(db, s, &p, 0, &e), CAD_OK);
    CHECK_EQ_INT(p.runs[0].action, CAD_PLAN_SKIP_DONE);
    CHECK_STR(p.runs[0].other_run_id, done_id);
    CHECK_EQ_INT(p.runs[1].action, CAD_PLAN_REQUEUE);
    CHECK_EQ_INT(p.runs[2].action, CAD_PLAN_SKIP_PENDING);
    /* estimate: 1 run to (re)queue x 60 s timeout */
    CHECK_EQ_INT(cad_queue_estimate(db, s, &p, 1, &e), CAD_OK);
    CHECK_STR(p.est_source, "this sweep"); /* one run of this sweep is done */
    CHECK_EQ_INT(cad_queue_add(db, s, &p, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs") == 3);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs WHERE status='queued'") == 2);
    cad_plan_free(&p);
    /* --force: every config again, under new -r2 ids */
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_check(db, s, &p, 1, &e), CAD_OK);
    CHECK_EQ_INT(p.n_action[CAD_PLAN_QUEUE], 3);
    char want[160];
    snprintf(want, sizeof want, "%s-r2", done_id);
    CHECK_STR(p.runs[0].run_id, want);
    CHECK(strstr(p.runs[0].run_dir, want) != NULL);
    CHECK(strstr(p.runs[0].config_yaml, want) != NULL);
    CHECK(strstr(p.runs[0].launch_json, want) != NULL);
    CHECK_EQ_INT(cad_queue_add(db, s, &p, &e), CAD_OK);
    CHECK(check_sql_double(db, "SELECT count(*) FROM runs") == 6);
    cad_plan_free(&p);
    cad_db_close(db);
    cad_sweep_spec_free(s);
}

static void test_estimate_makespan(void) {
    cad_sweep_spec *s = load("name: est\ngrid:\n  qk_gain_init: [1, 2, 3, 4, 5]\ntimeout: 60\n");
    if (!s) return;
    cad_plan p;
    cad_err e;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_estimate(NULL, s, &p, 2, &e), CAD_OK);
    CHECK_NEAR(p.est_total_s, 180, 1e-9, 0);
    CHECK_EQ_INT(cad_queue_estimate(NULL, s, &p, 8, &e), CAD_OK);
    CHECK_NEAR(p.est_total_s, 60, 1e-9, 0);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
    s = load("name: est8\ngrid:\n  qk_gain_init: [1, 2]\ndevices: 8\ntimeout: 100\n");
    if (!s) return;
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK(cad_queue_estimate(NULL, s, &p, 4, &e) != CAD_OK);
    CHECK(strstr(e.msg, "needs 8 devices") != NULL);
    CHECK_EQ_INT(cad_queue_estimate(NULL, s, &p, 8, &e), CAD_OK);
    CHECK_NEAR(p.est_total_s, 200, 1e-9, 0);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
}

static void test_value_injection_is_literal(void) {
    cad_sweep_spec *s = load("name: inj\nengine: command\n"
                             "command: [python3, train_gpt.py, \"--tag={arg}\"]\n"
                             "env:\n  ARG: \"{arg}\"\n  NP: \"{devices}\"\n  LIT: \"{{arg}}\"\n"
                             "grid:\n  arg: [\"; rm -rf ~\", \"$(touch pwned)\", \"a'b\\\"c\"]\n");
    cad_db *db = open_db();
    if (!s || !db) return;
    cad_plan p;
    cad_err e;
    cad_err_clear(&e);
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_check(db, s, &p, 0, &e), CAD_OK);
    CHECK_EQ_INT(cad_queue_add(db, s, &p, &e), CAD_OK);
    const char *want[3] = {"; rm -rf ~", "$(touch pwned)", "a'b\"c"};
    for (int i = 0; i < p.n && i < 3; i++) {
        cad_launch l;
        CHECK_EQ_INT(cad_db_get_launch(db, p.runs[i].run_id, &l, &e), CAD_OK);
        CHECK_EQ_INT(l.argc, 3);
        char arg[128], env[128];
        snprintf(arg, sizeof arg, "--tag=%s", want[i]);
        snprintf(env, sizeof env, "ARG=%s", want[i]);
        if (l.argc == 3) CHECK_STR(l.argv[2], arg);
        CHECK_EQ_INT(l.nenv, 3);
        if (l.nenv == 3) {
            CHECK_STR(l.env[0], env);
            CHECK_STR(l.env[1], "NP=1");
            CHECK_STR(l.env[2], "LIT={arg}");
        }
        cad_launch_free(&l);
        /* the params table holds the value as text */
        sqlite3_stmt *st;
        sqlite3_prepare_v2(cad_db_sqlite(db), "SELECT text FROM params WHERE run_id=?1 AND key='arg'", -1, &st, NULL);
        sqlite3_bind_text(st, 1, p.runs[i].run_id, -1, SQLITE_STATIC);
        CHECK(sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), want[i]) == 0);
        sqlite3_finalize(st);
    }
    struct stat sb;
    CHECK(stat("pwned", &sb) != 0);
    cad_plan_free(&p);
    cad_db_close(db);
    cad_sweep_spec_free(s);
}

static void test_command_engine_version_hashes_script(void) {
    /* the script is hashed into the engine version, so editing it invalidates dedup */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/wd%d", check_tmpdir(), counter++);
    mkdir(dir, 0777);
    char script[4300];
    snprintf(script, sizeof script, "%s/train_gpt.py", dir);
    check_write_file(script, "print(1)\n");
    char text[8800];
    snprintf(text, sizeof text,
             "name: ev\nengine: command\ncommand: [python3, train_gpt.py]\nworkdir: %s\n"
             "env:\n  SEED: \"{seed}\"\nseeds: [1]\n",
             dir);
    cad_sweep_spec *s = load(text);
    if (!s) return;
    cad_plan p1, p2;
    cad_err e;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p1, &e), CAD_OK);
    CHECK(strncmp(p1.engine_version, "command sha256:", 15) == 0);
    check_write_file(script, "print(2)\n");
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p2, &e), CAD_OK);
    CHECK(strcmp(p1.engine_version, p2.engine_version) != 0);
    CHECK(strcmp(p1.runs[0].config_hash, p2.runs[0].config_hash) != 0);
    cad_plan_free(&p1);
    cad_plan_free(&p2);
    cad_sweep_spec_free(s);
}

/* A key spelled at its default value is the same experiment as the key left out: same config
 * hash and group (so adding a key to the engine, default = old behaviour, keeps every finished
 * run "done" and every group whole), while the stored config still lists every key. */
static void test_identity_ignores_keys_at_default(void) {
    cad_sweep_spec *a = load("name: idt\nset:\n  iterations: 3\n  qk_gain_init: 1.5\n  matmul_precision: fp32\nseeds: [7]\n");
    cad_sweep_spec *b = load("name: idt\nset:\n  iterations: 3\nseeds: [7]\n");
    cad_sweep_spec *c = load("name: idt\nset:\n  iterations: 3\n  matmul_precision: bf16\nseeds: [7]\n");
    /* settings of a switched-off technique are the same experiment too */
    cad_sweep_spec *inert = load("name: idt\nset:\n  iterations: 3\n  recur_layers: \"3-4\"\n  ttt_epochs: 5\nseeds: [7]\n");
    cad_plan pi;
    cad_err ei;
    CHECK(inert && cad_plan_expand(inert, &(cad_plan_opts){runs_dir(), NULL}, &pi, &ei) == CAD_OK);
    if (!a || !b || !c) return;
    cad_plan pa, pb, pc;
    cad_err e;
    cad_plan_opts o = {runs_dir(), NULL};
    CHECK_EQ_INT(cad_plan_expand(a, &o, &pa, &e), CAD_OK);
    CHECK_EQ_INT(cad_plan_expand(b, &o, &pb, &e), CAD_OK);
    CHECK_EQ_INT(cad_plan_expand(c, &o, &pc, &e), CAD_OK);
    if (pa.n == 1 && pb.n == 1 && pc.n == 1) {
        CHECK_STR(pa.runs[0].config_hash, pb.runs[0].config_hash);
        CHECK_STR(pa.runs[0].group_hash, pb.runs[0].group_hash);
        CHECK(strcmp(pc.runs[0].config_hash, pb.runs[0].config_hash) != 0);
        CHECK(strcmp(pc.runs[0].group_hash, pb.runs[0].group_hash) != 0);
        CHECK(strstr(pb.runs[0].config_json, "\"matmul_precision\":\"fp32\"") != NULL);
        CHECK(strstr(pb.runs[0].config_json, "\"qk_gain_init\":1.5") != NULL);
        if (inert && pi.n == 1) CHECK_STR(pi.runs[0].config_hash, pb.runs[0].config_hash);
    }
    if (inert) cad_plan_free(&pi), cad_sweep_spec_free(inert);
    cad_config cfg;
    CHECK_EQ_INT(cad_config_init(&cfg, &e), CAD_OK);
    char *id = cad_plan_config_identity_json(&cfg, 0);
    CHECK_STR(id, "{}"); /* every key at its default */
    free(id);
    cad_config_free(&cfg);
    cad_plan_free(&pa), cad_plan_free(&pb), cad_plan_free(&pc);
    cad_sweep_spec_free(a), cad_sweep_spec_free(b), cad_sweep_spec_free(c);
}

int main(void) {
    RUN(test_expand_grid_bundle_zip_seeds);
    RUN(test_identity_ignores_keys_at_default);
    RUN(test_caddie_devices_launch);
    RUN(test_canonical_numbers_and_duplicates);
    RUN(test_invalid_combination_names_run);
    RUN(test_dedup_against_db);
    RUN(test_estimate_makespan);
    RUN(test_value_injection_is_literal);
    RUN(test_command_engine_version_hashes_script);
    return check_report();
}
