/*
 * fuzz_logparse.c — libFuzzer harness for the training-log parser (db/logparse.c). The input is
 * a log; it is parsed twice, once fed whole and once in chunks of pseudo-random sizes derived
 * from the input (1 byte up to a few KiB, splitting lines, "\r\n" pairs and '\r' redraws
 * anywhere), and the two parses must agree: logparse.h promises the same result for any
 * chunking, which is what lets the runner feed a live pipe and import-log feed a whole file.
 * Agreement covers every metric (name, step, value and wall bits, in order), the summary and the
 * printed hyperparameters.
 * Not here: record import (fuzz_record.c), file reading.
 */
#include "db/logparse.h"
#include "tests/fuzz/fuzz_common.h"

/* Order-sensitive digest of the metrics a parse reported. */
typedef struct { uint64_t h; long n; } digest;

static void mix(digest *d, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) d->h = (d->h ^ b[i]) * 1099511628211ull;
}

static int on_metric(void *ctx, const cad_log_metric *m) {
    digest *d = ctx;
    size_t nl = strnlen(m->name, sizeof m->name);
    if (nl == sizeof m->name) FUZZ_FAIL("metric name not terminated");
    mix(d, m->name, nl);
    mix(d, &m->step, sizeof m->step);
    mix(d, &m->value, sizeof m->value);
    mix(d, &m->wall_ms, sizeof m->wall_ms);
    d->n++;
    return 0;
}

static uint64_t next_rand(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static cad_logparse *parse(const uint8_t *data, size_t size, int chunked, digest *d) {
    cad_logparse *p = cad_logparse_new();
    if (!p) FUZZ_FAIL("cad_logparse_new: out of memory");
    d->h = 1469598103934665603ull;
    d->n = 0;
    uint64_t seed = size;
    for (size_t i = 0; i < size; i++) seed = (seed ^ data[i]) * 1099511628211ull;
    size_t off = 0;
    while (off < size) {
        size_t len = size - off;
        if (chunked) {
            uint64_t r = next_rand(&seed);
            size_t cap = (size_t)1 << (r % 13); /* 1 .. 4096 */
            size_t k = 1 + (size_t)((r >> 8) % cap);
            if (k < len) len = k;
        }
        if (cad_logparse_feed(p, (const char *)data + off, len, on_metric, d) != 0)
            FUZZ_FAIL("cad_logparse_feed failed (out of memory?)");
        off += len;
    }
    if (cad_logparse_finish(p, on_metric, d) != 0) FUZZ_FAIL("cad_logparse_finish failed");
    return p;
}

#define SAME_NUM(field)                                                                     \
    if (memcmp(&a.field, &b.field, sizeof a.field) != 0) FUZZ_FAIL("chunked parse differs in " #field)
#define SAME_STR(field)                                                                     \
    if (strcmp(a.field, b.field) != 0) FUZZ_FAIL("chunked parse differs in " #field ": '%s' vs '%s'", a.field, b.field)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    digest dw, dc;
    cad_logparse *whole = parse(data, size, 0, &dw);
    cad_logparse *chunk = parse(data, size, 1, &dc);
    if (dw.n != dc.n) FUZZ_FAIL("chunked parse gave %ld metrics, whole %ld", dc.n, dw.n);
    if (dw.h != dc.h) FUZZ_FAIL("chunked parse gave different metrics (%ld of them)", dw.n);
    cad_log_summary a, b;
    cad_logparse_summary(whole, &a);
    cad_logparse_summary(chunk, &b);
    SAME_NUM(has_score); SAME_NUM(val_loss); SAME_NUM(val_bpb); SAME_STR(score_line_kind);
    SAME_NUM(prequant_val_loss); SAME_NUM(prequant_val_bpb); SAME_NUM(artifact_bytes);
    SAME_NUM(model_bytes); SAME_NUM(code_bytes); SAME_STR(compressor); SAME_NUM(train_ms);
    SAME_NUM(eval_ms); SAME_NUM(steps); SAME_NUM(total_steps); SAME_NUM(last_train_loss);
    SAME_NUM(n_nan); SAME_NUM(n_out_of_range); SAME_NUM(n_long_lines); SAME_NUM(first_long_line); SAME_NUM(n_lines);
    SAME_NUM(n_code_lines); SAME_NUM(n_metric_lines); SAME_NUM(seed);
    int np = cad_logparse_param_count(whole);
    if (np != cad_logparse_param_count(chunk)) FUZZ_FAIL("chunked parse differs in param count");
    for (int i = 0; i < np; i++) {
        const char *k1, *v1, *k2, *v2;
        if (cad_logparse_param_get(whole, i, &k1, &v1) || cad_logparse_param_get(chunk, i, &k2, &v2))
            FUZZ_FAIL("param %d of %d not there", i, np);
        if (strcmp(k1, k2) || strcmp(v1, v2)) FUZZ_FAIL("param %d: '%s'='%s' vs '%s'='%s'", i, k1, v1, k2, v2);
    }
    const char *k, *v;
    if (cad_logparse_param_get(whole, np, &k, &v) != -1) FUZZ_FAIL("param_get past the count succeeded");
    cad_logparse_free(whole);
    cad_logparse_free(chunk);
    return 0;
}
