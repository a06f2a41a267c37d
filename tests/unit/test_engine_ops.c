/*
 * test_engine_ops.c — every cad_backend op of the CPU reference backend on its own:
 * forward against a plain double-precision reference written out here, and every backward
 * slot against central finite differences of the forward.
 *
 * Method: for an op with output y = f(x), the scalar L = sum_k R_k * y_k (R fixed random
 * weights, summed in double) has dL/dx = backward(dout = R). Central differences
 * (L(x+h) - L(x-h)) / 2h are taken on a random sample of coordinates of every input.
 * Tolerances: the forward runs in fp32, so L carries rounding noise of ~1e-7 * |y| * sqrt(n)
 * and the difference quotient amplifies it by 1/2h; with h = 1e-2 (the ops are smooth, or
 * sampled away from kinks) that noise and the O(h^2) truncation both stay below 1e-3 of the
 * largest gradient entry, hence "atol = 2e-3 * max|grad|, rtol = 1e-2" unless a test says
 * otherwise. Accumulating slots (+=) are called on gradients pre-filled with a constant that
 * is subtracted before comparing, and written slots (=) on buffers pre-filled with garbage, so
 * a wrong =/+= contract fails too.
 *
 * Each op's test is named after it (test_<op>, the slot name without _forward/_backward), as in
 * kernels/README.md's op table, and the sections follow the slot order of engine/backend.h.
 *
 * Not here: the whole model (test_engine_model.c), the optimizers (trainer tests), matmul_batched
 * and gram_batched (test_engine_gram.c).
 */
#include "engine/backend.h"
#include "engine/export.h"
#include "check.h"
#include "parity_fixture.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cad_backend *be;

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t rng_state = 0x1234567887654321ull;
static double urand(void) { /* [0,1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static float nrand(void) {
    double u1 = urand() + 1e-12, u2 = urand();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
static float *tensor(size_t n) { return (float *)be->alloc(be, n * sizeof(float)); }
static float *randn(size_t n, float s) {
    float *p = tensor(n);
    for (size_t i = 0; i < n; i++) p[i] = s * nrand();
    return p;
}
static void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}
static void release(void *p) { be->free(be, p); }

static double weighted_sum(const float *y, const float *R, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)R[i] * y[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Compare g (analytic dL/dx, g_offset already removed) with central differences on `samples`
 * random coordinates of x[n] (all of them if n <= samples). skip(x) may veto a coordinate
 * (kinks). Prints the worst error so a failing run shows how far off it is. */
static void fd_check(const char *what, float *x, const float *g, float g_offset, size_t n, loss_fn f,
                     void *ctx, float h, double atol_rel, double rtol, int samples, int (*skip)(float)) {
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs((double)g[i] - g_offset));
    double atol = atol_rel * gmax + 1e-7, worst = 0.0;
    int bad = 0, checked = 0;
    for (int s = 0; s < (n <= (size_t)samples ? (int)n : samples); s++) {
        size_t i = n <= (size_t)samples ? (size_t)s : (size_t)(urand() * n);
        if (skip && skip(x[i])) continue;
        float x0 = x[i];
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * h), an = (double)g[i] - g_offset;
        double err = fabs(fd - an);
        worst = fmax(worst, err / (atol + rtol * fabs(an)));
        checked++;
        if (err > atol + rtol * fabs(an) && bad++ < 3)
            CHECK_MSG(0, "%s[%zu]: finite difference %.6g vs backward %.6g (atol %.3g rtol %.3g)", what, i, fd, an,
                      atol, rtol);
    }
    f(ctx); /* leave the outputs as they are at the unperturbed point */
    CHECK_MSG(checked > 0, "%s: no coordinate checked", what);
    printf("    %-28s n=%-6zu checked=%-3d max|grad|=%-10.4g worst err/tol=%.3f\n", what, n, checked, gmax, worst);
}

/* ---- matmul ------------------------------------------------------------------------------ */

static void test_matmul(void) {
    int M = 37, N = 45, K = 29, lda_pad = 3, ldb_pad = 5, ldc_pad = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int big = 0; big < 2; big++) { /* big: large enough to be split across threads */
                int m = big ? 300 : M, nn = big ? 260 : N, k = big ? 70 : K;
                int lda = (ta ? m : k) + lda_pad, ldb = (tb ? k : nn) + ldb_pad, ldc = nn + ldc_pad;
                float *A = randn((size_t)(ta ? k : m) * lda, 1.0f), *Bm = randn((size_t)(tb ? nn : k) * ldb, 1.0f);
                float *Cm = randn((size_t)m * ldc, 1.0f);
                float *C0 = tensor((size_t)m * ldc);
                memcpy(C0, Cm, sizeof(float) * m * ldc);
                float alpha = 0.75f, beta = big ? 0.0f : -0.5f;
                if (beta == 0.0f) fill(Cm, (size_t)m * ldc, NAN); /* beta 0: C must not be read */
                be->matmul(be, ta, tb, m, nn, k, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
                double worst = 0.0;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < nn; j++) {
                        double s = 0.0;
                        for (int p = 0; p < k; p++) {
                            double a = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                            double b = tb ? Bm[(size_t)j * ldb + p] : Bm[(size_t)p * ldb + j];
                            s += a * b;
                        }
                        double ref = alpha * s + (beta != 0.0f ? beta * C0[(size_t)i * ldc + j] : 0.0);
                        worst = fmax(worst, fabs(ref - Cm[(size_t)i * ldc + j]));
                    }
                /* fp32 dot products of k ~ N(0,1) terms: error ~ k * 6e-8 * sqrt(k) << 1e-3 */
                CHECK_MSG(worst < 1e-3, "matmul ta=%d tb=%d %dx%dx%d: max error %g", ta, tb, m, nn, k, worst);
                /* padding columns of C are left alone */
                if (beta != 0.0f)
                    for (int i = 0; i < m; i++)
                        for (int j = nn; j < ldc; j++) CHECK(Cm[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j]);
                release(A), release(Bm), release(Cm), release(C0);
            }
}

/* ---- embedding --------------------------------------------------------------------------- */

typedef struct {
    int N, C;
    int32_t *ids;
    float *wte, *out, *R;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    be->embedding_forward(be, c->out, c->ids, c->wte, c->N, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void test_embedding(void) {
    emb_ctx c = {.N = 53, .C = 70};
    int V = 11;
    c.ids = (int32_t *)be->alloc(be, sizeof(int32_t) * c.N);
    for (int n = 0; n < c.N; n++) c.ids[n] = (n * 7 + 3) % V; /* repeated ids: the scatter must add */
    c.wte = randn((size_t)V * c.C, 1.0f);
    c.out = tensor((size_t)c.N * c.C);
    c.R = randn((size_t)c.N * c.C, 1.0f);
    emb_loss(&c);
    for (int n = 0; n < c.N; n++)
        for (int k = 0; k < c.C; k++) CHECK(c.out[(size_t)n * c.C + k] == c.wte[(size_t)c.ids[n] * c.C + k]);
    float *g = tensor((size_t)V * c.C);
    fill(g, (size_t)V * c.C, 0.25f);
    be->embedding_backward(be, g, c.R, c.ids, c.N, c.C);
    /* linear op: differences are exact up to fp32 rounding of L */
    fd_check("embedding dwte", c.wte, g, 0.25f, (size_t)V * c.C, emb_loss, &c, 1e-2f, 2e-3, 1e-2, 60, NULL);
    release(c.ids), release(c.wte), release(c.out), release(c.R), release(g);
}

/* ---- rmsnorm ----------------------------------------------------------------------------- */

typedef struct {
    int N, C;
    float *in, *out, *rstd, *R;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    be->rmsnorm_forward(be, c->out, c->rstd, c->in, c->N, c->C, 1.1920929e-7f);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void test_rmsnorm(void) {
    rms_ctx c = {.N = 19, .C = 67};
    size_t n = (size_t)c.N * c.C;
    c.in = randn(n, 2.0f), c.out = tensor(n), c.rstd = tensor(c.N), c.R = randn(n, 1.0f);
    rms_loss(&c);
    for (int r = 0; r < c.N; r++) {
        double ss = 0.0;
        for (int k = 0; k < c.C; k++) ss += (double)c.in[r * c.C + k] * c.in[r * c.C + k];
        double rs = 1.0 / sqrt(ss / c.C + 1.1920929e-7);
        for (int k = 0; k < c.C; k++) CHECK_NEAR(c.out[r * c.C + k], c.in[r * c.C + k] * rs, 1e-6, 1e-5);
    }
    float *g = tensor(n);
    fill(g, n, -1.5f);
    be->rmsnorm_backward(be, g, c.R, c.out, c.rstd, c.N, c.C);
    fd_check("rmsnorm din", c.in, g, -1.5f, n, rms_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    /* in-place forward (out aliases in) gives the same values */
    float *copy = tensor(n), *rs2 = tensor(c.N);
    memcpy(copy, c.in, n * sizeof(float));
    be->rmsnorm_forward(be, copy, rs2, copy, c.N, c.C, 1.1920929e-7f);
    CHECK(memcmp(copy, c.out, n * sizeof(float)) == 0);
    release(c.in), release(c.out), release(c.rstd), release(c.R), release(g), release(copy), release(rs2);
}

/* ---- qk_norm_rope ----------------------------------------------------------------------- */

typedef struct {
    int B, T, NH, KV, HD;
    float *qkv, *gain, *cs, *sn, *qo, *ko, *rq, *rk, *Rq, *Rk;
} qk_ctx;

static double qk_loss(void *p) {
    qk_ctx *c = p;
    be->qk_norm_rope_forward(be, c->qo, c->ko, c->rq, c->rk, c->qkv, c->gain, c->cs, c->sn, c->B, c->T, c->NH,
                             c->KV, c->HD, 1.1920929e-7f);
    size_t N = (size_t)c->B * c->T;
    return weighted_sum(c->qo, c->Rq, N * c->NH * c->HD) + weighted_sum(c->ko, c->Rk, N * c->KV * c->HD);
}

static void test_qk_norm_rope(void) {
    qk_ctx c = {.B = 2, .T = 7, .NH = 4, .KV = 2, .HD = 6};
    int N = c.B * c.T, QKV = (c.NH + 2 * c.KV) * c.HD, half = c.HD / 2;
    c.qkv = randn((size_t)N * QKV, 1.5f);
    c.gain = randn(c.NH, 1.0f);
    c.cs = tensor((size_t)c.T * half), c.sn = tensor((size_t)c.T * half);
    for (int t = 0; t < c.T; t++)
        for (int i = 0; i < half; i++) {
            double f = t * pow(10000.0, -2.0 * i / c.HD);
            c.cs[t * half + i] = (float)cos(f), c.sn[t * half + i] = (float)sin(f);
        }
    c.qo = tensor((size_t)N * c.NH * c.HD), c.ko = tensor((size_t)N * c.KV * c.HD);
    c.rq = tensor((size_t)N * c.NH), c.rk = tensor((size_t)N * c.KV);
    c.Rq = randn((size_t)N * c.NH * c.HD, 1.0f), c.Rk = randn((size_t)N * c.KV * c.HD, 1.0f);
    qk_loss(&c);
    /* forward reference: x1*cos + x2*sin | -x1*sin + x2*cos on the normalised head, times gain */
    double worst = 0.0;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < c.NH + c.KV; h++) {
            const float *x = c.qkv + (size_t)n * QKV + h * c.HD;
            double ss = 0.0;
            for (int d = 0; d < c.HD; d++) ss += (double)x[d] * x[d];
            double r = 1.0 / sqrt(ss / c.HD + 1.1920929e-7), g = h < c.NH ? c.gain[h] : 1.0;
            const float *o = h < c.NH ? c.qo + (size_t)n * c.NH * c.HD + h * c.HD
                                      : c.ko + (size_t)n * c.KV * c.HD + (h - c.NH) * c.HD;
            int t = n % c.T;
            for (int d = 0; d < half; d++) {
                double u1 = x[d] * r, u2 = x[d + half] * r, co = c.cs[t * half + d], si = c.sn[t * half + d];
                worst = fmax(worst, fabs(o[d] - g * (u1 * co + u2 * si)));
                worst = fmax(worst, fabs(o[d + half] - g * (-u1 * si + u2 * co)));
            }
        }
    CHECK_MSG(worst < 1e-5, "qk_norm_rope forward: max error %g", worst);
    float *dqkv = tensor((size_t)N * QKV), *dg = tensor(c.NH);
    fill(dqkv, (size_t)N * QKV, 7.0f); /* q/k columns must be overwritten, v columns kept */
    fill(dg, c.NH, 0.5f);
    be->qk_norm_rope_backward(be, dqkv, dg, c.Rq, c.Rk, c.qkv, c.rq, c.rk, c.gain, c.cs, c.sn, c.B, c.T, c.NH, c.KV,
                              c.HD);
    for (int n = 0; n < N; n++)
        for (int j = (c.NH + c.KV) * c.HD; j < QKV; j++) CHECK(dqkv[(size_t)n * QKV + j] == 7.0f);
    /* FD over the q and k columns only (v columns do not enter the op) */
    float *gqk = tensor((size_t)N * QKV);
    fill(gqk, (size_t)N * QKV, 0.0f);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < (c.NH + c.KV) * c.HD; j++) gqk[(size_t)n * QKV + j] = dqkv[(size_t)n * QKV + j];
    for (int s = 0; s < 60; s++) { /* sample (row, col) pairs inside the q|k columns */
        int n = (int)(urand() * N), j = (int)(urand() * (c.NH + c.KV) * c.HD);
        size_t i = (size_t)n * QKV + j;
        float x0 = c.qkv[i], h = 1e-2f;
        c.qkv[i] = x0 + h;
        double lp = qk_loss(&c);
        c.qkv[i] = x0 - h;
        double lm = qk_loss(&c);
        c.qkv[i] = x0;
        double fd = (lp - lm) / (2 * h);
        /* normalisation makes this op strongly curved near small rows: rtol 2e-2 */
        CHECK_MSG(fabs(fd - gqk[i]) <= 3e-3 + 2e-2 * fabs(gqk[i]), "qk_norm_rope dqkv[%d,%d]: fd %.6g vs %.6g", n, j,
                  fd, gqk[i]);
    }
    fd_check("qk_norm_rope dq_gain", c.gain, dg, 0.5f, c.NH, qk_loss, &c, 1e-2f, 2e-3, 1e-2, 8, NULL);
    release(c.qkv), release(c.gain), release(c.cs), release(c.sn), release(c.qo), release(c.ko), release(c.rq);
    release(c.rk), release(c.Rq), release(c.Rk), release(dqkv), release(dg), release(gqk);
}

/* ---- attention --------------------------------------------------------------------------- */

typedef struct {
    int B, T, NH, KV, HD, ldq, ldk, ldv, ldy;
    float scale;
    float *q, *k, *v, *y, *lse, *R;
    void *scratch;
    size_t scratch_bytes;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    be->attention_forward(be, c->y, c->ldy, c->lse, c->q, c->ldq, c->k, c->ldk, c->v, c->ldv, c->B, c->T, c->NH,
                          c->KV, c->HD, c->scale, c->scratch, c->scratch_bytes);
    double s = 0.0;
    for (int n = 0; n < c->B * c->T; n++)
        for (int j = 0; j < c->NH * c->HD; j++) s += (double)c->R[(size_t)n * c->NH * c->HD + j] * c->y[(size_t)n * c->ldy + j];
    return s;
}

static void attention_case(int B, int T, int NH, int KV, int HD) {
    /* q/k/v/y live inside wider rows (like the fused qkv buffer) to exercise the strides */
    att_ctx c = {.B = B, .T = T, .NH = NH, .KV = KV, .HD = HD};
    c.ldq = NH * HD + 3, c.ldk = KV * HD + 1, c.ldv = KV * HD + 5, c.ldy = NH * HD + 2;
    c.scale = 1.0f / sqrtf((float)HD);
    int N = B * T;
    c.q = randn((size_t)N * c.ldq, 1.2f), c.k = randn((size_t)N * c.ldk, 1.2f), c.v = randn((size_t)N * c.ldv, 1.0f);
    c.y = tensor((size_t)N * c.ldy), c.lse = tensor((size_t)B * NH * T), c.R = randn((size_t)N * NH * HD, 1.0f);
    c.scratch_bytes = be->attention_scratch_bytes(be, B, T, NH, KV, HD);
    c.scratch = be->alloc(be, c.scratch_bytes);
    att_loss(&c);
    /* forward reference in double: softmax over keys 0..t, kv head h/(NH/KV) */
    double worst = 0.0, *p = malloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int g = h / (NH / KV);
                const float *qr = c.q + (size_t)(b * T + t) * c.ldq + h * HD;
                double mx = -1e300, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    const float *kr = c.k + (size_t)(b * T + j) * c.ldk + g * HD;
                    double s = 0.0;
                    for (int d = 0; d < HD; d++) s += (double)qr[d] * kr[d];
                    p[j] = s * c.scale;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                worst = fmax(worst, fabs(c.lse[((size_t)b * NH + h) * T + t] - (mx + log(sum))));
                for (int d = 0; d < HD; d++) {
                    double o = 0.0;
                    for (int j = 0; j <= t; j++) o += p[j] / sum * c.v[(size_t)(b * T + j) * c.ldv + g * HD + d];
                    worst = fmax(worst, fabs(c.y[(size_t)(b * T + t) * c.ldy + h * HD + d] - o));
                }
            }
    free(p);
    CHECK_MSG(worst < 2e-5, "attention forward B=%d T=%d NH=%d KV=%d HD=%d: max error %g", B, T, NH, KV, HD, worst);

    int lddq = NH * HD + 1, lddk = KV * HD + 2, lddv = KV * HD + 3;
    float *dq = tensor((size_t)N * lddq), *dk = tensor((size_t)N * lddk), *dv = tensor((size_t)N * lddv);
    float *dy = tensor((size_t)N * c.ldy);
    fill(dq, (size_t)N * lddq, NAN), fill(dk, (size_t)N * lddk, NAN), fill(dv, (size_t)N * lddv, NAN);
    for (int n = 0; n < N; n++) memcpy(dy + (size_t)n * c.ldy, c.R + (size_t)n * NH * HD, sizeof(float) * NH * HD);
    be->attention_backward(be, dq, lddq, dk, lddk, dv, lddv, dy, c.ldy, c.y, c.ldy, c.lse, c.q, c.ldq, c.k, c.ldk,
                           c.v, c.ldv, B, T, NH, KV, HD, c.scale, c.scratch, c.scratch_bytes);
    /* gather the strided gradients into dense copies aligned with the inputs' layout */
    float *gq = tensor((size_t)N * c.ldq), *gk = tensor((size_t)N * c.ldk), *gv = tensor((size_t)N * c.ldv);
    for (int n = 0; n < N; n++) {
        memcpy(gq + (size_t)n * c.ldq, dq + (size_t)n * lddq, sizeof(float) * NH * HD);
        memcpy(gk + (size_t)n * c.ldk, dk + (size_t)n * lddk, sizeof(float) * KV * HD);
        memcpy(gv + (size_t)n * c.ldv, dv + (size_t)n * lddv, sizeof(float) * KV * HD);
        for (int j = 0; j < NH * HD; j++) CHECK(isfinite(gq[(size_t)n * c.ldq + j]));
        for (int j = 0; j < KV * HD; j++) CHECK(isfinite(gk[(size_t)n * c.ldk + j]) && isfinite(gv[(size_t)n * c.ldv + j]));
        /* padding columns carry no gradient: zero them so sampling them checks fd == 0 */
        for (int j = NH * HD; j < c.ldq; j++) gq[(size_t)n * c.ldq + j] = 0.0f;
        for (int j = KV * HD; j < c.ldk; j++) gk[(size_t)n * c.ldk + j] = 0.0f;
        for (int j = KV * HD; j < c.ldv; j++) gv[(size_t)n * c.ldv + j] = 0.0f;
    }
    char name[64];
    snprintf(name, sizeof name, "attention dq T=%d %d/%d", T, NH, KV);
    fd_check(name, c.q, gq, 0.0f, (size_t)N * c.ldq, att_loss, &c, 1e-2f, 2e-3, 1e-2, 40, NULL);
    snprintf(name, sizeof name, "attention dk T=%d %d/%d", T, NH, KV);
    fd_check(name, c.k, gk, 0.0f, (size_t)N * c.ldk, att_loss, &c, 1e-2f, 2e-3, 1e-2, 40, NULL);
    snprintf(name, sizeof name, "attention dv T=%d %d/%d", T, NH, KV);
    fd_check(name, c.v, gv, 0.0f, (size_t)N * c.ldv, att_loss, &c, 1e-2f, 2e-3, 1e-2, 40, NULL);
    release(c.q), release(c.k), release(c.v), release(c.y), release(c.lse), release(c.R), release(c.scratch);
    release(dq), release(dk), release(dv), release(dy), release(gq), release(gk), release(gv);
}

static void test_attention(void) {
    attention_case(2, 67, 4, 2, 8); /* GQA, T spans a partial second row block */
    attention_case(1, 5, 3, 3, 4);  /* MHA, tiny odd T */
    attention_case(3, 9, 4, 1, 2);  /* multi-query, HD = 2 */
}

/* Non-finite and huge inputs through the ops whose exp is the CPU backend's fast_expf (scores
 * and logits): a NaN must come out as NaN in its own rows only, and huge finite values must
 * saturate the way exp does. Before fast_expf sent NaN through its float -> int conversion
 * (undefined behaviour; the sanitized build aborts on it), so this test aborts there. T = 7
 * runs every exp on the scalar path, T = 21 mixes the 16-wide vector path with a scalar tail. */
static void attention_nonfinite_case(int T) {
    int B = 1, NH = 2, KV = 1, HD = 4, N = B * T, ld = NH * HD;
    float scale = 0.5f;
    float *q = randn((size_t)N * ld, 1.0f), *k = randn((size_t)N * HD, 1.0f), *v = randn((size_t)N * HD, 1.0f);
    int tnan = 3, thuge = 5;
    q[(size_t)tnan * ld + 0 * HD + 1] = NAN; /* query (tnan, head 0): every score NaN */
    for (int d = 0; d < HD; d++) q[(size_t)thuge * ld + 1 * HD + d] = 1e18f * (d % 2 ? -1.0f : 1.0f);
    float *y = tensor((size_t)N * ld), *lse = tensor((size_t)NH * T);
    size_t sb = be->attention_scratch_bytes(be, B, T, NH, KV, HD);
    void *scratch = be->alloc(be, sb);
    be->attention_forward(be, y, ld, lse, q, ld, k, HD, v, HD, B, T, NH, KV, HD, scale, scratch, sb);
    double worst = 0.0, p[64];
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            const float *yr = y + (size_t)t * ld + h * HD;
            if (t == tnan && h == 0) {
                CHECK_MSG(isnan(lse[(size_t)h * T + t]), "T=%d: lse of the NaN query is %g", T, lse[(size_t)h * T + t]);
                for (int d = 0; d < HD; d++) CHECK_MSG(isnan(yr[d]), "T=%d: y[%d] of the NaN query is %g", T, d, yr[d]);
                continue;
            }
            double mx = -INFINITY, sum = 0.0; /* double reference; exp(-1e18) is 0 */
            for (int j = 0; j <= t; j++) {
                double s = 0.0;
                for (int d = 0; d < HD; d++) s += (double)q[(size_t)t * ld + h * HD + d] * k[(size_t)j * HD + d];
                p[j] = s * scale;
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
            for (int d = 0; d < HD; d++) {
                double o = 0.0;
                for (int j = 0; j <= t; j++) o += p[j] / sum * v[(size_t)j * HD + d];
                CHECK_MSG(isfinite(yr[d]), "T=%d: y(t=%d, h=%d) is %g", T, t, h, yr[d]);
                worst = fmax(worst, fabs(yr[d] - o));
            }
            if (t != thuge || h != 1) worst = fmax(worst, fabs(lse[(size_t)h * T + t] - (mx + log(sum))));
            else CHECK_NEAR(lse[(size_t)h * T + t], mx, 0.0, 1e-6); /* |score| ~ 1e18: lse is the max */
        }
    CHECK_MSG(worst < 2e-5, "T=%d: attention forward with NaN/huge queries: max error %g", T, worst);
    float *dy = randn((size_t)N * ld, 1.0f), *dq = tensor((size_t)N * ld), *dk = tensor((size_t)N * HD);
    float *dv = tensor((size_t)N * HD);
    be->attention_backward(be, dq, ld, dk, HD, dv, HD, dy, ld, y, ld, lse, q, ld, k, HD, v, HD, B, T, NH, KV, HD,
                           scale, scratch, sb);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) {
                float g = dq[(size_t)t * ld + h * HD + d];
                if (t == tnan && h == 0) CHECK_MSG(isnan(g), "T=%d: dq of the NaN query is %g", T, g);
                else if (t == thuge && h == 1) /* a saturated softmax passes (almost) no gradient */
                    CHECK_MSG(fabsf(g) < 1e-3f, "T=%d: dq of the saturated query is %g", T, g);
                else CHECK_MSG(isfinite(g), "T=%d: dq(t=%d, h=%d) is %g", T, t, h, g);
            }
    release(q), release(k), release(v), release(y), release(lse), release(scratch), release(dy), release(dq);
    release(dk), release(dv);
}

static void test_attention_nonfinite(void) {
    attention_nonfinite_case(7);
    attention_nonfinite_case(21);
}

/* ---- xsa -------------------------------------------------------------------------------- */

typedef struct {
    int N, NH, KV, HD;
    float *y, *v, *out, *R;
} xsa_ctx;

static double xsa_loss(void *p) {
    xsa_ctx *c = p;
    be->xsa_forward(be, c->out, c->NH * c->HD, c->y, c->NH * c->HD, c->v, c->KV * c->HD, c->N, c->NH, c->KV, c->HD);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->NH * c->HD);
}

/* y - (y.u)u with u the token's own value direction: orthogonal to v afterwards; finite
 * differences for dy (=) and dv (+=, two query heads per kv head) */
static void test_xsa(void) {
    xsa_ctx c = {.N = 7, .NH = 4, .KV = 2, .HD = 8};
    size_t ny = (size_t)c.N * c.NH * c.HD, nv = (size_t)c.N * c.KV * c.HD;
    c.y = randn(ny, 1.0f), c.v = randn(nv, 1.0f), c.out = tensor(ny), c.R = randn(ny, 1.0f);
    xsa_loss(&c);
    double worst = 0;
    for (int n = 0; n < c.N; n++)
        for (int h = 0; h < c.NH; h++) {
            const float *o = c.out + ((size_t)n * c.NH + h) * c.HD, *v = c.v + ((size_t)n * c.KV + h / 2) * c.HD;
            double dot = 0;
            for (int d = 0; d < c.HD; d++) dot += (double)o[d] * v[d];
            worst = fmax(worst, fabs(dot));
        }
    CHECK_MSG(worst < 1e-5, "output not orthogonal to its value: |o.v| up to %g", worst);
    float *gy = tensor(ny), *gv = tensor(nv);
    fill(gy, ny, NAN);
    fill(gv, nv, 0.25f);
    be->xsa_backward(be, gy, c.NH * c.HD, gv, c.KV * c.HD, c.R, c.NH * c.HD, c.y, c.NH * c.HD, c.v, c.KV * c.HD, c.N,
                     c.NH, c.KV, c.HD);
    fd_check("xsa dy", c.y, gy, 0.0f, ny, xsa_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    fd_check("xsa dv", c.v, gv, 0.25f, nv, xsa_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    release(c.y), release(c.v), release(c.out), release(c.R), release(gy), release(gv);
}

/* ---- head_gate -------------------------------------------------------------------------- */

typedef struct {
    int N, NH, HD;
    float *y, *gate, *out, *R;
} gate_ctx;

static double gate_loss(void *p) {
    gate_ctx *c = p;
    be->head_gate_forward(be, c->out, c->NH * c->HD, c->y, c->NH * c->HD, c->gate, c->N, c->NH, c->HD);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->NH * c->HD);
}

/* each head row times sigmoid(its gate), against a double reference; finite differences for dy
 * and dgate (both =), and dy computed in place over dout gives the same bits */
static void test_head_gate(void) {
    gate_ctx c = {.N = 7, .NH = 3, .HD = 8};
    size_t ny = (size_t)c.N * c.NH * c.HD, ng = (size_t)c.N * c.NH;
    c.y = randn(ny, 1.0f), c.gate = randn(ng, 2.0f), c.out = tensor(ny), c.R = randn(ny, 1.0f);
    gate_loss(&c);
    for (size_t i = 0; i < ny; i++) {
        double g = 1.0 / (1.0 + exp(-(double)c.gate[i / c.HD]));
        CHECK_NEAR(c.out[i], c.y[i] * g, 1e-6, 1e-6);
    }
    float *gy = tensor(ny), *gg = tensor(ng), *gy2 = tensor(ny), *gg2 = tensor(ng);
    fill(gy, ny, NAN);
    fill(gg, ng, NAN);
    be->head_gate_backward(be, gy, c.NH * c.HD, gg, c.R, c.NH * c.HD, c.y, c.NH * c.HD, c.gate, c.N, c.NH, c.HD);
    fd_check("head_gate dy", c.y, gy, 0.0f, ny, gate_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    fd_check("head_gate dgate", c.gate, gg, 0.0f, ng, gate_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    memcpy(gy2, c.R, ny * sizeof(float));
    be->head_gate_backward(be, gy2, c.NH * c.HD, gg2, gy2, c.NH * c.HD, c.y, c.NH * c.HD, c.gate, c.N, c.NH, c.HD);
    CHECK(memcmp(gy2, gy, ny * sizeof(float)) == 0 && memcmp(gg2, gg, ng * sizeof(float)) == 0);
    release(c.y), release(c.gate), release(c.out), release(c.R), release(gy), release(gg), release(gy2), release(gg2);
}

/* ---- relu2 ------------------------------------------------------------------------------ */

typedef struct {
    size_t n;
    float slope;
    float *in, *out, *R;
} relu_ctx;

static double relu_loss(void *p) {
    relu_ctx *c = p;
    be->relu2_forward(be, c->out, c->in, c->n, c->slope);
    return weighted_sum(c->out, c->R, c->n);
}
static int near_kink(float x) { return fabsf(x) < 3e-2f; } /* FD across relu's kink is meaningless */

/* relu^2 (slope 0, train_gpt.py) and leaky_relu(x, 0.5)^2 (the records' activation) */
static void test_relu2(void) {
    for (int k = 0; k < 2; k++) {
        relu_ctx c = {.n = 301, .slope = k ? 0.5f : 0.0f};
        c.in = randn(c.n, 1.0f), c.out = tensor(c.n), c.R = randn(c.n, 1.0f);
        relu_loss(&c);
        for (size_t i = 0; i < c.n; i++) {
            float a = c.in[i] > 0 ? c.in[i] : c.slope * c.in[i];
            CHECK(c.out[i] == a * a);
        }
        float *g = tensor(c.n);
        fill(g, c.n, NAN);
        be->relu2_backward(be, g, c.R, c.in, c.n, c.slope);
        fd_check(k ? "leaky relu2 din" : "relu2 din", c.in, g, 0.0f, c.n, relu_loss, &c, 1e-2f, 2e-3, 1e-2, 80,
                 near_kink);
        /* din may alias dout */
        float *d2 = tensor(c.n);
        memcpy(d2, c.R, c.n * sizeof(float));
        be->relu2_backward(be, d2, d2, c.in, c.n, c.slope);
        CHECK(memcmp(d2, g, c.n * sizeof(float)) == 0);
        release(c.in), release(c.out), release(c.R), release(g), release(d2);
    }
}

/* ---- resid_mix, scale_add --------------------------------------------------------------- */

typedef struct {
    int N, C;
    float *x, *x0, *mix, *out, *R;
} mix_ctx;

static double mix_loss(void *p) {
    mix_ctx *c = p;
    be->resid_mix_forward(be, c->out, c->x, c->x0, c->mix, c->N, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void test_resid_mix(void) {
    mix_ctx c = {.N = 23, .C = 131}; /* C spans a partial third column block */
    size_t n = (size_t)c.N * c.C;
    c.x = randn(n, 1.0f), c.x0 = randn(n, 1.0f), c.mix = randn(2 * (size_t)c.C, 1.0f), c.out = tensor(n);
    c.R = randn(n, 1.0f);
    mix_loss(&c);
    for (size_t i = 0; i < n; i++) {
        int k = (int)(i % c.C);
        CHECK_NEAR(c.out[i], c.mix[k] * c.x[i] + c.mix[c.C + k] * c.x0[i], 1e-6, 1e-6);
    }
    float *dx = tensor(n), *dx0 = tensor(n), *dmix = tensor(2 * (size_t)c.C);
    memcpy(dx, c.R, n * sizeof(float)); /* dx aliases dout, as the model calls it */
    fill(dx0, n, 2.0f), fill(dmix, 2 * (size_t)c.C, -1.0f);
    be->resid_mix_backward(be, dx, dx0, dmix, dx, c.x, c.x0, c.mix, c.N, c.C);
    fd_check("resid_mix dx", c.x, dx, 0.0f, n, mix_loss, &c, 1e-2f, 2e-3, 1e-2, 50, NULL);
    fd_check("resid_mix dx0", c.x0, dx0, 2.0f, n, mix_loss, &c, 1e-2f, 2e-3, 1e-2, 50, NULL);
    fd_check("resid_mix dmix", c.mix, dmix, -1.0f, 2 * (size_t)c.C, mix_loss, &c, 1e-2f, 2e-3, 1e-2, 50, NULL);
    release(c.x), release(c.x0), release(c.mix), release(c.out), release(c.R), release(dx), release(dx0);
    release(dmix);
}

typedef struct {
    int N, C;
    float *x, *s, *y, *out, *R;
} sa_ctx;

static double sa_loss(void *p) {
    sa_ctx *c = p;
    be->scale_add_forward(be, c->out, c->x, c->s, c->y, c->N, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void test_scale_add(void) {
    sa_ctx c = {.N = 31, .C = 77};
    size_t n = (size_t)c.N * c.C;
    c.x = randn(n, 1.0f), c.s = randn(c.C, 1.0f), c.y = randn(n, 1.0f), c.out = tensor(n), c.R = randn(n, 1.0f);
    sa_loss(&c);
    for (size_t i = 0; i < n; i++) CHECK_NEAR(c.out[i], c.x[i] + c.s[i % c.C] * c.y[i], 1e-6, 1e-6);
    float *dy = tensor(n), *ds = tensor(c.C);
    fill(dy, n, NAN), fill(ds, c.C, 3.0f);
    be->scale_add_backward(be, dy, ds, c.R, c.y, c.s, c.N, c.C);
    fd_check("scale_add dy", c.y, dy, 0.0f, n, sa_loss, &c, 1e-2f, 2e-3, 1e-2, 50, NULL);
    fd_check("scale_add ds", c.s, ds, 3.0f, c.C, sa_loss, &c, 1e-2f, 2e-3, 1e-2, 50, NULL);
    /* dx is the identity: L is linear in x with coefficient R */
    float *R_copy = tensor(n);
    memcpy(R_copy, c.R, n * sizeof(float));
    fd_check("scale_add dx (identity)", c.x, R_copy, 0.0f, n, sa_loss, &c, 1e-2f, 2e-3, 1e-2, 30, NULL);
    /* in place (out aliases x) */
    float *xc = tensor(n);
    memcpy(xc, c.x, n * sizeof(float));
    be->scale_add_forward(be, xc, xc, c.s, c.y, c.N, c.C);
    CHECK(memcmp(xc, c.out, n * sizeof(float)) == 0);
    release(c.x), release(c.s), release(c.y), release(c.out), release(c.R), release(dy), release(ds);
    release(R_copy), release(xc);
}

/* ---- softcap_xent ----------------------------------------------------------------------- */

typedef struct {
    int N, V;
    float cap;
    int32_t *tgt;
    float *raw, *work, *lse, *loss;
} xent_ctx;

static double xent_loss(void *p) { /* L = sum_n loss[n] (the op's dloss then is 1) */
    xent_ctx *c = p;
    memcpy(c->work, c->raw, sizeof(float) * c->N * c->V);
    be->softcap_xent_forward(be, c->work, c->lse, c->loss, c->tgt, c->N, c->V, c->cap);
    double s = 0.0;
    for (int n = 0; n < c->N; n++) s += c->loss[n];
    return s;
}

static void test_softcap_xent(void) {
    xent_ctx c = {.N = 13, .V = 97, .cap = 30.0f};
    size_t n = (size_t)c.N * c.V;
    c.tgt = (int32_t *)be->alloc(be, sizeof(int32_t) * c.N);
    for (int r = 0; r < c.N; r++) c.tgt[r] = (r * 31 + 5) % c.V;
    c.raw = randn(n, 20.0f); /* spans the softcap's linear and saturating ranges */
    c.raw[3] = 0.001f, c.raw[4] = -0.3f, c.raw[5] = 0.7f; /* both branches of the tanh approximation */
    c.work = tensor(n), c.lse = tensor(c.N), c.loss = tensor(c.N);
    xent_loss(&c);
    double worst_z = 0.0, worst_l = 0.0;
    for (int r = 0; r < c.N; r++) {
        double mx = -1e300, sum = 0.0, zt = 0.0;
        for (int j = 0; j < c.V; j++) {
            double z = c.cap * tanh((double)c.raw[(size_t)r * c.V + j] / c.cap);
            worst_z = fmax(worst_z, fabs(z - c.work[(size_t)r * c.V + j]));
            mx = fmax(mx, z);
            if (j == c.tgt[r]) zt = z;
        }
        for (int j = 0; j < c.V; j++) sum += exp(c.cap * tanh((double)c.raw[(size_t)r * c.V + j] / c.cap) - mx);
        worst_l = fmax(worst_l, fabs(c.loss[r] - (mx + log(sum) - zt)));
    }
    /* fast tanh/exp are ~2 ulp: |z| <= 30 -> abs error ~ 30 * 2.4e-7 */
    CHECK_MSG(worst_z < 1e-5, "softcap forward: max |z error| %g", worst_z);
    CHECK_MSG(worst_l < 2e-5, "xent forward: max |loss error| %g", worst_l);
    float *g = tensor(n);
    memcpy(g, c.work, n * sizeof(float));
    be->softcap_xent_backward(be, g, c.lse, c.tgt, c.N, c.V, c.cap, 1.0f);
    fd_check("softcap_xent dlogits", c.raw, g, 0.0f, n, xent_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    /* logits-only forward (targets NULL) still softcaps and fills lse */
    float *w2 = tensor(n), *lse2 = tensor(c.N);
    memcpy(w2, c.raw, n * sizeof(float));
    be->softcap_xent_forward(be, w2, lse2, NULL, NULL, c.N, c.V, c.cap);
    CHECK(memcmp(w2, c.work, n * sizeof(float)) == 0 && memcmp(lse2, c.lse, c.N * sizeof(float)) == 0);
    release(c.tgt), release(c.raw), release(c.work), release(c.lse), release(c.loss), release(g), release(w2);
    release(lse2);
}

/* ---- distill_kl ------------------------------------------------------------------------- */

typedef struct {
    int N, V;
    float cap, temp, alpha;
    float *raw, *zs, *lse, *zt, *tw, *loss;
} kd_ctx;

static double kd_loss(void *p) { /* L = sum_n loss[n] over raw student logits (the op's dloss then is 1) */
    kd_ctx *c = p;
    memcpy(c->zs, c->raw, sizeof(float) * c->N * c->V);
    be->softcap_xent_forward(be, c->zs, c->lse, NULL, NULL, c->N, c->V, c->cap);
    memcpy(c->tw, c->zt, sizeof(float) * c->N * c->V);
    be->distill_kl(be, c->tw, c->loss, c->zs, c->N, c->V, c->temp, c->alpha, c->cap, 1.0f);
    double s = 0.0;
    for (int n = 0; n < c->N; n++) s += c->loss[n];
    return s;
}

/* alpha * T^2 * KL(softmax(zt/T) || softmax(zs/T)) per row in double: the op's forward, and its
 * gradient by finite differences through the softcap, at T = 1 and T = 2.5. */
static void test_distill_kl(void) {
    float temps[2] = {1.0f, 2.5f};
    for (int k = 0; k < 2; k++) {
        kd_ctx c = {.N = 11, .V = 83, .cap = 30.0f, .temp = temps[k], .alpha = 0.7f};
        size_t n = (size_t)c.N * c.V;
        c.raw = randn(n, 15.0f), c.zs = tensor(n), c.lse = tensor(c.N), c.zt = randn(n, 8.0f), c.tw = tensor(n);
        c.loss = tensor(c.N);
        kd_loss(&c);
        double worst = 0.0;
        for (int r = 0; r < c.N; r++) {
            const float *zs = c.zs + (size_t)r * c.V, *zt = c.zt + (size_t)r * c.V;
            double ms = -1e300, mt = -1e300, ss = 0.0, st = 0.0, kl = 0.0;
            for (int j = 0; j < c.V; j++) ms = fmax(ms, zs[j] / c.temp), mt = fmax(mt, zt[j] / c.temp);
            for (int j = 0; j < c.V; j++) ss += exp(zs[j] / c.temp - ms), st += exp(zt[j] / c.temp - mt);
            for (int j = 0; j < c.V; j++) {
                double lp = zt[j] / c.temp - mt - log(st), lq = zs[j] / c.temp - ms - log(ss);
                kl += exp(lp) * (lp - lq);
            }
            double want = c.alpha * c.temp * c.temp * kl;
            worst = fmax(worst, fabs(c.loss[r] - want) / (1e-3 + fabs(want)));
        }
        CHECK_MSG(worst < 1e-4, "distill_kl forward T=%g: worst relative error %g", c.temp, worst);
        float *g = tensor(n);
        memcpy(g, c.tw, n * sizeof(float));
        fd_check(k ? "distill_kl dlogits T=2.5" : "distill_kl dlogits T=1", c.raw, g, 0.0f, n, kd_loss, &c, 1e-2f,
                 2e-3, 1e-2, 80, NULL);
        /* identical teacher and student: zero loss and gradient */
        memcpy(c.tw, c.zs, n * sizeof(float));
        be->distill_kl(be, c.tw, c.loss, c.zs, c.N, c.V, c.temp, c.alpha, c.cap, 1.0f);
        for (int r = 0; r < c.N; r++) CHECK_NEAR(c.loss[r], 0.0, 1e-5, 0.0);
        for (size_t i = 0; i < n; i++) CHECK_NEAR(c.tw[i], 0.0, 1e-6, 0.0);
        release(c.raw), release(c.zs), release(c.lse), release(c.zt), release(c.tw), release(c.loss), release(g);
    }
}

/* PyTorch's F.kl_div over log_softmax at T = 2 (float64), through the softcap by autograd:
 * tests/scripts/gen_distill_fixture.py. */
static void test_distill_kl_torch(void) {
    pf_file f;
    if (pf_load("tests/fixtures/engine/distill_kl_v1.bin", &f)) {
        CHECK_MSG(0, "distill_kl fixture missing");
        return;
    }
    const pf_record *raw = pf_get(&f, "raw"), *zt = pf_get(&f, "zt"), *loss = pf_get(&f, "loss"),
                    *grad = pf_get(&f, "grad");
    if (!raw || !zt || !loss || !grad) return;
    int N = raw->shape[0], V = raw->shape[1];
    float temp = (float)pf_scalar(&f, "config.temp"), alpha = (float)pf_scalar(&f, "config.alpha"),
          cap = (float)pf_scalar(&f, "config.cap");
    size_t n = (size_t)N * V;
    float *z = tensor(n), *lse = tensor(N), *t = tensor(n), *l = tensor(N);
    memcpy(z, raw->data, n * sizeof(float));
    memcpy(t, zt->data, n * sizeof(float));
    be->softcap_xent_forward(be, z, lse, NULL, NULL, N, V, cap);
    be->distill_kl(be, t, l, z, N, V, temp, alpha, cap, 1.0f);
    const float *wl = loss->data, *wg = grad->data;
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(wg[i]));
    for (int r = 0; r < N; r++) CHECK_NEAR(l[r], wl[r], 1e-4, 1e-4);
    for (size_t i = 0; i < n; i++) CHECK_NEAR(t[i], wg[i], 1e-5 * gmax, 1e-4);
    release(z), release(lse), release(t), release(l);
    pf_free(&f);
}

/* NaN, +-Inf and huge logits (see attention_nonfinite_case for why). V = 21: 16 lanes on the
 * vector path, 5 on the scalar tail, with special values on both. Row 0 holds a NaN: its lse,
 * loss and gradient are NaN. Row 1 holds +-Inf and +-1e30: they saturate to +-cap (tanh(+-inf)
 * = +-1), so lse and loss stay finite and their gradient is exactly 0 (1 - (z/cap)^2 = 0).
 * Row 2 is ordinary and must not notice its neighbours. */
static void test_softcap_xent_nonfinite(void) {
    int N = 3, V = 21;
    float cap = 30.0f;
    size_t n = (size_t)N * V;
    float *raw = randn(n, 5.0f), *z = tensor(n), *lse = tensor(N), *loss = tensor(N);
    int32_t *tgt = (int32_t *)be->alloc(be, sizeof(int32_t) * N);
    tgt[0] = 4, tgt[1] = 19, tgt[2] = 11; /* row 1's target is the +Inf logit */
    raw[2] = NAN, raw[18] = NAN;
    float special[4] = {INFINITY, -INFINITY, 1e30f, -1e30f};
    int at[4] = {19, 3, 20, 17};
    for (int i = 0; i < 4; i++) raw[V + at[i]] = special[i];
    memcpy(z, raw, n * sizeof(float));
    be->softcap_xent_forward(be, z, lse, loss, tgt, N, V, cap);
    CHECK_MSG(isnan(lse[0]) && isnan(loss[0]), "NaN row: lse %g loss %g", lse[0], loss[0]);
    for (int r = 1; r < N; r++) {
        double mx = -INFINITY, sum = 0.0, zr[32];
        for (int j = 0; j < V; j++) {
            zr[j] = cap * tanh((double)raw[(size_t)r * V + j] / cap);
            CHECK_NEAR(z[(size_t)r * V + j], zr[j], 1e-5, 0.0);
            mx = fmax(mx, zr[j]);
        }
        for (int j = 0; j < V; j++) sum += exp(zr[j] - mx);
        CHECK_NEAR(lse[r], mx + log(sum), 2e-5, 0.0);
        CHECK_NEAR(loss[r], mx + log(sum) - zr[tgt[r]], 2e-5, 0.0);
    }
    for (int i = 0; i < 4; i++) CHECK(z[V + at[i]] == (i % 2 ? -cap : cap));
    be->softcap_xent_backward(be, z, lse, tgt, N, V, cap, 1.0f);
    for (int j = 0; j < V; j++) CHECK_MSG(isnan(z[j]), "NaN row: dlogit[%d] is %g", j, z[j]);
    for (int i = 0; i < 4; i++) CHECK_MSG(z[V + at[i]] == 0.0f, "saturated dlogit[%d] is %g", at[i], z[V + at[i]]);
    for (size_t j = V; j < n; j++) CHECK(isfinite(z[j]));
    release(raw), release(z), release(lse), release(loss), release(tgt);
}

/* ---- axpby, scale, sumsq, adam_update --------------------------------------------------- */

/* the three vector slots run on an odd length above the sumsq threading threshold */
#define VEC_N 100003

static void test_axpby(void) {
    size_t n = VEC_N;
    float *x = randn(n, 1.0f), *y = randn(n, 1.0f), *y0 = tensor(n);
    memcpy(y0, y, n * sizeof(float));
    be->axpby(be, n, 0.5f, x, -2.0f, y);
    for (size_t i = 0; i < n; i += 997) CHECK(y[i] == 0.5f * x[i] + -2.0f * y0[i]);
    fill(y, n, NAN);
    be->axpby(be, n, 3.0f, x, 0.0f, y); /* b == 0: y not read */
    for (size_t i = 0; i < n; i += 997) CHECK(y[i] == 3.0f * x[i]);
    release(x), release(y), release(y0);
}

static void test_scale(void) {
    size_t n = VEC_N;
    float *x = randn(n, 1.0f), *y = tensor(n);
    memcpy(y, x, n * sizeof(float));
    be->scale(be, n, -0.25f, y);
    for (size_t i = 0; i < n; i += 997) CHECK(y[i] == -0.25f * x[i]);
    release(x), release(y);
}

static void test_sumsq(void) {
    size_t n = VEC_N;
    float *x = randn(n, 1.0f);
    double ref = 0.0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    double s1 = be->sumsq(be, x, n), s2 = be->sumsq(be, x, n);
    CHECK_NEAR(s1, ref, 0.0, 1e-12); /* double accumulation: only summation order differs */
    CHECK(s1 == s2);                 /* deterministic */
    CHECK(be->sumsq(be, x, 0) == 0.0);
    release(x);
}

static void test_adam_update(void) {
    size_t n = 1001;
    float *p = randn(n, 1.0f), *g = randn(n, 1.0f), *m = randn(n, 0.1f), *v = tensor(n), *p0 = tensor(n);
    float *m0 = tensor(n), *v0 = tensor(n);
    for (size_t i = 0; i < n; i++) v[i] = (float)urand() * 0.01f;
    memcpy(p0, p, n * sizeof(float)), memcpy(m0, m, n * sizeof(float)), memcpy(v0, v, n * sizeof(float));
    float lr = 0.05f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f;
    int step = 3;
    float bc1 = 1.0f - powf(b1, step), bc2 = 1.0f - powf(b2, step);
    be->adam_update(be, p, g, m, v, n, lr, b1, b2, eps, bc1, bc2);
    int failed_before = check_cur_failed;
    for (size_t i = 0; i < n && check_cur_failed == failed_before; i++) { /* stop at the first bad element */
        double mm = b1 * (double)m0[i] + (1 - b1) * (double)g[i];
        double vv = b2 * (double)v0[i] + (1 - b2) * (double)g[i] * g[i];
        double pp = p0[i] - (lr / bc1) * mm / (sqrt(vv) / sqrt(bc2) + eps);
        CHECK_NEAR(m[i], mm, 1e-6, 1e-5);
        CHECK_NEAR(v[i], vv, 1e-7, 1e-5);
        CHECK_NEAR(p[i], pp, 1e-6, 1e-5);
    }
    release(p), release(g), release(m), release(v), release(p0), release(m0), release(v0);
}

/* fake_quant_rows is the artifact's quantise-dequantise, bit for bit: against
 * cad_quantize_rows (the export) followed by the reader's q * fp16 scale, for every bit width
 * and ternary, on rows with an outlier, a repeated maximum, all zeros, tiny values (fp16
 * subnormal scales), and 1- and 2-column matrices (the quantile's edge cases). */
static void test_fake_quant_rows(void) {
    static const int shapes[][2] = {{9, 70}, {4, 1}, {3, 2}, {5, 1024}};
    static const int bits_list[] = {8, 6, 5, 4, 3, 2, CAD_QUANT_TERNARY};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int rows = shapes[si][0], cols = shapes[si][1];
        size_t n = (size_t)rows * cols;
        float *w = randn(n, 0.05f), *out = tensor(n);
        float *work = malloc((size_t)cols * sizeof(float)), *want = malloc(n * sizeof(float));
        int8_t *q = malloc(n);
        uint16_t *sc = malloc((size_t)rows * sizeof(uint16_t));
        w[3 % n] = 2.5f;                                           /* an outlier in row 0 */
        if (rows > 2 && cols > 1) w[cols] = w[cols + 1] = -0.3f;   /* row 1: repeated max |w| */
        if (rows > 2) memset(w + 2 * (size_t)cols, 0, (size_t)cols * sizeof(float)); /* row 2: zeros */
        if (rows > 3) for (int c = 0; c < cols; c++) w[3 * (size_t)cols + c] *= 1e-4f; /* tiny scales */
        for (size_t b = 0; b < sizeof bits_list / sizeof *bits_list; b++) {
            int bits = bits_list[b];
            be->fake_quant_rows(be, out, w, rows, cols, bits);
            cad_quantize_rows(w, rows, cols, bits, 0, q, sc, work);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    want[(size_t)r * cols + c] = (float)q[(size_t)r * cols + c] * cad_f16_to_f32(sc[r]);
            int bad = 0;
            for (size_t i = 0; i < n; i++) bad += memcmp(&out[i], &want[i], sizeof(float)) != 0;
            CHECK_MSG(bad == 0, "%dx%d bits %d: %d of %zu values differ from the export's decode", rows, cols, bits,
                      bad, n);
            int distinct = 0; /* the codes span the grid: not everything rounded to one value */
            for (size_t i = 1; i < (size_t)cols && !distinct; i++) distinct = out[i] != out[0];
            if (cols > 2) CHECK_MSG(distinct, "%dx%d bits %d: row 0 collapsed to one value", rows, cols, bits);
        }
        release(w), release(out);
        free(work), free(want), free(q), free(sc);
    }
}

/* normalize_batched is, per matrix, exactly sumsq then scale by (float)(1 / (sqrt(s) + eps)) (the
 * CPU Muon path must keep its bits): compared bit for bit with those two slots, the sums also
 * against a plain double sum, the gaps between matrices untouched, then the empty case. */
static void test_normalize_batched(void) {
    const size_t n = 70001; /* past cpu_sumsq's threading threshold: the partitioned sum */
    const int batch = 3, gap = 5;
    const long long stride = (long long)n + gap;
    size_t tot = (size_t)stride * batch;
    float *x = randn(tot, 1.0f), *want = tensor(tot);
    double *sq = (double *)be->alloc(be, (size_t)batch * sizeof(double));
    for (int b = 0; b < batch; b++) /* different norms per matrix: a mixed-up factor shows */
        for (size_t i = 0; i < n; i++) x[(size_t)b * stride + i] *= (float)(b + 1);
    memcpy(want, x, tot * sizeof(float));
    double plain[3];
    for (int b = 0; b < batch; b++) {
        float *wb = want + (size_t)b * stride;
        plain[b] = 0.0;
        for (size_t i = 0; i < n; i++) plain[b] += (double)wb[i] * wb[i];
        double s = be->sumsq(be, wb, n);
        be->scale(be, n, (float)(1.0 / (sqrt(s) + 1e-7)), wb);
    }
    be->normalize_batched(be, x, n, stride, batch, 1e-7, sq);
    int bad = 0;
    for (size_t i = 0; i < tot; i++) bad += memcmp(&x[i], &want[i], sizeof(float)) != 0;
    CHECK_MSG(bad == 0, "%d of %zu values differ from sumsq + scale per matrix", bad, tot);
    for (int b = 0; b < batch; b++) {
        CHECK_NEAR(sq[b], plain[b], 0.0, 1e-12); /* double accumulation: only the order differs */
        double norm = 0.0; /* unit Frobenius norm up to eps and the fp32 factor */
        for (size_t i = 0; i < n; i++) norm += (double)x[(size_t)b * stride + i] * x[(size_t)b * stride + i];
        CHECK_NEAR(sqrt(norm), 1.0, 0.0, 1e-6);
    }
    /* n = 0: sums written as 0, nothing read or scaled */
    sq[0] = sq[1] = NAN;
    be->normalize_batched(be, x, 0, 0, 2, 1e-7, sq);
    CHECK(sq[0] == 0.0 && sq[1] == 0.0);
    release(x), release(want), release(sq);
}

/* ---- moe_combine ------------------------------------------------------------------------ */

typedef struct {
    int N, K, C;
    float *h, *gate, *out, *R;
    int32_t *pos;
} moe_ctx;

static double moe_loss(void *p) {
    moe_ctx *c = p;
    be->moe_combine_forward(be, c->out, c->h, c->gate, c->pos, c->N, c->K, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void test_moe_combine(void) {
    moe_ctx c = {.N = 29, .K = 2, .C = 37};
    size_t S = (size_t)c.N * c.K, nh = S * c.C, no = (size_t)c.N * c.C;
    c.h = randn(nh, 1.0f), c.gate = randn(S, 1.0f), c.out = tensor(no), c.R = randn(no, 1.0f);
    c.pos = (int32_t *)be->alloc(be, S * sizeof(int32_t));
    for (size_t i = 0; i < S; i++) c.pos[i] = (int32_t)i;
    for (size_t i = S; i > 1; i--) { /* a permutation, as the model's expert order is */
        size_t j = (size_t)(urand() * (double)i);
        int32_t t = c.pos[i - 1];
        c.pos[i - 1] = c.pos[j], c.pos[j] = t;
    }
    moe_loss(&c);
    for (int n = 0; n < c.N; n++)
        for (int k = 0; k < c.C; k++) {
            double want = 0.0;
            for (int j = 0; j < c.K; j++)
                want += (double)c.gate[n * c.K + j] * c.h[(size_t)c.pos[n * c.K + j] * c.C + k];
            CHECK_NEAR(c.out[(size_t)n * c.C + k], want, 1e-5, 1e-5);
        }
    float *dh = tensor(nh), *dg = tensor(S);
    fill(dh, nh, NAN), fill(dg, S, NAN); /* both written (=): a forgotten element stays NaN */
    be->moe_combine_backward(be, dh, dg, c.R, c.h, c.gate, c.pos, c.N, c.K, c.C);
    for (size_t i = 0; i < nh; i++) CHECK_MSG(!isnan(dh[i]), "moe_combine dh[%zu] not written", i);
    fd_check("moe_combine dh", c.h, dh, 0.0f, nh, moe_loss, &c, 1e-2f, 2e-3, 1e-2, 60, NULL);
    fd_check("moe_combine dgate", c.gate, dg, 0.0f, S, moe_loss, &c, 1e-2f, 2e-3, 1e-2, 60, NULL);
    release(c.h), release(c.gate), release(c.out), release(c.R), release(c.pos), release(dh), release(dg);
}

/* ---- causal_conv1d ---------------------------------------------------------------------- */

typedef struct {
    int B, T, E, K, ldx;
    float *x, *w, *bias, *out, *R;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    be->causal_conv1d_forward(be, c->out, c->x, c->ldx, c->w, c->bias, c->B, c->T, c->E, c->K);
    return weighted_sum(c->out, c->R, (size_t)c->B * c->T * c->E);
}

/* silu(bias + causal taps) per channel against a double loop, no leak across the two sequences
 * (x is a strided column slice, like Mamba's half of in_proj's output); finite differences for
 * dx (=, into a strided slice whose other columns must stay untouched), dw and dbias (+=). */
static void test_causal_conv1d(void) {
    conv_ctx c = {.B = 2, .T = 7, .E = 5, .K = 4, .ldx = 11};
    size_t N = (size_t)c.B * c.T, nx = N * c.ldx, ny = N * c.E, nw = (size_t)c.E * c.K;
    c.x = randn(nx, 1.0f), c.w = randn(nw, 0.5f), c.bias = randn(c.E, 0.5f), c.out = tensor(ny), c.R = randn(ny, 1.0f);
    conv_loss(&c);
    double worst = 0.0;
    for (size_t n = 0; n < N; n++)
        for (int e = 0; e < c.E; e++) {
            int t = (int)(n % c.T);
            double pre = c.bias[e];
            for (int k = 0; k < c.K; k++) {
                int src = t - (c.K - 1) + k;
                if (src >= 0) pre += (double)c.w[e * c.K + k] * c.x[(n - (size_t)(t - src)) * c.ldx + e];
            }
            worst = fmax(worst, fabs(pre / (1.0 + exp(-pre)) - c.out[n * c.E + e]));
        }
    CHECK_MSG(worst < 1e-5, "forward differs from the double reference by %g", worst);
    int lddx = 9;
    float *gx = tensor(N * lddx), *gw = tensor(nw), *gb = tensor(c.E);
    fill(gx, N * lddx, 7.0f);
    for (size_t n = 0; n < N; n++) fill(gx + n * lddx, c.E, NAN); /* (=): every element written */
    fill(gw, nw, 0.5f), fill(gb, c.E, -0.25f);
    be->causal_conv1d_backward(be, gx, lddx, gw, gb, c.R, c.x, c.ldx, c.w, c.bias, c.B, c.T, c.E, c.K);
    int gap_ok = 1;
    for (size_t n = 0; n < N; n++)
        for (int j = c.E; j < lddx; j++) gap_ok &= gx[n * lddx + j] == 7.0f;
    CHECK_MSG(gap_ok, "dx wrote outside its E columns");
    /* dx as a dense [N, ldx] gradient of x (the other columns of x have gradient 0) */
    float *gx_dense = tensor(nx);
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < c.ldx; j++) gx_dense[n * c.ldx + j] = j < c.E ? gx[n * lddx + j] : 0.0f;
    fd_check("conv dx", c.x, gx_dense, 0.0f, nx, conv_loss, &c, 1e-2f, 2e-3, 1e-2, 120, NULL);
    fd_check("conv dw", c.w, gw, 0.5f, nw, conv_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    fd_check("conv dbias", c.bias, gb, -0.25f, (size_t)c.E, conv_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    release(c.x), release(c.w), release(c.bias), release(c.out), release(c.R);
    release(gx), release(gw), release(gb), release(gx_dense);
}

/* ---- selective_scan --------------------------------------------------------------------- */

typedef struct {
    int B, T, E, S, R, ldz;
    float *u, *dt, *A_log, *xdbl, *D, *xz, *dt_bias, *y, *hs, *Rw;
} scan_ctx;

static double scan_loss(void *p) {
    scan_ctx *c = p;
    int ld = c->R + 2 * c->S;
    be->selective_scan_forward(be, c->y, c->hs, c->u, c->dt, c->A_log, c->xdbl + c->R, c->xdbl + c->R + c->S, ld, c->D,
                               c->xz + c->E, c->ldz, c->dt_bias, c->B, c->T, c->E, c->S);
    return weighted_sum(c->y, c->Rw, (size_t)c->B * c->T * c->E);
}

/* The scan against a plain double recurrence over T = 70 (three chunks: the saved states and the
 * backward's carry cross chunk boundaries), B and C as column slices of x_proj's output, z the
 * second half of in_proj's; finite differences for every input. */
static void test_selective_scan(void) {
    scan_ctx c = {.B = 2, .T = 70, .E = 3, .S = 4, .R = 2};
    c.ldz = 2 * c.E;
    size_t N = (size_t)c.B * c.T, NE = N * c.E, ld = (size_t)c.R + 2 * c.S, ES = (size_t)c.E * c.S;
    int nc = (c.T + CAD_SCAN_CHUNK - 1) / CAD_SCAN_CHUNK;
    c.u = randn(NE, 1.0f), c.dt = randn(NE, 0.5f), c.xdbl = randn(N * ld, 1.0f), c.xz = randn(N * c.ldz, 1.0f);
    c.A_log = tensor(ES), c.D = randn(c.E, 1.0f), c.dt_bias = tensor(c.E), c.y = tensor(NE), c.Rw = randn(NE, 1.0f);
    c.hs = tensor((size_t)c.B * nc * ES);
    for (int e = 0; e < c.E; e++) {
        for (int s = 0; s < c.S; s++) c.A_log[e * c.S + s] = logf((float)(s + 1)) + 0.1f * nrand();
        c.dt_bias[e] = -2.0f - (float)e; /* softplus: delta ~ 0.13, 0.05, 0.02 */
    }
    scan_loss(&c);
    double worst = 0.0, worst_hs = 0.0;
    for (int b = 0; b < c.B; b++)
        for (int e = 0; e < c.E; e++) {
            double h[4] = {0};
            for (int t = 0; t < c.T; t++) {
                size_t n = (size_t)b * c.T + t;
                if (t % CAD_SCAN_CHUNK == 0)
                    for (int s = 0; s < c.S; s++)
                        worst_hs = fmax(worst_hs, fabs(h[s] - c.hs[(((size_t)b * nc + t / CAD_SCAN_CHUNK) * c.E + e) * c.S + s]));
                double x = (double)c.dt[n * c.E + e] + c.dt_bias[e], delta = x > 20 ? x : log1p(exp(x)), acc = 0.0;
                for (int s = 0; s < c.S; s++) {
                    double A = -exp((double)c.A_log[e * c.S + s]);
                    h[s] = exp(delta * A) * h[s] + delta * c.xdbl[n * ld + c.R + s] * c.u[n * c.E + e];
                    acc += c.xdbl[n * ld + c.R + c.S + s] * h[s];
                }
                double zz = c.xz[n * c.ldz + c.E + e];
                double want = (acc + (double)c.D[e] * c.u[n * c.E + e]) * zz / (1.0 + exp(-zz));
                worst = fmax(worst, fabs(want - c.y[n * c.E + e]));
            }
        }
    CHECK_MSG(worst < 1e-5, "forward differs from the double recurrence by %g", worst);
    CHECK_MSG(worst_hs < 1e-5, "saved chunk states differ from the recurrence by %g", worst_hs);

    size_t scratch_bytes = be->selective_scan_scratch_bytes(be, c.B, c.T, c.E, c.S);
    void *scratch = be->alloc(be, scratch_bytes);
    float *gu = tensor(NE), *gdt = tensor(NE), *gxdbl = tensor(N * ld), *gxz = tensor(N * c.ldz);
    float *gA = tensor(ES), *gD = tensor(c.E), *gb = tensor(c.E);
    fill(gu, NE, NAN), fill(gdt, NE, NAN), fill(gxdbl, N * ld, NAN), fill(gxz, N * c.ldz, NAN);
    for (size_t n = 0; n < N; n++) fill(gxdbl + n * ld, (size_t)c.R, 3.0f), fill(gxz + n * c.ldz, (size_t)c.E, 0.0f);
    fill(gA, ES, 0.5f), fill(gD, c.E, 0.5f), fill(gb, c.E, 0.5f);
    be->selective_scan_backward(be, gu, gdt, gxdbl + c.R, gxdbl + c.R + c.S, (int)ld, gxz + c.E, c.ldz, gA, gD, gb,
                                c.Rw, c.u, c.dt, c.A_log, c.xdbl + c.R, c.xdbl + c.R + c.S, (int)ld, c.D, c.xz + c.E,
                                c.ldz, c.dt_bias, c.hs, c.B, c.T, c.E, c.S, scratch, scratch_bytes);
    int gap_ok = 1;
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < c.R; j++) gap_ok &= gxdbl[n * ld + j] == 3.0f;
    CHECK_MSG(gap_ok, "dBm/dCm wrote into the dt columns of their rows");
    for (size_t n = 0; n < N; n++) fill(gxdbl + n * ld, (size_t)c.R, 0.0f); /* x's dt columns: gradient 0 here */
    fd_check("scan du", c.u, gu, 0.0f, NE, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 100, NULL);
    fd_check("scan ddt", c.dt, gdt, 0.0f, NE, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 100, NULL);
    fd_check("scan dB|dC", c.xdbl, gxdbl, 0.0f, N * ld, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 150, NULL);
    fd_check("scan dz", c.xz, gxz, 0.0f, N * c.ldz, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 100, NULL);
    fd_check("scan dA_log", c.A_log, gA, 0.5f, ES, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    fd_check("scan dD", c.D, gD, 0.5f, (size_t)c.E, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    fd_check("scan ddt_bias", c.dt_bias, gb, 0.5f, (size_t)c.E, scan_loss, &c, 1e-2f, 2e-3, 1e-2, 80, NULL);
    release(c.u), release(c.dt), release(c.xdbl), release(c.xz), release(c.A_log), release(c.D), release(c.dt_bias);
    release(c.y), release(c.Rw), release(c.hs), release(scratch);
    release(gu), release(gdt), release(gxdbl), release(gxz), release(gA), release(gD), release(gb);
}

int main(void) {
    be = cad_backend_cpu();
    RUN(test_matmul);
    RUN(test_embedding);
    RUN(test_rmsnorm);
    RUN(test_qk_norm_rope);
    RUN(test_attention);
    RUN(test_attention_nonfinite);
    RUN(test_xsa);
    RUN(test_head_gate);
    RUN(test_relu2);
    RUN(test_resid_mix);
    RUN(test_scale_add);
    RUN(test_softcap_xent);
    RUN(test_softcap_xent_nonfinite);
    RUN(test_distill_kl);
    RUN(test_distill_kl_torch);
    RUN(test_axpby);
    RUN(test_scale);
    RUN(test_sumsq);
    RUN(test_adam_update);
    RUN(test_fake_quant_rows);
    RUN(test_normalize_batched);
    RUN(test_moe_combine);
    RUN(test_causal_conv1d);
    RUN(test_selective_scan);
    return check_report();
}
