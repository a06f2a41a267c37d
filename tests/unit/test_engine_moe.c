/*
 * test_engine_moe.c — micro-MoE and early exit in the whole model (engine/moe.c,
 * engine/early_exit.c on the CPU backend): finite differences of the objective backward
 * differentiates (router through softmax, top-k gates and the load-balance loss; experts; exit
 * heads), the exit policy (threshold 1 = the plain model bit for bit, a tiny threshold = every
 * token scored by the first exit), the parameter table and the artifact round trip.
 *
 * Not here: the moe_combine op (test_engine_ops.c), PyTorch parity (test_engine_model.c).
 */
#include "check.h"
#include "engine/early_exit.h"
#include "engine/export.h"
#include "engine/model.h"
#include "test_util.h" /* after model.h, export.h: check_int8_roundtrip */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cad_model_config moe_config(int E, int K, int n_exits) {
    cad_model_config c = {.vocab_size = 64, .num_layers = 3, .model_dim = 32, .num_heads = 4, .num_kv_heads = 2,
                          .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_batch_seqs = 2, .max_seq_len = 16,
                          .mlp_experts = E, .mlp_top_k = K, .moe_aux_weight = 0.1f, .n_exits = n_exits,
                          .exit_depths = {1, 2}, .early_exit_weight = 0.5f};
    return c;
}

/* Every weight random (the zero-initialised projections too), so every path carries gradient. */
static void randomize(cad_model *m, uint32_t seed, float scale) {
    for (size_t k = 0; k < m->n_param_floats; k++) {
        seed = seed * 1664525u + 1013904223u;
        m->param_mem[k] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * scale;
    }
}

static void batch(int32_t *x, int32_t *y, int n, int V) {
    for (int i = 0; i < n; i++) x[i] = (i * 37 + 5) % V, y[i] = (i * 11 + 2) % V;
}

static double objective(cad_model *m, const int32_t *x, const int32_t *y) {
    cad_err e;
    float loss;
    CHECK(cad_model_forward(m, x, y, 2, 16, &loss, &e) == CAD_OK);
    return m->objective;
}

/* Central differences of m->objective against backward on sampled coordinates of each named
 * tensor. Top-k routing makes the objective piecewise smooth: a step that moves a token to
 * another expert jumps it (and f_i of the load-balance loss is a step function). A coordinate
 * whose differences at h and h/2 disagree has such a switch inside [v-h, v+h]; it is skipped,
 * and most coordinates of every tensor must be checked. */
static void fd_objective(const cad_model_config *c, const char *const *names, size_t n_names) {
    cad_model m;
    cad_err e = {0};
    if (cad_model_init(&m, c, cad_backend_cpu(), 3, &e)) { CHECK_MSG(0, "%s", e.msg); return; }
    randomize(&m, 77, 0.5f);
    int32_t x[32], y[32];
    batch(x, y, 32, c->vocab_size);
    cad_model_zero_grad(&m);
    double obj = objective(&m, x, y);
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    printf("    E=%d k=%d exits=%d objective %.6f\n", c->mlp_experts, c->mlp_top_k, c->n_exits, obj);
    uint64_t s = 7;
    for (size_t k = 0; k < n_names; k++) {
        cad_param *p = cad_model_param(&m, names[k]);
        CHECK_MSG(p != NULL, "no parameter %s", names[k]);
        if (!p) continue;
        double gmax = 0.0, worst = 0.0;
        int checked = 0, switched = 0;
        for (long i = 0; i < p->numel; i++) gmax = fmax(gmax, fabs(p->grad[i]));
        CHECK_MSG(gmax > 0, "%s: zero gradient", names[k]);
        for (int t = 0; t < 12; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            long i = (long)((s >> 33) % (uint64_t)p->numel);
            float v = p->data[i], h = 1e-2f;
            double l[4];
            const float step[4] = {h, -h, h / 2, -h / 2};
            for (int q = 0; q < 4; q++) {
                p->data[i] = v + step[q];
                l[q] = objective(&m, x, y);
            }
            p->data[i] = v;
            double fd = (l[0] - l[1]) / (2.0 * h), fd2 = (l[2] - l[3]) / (double)h;
            double an = p->grad[i], tol = 1e-4 + 3e-3 * gmax;
            if (fabs(fd - fd2) > tol) { /* a routing switch inside the interval */
                switched++;
                continue;
            }
            checked++;
            worst = fmax(worst, fabs(fd - an) / tol);
            CHECK_MSG(fabs(fd - an) <= tol, "%s[%ld]: finite difference %.6g vs backward %.6g (tol %.3g)", names[k], i,
                      fd, an, tol);
        }
        CHECK_MSG(checked >= 3, "%s: only %d of 12 coordinates without a routing switch", names[k], checked);
        printf("    %-34s max|grad|=%-10.4g worst err/tol=%.3f (%d skipped: routing switch)\n", names[k], gmax, worst,
               switched);
    }
    cad_model_free(&m);
}

static void test_moe_finite_differences(void) {
    static const char *const names[] = {"blocks.0.mlp.router.weight", "blocks.2.mlp.router.weight",
                                        "blocks.1.mlp.experts.0.fc.weight", "blocks.1.mlp.experts.1.proj.weight",
                                        "blocks.0.attn.c_q.weight", "tok_emb.weight", "blocks.2.mlp_scale"};
    cad_model_config c = moe_config(2, 2, 0); /* k = E: smooth (no top-k switch), gates renormalised */
    fd_objective(&c, names, sizeof names / sizeof names[0]);
    c = moe_config(4, 2, 0); /* top-2 of 4: the renormalised gates of a subset */
    fd_objective(&c, names, sizeof names / sizeof names[0]);
    c = moe_config(4, 1, 2); /* Switch top-1 (raw gate) and both exit heads */
    c.moe_aux_weight = 1.0f; /* the load-balance path weighs as much as the loss */
    fd_objective(&c, names, sizeof names / sizeof names[0]);
}

static void test_exit_heads_finite_differences(void) {
    static const char *const names[] = {"tok_emb.weight", "blocks.0.attn.c_q.weight", "blocks.0.mlp.fc.weight",
                                        "blocks.1.resid_mix", "skip_weights"};
    cad_model_config c = moe_config(0, 1, 2);
    fd_objective(&c, names, sizeof names / sizeof names[0]);
    c.tie_embeddings = 0; /* the exits read lm_head */
    static const char *const untied[] = {"lm_head.weight", "blocks.0.mlp.fc.weight"};
    fd_objective(&c, untied, sizeof untied / sizeof untied[0]);
}

/* Threshold 1 scores exactly as a model without exits; a tiny threshold exits every token at
 * the first head, and the scores are then that head's. */
static void test_exit_policy(void) {
    cad_model_config c0 = moe_config(0, 1, 0), c2 = moe_config(0, 1, 2);
    cad_model a, b;
    cad_err e = {0};
    if (cad_model_init(&a, &c0, cad_backend_cpu(), 5, &e)) { CHECK_MSG(0, "%s", e.msg); return; }
    if (cad_model_init(&b, &c2, cad_backend_cpu(), 5, &e)) { CHECK_MSG(0, "%s", e.msg); cad_model_free(&a); return; }
    CHECK_EQ_INT(a.n_params, b.n_params); /* the heads add no parameters */
    randomize(&a, 11, 0.5f), randomize(&b, 11, 0.5f);
    int32_t x[32], y[32];
    batch(x, y, 32, 64);
    float la, lb;
    CHECK(cad_model_forward(&a, x, y, 2, 16, &la, &e) == CAD_OK);
    cad_model_set_exit_threshold(&b, 1.0f);
    CHECK(cad_model_forward(&b, x, y, 2, 16, &lb, &e) == CAD_OK);
    CHECK(memcmp(&la, &lb, sizeof la) == 0);
    CHECK(memcmp(a.token_loss, b.token_loss, 32 * sizeof(float)) == 0);
    double tok, dsum;
    cad_model_exit_stats(&b, &tok, &dsum);
    CHECK(tok == 0 && dsum == 0);
    /* every token exits at depth 1: its score is the depth-1 head's NLL */
    cad_model_set_exit_threshold(&b, 1e-9f);
    CHECK(cad_model_forward(&b, x, y, 2, 16, &lb, &e) == CAD_OK);
    cad_model_exit_stats(&b, &tok, &dsum);
    CHECK(tok == 32 && dsum == 32.0);
    double s = 0;
    for (int n = 0; n < 32; n++) s += b.token_loss[n];
    CHECK_NEAR(lb, s / 32, 1e-6, 1e-6);
    CHECK_MSG(fabs(lb - la) > 1e-4, "exit scores %g equal the main head's %g", lb, la);
    /* a middle threshold: mean depth between the first exit and full depth */
    cad_model_set_exit_threshold(&b, 0.05f);
    CHECK(cad_model_forward(&b, x, y, 2, 16, &lb, &e) == CAD_OK);
    cad_model_exit_stats(&b, &tok, &dsum);
    printf("    threshold 0.05: mean depth %.3f of 3, loss %.5f (full depth %.5f)\n", dsum / tok, lb, la);
    CHECK(dsum / tok >= 1.0 && dsum / tok <= 3.0);
    cad_model_free(&a), cad_model_free(&b);
}

static void test_moe_param_table(void) {
    cad_model_config c = moe_config(4, 2, 0);
    cad_model m;
    cad_err e = {0};
    if (cad_model_init(&m, &c, cad_backend_cpu(), 1, &e)) { CHECK_MSG(0, "%s", e.msg); return; }
    CHECK(cad_model_param(&m, "blocks.0.mlp.fc.weight") == NULL);
    cad_param *r = cad_model_param(&m, "blocks.1.mlp.router.weight");
    cad_param *fc = cad_model_param(&m, "blocks.1.mlp.experts.3.fc.weight");
    cad_param *pj = cad_model_param(&m, "blocks.1.mlp.experts.3.proj.weight");
    CHECK(r && fc && pj);
    if (r && fc && pj) {
        CHECK_EQ_INT(r->shape[0], 4);
        CHECK_EQ_INT(r->shape[1], 32);
        CHECK_EQ_INT(r->group, CAD_PG_SCALAR);
        CHECK_EQ_INT(fc->shape[0], 16);
        CHECK_EQ_INT(fc->shape[1], 32);
        CHECK_EQ_INT(fc->group, CAD_PG_MATRIX);
        CHECK_EQ_INT(pj->shape[0], 32);
        CHECK_EQ_INT(pj->shape[1], 16);
        CHECK_EQ_INT(pj->group, CAD_PG_MATRIX);
        CHECK(r + 1 == cad_model_param(&m, "blocks.1.mlp.experts.0.fc.weight")); /* torch module order */
        double pmax = 0;
        for (long i = 0; i < pj->numel; i++) pmax = fmax(pmax, fabs(pj->data[i]));
        CHECK(pmax == 0.0); /* proj zero-init, as the dense MLP's */
    }
    /* equal parameter count: the experts hold the dense MLP's weights, the router adds E*C */
    cad_model_config d = moe_config(0, 1, 0);
    cad_model md;
    if (!cad_model_init(&md, &d, cad_backend_cpu(), 1, &e)) {
        CHECK_EQ_INT((long)m.n_param_floats, (long)md.n_param_floats + 3 * 4 * 32);
        cad_model_free(&md);
    }
    cad_model_free(&m);
    c.mlp_experts = 3; /* 64 hidden units do not split into 3 */
    CHECK(cad_model_init(&m, &c, cad_backend_cpu(), 1, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "mlp_experts") != NULL, "%s", e.msg);
}

/* The MoE tensors go through the artifact like any other; the decoded model scores within
 * int8 rounding of the fp32 one. */
static void test_moe_artifact_roundtrip(void) {
    cad_model_config c = moe_config(4, 2, 2);
    c.model_dim = 64, c.num_heads = 2, c.num_kv_heads = 1, c.vocab_size = 512, c.mlp_mult = 4;
    cad_model m;
    cad_err e = {0};
    if (cad_model_init(&m, &c, cad_backend_cpu(), 9, &e)) { CHECK_MSG(0, "%s", e.msg); return; }
    randomize(&m, 4242, 0.3f);
    int32_t x[32], y[32];
    batch(x, y, 32, 512);
    float l32 = 0, l8 = 0;
    CHECK(cad_model_forward(&m, x, y, 2, 16, &l32, &e) == CAD_OK);
    size_t nf = m.n_param_floats;
    cad_named_tensor *ts;
    cad_int8_stats st;
    float *dec = check_int8_roundtrip(&m, "moe.ptz", &ts, &st);
    int n_router = 0;
    for (int i = 0; i < m.n_params; i++) {
        cad_param *p = &m.params[i];
        const float *d = dec + (p->data - m.param_mem);
        double worst = 0.0;
        for (long k = 0; k < p->numel; k++) worst = fmax(worst, fabs((double)d[k] - p->data[k]));
        n_router += strstr(p->name, "router") != NULL;
        CHECK_MSG(worst <= 0.5 / 127 + 1e-4, "%s: max decode error %g", p->name, worst);
    }
    CHECK_EQ_INT(n_router, 3);
    memcpy(m.param_mem, dec, nf * sizeof(float));
    CHECK(cad_model_forward(&m, x, y, 2, 16, &l8, &e) == CAD_OK);
    printf("    loss fp32 %.6f int8 round trip %.6f (%zu bytes)\n", l32, l8, st.compressed_bytes);
    CHECK_NEAR(l8, l32, 0.0, 2e-2);
    free(dec), free(ts);
    cad_model_free(&m);
}

int main(void) {
    RUN(test_moe_param_table);
    RUN(test_moe_finite_differences);
    RUN(test_exit_heads_finite_differences);
    RUN(test_exit_policy);
    RUN(test_moe_artifact_roundtrip);
    return check_report();
}
