/*
 * test_sweep_greedy.c — the sweep layer of `kind: greedy` and `prepare:`: a greedy file's
 * candidates, a round as a grid spec (name, set with the kept candidates, the "candidate"
 * axis of base + the rest, run names and configs), the choice rule with its margin, ties and
 * missing scores; a prepare section's cache keys and directories, the runs' tokenizer and
 * data paths by vocab_size, and the prepare queue items (ids, launch recipe).
 * Not here: driving rounds in the DB and the runner (tests/cli/t0431), building entries
 * (tests/cli/t0430).
 */
#include "engine/prepcache.h"
#include "engine/sha256.h"
#include "sweep/plan.h"
#include "sweep/spec.h"

#include "test_util.h"

static cad_sweep_spec *load(const char *name, const char *text) {
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    if (cad_sweep_spec_load(check_write_file(check_tmp_fresh(name), text), &s, &e)) printf("load: %s\n", e.msg);
    return s;
}

static const char greedy_yaml[] =
    "name: gs\nkind: greedy\nset: {iterations: 5}\n"
    "candidates:\n  wd: {muon_wd: 0.04}\n  ema: {ema_decay: 0.97, ema_start_frac: 0.5}\n  qk: {qk_gain_init: 3}\n"
    "margin: 0.002\nseeds: [1, 2]\n";

static void test_greedy_spec_and_rounds(void) {
    cad_sweep_spec *g = load("g.yaml", greedy_yaml);
    if (!g) return;
    CHECK_EQ_INT(g->kind, CAD_SWEEP_KIND_GREEDY);
    CHECK_EQ_INT(g->greedy.n_cands, 3);
    CHECK_EQ_INT(g->greedy.max_rounds, 3);
    CHECK_STR(g->greedy.metric, "val_bpb");
    CHECK_NEAR(g->greedy.margin, 0.002, 0, 1e-12);
    CHECK_STR(g->greedy.cands[1].label, "ema");
    CHECK_EQ_INT(g->greedy.cands[1].n, 2);
    cad_err e;
    cad_err_clear(&e);
    cad_sweep_spec *r = NULL;
    int acc[] = {1}; /* ema kept in round 1 */
    CHECK_EQ_INT(cad_sweep_greedy_round(g, 2, acc, 1, &r, &e), CAD_OK);
    if (!r) goto out;
    CHECK_STR(r->name, "gs.r2");
    CHECK_EQ_INT(r->kind, CAD_SWEEP_KIND_GRID);
    CHECK_EQ_INT(r->n_set, 3); /* iterations, then ema's two keys */
    CHECK_STR(r->set[1].key, "ema_decay");
    CHECK_EQ_INT(r->n_axes, 1);
    CHECK_EQ_INT(r->axes[0].n_points, 3); /* base, wd, qk */
    CHECK_STR(r->axes[0].points[0].label, "base");
    CHECK_STR(r->axes[0].points[1].label, "wd");
    CHECK_STR(r->axes[0].points[2].label, "qk");
    CHECK(strstr(r->description, "from base+ema") != NULL);
    cad_plan p;
    cad_plan_opts o = {check_tmp_fresh("runs"), NULL};
    CHECK_EQ_INT(cad_plan_expand(r, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(p.n, 6);
    if (p.n == 6) {
        CHECK_STR(p.runs[0].name, "candidate=base seed=1");
        CHECK_STR(p.runs[4].name, "candidate=wd seed=2");
        CHECK(strncmp(p.runs[0].run_id, "gs.r2-", 6) == 0);
        /* every run carries the kept candidate; the wd run adds its own key */
        CHECK(strstr(p.runs[0].config_json, "\"ema_decay\":0.97") && !strstr(p.runs[0].config_json, "\"muon_wd\":0.04"));
        CHECK(strstr(p.runs[1].config_json, "\"ema_decay\":0.97") && strstr(p.runs[1].config_json, "\"muon_wd\":0.04"));
    }
    /* round 1's ema run and round 2's base are the same config: same hash, so dedup runs it once */
    cad_sweep_spec *r1 = NULL;
    cad_plan p1;
    CHECK_EQ_INT(cad_sweep_greedy_round(g, 1, NULL, 0, &r1, &e), CAD_OK);
    if (r1 && cad_plan_expand(r1, &o, &p1, &e) == CAD_OK) {
        CHECK_EQ_INT(p1.n, 8);
        if (p1.n == 8 && p.n == 6) CHECK_STR(p1.runs[2].config_hash, p.runs[0].config_hash);
        cad_plan_free(&p1);
    }
    cad_sweep_spec_free(r1);
    if (p.n) cad_plan_free(&p);
    cad_sweep_spec_free(r);
out:
    cad_sweep_spec_free(g);
}

static void test_greedy_pick(void) {
    double s[] = {3.0, 2.99, 2.95, 2.95};
    int have[] = {1, 1, 1, 1}, w = -1;
    CHECK_EQ_INT(cad_sweep_greedy_pick(s, have, 4, 0.01, &w), CAD_OK);
    CHECK_EQ_INT(w, 2); /* the lowest; the tie with 3 goes to the earlier */
    CHECK_EQ_INT(cad_sweep_greedy_pick(s, have, 4, 0.05, &w), CAD_OK);
    CHECK_EQ_INT(w, 0); /* 2.95 is not below 3.0 - 0.05 */
    CHECK_EQ_INT(cad_sweep_greedy_pick(s, have, 4, 0.049, &w), CAD_OK);
    CHECK_EQ_INT(w, 2);
    have[2] = have[3] = 0; /* the best ones have no result: the next best decides */
    CHECK_EQ_INT(cad_sweep_greedy_pick(s, have, 4, 0.0, &w), CAD_OK);
    CHECK_EQ_INT(w, 1);
    have[0] = 0;
    CHECK_EQ_INT(cad_sweep_greedy_pick(s, have, 4, 0.0, &w), CAD_ERR); /* no base score */
    CHECK_EQ_INT(w, 0);
}

static void test_greedy_errors(void) {
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"name: b\nkind: greedy\ncandidates: {}\n", ":3:13: 'candidates' must be a non-empty map"},
        {"name: b\nkind: greedy\ncandidates:\n  x: {qk_gain_int: 2}\n", ":4:7: unknown engine key 'qk_gain_int'"},
        {"name: b\nkind: greedy\ncandidates:\n  x: {qk_gain_init: 2}\nmax_rounds: 2\n", ":5:13: 'max_rounds' must be in [1, 1]"},
        {"name: b\nkind: greedy\ncandidates:\n  x: {qk_gain_init: 2}\nmargin: -1\n", ":5:9: 'margin' must be a number >= 0"},
        {"name: b\nkind: greedy\ncandidates:\n  x: {qk_gain_init: 2}\nzip: {a: [1]}\n", ":5:6: a greedy sweep has no 'zip'"},
        {"name: b\nkind: sideways\n", ":2:7: unknown kind 'sideways'"},
        {"name: b\nmargin: 1\n", ":2:9: 'margin' belongs to kind: greedy"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cad_sweep_spec *s = NULL;
        cad_err e;
        cad_err_clear(&e);
        int rc = cad_sweep_spec_load(check_write_file(check_tmp_fresh("bad.yaml"), cases[i].yaml), &s, &e);
        CHECK_MSG(rc != CAD_OK && strstr(e.msg, cases[i].want), "case %zu: want '%s', got '%s'", i, cases[i].want,
                  e.msg);
        cad_sweep_spec_free(s);
    }
}

static void test_prepare_section(void) {
    const char *corpus = check_write_file(check_tmp_fresh("corpus.txt"), "one document\n\nanother one\n");
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "name: pv\nprepare:\n  corpus: %s\n  val_docs: 1\n  shard_tokens: 1000\n  cache: %s\n"
             "  tokenizers: [{vocab: 400}, {vocab: 600}]\ngrid:\n  vocab_size: [600, 400]\n",
             corpus, check_tmp_fresh("cache"));
    cad_sweep_spec *s = load("pv.yaml", yaml);
    if (!s) return;
    const cad_sweep_prepare *pr = &s->prepare;
    CHECK_EQ_INT(pr->n_tok, 2);
    char sha[65], key[65];
    int64_t bytes;
    cad_err e;
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_sha256_file_hex(corpus, sha, &bytes, &e), CAD_OK);
    CHECK_STR(pr->corpus_sha256, sha);
    cad_prepcache_key(sha, 600, 1, 1000, key);
    CHECK_STR(pr->tok[1].key, key);
    CHECK(strncmp(pr->tok[1].dir, pr->cache, strlen(pr->cache)) == 0 && strstr(pr->tok[1].dir, key));
    /* another val split is another entry */
    cad_prepcache_key(sha, 600, 2, 1000, key);
    CHECK(strcmp(pr->tok[1].key, key) != 0);
    cad_plan p;
    cad_plan_opts o = {check_tmp_fresh("pruns"), NULL};
    CHECK_EQ_INT(cad_plan_expand(s, &o, &p, &e), CAD_OK);
    CHECK_EQ_INT(p.n, 2);
    CHECK_EQ_INT(p.n_prep, 2);
    if (p.n == 2 && p.n_prep == 2) {
        CHECK_EQ_INT(p.runs[0].prep, 1); /* vocab_size 600 trains on the 600 entry */
        CHECK_EQ_INT(p.runs[1].prep, 0);
        char want[4400];
        snprintf(want, sizeof want, "\"tokenizer_path\":\"%s/tokenizer.model\"", pr->tok[1].dir);
        CHECK_MSG(strstr(p.runs[0].config_json, want) != NULL, "%s", p.runs[0].config_json);
        snprintf(want, sizeof want, "\"data_path\":\"%s/data\"", pr->tok[1].dir);
        CHECK(strstr(p.runs[0].config_json, want) != NULL);
        char id[32];
        snprintf(id, sizeof id, "prep-%.12s", pr->tok[0].key);
        CHECK_STR(p.prep[0].run_id, id);
        CHECK_EQ_INT(p.prep[0].used, 1);
        CHECK(strstr(p.prep[0].launch_json, "[\"caddie\",\"data\",\"build\",") != NULL);
        snprintf(want, sizeof want, "\"--corpus-sha256\",\"%s\"", sha);
        CHECK(strstr(p.prep[0].launch_json, want) != NULL);
        CHECK(strstr(p.prep[0].launch_json, "\"--vocab\",\"400\"") != NULL);
        cad_plan_free(&p);
    }
    cad_sweep_spec_free(s);
}

int main(void) {
    RUN(test_greedy_spec_and_rounds);
    RUN(test_greedy_pick);
    RUN(test_greedy_errors);
    RUN(test_prepare_section);
    return check_report();
}
