/*
 * test_engine_ttt.c — score-first test-time training (engine/ttt.c) on the bundled val prefix
 * with a tiny seeded model:
 *  - with 0 epochs it is the sliding-window evaluation (same windows, same sums);
 *  - score first: the running score after chunk 0 is the untrained model's, bit for bit, and
 *    training changes later chunks' scores and the weights;
 *  - one SGD step (momentum 0, no clip) moves the weights by exactly -lr * the batch-mean
 *    gradient, also when the batch is split into micro-batches of the model's plan;
 *  - every target is scored once (counts and bytes equal the plain evaluation's).
 */
#include "check.h"
#include "engine/bpb_luts.h"
#include "engine/eval.h"
#include "engine/model.h"
#include "engine/stream.h"
#include "engine/tokenizer.h"
#include "engine/ttt.h"
#include "bundled_val.h"

enum { L = 32 };

typedef struct {
    double after_chunk[16][3];
    long n;
} trace;

static void record(void *ud, long chunk, long n_chunks, const double sums[3], double ms) {
    (void)n_chunks, (void)ms;
    trace *t = ud;
    if (chunk < 16) memcpy(t->after_chunk[chunk], sums, sizeof(double) * 3);
    t->n = chunk + 1;
}

static bundled_val bv;
#define tok bv.tok
#define n_tok bv.n
#define luts bv.luts

/* the val split is opened by the first test that needs it (inside RUN: a failure counts) */
static int tiny_model(cad_model *m, int max_batch_seqs) {
    if (!tok && bundled_val_open(&bv, L)) return -1;
    return bundled_tiny_model(m, max_batch_seqs, L, 99);
}

static void test_score_first_and_equivalences(void) {
    cad_model m;
    if (tiny_model(&m, 4)) return;
    size_t nf = m.n_param_floats;
    float *w0 = malloc(nf * 4);
    memcpy(w0, m.param_mem, nf * 4);
    int32_t *x = malloc(4 * (size_t)L * 4), *y = malloc(4 * (size_t)L * 4);
    cad_eval_spec sp = {L, 8 * 4 * L, 8, 9 * L, 0, 1};
    cad_err e = {0};
    cad_eval_result plain, sw, r0, r1;
    CHECK(cad_eval_val(&m, tok, n_tok, &luts, &sp, x, y, &plain, &e) == CAD_OK);
    CHECK(cad_eval_sliding(&m, tok, n_tok, &luts, &sp, 16, x, y, &sw, &e) == CAD_OK);
    cad_ttt_spec ts = {16, 64, 0.05, 0.9, 0, 3, 1.0};
    trace t0 = {0}, t1 = {0};
    CHECK_MSG(cad_eval_ttt(&m, tok, n_tok, &luts, &sp, &ts, x, y, &r0, record, &t0, &e) == CAD_OK, "%s", e.msg);
    CHECK(memcmp(m.param_mem, w0, nf * 4) == 0); /* 0 epochs: weights untouched */
    CHECK_EQ_INT(t0.n, 5);                          /* 288 targets in chunks of 64 */
    CHECK_NEAR(r0.token_count, sw.token_count, 0, 0);
    CHECK_NEAR(r0.byte_count, plain.byte_count, 0, 0);
    /* the chunk boundaries regroup the window batches: fp32 GEMM blocking, ~1e-7 relative */
    CHECK_NEAR(r0.loss_sum, sw.loss_sum, 0, 1e-7);
    ts.epochs = 2;
    CHECK_MSG(cad_eval_ttt(&m, tok, n_tok, &luts, &sp, &ts, x, y, &r1, record, &t1, &e) == CAD_OK, "%s", e.msg);
    /* score first: chunk 0 is scored before any update */
    CHECK(memcmp(t0.after_chunk[0], t1.after_chunk[0], sizeof(double) * 3) == 0);
    CHECK_MSG(t1.after_chunk[4][0] != t0.after_chunk[4][0], "training changed no later score");
    CHECK_NEAR(r1.token_count, r0.token_count, 0, 0);
    CHECK_NEAR(r1.byte_count, r0.byte_count, 0, 0);
    CHECK(memcmp(m.param_mem, w0, nf * 4) != 0);
    printf("# ttt: sliding %.6f, score-only %.6f, trained %.6f (val_bpb)\n", sw.val_bpb, r0.val_bpb, r1.val_bpb);
    free(w0), free(x), free(y);
    cad_model_free(&m);
}

/* The first chunk's update, 1 epoch, one batch of 3 sequences, momentum 0, no clip:
 * w1 = w0 - lr * mean-gradient over the 3 sequences. The model is planned for 2 sequences,
 * so the batch runs as micro-batches of 2 and 1; the reference takes the gradient of all 3
 * at once in a model planned for 3. */
static void test_sgd_step_is_minus_lr_grad(void) {
    cad_model m2, m3;
    if (tiny_model(&m2, 2)) return;
    if (tiny_model(&m3, 3)) { cad_model_free(&m2); return; }
    size_t nf = m2.n_param_floats;
    cad_err e = {0};
    int32_t *x = malloc(3 * (size_t)L * 4), *y = malloc(3 * (size_t)L * 4);
    for (int i = 0; i < 3 * L; i++) x[i] = tok[i], y[i] = tok[i + 1];
    float loss;
    cad_model_zero_grad(&m3);
    CHECK(cad_model_forward(&m3, x, y, 3, L, &loss, &e) == CAD_OK && cad_model_backward(&m3, &e) == CAD_OK);
    float *w0 = malloc(nf * 4);
    memcpy(w0, m2.param_mem, nf * 4);
    /* 2 chunks of 3*L targets: chunk 0 trains (lr at cos(0) = full), chunk 1 is last */
    cad_eval_spec sp = {L, 8 * 2 * L, 8, 6 * L, 0, 1};
    cad_ttt_spec ts = {L, 3 * L, 0.1, 0.0, 1, 3, 0.0};
    cad_eval_result r;
    CHECK_MSG(cad_eval_ttt(&m2, tok, n_tok, &luts, &sp, &ts, x, y, &r, NULL, NULL, &e) == CAD_OK, "%s", e.msg);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < nf; i++) {
        double want = (double)w0[i] - 0.1 * (double)m3.grad_mem[i];
        worst = fmax(worst, fabs(m2.param_mem[i] - want));
        gmax = fmax(gmax, fabs(m3.grad_mem[i]));
    }
    /* fp32 gradients of the same mean through different micro-batch sums: 1e-6 of lr*max|g| */
    CHECK_MSG(worst <= 1e-6 + 1e-5 * 0.1 * gmax, "update off by %.3g (lr*max|g| = %.3g)", worst, 0.1 * gmax);
    free(w0), free(x), free(y);
    cad_model_free(&m2);
    cad_model_free(&m3);
}

static void test_bad_specs(void) {
    cad_model m;
    if (tiny_model(&m, 2)) return;
    int32_t *x = malloc(2 * (size_t)L * 4), *y = malloc(2 * (size_t)L * 4);
    cad_eval_spec sp = {L, 8 * 2 * L, 8, 4 * L, 0, 1};
    cad_eval_result r;
    cad_err e = {0};
    cad_ttt_spec small_chunk = {L, L - 1, 0.1, 0.9, 1, 2, 1.0}, no_batch = {L, 64, 0.1, 0.9, 1, 0, 1.0};
    CHECK(cad_eval_ttt(&m, tok, n_tok, &luts, &sp, &small_chunk, x, y, &r, NULL, NULL, &e) == CAD_ECONFIG);
    CHECK(cad_eval_ttt(&m, tok, n_tok, &luts, &sp, &no_batch, x, y, &r, NULL, NULL, &e) == CAD_ECONFIG);
    free(x), free(y);
    cad_model_free(&m);
}

int main(void) {
    RUN(test_score_first_and_equivalences);
    RUN(test_sgd_step_is_minus_lr_grad);
    RUN(test_bad_specs);
    if (tok) bundled_val_close(&bv);
    return check_report();
}
