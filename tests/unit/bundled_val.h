/*
 * bundled_val.h — the bundled sample's val split, its byte LUTs and a tiny seeded model over
 * vocab 1024, for the evaluator tests (test_engine_eval.c, test_engine_ttt.c). Header-only,
 * like check.h; needs `make sample` (the shards), which `make test` builds first.
 * Not here: checks of the evaluators themselves.
 */
#ifndef CADDIE_TEST_BUNDLED_VAL_H
#define CADDIE_TEST_BUNDLED_VAL_H

#include "check.h"
#include "engine/bpb_luts.h"
#include "engine/model.h"
#include "engine/stream.h"
#include "engine/tokenizer.h"

typedef struct bundled_val {
    cad_tokenizer *tk;
    cad_bpb_luts luts;
    uint16_t *tok; /* val tokens trimmed to k*T + 1 */
    long n;
} bundled_val;

/* The short local names the evaluator tests use for an open bundled_val b. */
#define BUNDLED_NAMES(b)                                                                   \
    cad_tokenizer *tk = (b).tk;                                                            \
    uint16_t *tok = (b).tok;                                                               \
    long n = (b).n;                                                                        \
    cad_bpb_luts l = (b).luts;                                                             \
    (void)tk, (void)tok, (void)n, (void)l

/* 0, or -1 with the reason checked (a failing test) and nothing left allocated. */
static int bundled_val_open(bundled_val *b, int T) {
    cad_err e = {0};
    memset(b, 0, sizeof *b);
    int rc = cad_tokenizer_load(check_src_path("data/sample/fineweb_1024_bpe.model"), &b->tk, &e);
    if (!rc) rc = cad_val_tokens_load(check_src_path("data/sample/fineweb10B_sp1024/fineweb_val_*.bin"), T, 1024,
                                      &b->tok, &b->n, &e);
    if (!rc) rc = cad_bpb_luts_build(b->tk, 1024, &b->luts, &e);
    CHECK_MSG(rc == CAD_OK, "%s (run `make sample` first)", e.msg);
    if (rc) {
        if (b->tk) cad_tokenizer_free(b->tk);
        free(b->tok);
        memset(b, 0, sizeof *b);
        return -1;
    }
    return 0;
}

static void bundled_val_close(bundled_val *b) {
    cad_tokenizer_free(b->tk);
    cad_bpb_luts_free(&b->luts);
    free(b->tok);
    memset(b, 0, sizeof *b);
}

/* 2 blocks x 32, GQA 2/1, vocab 1024, embedding std 0.5 (logits far from uniform). */
static int bundled_tiny_model(cad_model *m, int max_batch_seqs, int T, uint64_t seed) {
    cad_model_config mc = {.vocab_size = 1024, .num_layers = 2, .model_dim = 32, .num_heads = 2, .num_kv_heads = 1,
                           .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                           .qk_gain_init = 1.5f, .tied_embed_init_std = 0.5f, .max_batch_seqs = max_batch_seqs,
                           .max_seq_len = T};
    cad_err e = {0};
    int rc = cad_model_init(m, &mc, cad_backend_cpu(), seed, &e);
    CHECK_MSG(rc == CAD_OK, "%s", e.msg);
    return rc;
}

#endif
