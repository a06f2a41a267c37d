/*
 * test_logparse.c — the training-log parser (db/logparse.h) against every published
 * log in tests/fixtures/logs and against hand-written lines of each dialect.
 *
 * The fixture test reads each log's claimed score from where its record states it (a
 * JSON path into the submission JSON, evaluated with SQLite's json_extract, or a verbatim
 * README fragment) as listed in tests/fixtures/logs/EXPECTED.tsv, and checks the parsed
 * score matches within the printed precision; the rows marked "exception"
 * (EXCEPTIONS.md) must keep their documented parsed value and keep differing from the
 * claim. Feeding the same bytes in random chunk sizes must give identical metrics,
 * summary and params.
 * Not here: the import commands and the DB (tests/cli/t05xx-import.sh).
 */
#include "test_util.h"
#include "db/logparse.h"

#include <sqlite3.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------------------ */

typedef struct metric_list {
    cad_log_metric *m;
    size_t n, cap;
} metric_list;

static int collect(void *ctx, const cad_log_metric *m) {
    metric_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->m = realloc(l->m, l->cap * sizeof *l->m);
        if (!l->m) return 1;
    }
    l->m[l->n++] = *m;
    return 0;
}

/* Feed text in pieces: chunk 0 = whole buffer, else pseudo-random sizes 1..chunk. */
static cad_logparse *parse_buffer(const char *buf, size_t len, size_t chunk, uint64_t seed,
                                  metric_list *out) {
    cad_logparse *p = cad_logparse_new();
    if (!p) return NULL;
    size_t i = 0;
    uint64_t x = seed * 2654435761u + 1;
    while (i < len) {
        size_t n = len - i;
        if (chunk) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t want = 1 + (size_t)(x % chunk);
            if (want < n) n = want;
        }
        if (cad_logparse_feed(p, buf + i, n, collect, out) != 0) break;
        i += n;
    }
    cad_logparse_finish(p, collect, out);
    return p;
}

static cad_logparse *parse_text(const char *text, metric_list *out) {
    return parse_buffer(text, strlen(text), 0, 0, out);
}

static int same_double(double a, double b) {
    return (isnan(a) && isnan(b)) || a == b;
}

static const cad_log_metric *find_metric(const metric_list *l, const char *name, long step) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->m[i].name, name) == 0 && l->m[i].step == step) return &l->m[i];
    return NULL;
}

static const char *param(const cad_logparse *p, const char *key) {
    for (int i = 0; i < cad_logparse_param_count(p); i++) {
        const char *k, *v;
        if (cad_logparse_param_get(p, i, &k, &v) == 0 && strcmp(k, key) == 0) return v;
    }
    return NULL;
}

/* ---- every fixture log vs. its claim -------------------------------------------- */

static int json_claim(sqlite3 *db, const char *json, const char *path, double *out) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT json_extract(?1, ?2)", -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (ok) *out = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return ok;
}

/* The record folder of a log: the nearest parent with a README.md. */
static void record_dir(const char *log_rel, char *out, size_t cap) {
    snprintf(out, cap, "%s", log_rel);
    for (;;) {
        char *slash = strrchr(out, '/');
        if (!slash) {
            out[0] = 0;
            return;
        }
        *slash = 0;
        char probe[1536];
        snprintf(probe, sizeof probe, "tests/fixtures/logs/%s/README.md", out);
        FILE *f = fopen(check_src_path(probe), "rb");
        if (f) {
            fclose(f);
            return;
        }
    }
}

static void test_fixture_scores_match_claims(void) {
    char *tsv = check_slurp(check_src_path("tests/fixtures/logs/EXPECTED.tsv"), NULL);
    CHECK(tsv != NULL);
    if (!tsv) return;
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    int rows = 0, n_ok = 0, n_exc = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[8];
        int nf = 0;
        char *s2 = NULL;
        for (char *c = strtok_r(line, "\t", &s2); c && nf < 8; c = strtok_r(NULL, "\t", &s2))
            f[nf++] = c;
        CHECK_MSG(nf == 8, "EXPECTED.tsv row with %d fields", nf);
        if (nf != 8) continue;
        const char *file = f[0], *source = f[1], *ref = f[2], *claim_txt = f[3];
        int decimals = atoi(f[4]);
        int is_exception = strcmp(f[5], "exception") == 0;
        double parsed_expect = strcmp(f[6], "nan") == 0 ? NAN : atof(f[6]);
        const char *kind_expect = strcmp(f[7], "-") == 0 ? "" : f[7];
        rows++;

        /* the claim, read from the record itself */
        char rec[1024], path[1536];
        record_dir(file, rec, sizeof rec);
        const char *colon = strchr(source, ':');
        snprintf(path, sizeof path, "tests/fixtures/logs/%s/%s", rec, colon ? colon + 1 : "");
        char *doc = check_slurp(check_src_path(path), NULL);
        CHECK_MSG(doc != NULL, "%s: cannot read %s", file, path);
        if (!doc) continue;
        double claim = atof(claim_txt);
        if (strncmp(source, "json:", 5) == 0) {
            double j;
            int got = json_claim(db, doc, ref, &j);
            CHECK_MSG(got && fabs(j - claim) < 1e-12, "%s: %s %s is %.10g, EXPECTED.tsv says %s",
                      file, path, ref, got ? j : NAN, claim_txt);
        } else {
            CHECK_MSG(strstr(doc, ref) != NULL, "%s: README no longer contains \"%s\"", file, ref);
            CHECK_MSG(strstr(ref, claim_txt) != NULL, "%s: claim %s not in fragment", file,
                      claim_txt);
        }
        free(doc);

        /* the parse */
        snprintf(path, sizeof path, "tests/fixtures/logs/%s", file);
        size_t len;
        char *log = check_slurp(check_src_path(path), &len);
        CHECK_MSG(log != NULL, "cannot read %s", path);
        if (!log) continue;
        metric_list ml = {0};
        cad_logparse *p = parse_buffer(log, len, 0, 0, &ml);
        cad_log_summary s;
        cad_logparse_summary(p, &s);
        double tol = 0.5 * pow(10.0, -decimals) + 1e-9;
        if (!is_exception) {
            n_ok++;
            CHECK_MSG(s.has_score && fabs(s.val_bpb - claim) <= tol,
                      "%s: parsed %.8f (%s), claimed %s (%d decimals)", file, s.val_bpb,
                      s.score_line_kind, claim_txt, decimals);
        } else {
            n_exc++;
            CHECK_MSG(same_double(s.val_bpb, parsed_expect) ||
                          fabs(s.val_bpb - parsed_expect) < 1e-9,
                      "%s: documented exception parsed %.8f, now %.8f", file, parsed_expect,
                      s.val_bpb);
            CHECK_MSG(isnan(s.val_bpb) || fabs(s.val_bpb - claim) > tol,
                      "%s: the exception now matches its claim: update EXCEPTIONS.md", file);
        }
        CHECK_MSG(strcmp(s.score_line_kind, kind_expect) == 0, "%s: score from \"%s\", expected \"%s\"",
                  file, s.score_line_kind, kind_expect);
        /* every log with a score has training curves or is an eval-only log */
        if (s.steps > 0) CHECK_MSG(ml.n > 0, "%s: steps %ld but no metrics", file, s.steps);
        CHECK_MSG(s.n_nan == 0, "%s: %ld NaN values in a published log", file, s.n_nan);
        free(ml.m);
        cad_logparse_free(p);
        free(log);
    }
    CHECK_EQ_INT(rows, 80);
    CHECK_EQ_INT(n_exc, 5);
    CHECK_EQ_INT(n_ok, 75);
    sqlite3_close(db);
    free(tsv);
}

/* ---- incremental feeding gives identical results -------------------------------- */

static void compare_parses(const char *name, const char *buf, size_t len, size_t chunk,
                           uint64_t seed) {
    metric_list a = {0}, b = {0};
    cad_logparse *pa = parse_buffer(buf, len, 0, 0, &a);
    cad_logparse *pb = parse_buffer(buf, len, chunk, seed, &b);
    cad_log_summary sa, sb;
    cad_logparse_summary(pa, &sa);
    cad_logparse_summary(pb, &sb);
    CHECK_MSG(a.n == b.n, "%s chunk %zu: %zu vs %zu metrics", name, chunk, a.n, b.n);
    for (size_t i = 0; i < a.n && i < b.n; i++) {
        if (strcmp(a.m[i].name, b.m[i].name) || a.m[i].step != b.m[i].step ||
            !same_double(a.m[i].value, b.m[i].value) || !same_double(a.m[i].wall_ms, b.m[i].wall_ms)) {
            CHECK_MSG(0, "%s chunk %zu: metric %zu differs (%s@%ld vs %s@%ld)", name, chunk, i,
                      a.m[i].name, a.m[i].step, b.m[i].name, b.m[i].step);
            break;
        }
    }
    CHECK_MSG(same_double(sa.val_bpb, sb.val_bpb) && same_double(sa.val_loss, sb.val_loss) &&
                  same_double(sa.prequant_val_bpb, sb.prequant_val_bpb) &&
                  sa.artifact_bytes == sb.artifact_bytes && sa.model_bytes == sb.model_bytes &&
                  sa.code_bytes == sb.code_bytes && same_double(sa.train_ms, sb.train_ms) &&
                  same_double(sa.eval_ms, sb.eval_ms) && sa.steps == sb.steps &&
                  sa.n_lines == sb.n_lines && sa.n_code_lines == sb.n_code_lines &&
                  strcmp(sa.score_line_kind, sb.score_line_kind) == 0 &&
                  strcmp(sa.compressor, sb.compressor) == 0 && sa.seed == sb.seed,
              "%s chunk %zu: summaries differ", name, chunk);
    CHECK_MSG(cad_logparse_param_count(pa) == cad_logparse_param_count(pb),
              "%s chunk %zu: param counts differ", name, chunk);
    for (int i = 0; i < cad_logparse_param_count(pa) && i < cad_logparse_param_count(pb); i++) {
        const char *ka, *va, *kb, *vb;
        cad_logparse_param_get(pa, i, &ka, &va);
        cad_logparse_param_get(pb, i, &kb, &vb);
        if (strcmp(ka, kb) || strcmp(va, vb)) {
            CHECK_MSG(0, "%s chunk %zu: param %d %s=%s vs %s=%s", name, chunk, i, ka, va, kb, vb);
            break;
        }
    }
    free(a.m);
    free(b.m);
    cad_logparse_free(pa);
    cad_logparse_free(pb);
}

static void test_random_chunks_identical(void) {
    char *tsv = check_slurp(check_src_path("tests/fixtures/logs/EXPECTED.tsv"), NULL);
    CHECK(tsv != NULL);
    if (!tsv) return;
    char *save = NULL;
    uint64_t seed = 1;
    int files = 0;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char path[1536];
        snprintf(path, sizeof path, "tests/fixtures/logs/%s", line);
        size_t len;
        char *log = check_slurp(check_src_path(path), &len);
        CHECK_MSG(log != NULL, "cannot read %s", path);
        if (!log) continue;
        /* small chunks split every line; large ones split few */
        compare_parses(line, log, len, (files % 3 == 0) ? 7 : (files % 3 == 1) ? 300 : 65536,
                       seed++);
        free(log);
        files++;
    }
    CHECK_EQ_INT(files, 80);
    /* a partial last line (no newline) is parsed by finish() */
    const char *t = "step:5/10 train_loss:2.5 train_time:50ms step_avg:10.00ms";
    compare_parses("no-newline", t, strlen(t), 3, 99);
    metric_list l = {0};
    cad_logparse *p = parse_text(t, &l);
    CHECK(find_metric(&l, "train_loss", 5) != NULL);
    free(l.m);
    cad_logparse_free(p);
    free(tsv);
}

/* ---- step-line families ----------------------------------------------------------- */

static void test_step_baseline_family(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text(
        "step:0/20000 val_loss:6.9357 val_bpb:4.1077 train_time:0ms step_avg:0.02ms\n"
        "step:1/20000 train_loss:6.9370 train_time:27ms step_avg:26.75ms\n"
        "step:200/20000 train_loss:2.9001 train_time:8000ms step_avg:40.00ms tok/s:13972862\n"
        "step:500/50000 [BRIDGE 3%] train_loss:0.2297 train_time:434157ms step_avg:868.31ms\n",
        &l);
    const cad_log_metric *m;
    CHECK((m = find_metric(&l, "val_bpb", 0)) && m->value == 4.1077 && m->wall_ms == 0);
    CHECK((m = find_metric(&l, "val_loss", 0)) && m->value == 6.9357);
    CHECK((m = find_metric(&l, "train_loss", 1)) && m->value == 6.937 && m->wall_ms == 27);
    CHECK((m = find_metric(&l, "step_ms", 1)) && m->value == 26.75);
    CHECK((m = find_metric(&l, "tokens_per_s", 200)) && m->value == 13972862);
    CHECK((m = find_metric(&l, "train_loss", 500)) && m->value == 0.2297 && m->wall_ms == 434157);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK_EQ_INT(s.steps, 500);
    CHECK_EQ_INT(s.total_steps, 50000);
    CHECK(s.train_ms == 434157);
    CHECK(!s.has_score);
    CHECK(s.prequant_val_bpb == 4.1077); /* no final line: last step evaluation */
    CHECK_EQ_INT(s.n_metric_lines, 4);
    free(l.m);
    cad_logparse_free(p);
}

static void test_step_hyperparameters_family(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text("0/20000 val_loss: 8.3187 val_bpb: 3.6152\n"
                                 "1/20000 train_loss: 8.3178 train_time: 0.0m tok/s: 8663148\n"
                                 "500/20000 train_loss: 3.0229 train_time: 0.8m tok/s: 7991951\n"
                                 "3000/20000 train_loss: 3.1068 train_time: 5.1m tok/s: 7668374 looping:True\n"
                                 "5967/20000 val_loss: 2.5434 val_bpb: 1.1053\n"
                                 "stopping_early: wallclock_cap train_time: 590022ms step: 5967/20000\n",
                                 &l);
    const cad_log_metric *m;
    CHECK((m = find_metric(&l, "val_bpb", 0)) && m->value == 3.6152 && m->wall_ms == -1);
    CHECK((m = find_metric(&l, "train_loss", 500)) && m->value == 3.0229);
    CHECK_NEAR(m ? m->wall_ms : 0, 48000, 1e-6, 0); /* 0.8 minutes */
    CHECK((m = find_metric(&l, "tokens_per_s", 3000)) && m->value == 7668374);
    CHECK((m = find_metric(&l, "val_loss", 5967)) && m->value == 2.5434);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK(s.train_ms == 590022); /* stopping_early is more precise than "9.8m" */
    CHECK_EQ_INT(s.steps, 5967);
    CHECK_EQ_INT(s.total_steps, 20000);
    free(l.m);
    cad_logparse_free(p);
}

static void test_step_ternary_family(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text("warmup:1/5\n"
                                 "step:1000/10000 loss:3.3120 t:91478ms avg:91.5ms\n"
                                 "step:1000 churn:0.0000\n"
                                 "step:6530/10000 val_loss:3.0517 val_bpb:1.1816 train_time:599652ms zero_frac:0.336\n",
                                 &l);
    const cad_log_metric *m;
    CHECK((m = find_metric(&l, "train_loss", 1000)) && m->value == 3.312 && m->wall_ms == 91478);
    CHECK((m = find_metric(&l, "step_ms", 1000)) && m->value == 91.5);
    CHECK((m = find_metric(&l, "val_bpb", 6530)) && m->value == 1.1816 && m->wall_ms == 599652);
    CHECK_EQ_INT(l.n, 4); /* warmup and churn lines give nothing */
    free(l.m);
    cad_logparse_free(p);
}

static void test_not_step_lines(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text(
        "warmup_step:1/20\nwarmup_step: 2/20\nloop_warmup_step: 1/20\n"
        "ttt_progress: batch 782/782 batch_loss:2.5597 batch_bpb:1.0335 running_loss:2.5597 running_bpb:1.0335\n"
        "  sliding_eval [  0.0%] 32/121136 windows running_bpb=1.208722\n"
        "ttp: b779/782 bl:2.2306 bb:1.0552 rl:2.2306 rb:1.0552 dl:10442-13079 gd:0\n"
        "tttg: c1/111 lr:0.001000 t:0.4s\n"
        "ttt_chunk [1/1238] bpb=1.1 time=0.5s\n"
        "val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./x.model\n",
        &l);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK_EQ_INT(l.n, 0);
    CHECK(!s.has_score);
    CHECK(param(p, "val_bpb") == NULL);
    free(l.m);
    cad_logparse_free(p);
}

static void test_prefixes_and_nan(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text(
        "1776142348.135 1/20000 train_loss: 9.0086 train_time: 0.0m tok/s: 8101558\r\n"
        "[19:23:20] step:2/20000 train_loss:nan train_time:80ms step_avg:40.00ms\n"
        "step:3/20000 train_loss:1.0 tra\rstep:3/20000 train_loss:7.5 train_time:90ms step_avg:30.00ms\n",
        &l);
    const cad_log_metric *m;
    CHECK((m = find_metric(&l, "train_loss", 1)) && m->value == 9.0086);
    CHECK((m = find_metric(&l, "train_loss", 2)) && isnan(m->value));
    CHECK((m = find_metric(&l, "train_loss", 3)) && m->value == 7.5); /* after the last \r */
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK_EQ_INT(s.n_nan, 1);
    free(l.m);
    cad_logparse_free(p);
}

static void test_code_block_skipped(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text(
        "\"\"\"\ntrain_gpt.py docstring\nval_bpb: 9.99\n\"\"\"\n"
        "import os\n"
        "class Hyperparameters:\n"
        "    seed = int(os.environ.get(\"SEED\", 1337))\n"
        "    log0(f\"step:{step}/{args.iterations} train_loss:{x:.4f} train_time:{t:.0f}ms\")\n"
        "    log0(f\"final_int8_zlib_roundtrip_exact val_loss:{a:.8f} val_bpb:{b:.8f}\")\n"
        "lr:0.5\n"
        "Serialized model int8+zlib: 12 bytes\n"
        "====================================================================================================\n"
        "seed:42\n"
        "step:1/10 train_loss:5.0 train_time:10ms step_avg:10.00ms\n",
        &l);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK_EQ_INT(l.n, 2);
    CHECK(find_metric(&l, "train_loss", 1) != NULL);
    CHECK(!s.has_score);
    CHECK_EQ_INT(s.model_bytes, -1);
    CHECK_EQ_INT(s.n_code_lines, 12);
    CHECK_STR(param(p, "seed"), "42");
    CHECK(param(p, "lr") == NULL);
    CHECK_EQ_INT(s.seed, 42);
    free(l.m);
    cad_logparse_free(p);

    /* the safety valve: output after code with no '=' separator is still parsed */
    l = (metric_list){0};
    p = parse_text("import torch\nx = 1\nstep:1/10 train_loss:5.0 train_time:10ms step_avg:10.00ms\n", &l);
    CHECK(find_metric(&l, "train_loss", 1) != NULL);
    free(l.m);
    cad_logparse_free(p);
}

/* ---- sizes ---------------------------------------------------------------------- */

static void check_sizes(const char *text, long model, long total, long code, const char *comp) {
    metric_list l = {0};
    cad_logparse *p = parse_text(text, &l);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK_MSG(s.model_bytes == model && s.artifact_bytes == total && s.code_bytes == code &&
                  strcmp(s.compressor, comp) == 0,
              "%s: model %ld total %ld code %ld comp %s", comp, s.model_bytes, s.artifact_bytes,
              s.code_bytes, s.compressor);
    free(l.m);
    cad_logparse_free(p);
}

static void test_size_lines(void) {
    check_sizes("Serialized model: 67224983 bytes\nCode size: 50919 bytes\n"
                "Total submission size: 67275902 bytes\n"
                "Serialized model int8+zlib: 15803327 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)\n"
                "Total submission size int8+zlib: 15854246 bytes\n",
                15803327, 15854246, 50919, "int8+zlib");
    check_sizes("Serialized model int6+zstd-22: 15502314 bytes (payload:1)\nCode size: 56005 bytes\n"
                "Total submission size int6+zstd-22: 15558319 bytes\n",
                15502314, 15558319, 56005, "int6+zstd-22");
    check_sizes("Code size: 96398 bytes\nSerialized model int6+lzma: 15877564 bytes\n"
                "Total submission size int6+lzma: 15973962 bytes\n",
                15877564, 15973962, 96398, "int6+lzma");
    check_sizes("Code size (uncompressed): 139831 bytes\nCode size (compressed): 28599 bytes\n"
                "Serialized model quantized+brotli: 15968098 bytes\n"
                "Total submission size quantized+brotli: 15996697 bytes\n",
                15968098, 15996697, 28599, "quantized+brotli");
    check_sizes("Serialized model int6+brotli: 15847061 bytes\nTotal submission size int6+brotli: 15915268 bytes\n",
                15847061, 15915268, -1, "int6+brotli");
    check_sizes("artifact:15.92MB ternary:64880640(14239486B) fp:2513744(2537376B) code:70853\n"
                "budget:15993853/16000000 (15.99/16.00MB) FITS\n",
                -1, 15993853, 70853, "");
    check_sizes("---\nval_bpb:          1.12278022\nartifact_bytes:   15555017\n", -1, 15555017, -1, "");
}

/* ---- score precedence --------------------------------------------------------------- */

static void test_score_precedence(void) {
    metric_list l = {0};
    cad_log_summary s;
    /* rounded twin then exact: the exact value, and its eval time from the twin */
    cad_logparse *p = parse_text(
        "step:100/100 val_loss:2.0 val_bpb:1.2 train_time:1000ms step_avg:10.00ms\n"
        "pre-quantization post-ema val_loss:1.90000000 val_bpb:1.10000000 eval_time:100ms\n"
        "final_int8_zlib_roundtrip val_loss:2.0649 val_bpb:1.2230 eval_time:1284ms\n"
        "final_int8_zlib_roundtrip_exact val_loss:2.06492760 val_bpb:1.22296644\n",
        &l);
    cad_logparse_summary(p, &s);
    CHECK(s.has_score && s.val_bpb == 1.22296644 && s.val_loss == 2.06492760);
    CHECK_STR(s.score_line_kind, "final_int8_zlib_roundtrip_exact");
    CHECK(s.eval_ms == 1284);
    CHECK(s.prequant_val_bpb == 1.1); /* lower, but pre-quantization never is the score */
    cad_logparse_free(p);

    /* sliding window beats round trip; its rounded form loses the tie to the exact one */
    p = parse_text("final_int6_roundtrip_exact val_loss:1.93592275 val_bpb:1.14656250\n"
                   "final_int6_sliding_window val_loss:1.8958 val_bpb:1.1228 stride:64 eval_time:73133ms\n"
                   "final_int6_sliding_window_exact val_loss:1.89576235 val_bpb:1.12278022\n"
                   "final_int8_zlib_roundtrip_exact val_loss:1.89576235 val_bpb:1.12278022\n",
                   &l);
    cad_logparse_summary(p, &s);
    CHECK(s.val_bpb == 1.12278022);
    CHECK_STR(s.score_line_kind, "final_int6_sliding_window_exact");
    CHECK(s.eval_ms == 73133);
    cad_logparse_free(p);

    /* a worse TTT result does not replace the sliding window score (2026-04-04 seed 42) */
    p = parse_text("final_int6_sliding_window val_loss:2.50671564 val_bpb:1.08938974 eval_time:76195ms\n"
                   "ttt_sliding:done val_loss=3.074214 val_bpb=1.336032 elapsed=405.0s\n"
                   "final_int6_ttt val_loss:3.07421378 val_bpb:1.33603200 eval_time:405410ms\n",
                   &l);
    cad_logparse_summary(p, &s);
    CHECK(s.val_bpb == 1.08938974);
    cad_logparse_free(p);

    /* a better TTT result is the score; the key=value progress summary loses the tie */
    p = parse_text("quantized_sliding_window val_loss:2.80167119 val_bpb:1.08461423 eval_time:83700ms\n"
                   "ttt_sliding:done val_loss=2.794142 val_bpb=1.081699 elapsed=302.0s\n"
                   "legal_ttt_exact val_loss:2.79414164 val_bpb:1.08169930 eval_time:302255ms\n",
                   &l);
    cad_logparse_summary(p, &s);
    CHECK(s.val_bpb == 1.0816993);
    CHECK_STR(s.score_line_kind, "legal_ttt_exact");
    CHECK(s.eval_ms == 302255);
    cad_logparse_free(p);

    /* a second run appended to the log replaces the first run's results */
    p = parse_text("step:10/10 val_loss:2.0 val_bpb:1.5 train_time:1000ms step_avg:100.00ms\n"
                   "Total submission size int8+zlib: 100 bytes\n"
                   "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.30000000\n"
                   "step:10/10 val_loss:2.1 val_bpb:1.6 train_time:1000ms step_avg:100.00ms\n"
                   "final_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.40000000\n",
                   &l);
    cad_logparse_summary(p, &s);
    CHECK(s.val_bpb == 1.4);
    CHECK_EQ_INT(s.artifact_bytes, -1);
    cad_logparse_free(p);

    /* NaN at the end is no score */
    p = parse_text("final_int8_zlib_roundtrip val_loss:nan val_bpb:nan eval_time:1ms\n", &l);
    cad_logparse_summary(p, &s);
    CHECK(!s.has_score);
    CHECK_EQ_INT(s.n_nan, 1);
    cad_logparse_free(p);
    free(l.m);
}

/* ---- hyperparameters ----------------------------------------------------------------- */

static void test_params(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text(
        "Running GDN hybrid with:\n  RUN_ID=x1\n  TRAIN_SEQ_LEN=32768\n"
        "Hyperparameters:\n  adam_eps: 1e-08\n  qk_gain_init: 5.25\n  ttt_eval_batches: \n"
        "train_shards: 143\n"
        "--- Hyperparameters ---\nactivation_type=relu2 seed=42 matrix_lr=0.04\n"
        "train_batch_tokens:524288 train_seq_len:1024 iterations:20000\n"
        "warmup_step:1/20\n"
        "step:1/10 train_loss:5.0 train_time:10ms step_avg:10.00ms\n"
        "swa:start step:5520\n",
        &l);
    CHECK_STR(param(p, "run_id"), "x1");
    CHECK_STR(param(p, "train_seq_len"), "1024"); /* the later print wins */
    CHECK_STR(param(p, "adam_eps"), "1e-08");
    CHECK_STR(param(p, "qk_gain_init"), "5.25");
    CHECK_STR(param(p, "ttt_eval_batches"), "");
    CHECK_STR(param(p, "activation_type"), "relu2");
    CHECK_STR(param(p, "seed"), "42");
    CHECK_STR(param(p, "iterations"), "20000");
    CHECK(param(p, "train_shards") == NULL);
    CHECK(param(p, "warmup_step") == NULL);
    CHECK(param(p, "swa") == NULL); /* after training started */
    const char *k, *v;
    CHECK(cad_logparse_param_get(p, cad_logparse_param_count(p), &k, &v) == -1);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK_EQ_INT(s.seed, 42);
    free(l.m);
    cad_logparse_free(p);
}

/* ---- a real log end to end --------------------------------------------------------- */

static void test_fixture_details(void) {
    size_t len;
    char *log = check_slurp(check_src_path("tests/fixtures/logs/track_10min_16mb/2026-03-18_LowerLR/train.log"), &len);
    CHECK(log != NULL);
    if (!log) return;
    metric_list l = {0};
    cad_logparse *p = parse_buffer(log, len, 0, 0, &l);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK(s.val_bpb == 1.22296644 && s.val_loss == 2.0649276);
    CHECK_EQ_INT(s.artifact_bytes, 15854246);
    CHECK_EQ_INT(s.model_bytes, 15803327);
    CHECK_EQ_INT(s.code_bytes, 50919);
    CHECK_STR(s.compressor, "int8+zlib");
    CHECK(s.train_ms == 599847);
    CHECK(s.eval_ms == 1284);
    CHECK_EQ_INT(s.steps, 14421);
    CHECK_EQ_INT(s.seed, 1337);
    CHECK_EQ_INT(s.n_code_lines, 1197);
    CHECK_STR(param(p, "matrix_lr"), "0.02");
    const cad_log_metric *m = find_metric(&l, "val_bpb", 14421);
    CHECK(m && m->value == 1.2183);
    free(l.m);
    cad_logparse_free(p);
    free(log);
}

/* ---- adversarial logs (issue 16) ------------------------------------------------------ */

/* 40 other evaluation kinds before the real final line: the score is still found (the
 * candidate list was silently capped at 32). */
static void test_score_after_many_eval_kinds(void) {
    metric_list l = {0};
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    if (!buf) return;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(buf + n, cap - n, "probe_%02d_eval val_loss:3.0 val_bpb:%.4f\n", i,
                              1.5 + i * 0.01);
    snprintf(buf + n, cap - n, "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.20000000\n");
    cad_logparse *p = parse_text(buf, &l);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK(s.has_score && s.val_bpb == 1.2);
    CHECK_STR(s.score_line_kind, "final_int8_zlib_roundtrip_exact");
    cad_logparse_free(p);
    free(buf);
    free(l.m);
}

/* val_bpb:-3.9 is no score (it ranked first), and a negative curve point is not recorded. */
static void test_negative_values_rejected(void) {
    metric_list l = {0};
    cad_logparse *p = parse_text(
        "step:10/10 val_loss:-2.0 val_bpb:-1.5 train_time:1000ms step_avg:100.00ms\n"
        "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.30000000\n"
        "final_forged_exact val_loss:2.0 val_bpb:-3.9\n",
        &l);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    CHECK(s.has_score && s.val_bpb == 1.3);
    CHECK_EQ_INT(s.n_out_of_range, 3);
    CHECK(find_metric(&l, "val_bpb", 10) == NULL);
    CHECK(find_metric(&l, "val_loss", 10) == NULL);
    cad_logparse_free(p);
    free(l.m);
}

/* 100k distinct "key: value" parameter lines and a line of 20M '\r': both parse in linear
 * time (the quadratic versions took 39.5 s and 12+ minutes); checked by their results, the
 * sizes chosen so the old code would not finish within the suite's time. */
static void test_big_inputs_linear(void) {
    size_t nk = 100000, cap = nk * 40 + 64, n = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    if (!buf) return;
    n += (size_t)snprintf(buf + n, cap - n, "Hyperparameters:\n");
    for (size_t i = 0; i < nk; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  key_%06zu: %zu\n", i, i);
    metric_list l = {0};
    cad_logparse *p = parse_text(buf, &l);
    CHECK_EQ_INT(cad_logparse_param_count(p), (long)nk);
    CHECK_STR(param(p, "key_099999"), "99999");
    cad_logparse_free(p);
    free(buf);

    size_t ncr = 20u << 20;
    char *line = malloc(ncr + 64);
    CHECK(line != NULL);
    if (!line) return;
    memset(line, '\r', ncr);
    size_t m = ncr + (size_t)snprintf(line + ncr, 64, "step:1/2 train_loss:4.5\r\r");
    p = cad_logparse_new();
    cad_log_metric out[CAD_LOG_MAX_METRICS_PER_LINE];
    int k = cad_logparse_line(p, line, m, out, CAD_LOG_MAX_METRICS_PER_LINE);
    CHECK_EQ_INT(k, 1);
    CHECK(k == 1 && strcmp(out[0].name, "train_loss") == 0 && out[0].value == 4.5);
    cad_logparse_free(p);
    free(line);
    free(l.m);
}

/* feed() in pieces: 40 MB of '\r'-redrawn progress then a step line keeps only the last
 * segment in memory and gets the step; a 3 MB line without '\r' is skipped and counted,
 * and the next line still parses. */
static void test_feed_bounded_lines(void) {
    cad_logparse *p = cad_logparse_new();
    metric_list l = {0};
    size_t piece = 1 << 16;
    char *buf = malloc(piece);
    CHECK(buf != NULL);
    if (!buf) return;
    for (size_t i = 0; i < piece; i++) buf[i] = (i % 64 == 63) ? '\r' : 'x';
    for (int r = 0; r < 640; r++) CHECK_EQ_INT(cad_logparse_feed(p, buf, piece, collect, &l), 0);
    const char *tail = "step:7/9 train_loss:3.25\n";
    CHECK_EQ_INT(cad_logparse_feed(p, tail, strlen(tail), collect, &l), 0);
    memset(buf, 'y', piece);
    for (int r = 0; r < 48; r++) CHECK_EQ_INT(cad_logparse_feed(p, buf, piece, collect, &l), 0);
    const char *after = "\nstep:8/9 train_loss:3.5\n";
    CHECK_EQ_INT(cad_logparse_feed(p, after, strlen(after), collect, &l), 0);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    const cad_log_metric *m7 = find_metric(&l, "train_loss", 7), *m8 = find_metric(&l, "train_loss", 8);
    CHECK(m7 && m7->value == 3.25);
    CHECK(m8 && m8->value == 3.5);
    CHECK_EQ_INT(s.n_long_lines, 1);
    CHECK_EQ_INT(s.first_long_line, 2); /* the '\r'-redrawn line 1 was kept, the 'y' line not */
    CHECK_EQ_INT(s.n_lines, 2);
    cad_logparse_free(p);
    free(buf);
    /* the same over-long line fed whole, newline and all, in one call: skipped the same way */
    p = cad_logparse_new();
    size_t big = CAD_LOG_MAX_LINE + 100;
    buf = malloc(big + 1);
    CHECK(buf != NULL);
    if (!buf) return;
    memset(buf, 'y', big);
    memcpy(buf, "step:9/9 train_loss:1.5 ", 24); /* would parse if the line were not skipped */
    buf[big] = '\n';
    CHECK_EQ_INT(cad_logparse_feed(p, buf, big + 1, collect, &l), 0);
    CHECK_EQ_INT(cad_logparse_feed(p, after, strlen(after), collect, &l), 0);
    cad_logparse_summary(p, &s);
    CHECK(find_metric(&l, "train_loss", 9) == NULL);
    CHECK_EQ_INT(s.n_long_lines, 1);
    CHECK_EQ_INT(s.first_long_line, 1);
    cad_logparse_free(p);
    free(buf);
    free(l.m);
}

int main(void) {
    RUN(test_feed_bounded_lines);
    RUN(test_score_after_many_eval_kinds);
    RUN(test_negative_values_rejected);
    RUN(test_big_inputs_linear);
    RUN(test_fixture_scores_match_claims);
    RUN(test_random_chunks_identical);
    RUN(test_step_baseline_family);
    RUN(test_step_hyperparameters_family);
    RUN(test_step_ternary_family);
    RUN(test_not_step_lines);
    RUN(test_prefixes_and_nan);
    RUN(test_code_block_skipped);
    RUN(test_size_lines);
    RUN(test_score_precedence);
    RUN(test_params);
    RUN(test_fixture_details);
    return check_report();
}
