/*
 * test_engine_ttt_lora.c — per-document LoRA test-time training (engine/ttt_lora.c) on the
 * bundled val prefix with a tiny seeded model:
 *  - the adapters' gradients (every target, with a loss window) match finite differences;
 *  - score first: poisoning every token after target p leaves every score before p bit for bit
 *    (a chunk trained on before it is scored would move the scores of its own first targets);
 *  - reset per document: document 2 scores the same after document 1 as alone;
 *  - ttt_lr = 0 scores bit-identically to scoring without adapters (epochs 0);
 *  - training moves the scores, every target is scored once (the plain evaluation's counts);
 *  - the target list parser names the key.
 * Not here: whether TTT improves a trained model (tests/cli/t0260, on a trained sample model).
 */
#include "check.h"
#include "engine/bpb_luts.h"
#include "engine/eval.h"
#include "engine/model.h"
#include "engine/ttt_lora.h"
#include "bundled_val.h"

enum { L = 32 };

static bundled_val bv;
#define tok bv.tok
#define n_tok bv.n
#define luts bv.luts

static int tiny_model(cad_model *m) {
    if (!tok && bundled_val_open(&bv, L)) return -1;
    return bundled_tiny_model(m, 1, L, 99);
}

static const unsigned all_sites = (1u << CAD_LORA_NSITES) - 1;

/* dloss/dtheta of the mean NLL over window positions [t0, t1) of every adapter tensor, with B
 * drawn nonzero (at B = 0 the A gradients vanish), against central differences. */
static void test_adapter_gradients(void) {
    cad_model m;
    if (tiny_model(&m)) return;
    cad_err e = {0};
    cad_lora_spec ls = {3, all_sites, 8, 1, 0.0, 5};
    cad_lora *lo;
    CHECK_MSG(cad_lora_create(&lo, &m, &ls, &e) == CAD_OK, "%s", e.msg);
    size_t n;
    float *p = cad_lora_params(lo, &n), *g = cad_lora_grads(lo);
    /* rank x (in + out) per adapter: per block q, o (32+32), k, v (32+16), fc, mlp proj (32+64);
     * the head 32+1024 */
    CHECK_EQ_INT((long)n, 3L * (2 * (2 * 64 + 2 * 48 + 2 * 96) + 1056));
    uint64_t st = 7;
    float *noise = malloc(n * sizeof(float));
    cad_model_fill_uniform(&st, noise, n, 0.3);
    for (size_t i = 0; i < n; i++) p[i] += noise[i]; /* B nonzero, A moved */
    m.lora = lo;
    int32_t x[L], y[L];
    for (int i = 0; i < L; i++) x[i] = tok[i], y[i] = tok[i + 1];
    const int t0 = 10, t1 = 26;
    float loss;
    CHECK(cad_model_forward(&m, x, y, 1, L, &loss, &e) == CAD_OK);
    m.loss_t0 = t0, m.loss_t1 = t1;
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    double worst = 0;
    for (int k = 0; k < 40; k++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        size_t i = (size_t)((st >> 33) % n);
        double lpm[2];
        float v = p[i], h = 1e-2f;
        for (int sgn = 0; sgn < 2; sgn++) {
            p[i] = v + (sgn ? -h : h);
            CHECK(cad_model_forward(&m, x, y, 1, L, &loss, &e) == CAD_OK);
            double s = 0;
            for (int t = t0; t < t1; t++) s += m.token_loss[t];
            lpm[sgn] = s / (t1 - t0);
        }
        p[i] = v;
        double fd = (lpm[0] - lpm[1]) / (2.0 * h), an = g[i], tol = 1e-4 + 2e-3 * gmax;
        worst = fmax(worst, fabs(fd - an) / tol);
        CHECK_MSG(fabs(fd - an) <= tol, "adapter float %zu: finite difference %.6g vs backward %.6g (tol %.3g)", i, fd, an,
                  tol);
    }
    printf("# lora grads: %zu floats, max|grad| %.4g, worst err/tol %.3f\n", n, gmax, worst);
    /* the window: a position outside it carries no gradient, so moving its target changes nothing */
    m.loss_t0 = 0, m.loss_t1 = L + 1;
    CHECK(cad_model_forward(&m, x, y, 1, L, &loss, &e) == CAD_OK);
    CHECK(cad_model_backward(&m, &e) == CAD_ECONFIG); /* window past T */
    m.loss_t0 = m.loss_t1 = 0;
    m.lora = NULL;
    cad_lora_free(lo);
    free(noise);
    cad_model_free(&m);
}

typedef struct {
    cad_eval_result r;
    float *nll;
} scored;

static int score(cad_model *m, const uint16_t *t, long nt, long max_tokens, int epochs, double lr, scored *out) {
    cad_eval_spec sp = {L, 8 * L, 8, max_tokens, 0, 1};
    cad_lora_spec ls = {4, 1u << CAD_LORA_Q | 1u << CAD_LORA_V | 1u << CAD_LORA_HEAD, 8, epochs, lr, 3};
    int32_t x[L], y[L];
    cad_err e = {0};
    out->nll = calloc((size_t)nt, sizeof(float));
    int rc = cad_eval_ttt_lora(m, t, nt, &luts, &sp, &ls, x, y, out->nll, &out->r, NULL, NULL, &e);
    CHECK_MSG(rc == CAD_OK, "%s", e.msg);
    return rc;
}

static long first_bos_after(const uint16_t *t, long from, long n) {
    for (long i = from; i < n; i++)
        if (t[i] == CAD_BOS_ID) return i;
    return -1;
}

static void test_score_first_reset_and_lr0(void) {
    cad_model m;
    if (tiny_model(&m)) return;
    /* the stream from the sample's third document on (its first ones are long): 512 targets,
     * three whole documents and part of a fourth */
    const long maxt = 16 * L;
    long d1 = first_bos_after(tok, 1, n_tok), d = d1 > 0 ? first_bos_after(tok, d1 + 1, n_tok) : -1;
    CHECK_MSG(d > 0 && n_tok - d > maxt, "the sample's third document is at %ld of %ld tokens", d, n_tok);
    if (d <= 0 || n_tok - d <= maxt) {
        cad_model_free(&m);
        return;
    }
    const uint16_t *base = tok + d;
    long nb = n_tok - d;
    size_t nf = m.n_param_floats;
    float *w0 = malloc(nf * 4);
    memcpy(w0, m.param_mem, nf * 4);
    scored none, zero, trained, poisoned, alone;
    if (score(&m, base, nb, maxt, 0, 0.0, &none) || score(&m, base, nb, maxt, 1, 0.0, &zero) ||
        score(&m, base, nb, maxt, 2, 0.05, &trained))
        goto out;
    CHECK(memcmp(m.param_mem, w0, nf * 4) == 0); /* the base weights are frozen */
    /* every target once: the plain evaluation's counts */
    cad_eval_spec sp = {L, 8 * L, 8, maxt, 0, 1};
    int32_t x[L], y[L];
    cad_eval_result plain;
    cad_err e = {0};
    CHECK(cad_eval_val(&m, base, nb, &luts, &sp, x, y, &plain, &e) == CAD_OK);
    CHECK_NEAR(none.r.token_count, plain.token_count, 0, 0);
    CHECK_NEAR(none.r.byte_count, plain.byte_count, 0, 0);
    CHECK_NEAR(trained.r.token_count, plain.token_count, 0, 0);
    CHECK_MSG(none.r.n_seqs >= 3, "only %ld documents in the prefix", none.r.n_seqs);
    /* lr 0: the zero B adds exact zeros, Adam moves nothing */
    CHECK(memcmp(none.nll, zero.nll, (size_t)maxt * sizeof(float)) == 0);
    CHECK(memcmp(&none.r.val_bpb, &zero.r.val_bpb, sizeof(double)) == 0);
    CHECK_MSG(memcmp(none.nll, trained.nll, (size_t)maxt * sizeof(float)) != 0, "training changed no score");
    printf("# lora ttt on the untrained tiny model: no adapters %.6f, trained %.6f (val_bpb, %ld documents)\n",
           none.r.val_bpb, trained.r.val_bpb, none.r.n_seqs);

    /* score first: poison every non-BOS token after target p (mid-chunk, mid-document), keeping
     * the document boundaries; targets before p keep their scores bit for bit */
    long d2 = first_bos_after(base, 1, maxt), d3 = d2 > 0 ? first_bos_after(base, d2 + 1, maxt) : -1;
    CHECK_MSG(d2 > 0 && d3 > d2 + 40, "document 2 at %ld..%ld is too short for the test", d2, d3);
    if (d2 <= 0 || d3 <= d2 + 40) goto out;
    long p = d2 + 8 * 3 + 5; /* chunk 3 of document 2, after three trained chunks */
    uint16_t *bad = malloc((size_t)nb * sizeof(uint16_t));
    memcpy(bad, base, (size_t)nb * sizeof(uint16_t));
    for (long i = p + 1; i < nb; i++)
        if (bad[i] != CAD_BOS_ID) bad[i] = (uint16_t)(2 + (bad[i] * 7 + 3) % 1000);
    if (!score(&m, bad, nb, maxt, 2, 0.05, &poisoned)) {
        CHECK(memcmp(trained.nll, poisoned.nll, (size_t)p * sizeof(float)) == 0);
        CHECK_MSG(memcmp(trained.nll + p, poisoned.nll + p, (size_t)(d3 - p) * sizeof(float)) != 0,
                  "the poison changed no later score");
        free(poisoned.nll);
    }
    free(bad);
    /* reset: document 2 scored alone (the stream starting at its BOS) */
    if (!score(&m, base + d2, nb - d2, maxt, 2, 0.05, &alone)) {
        CHECK(memcmp(trained.nll + d2, alone.nll, (size_t)(d3 - d2) * sizeof(float)) == 0);
        free(alone.nll);
    }
out:
    free(none.nll), free(zero.nll), free(trained.nll);
    free(w0);
    cad_model_free(&m);
}

static void test_targets_and_specs(void) {
    cad_err e = {0};
    unsigned mask;
    CHECK(cad_lora_targets_parse("q, v,head", "ttt_lora_targets", &mask, &e) == CAD_OK);
    CHECK_EQ_INT((int)mask, (int)(1u << CAD_LORA_Q | 1u << CAD_LORA_V | 1u << CAD_LORA_HEAD));
    CHECK(cad_lora_targets_parse("q,k,v,o,mlp,head", "ttt_lora_targets", &mask, &e) == CAD_OK);
    CHECK_EQ_INT((int)mask, (int)all_sites);
    CHECK(cad_lora_targets_parse("q,qq", "ttt_lora_targets", &mask, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "ttt_lora_targets") && strstr(e.msg, "'qq'"), "%s", e.msg);
    CHECK(cad_lora_targets_parse("", "ttt_lora_targets", &mask, &e) == CAD_ECONFIG);
    cad_model m;
    if (tiny_model(&m)) return;
    cad_eval_spec sp = {L, 8 * L, 8, 4 * L, 0, 1};
    cad_lora_spec big_chunk = {4, 1, L + 1, 1, 0.01, 1}, no_rank = {0, 1, 8, 1, 0.01, 1};
    int32_t x[L], y[L];
    cad_eval_result r;
    CHECK(cad_eval_ttt_lora(&m, tok, n_tok, &luts, &sp, &big_chunk, x, y, NULL, &r, NULL, NULL, &e) == CAD_ECONFIG);
    CHECK(cad_eval_ttt_lora(&m, tok, n_tok, &luts, &sp, &no_rank, x, y, NULL, &r, NULL, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "ttt_lora_rank") != NULL, "%s", e.msg);
    cad_model_free(&m);
}

int main(void) {
    RUN(test_adapter_gradients);
    RUN(test_score_first_reset_and_lr0);
    RUN(test_targets_and_specs);
    if (tok) bundled_val_close(&bv);
    return check_report();
}
