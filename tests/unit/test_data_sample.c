/*
 * test_data_sample.c — the bundled sample shards (data/sample/fineweb10B_sp1024, built by
 * `make sample` with `caddie data prepare`) against numbers computed independently in Python
 * (tests/scripts/gen_tokenizer_fixtures.py -> tests/fixtures/data/sample_export.txt): token and
 * document counts per split, and the val_bpb byte totals by the official LUT rule, over the
 * whole split and over the eval window train_gpt.py keeps at seq_len 1024.
 */
#include "engine/bpb_luts.h"
#include "check.h"
#include "engine/stream.h"
#include "engine/tokenizer.h"

#include <stdint.h>

static long fixture_value(const char *key) {
    FILE *f = fopen(check_src_path("tests/fixtures/data/sample_export.txt"), "r");
    char line[512], k[128];
    long v = -1, x;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%127s %ld", k, &x) == 2 && strcmp(k, key) == 0) v = x;
    if (f) fclose(f);
    CHECK_MSG(v >= 0, "fixture key %s missing", key);
    return v;
}

static const char *sample_pattern(const char *split) {
    static char buf[2][256];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "data/sample/fineweb10B_sp1024/fineweb_%s_*.bin", split);
    return check_src_path(buf[k]);
}

static void check_split(const char *split, cad_bpb_luts *l) {
    uint16_t *tok;
    long n;
    cad_err e;
    char key[64];
    /* seq_len 1 keeps every token: the whole split as one stream */
    int rc = cad_val_tokens_load(sample_pattern(split), 1, 1024, &tok, &n, &e);
    CHECK_MSG(rc == CAD_OK, "%s (run `make sample` first)", e.msg);
    if (rc != CAD_OK) return;
    snprintf(key, sizeof key, "tokens_%s", split);
    CHECK_EQ_INT(n, fixture_value(key));
    long bos = 0;
    for (long i = 0; i < n; i++) bos += tok[i] == 1;
    snprintf(key, sizeof key, "docs_%s", split);
    CHECK_EQ_INT(bos, fixture_value(key));
    int64_t bytes;
    CHECK_EQ_INT(cad_bpb_count_bytes(l, tok, n, &bytes, &e), CAD_OK);
    snprintf(key, sizeof key, "%s_lut_bytes_all", split);
    CHECK_EQ_INT(bytes, fixture_value(key));
    free(tok);
}

static void test_sample_byte_counts(void) {
    cad_tokenizer *t;
    cad_err e;
    if (cad_tokenizer_load(check_src_path("data/sample/fineweb_1024_bpe.model"), &t, &e) !=
        CAD_OK) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    cad_bpb_luts l;
    CHECK_EQ_INT(cad_bpb_luts_build(t, 1024, &l, &e), CAD_OK);
    check_split("val", &l);
    check_split("train", &l);
    /* the eval window at seq_len 1024, as eval_val counts it */
    uint16_t *tok;
    long n;
    if (cad_val_tokens_load(sample_pattern("val"), 1024, 1024, &tok, &n, &e) == CAD_OK) {
        CHECK_EQ_INT(n, fixture_value("val_eval_tokens_1024"));
        int64_t bytes;
        CHECK_EQ_INT(cad_bpb_count_bytes(&l, tok, n, &bytes, &e), CAD_OK);
        CHECK_EQ_INT(bytes, fixture_value("val_eval_lut_bytes_1024"));
        /* the same total from the per-position rule, window by window as eval_val does */
        int64_t by_window = 0;
        for (long w = 0; w + 1 < n; w += 1024)
            for (long i = w; i < w + 1024 && i + 1 < n; i++)
                by_window += cad_bpb_token_bytes(&l, tok[i], tok[i + 1]);
        CHECK_EQ_INT(by_window, bytes);
        free(tok);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    cad_bpb_luts_free(&l);
    cad_tokenizer_free(t);
}

int main(void) {
    RUN(test_sample_byte_counts);
    return check_report();
}
