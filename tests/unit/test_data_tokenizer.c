/*
 * test_data_tokenizer.c — the SentencePiece shim and byte LUTs against python3-sentencepiece:
 * token ids and decoded text for tricky texts (unicode, digits, whitespace runs, NFKC) and the
 * full build_sentencepiece_luts tables, for the 1024/4096/8192 challenge models (fixtures from
 * tests/scripts/gen_tokenizer_fixtures.py); piece flags; load errors.
 */
#include "engine/bpb_luts.h"
#include "check.h"
#include "engine/textdocs.h"
#include "engine/tokenizer.h"

#include <stdint.h>

static const int MODELS[] = {1024, 4096, 8192};

static const char *model_path(int v) {
    static char buf[128];
    snprintf(buf, sizeof buf, "tests/fixtures/data/fineweb_%d_bpe.model", v);
    return check_src_path(buf);
}

static char *hex(const char *s, size_t n) {
    char *out = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
    out[2 * n] = 0;
    return out;
}

static void check_model_ids(int v) {
    cad_tokenizer *t;
    cad_err e;
    int rc = cad_tokenizer_load(model_path(v), &t, &e);
    CHECK_MSG(rc == CAD_OK, "load %s: %s", model_path(v), e.msg);
    if (rc != CAD_OK) return;
    CHECK_EQ_INT(cad_tokenizer_vocab_size(t), v);
    CHECK_EQ_INT(cad_tokenizer_bos_id(t), 1);
    char name[128];
    snprintf(name, sizeof name, "tests/fixtures/data/tok_ids_%d.txt", v);
    FILE *f = fopen(check_src_path(name), "r");
    const char *inputs[] = {check_src_path("tests/fixtures/data/tok_texts.jsonl")};
    cad_docs d;
    CHECK_EQ_INT(cad_docs_open(&d, inputs, 1, &e), CAD_OK);
    char *line = NULL;
    size_t cap = 0;
    int n_texts = 0;
    const char *text;
    size_t len;
    while (f && cad_docs_next(&d, &text, &len, &e) == 1) {
        n_texts++;
        /* "ids: ..." line (skip the comment header) */
        do {
            if (getline(&line, &cap, f) < 0) line[0] = 0;
        } while (line[0] == '#');
        int *ids, n;
        CHECK_EQ_INT(cad_tokenizer_encode(t, text, len, &ids, &n, &e), CAD_OK);
        char *p = line + 4;
        int k = 0, same = strncmp(line, "ids:", 4) == 0;
        for (;;) {
            char *end;
            long want = strtol(p, &end, 10);
            if (end == p) break;
            p = end;
            if (k >= n || ids[k] != want) same = 0;
            k++;
        }
        CHECK_MSG(same && k == n, "model %d text %d: ids differ from python (%d vs %d ids)", v,
                  n_texts, n, k);
        /* "dec: <hex>" */
        if (getline(&line, &cap, f) < 0) line[0] = 0;
        line[strcspn(line, "\n")] = 0;
        char *dec;
        size_t dec_len;
        CHECK_EQ_INT(cad_tokenizer_decode_len(t, ids, n, &dec, &dec_len, &e), CAD_OK);
        char *h = hex(dec, dec_len);
        CHECK_MSG(strcmp(line, "dec:") == 0 ? h[0] == 0 : strcmp(line + 5, h) == 0,
                  "model %d text %d: decode differs from python", v, n_texts);
        free(h);
        free(dec);
        free(ids);
    }
    CHECK_MSG(n_texts == 27, "read %d parity texts, expected 27", n_texts);
    cad_docs_close(&d);
    free(line);
    if (f) fclose(f);
    cad_tokenizer_free(t);
}

static void test_ids_1024(void) { check_model_ids(1024); }
static void test_ids_4096(void) { check_model_ids(4096); }
static void test_ids_8192(void) { check_model_ids(8192); }

static void test_luts_all_models(void) {
    for (int m = 0; m < 3; m++) {
        int v = MODELS[m];
        cad_tokenizer *t;
        cad_err e;
        if (cad_tokenizer_load(model_path(v), &t, &e) != CAD_OK) {
            CHECK_MSG(0, "%s", e.msg);
            continue;
        }
        cad_bpb_luts l;
        CHECK_EQ_INT(cad_bpb_luts_build(t, v + 8, &l, &e), CAD_OK);
        CHECK_EQ_INT(l.size, v + 8);
        char name[128];
        snprintf(name, sizeof name, "tests/fixtures/data/luts_%d.txt", v);
        FILE *f = fopen(check_src_path(name), "r");
        char line[128];
        int rows = 0, bad = 0;
        while (f && fgets(line, sizeof line, f)) {
            int id, bb, ls, bd;
            if (sscanf(line, "%d %d %d %d", &id, &bb, &ls, &bd) != 4) continue;
            rows++;
            if (id >= l.size || l.base_bytes[id] != bb || l.has_leading_space[id] != ls ||
                l.is_boundary[id] != bd) {
                if (!bad++)
                    CHECK_MSG(0, "model %d id %d: got %d %d %d, python %d %d %d", v, id,
                              l.base_bytes[id], l.has_leading_space[id], l.is_boundary[id], bb,
                              ls, bd);
            }
        }
        if (f) fclose(f);
        CHECK_EQ_INT(rows, v + 8);
        CHECK_EQ_INT(bad, 0);
        cad_bpb_luts_free(&l);
        /* vocab_size smaller than the model: the table keeps the model's size */
        CHECK_EQ_INT(cad_bpb_luts_build(t, 10, &l, &e), CAD_OK);
        CHECK_EQ_INT(l.size, v);
        cad_bpb_luts_free(&l);
        cad_tokenizer_free(t);
    }
}

static void test_piece_flags_1024(void) {
    cad_tokenizer *t;
    cad_err e;
    if (cad_tokenizer_load(model_path(1024), &t, &e) != CAD_OK) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    for (int id = 0; id < 3; id++) CHECK(cad_tokenizer_is_control(t, id));
    CHECK(cad_tokenizer_is_unknown(t, 3) && !cad_tokenizer_is_control(t, 3));
    CHECK_STR(cad_tokenizer_piece(t, 1), "<s>");
    CHECK_STR(cad_tokenizer_piece(t, 4), "<0x00>");
    CHECK(cad_tokenizer_is_byte(t, 4) && cad_tokenizer_is_byte(t, 259) && !cad_tokenizer_is_byte(t, 260));
    CHECK_STR(cad_tokenizer_piece(t, 939), "\xe2\x96\x81");
    CHECK_STR(cad_tokenizer_piece(t, 1024), "");
    CHECK(!cad_tokenizer_is_control(t, -1) && !cad_tokenizer_is_byte(t, 5000));
    /* the byte rule: "▁the" after a word counts the space, after BOS it does not */
    int *ids, n;
    CHECK_EQ_INT(cad_tokenizer_encode(t, "Hi the", 6, &ids, &n, &e), CAD_OK);
    cad_bpb_luts l;
    CHECK_EQ_INT(cad_bpb_luts_build(t, 1024, &l, &e), CAD_OK);
    uint16_t toks[16];
    toks[0] = 1;
    for (int i = 0; i < n && i < 15; i++) toks[i + 1] = (uint16_t)ids[i];
    int64_t bytes;
    CHECK_EQ_INT(cad_bpb_count_bytes(&l, toks, n + 1, &bytes, &e), CAD_OK);
    CHECK_EQ_INT(bytes, 6);
    uint16_t bad_toks[2] = {1, 2000};
    CHECK_EQ_INT(cad_bpb_count_bytes(&l, bad_toks, 2, &bytes, &e), CAD_EFORMAT);
    free(ids);
    int out_of_range = 5000;
    char *dec = NULL;
    CHECK_EQ_INT(cad_tokenizer_decode(t, &out_of_range, 1, &dec, &e), CAD_ECONFIG);
    CHECK(dec == NULL && strstr(e.msg, "id 5000") != NULL);
    cad_bpb_luts_free(&l);
    cad_tokenizer_free(t);
}

static void test_luts_load_checks_vocab(void) {
    cad_bpb_luts l;
    cad_err e;
    CHECK_EQ_INT(cad_bpb_luts_load(model_path(4096), 4096, &l, &e), CAD_OK);
    CHECK_EQ_INT(l.size, 4096);
    cad_bpb_luts_free(&l);
    CHECK_EQ_INT(cad_bpb_luts_load(model_path(4096), 1024, &l, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "fineweb_4096_bpe.model: vocab_size 1024 does not match the tokenizer's 4096"));
    CHECK(l.base_bytes == NULL);
}

static void test_load_errors(void) {
    cad_tokenizer *t = (cad_tokenizer *)1;
    cad_err e;
    cad_err_clear(&e);
    const char *missing = check_src_path("tests/fixtures/data/no_such.model");
    CHECK(cad_tokenizer_load(missing, &t, &e) != CAD_OK);
    CHECK(t == NULL);
    CHECK_MSG(strstr(e.msg, missing) != NULL, "'%s' lacks the path", e.msg);
    CHECK(strchr(e.msg, '\n') == NULL);
    /* a file that is not a model (a LUT fixture) */
    const char *junk = check_src_path("tests/fixtures/data/luts_1024.txt");
    cad_err_clear(&e);
    CHECK(cad_tokenizer_load(junk, &t, &e) != CAD_OK);
    CHECK_MSG(strstr(e.msg, junk) != NULL, "'%s' lacks the path", e.msg);
}

int main(void) {
    RUN(test_ids_1024);
    RUN(test_ids_4096);
    RUN(test_ids_8192);
    RUN(test_luts_all_models);
    RUN(test_piece_flags_1024);
    RUN(test_luts_load_checks_vocab);
    RUN(test_load_errors);
    return check_report();
}
