/*
 * test_sweep_spec.c — every validation error of a sweep file, with its exact
 * file:line:col, and the typed spec of valid files (both engines).
 */
#include "test_util.h"
#include "sweep/plan.h"
#include "sweep/spec.h"

#include <stdio.h>

/* Write text to a fresh file in the scratch dir; returns its path (static buffer ring). */
/* Load text as a sweep; expect failure whose message is "<path>:<where>: ..." containing
 * want. */
static void expect_error(int line, const char *text, const char *where, const char *want) {
    const char *path = check_write_file(check_tmp_fresh("s.yaml"), text);
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_sweep_spec_load(path, &s, &e);
    char prefix[4400];
    snprintf(prefix, sizeof prefix, "%s:%s: ", path, where);
    CHECK_MSG(rc != CAD_OK && s == NULL, "line %d: expected an error, got none", line);
    CHECK_MSG(strncmp(e.msg, prefix, strlen(prefix)) == 0, "line %d: message \"%s\" does not start with \"%s\"",
              line, e.msg, prefix);
    CHECK_MSG(strstr(e.msg, want) != NULL, "line %d: message \"%s\" lacks \"%s\"", line, e.msg, want);
    cad_sweep_spec_free(s);
}

#define ERR(text, where, want) expect_error(__LINE__, text, where, want)

static void test_top_level_errors(void) {
    ERR("name: x\ngird:\n  qk_gain_init: [1]\n", "2:1", "unknown key 'gird' (did you mean 'grid'?)");
    ERR("grid:\n  qk_gain_init: [1]\n", "1:1", "missing required key 'name'");
    ERR("name: a b\n", "1:7", "'name' may only use letters");
    ERR("name: [a]\n", "1:7", "'name' must be a scalar, got a list");
    ERR("- a\n- b\n", "1:1", "a sweep file must be a map");
    ERR("name: x\nengine: torch\n", "2:9", "unknown engine 'torch'");
    ERR("name: x\ndevices: 0\n", "2:10", "'devices' must be in [1, 64], got 0");
    ERR("name: x\ndevices: two\n", "2:10", "'devices' must be an integer, got 'two'");
    ERR("name: x\ntimeout: soon\n", "2:10", "'timeout' must be a positive number");
    ERR("name: x\nretries: -1\n", "2:10", "'retries' must be in [0, 100]");
    /* finite text, infinite seconds: once accepted and written as "timeout_s":Inf into run.json */
    ERR("name: x\ntimeout: 1e308h\n", "2:10", "'timeout' must be between 0.1 s and 2.592e+06 s (30 days)");
    ERR("name: x\ntimeout: 1e306\n", "2:10", "'timeout' must be between");
    ERR("name: x\ntimeout: 31d\n", "2:10", "'timeout' must be a positive number");
    ERR("name: x\ntimeout: 721h\n", "2:10", "'timeout' must be between");
    ERR("name: x\ntimeout: 0.01s\n", "2:10", "'timeout' must be between");
    ERR("name: x\ntimeout: inf\n", "2:10", "'timeout' must be a positive number");
    ERR("name: x\ntimeout: nan\n", "2:10", "'timeout' must be a positive number");
    ERR("name: x\ntimeout: 1e999\n", "2:10", "'timeout' must be a positive number");
    /* the integer fields: non-finite and out-of-range texts never become numbers */
    ERR("name: x\npriority: 1e300\n", "2:11", "'priority' must be an integer, got '1e300'");
    ERR("name: x\npriority: inf\n", "2:11", "'priority' must be an integer");
    ERR("name: x\npriority: 2000000\n", "2:11", "'priority' must be in [-1000000, 1000000]");
    ERR("name: x\nretries: nan\n", "2:10", "'retries' must be an integer");
    ERR("name: x\nretries: 1e9\n", "2:10", "'retries' must be in [0, 100]");
    ERR("name: x\ndevices: 1e999\n", "2:10", "'devices' must be an integer");
    ERR("name: x\ndevices: 99999999999999999999\n", "2:10", "'devices' must be an integer");
    ERR("name: x\nseeds: 1e9\n", "2:8", "'seeds' must be in [1, 1000]");
    ERR("name: x\nseeds: inf\n", "2:8", "'seeds' must be an integer");
    ERR("name: x\nseeds: [1, 1e300]\n", "2:12", "'seeds' must be an integer");
    ERR("name: x\nseeds: [1, 4294967296]\n", "2:12", "'seeds' must be in [0, 2147483647]");
    ERR("name: x\nbase: missing.yaml\n", "2:7", "base config 'missing.yaml'");
    ERR("name: x\nset: 3\n", "2:6", "'set' must be a map of key: value, got a scalar");
}

static void test_yaml_syntax_error_has_position(void) {
    const char *path = check_write_file(check_tmp_fresh("bad.yaml"), "name: x\ngrid:\n  a: [1, 2\n");
    cad_sweep_spec *s = NULL;
    cad_err e;
    CHECK(cad_sweep_spec_load(path, &s, &e) == CAD_EFORMAT);
    char prefix[4300];
    snprintf(prefix, sizeof prefix, "%s:", path);
    CHECK(strncmp(e.msg, prefix, strlen(prefix)) == 0);
    /* a line:col follows the path */
    int l = 0, c = 0;
    CHECK(sscanf(e.msg + strlen(prefix), "%d:%d:", &l, &c) == 2 && l >= 3);
}

static void test_engine_key_errors(void) {
    ERR("name: x\nset:\n  qk_gain_int: 2\n", "3:3",
        "unknown engine key 'qk_gain_int' for engine caddie (did you mean 'qk_gain_init'?)");
    ERR("name: x\nset:\n  num_layers: abc\n", "3:15", "key 'num_layers': integer expected, got 'abc'");
    ERR("name: x\ngrid:\n  qk_gain_init: [1.5, fast]\n", "3:23", "number expected, got 'fast'");
    ERR("name: x\nset:\n  num_layers: [1, 2]\n", "3:15", "'num_layers' expects int, got a list");
    ERR("name: x\nset:\n  run_dir: /tmp/x\n", "3:3", "'run_dir' is chosen by caddie");
    ERR("name: x\ngrid:\n  v:\n    - {vocab_size: 1024, tokenizer_pth: a}\n", "4:26",
        "unknown engine key 'tokenizer_pth'");
    ERR("name: x\nenv:\n  A: b\n", "3:3", "belong to engine: command");
}

static void test_grid_zip_seed_errors(void) {
    ERR("name: x\ngrid: {}\n", "2:7", "empty grid");
    ERR("name: x\ngrid:\n  qk_gain_init: []\n", "3:17", "empty grid axis 'qk_gain_init'");
    ERR("name: x\ngrid:\n  qk_gain_init: 5\n", "3:17", "grid 'qk_gain_init' must be a list of values");
    ERR("name: x\ngrid: [1]\n", "2:7", "'grid' must be a map");
    ERR("name: x\ngrid:\n  v:\n    - {vocab_size: 1024}\n    - 4096\n", "5:7", "mixes bundles");
    /* engine command has no defaults: every bundle must set the same keys */
    ERR("name: x\nengine: command\ncommand: [p, \"{a}{b}\"]\ngrid:\n  v:\n    - {a: 1, b: 9}\n    - {a: 4}\n",
        "7:7", "bundle sets 1 keys but the first bundle");
    ERR("name: x\nengine: command\ncommand: [p, \"{a}{b}{c}\"]\ngrid:\n  v:\n    - {a: 1, b: 9}\n    - {a: 4, c: 8}\n",
        "7:14", "bundle key 'c' is not in the first bundle");
    ERR("name: x\nzip:\n  matrix_lr: [0.1, 0.2]\n  scalar_lr: [0.1]\n", "4:14",
        "zip lists must have the same length: 'scalar_lr' has 1 values, 'matrix_lr' has 2");
    ERR("name: x\nzip: {}\n", "2:6", "empty zip");
    ERR("name: x\nset:\n  qk_gain_init: 2\ngrid:\n  qk_gain_init: [1, 2]\n", "5:3",
        "'qk_gain_init' is already set in set (line 3)");
    ERR("name: x\ngrid:\n  matrix_lr: [1]\nzip:\n  matrix_lr: [1]\n", "5:3", "already set in grid");
    ERR("name: x\nset:\n  seed: 3\nseeds: [1, 2]\n", "3:3", "'seed' is set in set and by 'seeds'");
    ERR("name: x\nseeds: []\n", "2:8", "empty 'seeds'");
    ERR("name: x\nseeds: [1, 1]\n", "2:12", "seed 1 is listed twice");
    ERR("name: x\nseeds: [1, a]\n", "2:12", "'seeds' must be an integer");
}

static void test_command_engine_errors(void) {
    ERR("name: x\nengine: command\n", "1:1", "engine command needs 'command'");
    ERR("name: x\nengine: command\ncommand: python train.py\n", "3:10", "'command' must be a non-empty list");
    ERR("name: x\nengine: command\ncommand: [python, t.py]\nenv:\n  QK: \"{qk_gain}\"\n"
        "grid:\n  qk_gain_init: [1, 2]\n",
        "5:7", "unknown template '{qk_gain}' (did you mean '{qk_gain_init}'?)");
    ERR("name: x\nengine: command\ncommand: [python, t.py]\ngrid:\n  muon_wd: [0.02, 0.04]\n",
        "5:3", "grid key 'muon_wd' is not used by 'command' or 'env'");
    ERR("name: x\nengine: command\ncommand: [python, t.py]\nseeds: [1, 2]\n", "4:8",
        "'seeds' is given but no template uses {seed}");
    ERR("name: x\nengine: command\ncommand: [python, \"{oops\"]\n", "3:19", "unclosed '{'");
    ERR("name: x\nengine: command\ncommand: [python]\nenv:\n  1BAD: x\n", "5:3",
        "'1BAD' is not a valid environment variable name");
    ERR("name: x\nengine: command\ncommand: [python]\ngrid:\n  bad-name: [1]\n", "5:3",
        "param name 'bad-name' may only use");
    ERR("name: x\nengine: command\ncommand: [python, \"{a}\"]\nset:\n  a: [[1]]\n", "5:7",
        "items of 'a' must be scalars");
    /* a grid list of maps is a bundle axis: its name is a label, its keys are the params */
    ERR("name: x\nengine: command\ncommand: [python, \"{a}\"]\ngrid:\n  a: [{b: 1}]\n", "3:19",
        "unknown template '{a}' (did you mean '{b}'?)");
}

static void test_valid_caddie_spec(void) {
    const char *base = check_write_file(check_tmp_fresh("base.yaml"), "num_layers: 2\nmodel_dim: 64\n");
    const char *slash = strrchr(base, '/');
    char text[2048];
    snprintf(text, sizeof text,
             "name: qk\ndescription: QK gain sweep\nbase: %s\nset:\n  iterations: 5\n"
             "grid:\n  qk_gain_init: [1.5, 5.25]\n  vocab:\n"
             "    - {vocab_size: 1024, tokenizer_path: a.model}\n"
             "    - {vocab_size: 4096, tokenizer_path: b.model}\n"
             "zip:\n  matrix_lr: [0.02, 0.04]\n  scalar_lr: [0.02, 0.04]\n"
             "seeds: [1337, 42]\ndevices: 1\ntimeout: 20m\nretries: 2\npriority: 5\n",
             slash + 1);
    const char *path = check_write_file(check_tmp_fresh("ok.yaml"), text);
    /* base is relative to the sweep file: both are in the scratch dir */
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_sweep_spec_load(path, &s, &e), CAD_OK);
    if (!s) {
        printf("%s\n", e.msg);
        return;
    }
    CHECK_STR(s->name, "qk");
    CHECK_STR(s->description, "QK gain sweep");
    CHECK_EQ_INT(s->engine, CAD_ENGINE_CADDIE);
    CHECK(s->base && strcmp(s->base + strlen(s->base) - strlen(slash), slash) == 0);
    CHECK_EQ_INT(s->n_set, 1);
    CHECK_EQ_INT(s->n_axes, 3);
    CHECK_EQ_INT(s->axes[0].n_points, 2);
    CHECK(s->axes[1].is_bundle && s->axes[1].n_points == 2 && s->axes[1].points[1].n == 2);
    CHECK(s->axes[2].is_zip && s->axes[2].n_points == 2);
    CHECK_STR(s->axes[2].label, "matrix_lr+scalar_lr");
    CHECK_EQ_INT(s->n_seeds, 2);
    CHECK_EQ_INT(s->seeds[1], 42);
    CHECK_EQ_INT(s->devices, 1);
    CHECK_NEAR(s->timeout_s, 1200, 0, 0);
    CHECK_EQ_INT(s->retries, 2);
    CHECK_EQ_INT(s->priority, 5);
    CHECK(s->spec_hash && strlen(s->spec_hash) == 64);
    cad_sweep_spec_free(s);
}

static void test_valid_command_spec(void) {
    const char *path = check_write_file(check_tmp_fresh("cmd.yaml"),
                                 "name: wd\nengine: command\n"
                                 "command: [torchrun, --standalone, \"--nproc_per_node={devices}\", train_gpt.py]\n"
                                 "env:\n  MUON_WD: \"{muon_wd}\"\n  SEED: \"{seed}\"\n  RUN_ID: \"{run_id}\"\n"
                                 "  LIT: \"{{not a template}}\"\n"
                                 "grid:\n  muon_wd: [0.02, 0.04]\nseeds: 3\nworkdir: ..\n");
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_sweep_spec_load(path, &s, &e), CAD_OK);
    if (!s) {
        printf("%s\n", e.msg);
        return;
    }
    CHECK_EQ_INT(s->engine, CAD_ENGINE_COMMAND);
    CHECK_EQ_INT(s->n_argv, 4);
    CHECK_EQ_INT(s->n_env, 4);
    CHECK_STR(s->env[0].name, "MUON_WD");
    CHECK_EQ_INT(s->n_seeds, 3);
    CHECK(s->seeds[0] == 1337 && s->seeds[2] == 1339);
    CHECK_STR(s->workdir, "..");
    CHECK_NEAR(s->timeout_s, CAD_SWEEP_DEFAULT_TIMEOUT_S, 0, 0);
    cad_sweep_spec_free(s);
}

static int count_names(void *ctx, const char *name, size_t len, cad_err *e) {
    (void)e;
    char *out = ctx;
    strncat(out, name, len);
    strcat(out, "|");
    return CAD_OK;
}

static void test_template_scan(void) {
    char got[256] = "";
    cad_err e;
    CHECK_EQ_INT(cad_template_scan("a{x}b{{c}}{y_1}", count_names, got, &e), CAD_OK);
    CHECK_STR(got, "x|y_1|");
    CHECK_EQ_INT(cad_template_scan("{}", count_names, got, &e), CAD_EFORMAT);
    CHECK_EQ_INT(cad_template_scan("{abc", count_names, got, &e), CAD_EFORMAT);
}

/* engine caddie: bundles may set different keys (the rest keep their base/default value), as
 * an ablation needs; the run name says what each bundle sets */
static void test_ragged_bundles_for_ablations(void) {
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    const char *path = check_write_file(check_tmp_fresh("abl.yaml"),
                                        "name: abl\ngrid:\n  technique:\n    - {muon_wd: 0.0}\n"
                                        "    - {ema_decay: 0.97}\n    - {recur_layers: \"1-2\", recur_loops: 2}\n");
    CHECK_MSG(cad_sweep_spec_load(path, &s, &e) == CAD_OK, "%s", e.msg);
    if (!s) return;
    CHECK(s->axes[0].is_bundle && s->axes[0].is_ragged && s->axes[0].n_points == 3);
    cad_plan p;
    cad_plan_opts o = {check_tmp_fresh("abl_runs"), NULL};
    CHECK_MSG(cad_plan_expand(s, &o, &p, &e) == CAD_OK, "%s", e.msg);
    if (p.n == 3) {
        CHECK_STR(p.runs[0].name, "technique=muon_wd:0.0");
        CHECK_STR(p.runs[2].name, "technique=recur_layers:1-2,recur_loops:2");
        CHECK(strstr(p.runs[1].config_json, "\"ema_decay\":0.97") && strstr(p.runs[1].config_json, "\"muon_wd\":0,"));
    }
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
    /* a key set in a later bundle and in 'set' is still a conflict */
    path = check_write_file(check_tmp_fresh("abl2.yaml"), "name: abl\nset:\n  ema_decay: 0.9\ngrid:\n  t:\n"
                                                          "    - {muon_wd: 0.0}\n    - {ema_decay: 0.97}\n");
    CHECK(cad_sweep_spec_load(path, &s, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "ema_decay") != NULL, "%s", e.msg);
}

/* Issue 16: the duplicate checks must not be quadratic. These files are large enough that a
 * pairwise scan (N^2/2 = 2e10 string compares for N = 200000) runs for minutes, far past the
 * suite's time; a sorted or hashed check takes well under a second. The checks themselves are
 * on behaviour: the duplicate is found and named at its file:line:col. */
#define BIG_N 200000

/* A sweep of engine command whose command uses {k0} and {seed}: head, then fmt for i in
 * [0, n) (fmt takes i twice), then last. Returns malloc'd text. */
static char *big_text(const char *head, const char *fmt, long n, const char *last) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "name: big\nengine: command\ncommand: [echo, \"{k0}\", \"{seed}\"]\n%s", head);
    for (long i = 0; i < n; i++) fprintf(f, fmt, i, i);
    fputs(last, f);
    if (fclose(f)) { free(text); return NULL; }
    return text;
}

static void test_big_specs_find_duplicates(void) {
    char where[64], want[64];
    /* 200000 zip groups, each with a key of its own; the last repeats k0 (line 6) */
    char *text = big_text("seeds: 1\nzip:\n", "  - {k%ld: [%ld]}\n", BIG_N, "  - {k0: [7]}\n");
    CHECK(text != NULL);
    snprintf(where, sizeof where, "%d:6", 6 + BIG_N);
    if (text) expect_error(__LINE__, text, where, "'k0' is already set in zip (line 6)");
    free(text);

    /* 200000 seeds; the last repeats the first */
    text = big_text("set: {k0: 1}\nseeds:\n", "  - %ld # %ld\n", BIG_N, "  - 0\n");
    CHECK(text != NULL);
    snprintf(where, sizeof where, "%d:5", 6 + BIG_N);
    if (text) expect_error(__LINE__, text, where, "seed 0 is listed twice");
    free(text);

    /* one grid axis of 200000 bundles that all set k0: valid, one key, every point kept */
    text = big_text("seeds: 1\ngrid:\n  b:\n", "    - {k0: %ld} # %ld\n", BIG_N, "");
    CHECK(text != NULL);
    if (!text) return;
    const char *path = check_write_file(check_tmp_fresh("bundles.yaml"), text);
    free(text);
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    CHECK_MSG(cad_sweep_spec_load(path, &s, &e) == CAD_OK, "%s", e.msg);
    if (!s) return;
    CHECK(s->n_axes == 1 && s->axes[0].is_bundle && !s->axes[0].is_ragged && s->axes[0].n_points == BIG_N);
    snprintf(want, sizeof want, "%d", BIG_N - 1);
    if (s->n_axes == 1 && s->axes[0].n_points == BIG_N) {
        const cad_sweep_point *p = &s->axes[0].points[BIG_N - 1];
        CHECK(p->n == 1 && strcmp(p->a[0].key, "k0") == 0 && strcmp(p->a[0].value->value, want) == 0);
    }
    cad_sweep_spec_free(s);
}

int main(void) {
    RUN(test_top_level_errors);
    RUN(test_yaml_syntax_error_has_position);
    RUN(test_engine_key_errors);
    RUN(test_grid_zip_seed_errors);
    RUN(test_command_engine_errors);
    RUN(test_valid_caddie_spec);
    RUN(test_valid_command_spec);
    RUN(test_template_scan);
    RUN(test_ragged_bundles_for_ablations);
    RUN(test_big_specs_find_duplicates);
    return check_report();
}
