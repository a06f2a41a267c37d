/*
 * backend_check.c — cad_backend_opcheck: every backend.h slot on the reference and on the
 * backend under test with identical inputs, compared output by output (backend_check.h).
 *
 * Each tensor is a pair (ref copy, dut copy) allocated through the two backends with GUARD
 * floats on both sides holding GUARD_VAL; written (=) outputs start as NaN so an element the
 * DUT forgets to write shows as a NaN mismatch, accumulated (+=) outputs start random. Backward
 * slots get random inputs (their formulas hold for any input) except where realism matters for
 * range: attention backward uses the reference forward's y and lse, the softcap backward the
 * reference forward's capped logits and lse.
 *
 * Not here: the backends, printing (the callback decides), process exit codes.
 */
#include "engine/backend_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 16
#define GUARD_VAL 1234567.875f
#define MAX_LIVE 64

typedef struct ck {
    const cad_backend *ref, *dut;
    double max_nmse;
    int large;
    cad_opcheck_report_fn fn;
    void *ud;
    uint64_t rng;
    int fails;
    char shape[96]; /* + " (bf16 operands)" fits the report's 112 */
    int bf16; /* both backends run their dense products with bf16 operands */
    int off;  /* elementwise/vector checks: operate on views `off` floats into each tensor, so a
               * backend's 128-bit path meets misaligned pointers (its scalar fallback) */
    struct {
        const cad_backend *be;
        void *base;
    } live[MAX_LIVE];
    int nlive;
    int alloc_failed;
} ck;

typedef struct tpair {
    float *r, *d; /* data pointers (GUARD floats after the allocation start) */
    size_t n;
} tpair;

typedef struct ipair {
    int32_t *r, *d;
    size_t n;
} ipair;

/* side s: 0 = reference, 1 = backend under test */
#define BE(s) ((s) ? c->dut : c->ref)
#define P(t) ((s) ? (t).d : (t).r)
#define PO(t) (P(t) + c->off) /* the view of an offset check (see ck.off) */

/* ---- data ---------------------------------------------------------------------------------- */

static uint64_t ck_next(ck *c) {
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float ck_uniform(ck *c, float lo, float hi) {
    return lo + (hi - lo) * (float)((ck_next(c) >> 40) * (1.0 / 16777216.0));
}

/* Host scratch for building inputs; freed at the end of each op group. */
static float *ck_host(ck *c, size_t n, float lo, float hi) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return NULL;
    for (size_t i = 0; i < n; i++) h[i] = ck_uniform(c, lo, hi);
    return h;
}

/* ---- paired device tensors ------------------------------------------------------------------ */

static void *ck_raw(ck *c, const cad_backend *be, size_t bytes) {
    if (c->nlive == MAX_LIVE) { c->alloc_failed = 1; return NULL; }
    void *p = be->alloc(be, bytes);
    if (!p) { c->alloc_failed = 1; return NULL; }
    c->live[c->nlive].be = be;
    c->live[c->nlive].base = p;
    c->nlive++;
    return p;
}

static void ck_free_all(ck *c) {
    for (int i = c->nlive - 1; i >= 0; i--) c->live[i].be->free(c->live[i].be, c->live[i].base);
    c->nlive = 0;
}

/* A tensor pair holding host[n] (NULL: all NaN) with guard floats around it. */
static tpair ck_tensor(ck *c, size_t n, const float *host) {
    tpair t = {NULL, NULL, n};
    float *buf = malloc((n + 2 * GUARD) * sizeof *buf);
    if (!buf) { c->alloc_failed = 1; return t; }
    for (size_t i = 0; i < n + 2 * GUARD; i++) buf[i] = GUARD_VAL;
    for (size_t i = 0; i < n; i++) buf[GUARD + i] = host ? host[i] : NAN;
    for (int s = 0; s < 2; s++) {
        float *base = ck_raw(c, BE(s), (n + 2 * GUARD) * sizeof(float));
        if (!base) break;
        BE(s)->copy_to_device(BE(s), base, buf, (n + 2 * GUARD) * sizeof(float));
        if (s) t.d = base + GUARD;
        else t.r = base + GUARD;
    }
    free(buf);
    return t;
}

static tpair ck_rand(ck *c, size_t n, float lo, float hi) {
    float *h = ck_host(c, n, lo, hi);
    if (!h) { c->alloc_failed = 1; tpair t = {NULL, NULL, n}; return t; }
    tpair t = ck_tensor(c, n, h);
    free(h);
    return t;
}

static ipair ck_ids(ck *c, size_t n, int hi) {
    ipair t = {NULL, NULL, n};
    int32_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) { c->alloc_failed = 1; return t; }
    for (size_t i = 0; i < n; i++) h[i] = (int32_t)(ck_next(c) % (uint64_t)hi);
    for (int s = 0; s < 2; s++) {
        int32_t *p = ck_raw(c, BE(s), (n ? n : 1) * sizeof *p);
        if (!p) break;
        BE(s)->copy_to_device(BE(s), p, h, n * sizeof *p);
        if (s) t.d = p;
        else t.r = p;
    }
    free(h);
    return t;
}

/* Copy the reference side of t into a fresh pair (inputs derived from a reference output). */
static tpair ck_from_ref(ck *c, tpair src) {
    tpair t = {NULL, NULL, src.n};
    float *h = malloc((src.n ? src.n : 1) * sizeof *h);
    if (!h) { c->alloc_failed = 1; return t; }
    c->ref->copy_to_host(c->ref, h, src.r, src.n * sizeof *h);
    t = ck_tensor(c, src.n, h);
    free(h);
    return t;
}

/* ---- comparison ------------------------------------------------------------------------------ */

static int ck_class(float v) { return isnan(v) ? 1 : isinf(v) ? (v > 0 ? 2 : 3) : 0; }

static void ck_report(ck *c, cad_opcheck_result *r) {
    if (!r->pass) c->fails++;
    if (c->fn) c->fn(r, c->ud);
}

/* Both sides of t on the host with their guard words (*hr, *hd: malloc'd, freed by the caller),
 * r started for op/tensor and its guard hits counted; -1 (already reported as a failure) when
 * memory is short or t holds fewer than min_n floats. */
static int ck_fetch(ck *c, cad_opcheck_result *r, const char *op, const char *tensor, tpair t, size_t min_n,
                    float **hr_out, float **hd_out) {
    memset(r, 0, sizeof *r);
    r->op = op;
    r->tensor = tensor;
    snprintf(r->shape, sizeof r->shape, "%s%s", c->shape, c->bf16 ? " (bf16 operands)" : "");
    size_t tot = t.n + 2 * GUARD;
    float *hr = malloc(tot * sizeof *hr), *hd = malloc(tot * sizeof *hd);
    if (!hr || !hd || !t.r || !t.d || t.n < min_n) {
        free(hr);
        free(hd);
        r->tensor = "allocation failed";
        r->nmse = INFINITY;
        ck_report(c, r);
        return -1;
    }
    c->ref->copy_to_host(c->ref, hr, t.r - GUARD, tot * sizeof *hr);
    c->dut->copy_to_host(c->dut, hd, t.d - GUARD, tot * sizeof *hd);
    for (size_t i = 0; i < GUARD; i++) {
        r->guard_hits += hd[i] != GUARD_VAL;
        r->guard_hits += hd[GUARD + t.n + i] != GUARD_VAL;
        r->guard_hits += hr[i] != GUARD_VAL; /* the reference must not overflow either */
        r->guard_hits += hr[GUARD + t.n + i] != GUARD_VAL;
    }
    *hr_out = hr;
    *hd_out = hd;
    return 0;
}

static void ck_compare(ck *c, const char *op, const char *tensor, tpair t) {
    cad_opcheck_result r;
    float *hr, *hd;
    if (ck_fetch(c, &r, op, tensor, t, 0, &hr, &hd)) return;
    double err = 0.0, ref2 = 0.0;
    for (size_t i = GUARD; i < GUARD + t.n; i++) {
        int a = ck_class(hd[i]), b = ck_class(hr[i]);
        if (a != b) { r.nonfinite_mismatch++; continue; }
        if (a) continue;
        double d = (double)hd[i] - hr[i];
        err += d * d;
        ref2 += (double)hr[i] * hr[i];
        if (fabs(d) > r.max_abs) r.max_abs = fabs(d);
    }
    r.nmse = ref2 > 0.0 ? err / ref2 : err; /* all-zero reference: the DUT must be zero too */
    r.pass = r.nmse <= c->max_nmse && r.nonfinite_mismatch == 0 && r.guard_hits == 0;
    free(hr);
    free(hd);
    ck_report(c, &r);
}

/* A scalar result (sumsq) compared like a one-element tensor. */
static void ck_compare_scalar(ck *c, const char *op, double ref, double dut) {
    cad_opcheck_result r;
    memset(&r, 0, sizeof r);
    r.op = op;
    r.tensor = "result";
    snprintf(r.shape, sizeof r.shape, "%s%s", c->shape, c->bf16 ? " (bf16 operands)" : "");
    double d = dut - ref;
    r.max_abs = fabs(d);
    r.nmse = ref != 0.0 ? d * d / (ref * ref) : d * d;
    r.nonfinite_mismatch = (isfinite(ref) != 0) != (isfinite(dut) != 0);
    r.pass = r.nmse <= c->max_nmse && !r.nonfinite_mismatch;
    ck_report(c, &r);
}

static void ck_alloc_failure(ck *c, const char *op) {
    cad_opcheck_result r;
    memset(&r, 0, sizeof r);
    r.op = op;
    r.tensor = "allocation failed";
    snprintf(r.shape, sizeof r.shape, "%s%s", c->shape, c->bf16 ? " (bf16 operands)" : "");
    r.nmse = INFINITY;
    ck_report(c, &r);
}

/* End of an op group: report allocation trouble once, free everything. */
static void ck_done(ck *c, const char *op) {
    if (c->alloc_failed) ck_alloc_failure(c, op);
    c->alloc_failed = 0;
    ck_free_all(c);
}

/* ---- ops ------------------------------------------------------------------------------------- */

static void check_matmul(ck *c, int ta, int tb, int M, int N, int K, float alpha, float beta,
                         int pad) {
    int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
    snprintf(c->shape, sizeof c->shape, "ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d", ta,
             tb, M, N, K, alpha, beta, pad);
    tpair A = ck_rand(c, (size_t)arows * lda, -1, 1);
    tpair B = ck_rand(c, (size_t)brows * ldb, -1, 1);
    tpair C = beta == 0.0f ? ck_tensor(c, (size_t)M * ldc, NULL) : ck_rand(c, (size_t)M * ldc, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->matmul(BE(s), ta, tb, M, N, K, alpha, P(A), lda, P(B), ldb, beta, P(C), ldc);
        ck_compare(c, "matmul", "C", C);
    }
    ck_done(c, "matmul");
}

/* Batched matmul: each item a padded matrix, items `gap` floats apart (strides exercised; a gap
 * that keeps items 16-byte aligned lets the CUDA bf16 packing take its vector path). */
static void check_matmul_batched(ck *c, int ta, int tb, int M, int N, int K, float alpha,
                                 float beta, int pad, int batch, int gap) {
    int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
    long long sa = (long long)arows * lda + gap, sb = (long long)brows * ldb + gap;
    long long sc = (long long)M * ldc + gap;
    snprintf(c->shape, sizeof c->shape, "ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d batch=%d gap=%d",
             ta, tb, M, N, K, alpha, beta, pad, batch, gap);
    tpair A = ck_rand(c, (size_t)(sa * batch), -1, 1);
    tpair B = ck_rand(c, (size_t)(sb * batch), -1, 1);
    tpair C = beta == 0.0f ? ck_tensor(c, (size_t)(sc * batch), NULL) : ck_rand(c, (size_t)(sc * batch), -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->matmul_batched(BE(s), ta, tb, M, N, K, alpha, P(A), lda, sa, P(B), ldb, sb, beta,
                                  P(C), ldc, sc, batch);
        ck_compare(c, "matmul_batched", "C", C);
    }
    ck_done(c, "matmul_batched");
}

/* Batched Gram product; with beta != 0 every C item starts symmetric (the slot's contract). */
static void check_gram_batched(ck *c, int ta, int M, int K, float alpha, float beta, int pad,
                               int batch, int gap) {
    int arows = ta ? K : M, acols = ta ? M : K, lda = acols + pad, ldc = M + pad;
    long long sa = (long long)arows * lda + gap, sc = (long long)M * ldc + gap;
    snprintf(c->shape, sizeof c->shape, "ta=%d M=%d K=%d alpha=%g beta=%g pad=%d batch=%d gap=%d", ta,
             M, K, alpha, beta, pad, batch, gap);
    tpair A = ck_rand(c, (size_t)(sa * batch), -1, 1);
    float *h = malloc((size_t)(sc * batch) * sizeof *h);
    if (!h) { c->alloc_failed = 1; ck_done(c, "gram_batched"); return; }
    for (long long i = 0; i < sc * batch; i++) h[i] = NAN; /* beta 0: C is not read */
    if (beta != 0.0f)
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < M; i++)
                for (int j = 0; j <= i; j++)
                    h[b * sc + (long long)i * ldc + j] = h[b * sc + (long long)j * ldc + i] =
                        (float)(ck_next(c) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
    tpair C = ck_tensor(c, (size_t)(sc * batch), h);
    free(h);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->gram_batched(BE(s), ta, M, K, alpha, P(A), lda, sa, beta, P(C), ldc, sc, batch);
        ck_compare(c, "gram_batched", "C", C);
    }
    ck_done(c, "gram_batched");
}

static void check_embedding(ck *c, int V, int N, int C) {
    snprintf(c->shape, sizeof c->shape, "V=%d N=%d C=%d", V, N, C);
    ipair ids = ck_ids(c, (size_t)N, V);
    tpair wte = ck_rand(c, (size_t)V * C, -1, 1);
    tpair out = ck_tensor(c, (size_t)N * C, NULL);
    tpair dout = ck_rand(c, (size_t)N * C, -1, 1);
    tpair dwte = ck_rand(c, (size_t)V * C, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->embedding_forward(BE(s), P(out), P(ids), P(wte), N, C);
            BE(s)->embedding_backward(BE(s), P(dwte), P(dout), P(ids), N, C);
        }
        ck_compare(c, "embedding_forward", "out", out);
        /* every dwte element sums its tokens in ascending order on both backends: bit-equal */
        double tol = c->max_nmse;
        c->max_nmse = 0.0;
        ck_compare(c, "embedding_backward", "dwte", dwte);
        c->max_nmse = tol;
    }
    ck_done(c, "embedding");
}

static void check_rmsnorm(ck *c, int N, int C, int alias) {
    const float eps = 1.1920929e-07f; /* FLT_EPSILON, F.rms_norm's default for fp32 */
    snprintf(c->shape, sizeof c->shape, "N=%d C=%d%s", N, C, alias ? " out=in" : "");
    tpair in = ck_rand(c, (size_t)N * C, -2, 2);
    tpair out = alias ? in : ck_tensor(c, (size_t)N * C, NULL);
    tpair rstd = ck_tensor(c, (size_t)N, NULL);
    tpair y = ck_rand(c, (size_t)N * C, -2, 2), dy = ck_rand(c, (size_t)N * C, -1, 1);
    tpair r = ck_rand(c, (size_t)N, 0.5f, 2.0f), din = ck_rand(c, (size_t)N * C, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->rmsnorm_forward(BE(s), P(out), P(rstd), P(in), N, C, eps);
            BE(s)->rmsnorm_backward(BE(s), P(din), P(dy), P(y), P(r), N, C);
        }
        ck_compare(c, "rmsnorm_forward", "out", out);
        ck_compare(c, "rmsnorm_forward", "rstd", rstd);
        ck_compare(c, "rmsnorm_backward", "din", din);
    }
    ck_done(c, "rmsnorm");
}

/* RoPE tables as the model builds them: cos/sin(t * base^(-2i/HD)), [T, HD/2]. */
static tpair ck_rope_table(ck *c, int T, int HD, int use_sin) {
    int half = HD / 2;
    float *h = malloc((size_t)T * half * sizeof *h + 1);
    if (!h) { c->alloc_failed = 1; tpair t = {NULL, NULL, 0}; return t; }
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double th = t * pow(10000.0, -2.0 * i / HD);
            h[(size_t)t * half + i] = (float)(use_sin ? sin(th) : cos(th));
        }
    tpair r = ck_tensor(c, (size_t)T * half, h);
    free(h);
    return r;
}

static void check_qk_norm_rope(ck *c, int B, int T, int NH, int KV, int HD) {
    int N = B * T, QKV = (NH + 2 * KV) * HD;
    snprintf(c->shape, sizeof c->shape, "B=%d T=%d NH=%d KV=%d HD=%d", B, T, NH, KV, HD);
    tpair qkv = ck_rand(c, (size_t)N * QKV, -2, 2);
    tpair gain = ck_rand(c, (size_t)NH, 0.5f, 2.0f);
    tpair cs = ck_rope_table(c, T, HD, 0), sn = ck_rope_table(c, T, HD, 1);
    tpair q_out = ck_tensor(c, (size_t)N * NH * HD, NULL), k_out = ck_tensor(c, (size_t)N * KV * HD, NULL);
    tpair rq = ck_tensor(c, (size_t)N * NH, NULL), rk = ck_tensor(c, (size_t)N * KV, NULL);
    tpair dq_out = ck_rand(c, (size_t)N * NH * HD, -1, 1), dk_out = ck_rand(c, (size_t)N * KV * HD, -1, 1);
    tpair rq_in = ck_rand(c, (size_t)N * NH, 0.5f, 2.0f), rk_in = ck_rand(c, (size_t)N * KV, 0.5f, 2.0f);
    tpair dqkv = ck_tensor(c, (size_t)N * QKV, NULL); /* v columns stay NaN on both sides */
    tpair dgain = ck_rand(c, (size_t)NH, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->qk_norm_rope_forward(BE(s), P(q_out), P(k_out), P(rq), P(rk), P(qkv), P(gain),
                                        P(cs), P(sn), B, T, NH, KV, HD, 1.1920929e-07f);
            BE(s)->qk_norm_rope_backward(BE(s), P(dqkv), P(dgain), P(dq_out), P(dk_out), P(qkv),
                                         P(rq_in), P(rk_in), P(gain), P(cs), P(sn), B, T, NH, KV,
                                         HD);
        }
        ck_compare(c, "qk_norm_rope_forward", "q_out", q_out);
        ck_compare(c, "qk_norm_rope_forward", "k_out", k_out);
        ck_compare(c, "qk_norm_rope_forward", "rstd_q", rq);
        ck_compare(c, "qk_norm_rope_forward", "rstd_k", rk);
        ck_compare(c, "qk_norm_rope_backward", "dqkv", dqkv);
        ck_compare(c, "qk_norm_rope_backward", "dq_gain", dgain);
    }
    ck_done(c, "qk_norm_rope");
}

/* q, k, v and the gradients live in strided views, as in the model: q in its own buffer with
 * one padding column, k dense, v a column slice of a fused [N, QKV] buffer; y padded by two;
 * dq/dk/dv slices of one fused gradient buffer. */
static void check_attention(ck *c, int B, int T, int NH, int KV, int HD) {
    int N = B * T, QKV = (NH + 2 * KV) * HD;
    int ldq = NH * HD + 1, ldk = KV * HD, ldv = QKV, ldy = NH * HD + 2;
    float scale = 1.0f / sqrtf((float)HD);
    snprintf(c->shape, sizeof c->shape, "B=%d T=%d NH=%d KV=%d HD=%d", B, T, NH, KV, HD);
    tpair q = ck_rand(c, (size_t)N * ldq, -2, 2), k = ck_rand(c, (size_t)N * ldk, -2, 2);
    tpair vbuf = ck_rand(c, (size_t)N * QKV, -1, 1);
    tpair y = ck_tensor(c, (size_t)N * ldy, NULL), lse = ck_tensor(c, (size_t)B * NH * T, NULL);
    size_t sb[2];
    void *scratch[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        sb[s] = BE(s)->attention_scratch_bytes(BE(s), B, T, NH, KV, HD);
        scratch[s] = ck_raw(c, BE(s), sb[s]);
    }
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->attention_forward(BE(s), P(y), ldy, P(lse), P(q), ldq, P(k), ldk,
                                     P(vbuf) + (size_t)(NH + KV) * HD, ldv, B, T, NH, KV, HD,
                                     scale, scratch[s], sb[s]);
        ck_compare(c, "attention_forward", "y", y);
        ck_compare(c, "attention_forward", "lse", lse);
        /* backward from the reference forward's y and lse */
        tpair y_in = ck_from_ref(c, y), lse_in = ck_from_ref(c, lse);
        tpair dy = ck_rand(c, (size_t)N * ldy, -1, 1);
        tpair dqkv = ck_tensor(c, (size_t)N * QKV, NULL);
        if (!c->alloc_failed) {
            for (int s = 0; s < 2; s++)
                BE(s)->attention_backward(BE(s), P(dqkv), QKV, P(dqkv) + (size_t)NH * HD, QKV,
                                          P(dqkv) + (size_t)(NH + KV) * HD, QKV, P(dy), ldy,
                                          P(y_in), ldy, P(lse_in), P(q), ldq, P(k), ldk,
                                          P(vbuf) + (size_t)(NH + KV) * HD, ldv, B, T, NH, KV, HD,
                                          scale, scratch[s], sb[s]);
            ck_compare(c, "attention_backward", "dq|dk|dv", dqkv);
        }
    }
    ck_done(c, "attention");
}

static void check_xsa(ck *c, int N, int NH, int KV, int HD, int alias) {
    snprintf(c->shape, sizeof c->shape, "N=%d NH=%d KV=%d HD=%d%s", N, NH, KV, HD, alias ? " dy=dout" : "");
    int ldy = NH * HD + 3, ldv = KV * HD + 5; /* padded rows, as in the fused qkv buffer */
    tpair y = ck_rand(c, (size_t)N * ldy, -1, 1), v = ck_rand(c, (size_t)N * ldv, -1, 1);
    tpair out = ck_tensor(c, (size_t)N * ldy, NULL), g = ck_rand(c, (size_t)N * ldy, -1, 1);
    tpair dy = alias ? g : ck_tensor(c, (size_t)N * ldy, NULL), dv = ck_rand(c, (size_t)N * ldv, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->xsa_forward(BE(s), P(out), ldy, P(y), ldy, P(v), ldv, N, NH, KV, HD);
            BE(s)->xsa_backward(BE(s), P(dy), ldy, P(dv), ldv, P(g), ldy, P(y), ldy, P(v), ldv, N, NH, KV, HD);
        }
        ck_compare(c, "xsa_forward", "out", out);
        ck_compare(c, "xsa_backward", "dy", dy);
        ck_compare(c, "xsa_backward", "dv", dv);
    }
    ck_done(c, "xsa");
}

/* gate pre-activations spread over [-6, 6] (sigmoid near 0 and 1), padded head rows; dy = dout in place too */
static void check_head_gate(ck *c, int N, int NH, int HD, int alias) {
    snprintf(c->shape, sizeof c->shape, "N=%d NH=%d HD=%d%s", N, NH, HD, alias ? " dy=dout" : "");
    int ldy = NH * HD + 3;
    tpair y = ck_rand(c, (size_t)N * ldy, -1, 1), gate = ck_rand(c, (size_t)N * NH, -6, 6);
    tpair out = ck_tensor(c, (size_t)N * ldy, NULL), g = ck_rand(c, (size_t)N * ldy, -1, 1);
    tpair dy = alias ? g : ck_tensor(c, (size_t)N * ldy, NULL), dgate = ck_tensor(c, (size_t)N * NH, NULL);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->head_gate_forward(BE(s), P(out), ldy, P(y), ldy, P(gate), N, NH, HD);
            BE(s)->head_gate_backward(BE(s), P(dy), ldy, P(dgate), P(g), ldy, P(y), ldy, P(gate), N, NH, HD);
        }
        ck_compare(c, "head_gate_forward", "out", out);
        ck_compare(c, "head_gate_backward", "dy", dy);
        ck_compare(c, "head_gate_backward", "dgate", dgate);
    }
    ck_done(c, "head_gate");
}

/* Elementwise ops get a few non-finite inputs: NaN/Inf must propagate identically. */
static void ck_poison(ck *c, tpair t, size_t n) {
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 3 && (size_t)(3 + 4 * i) < n; i++)
            BE(s)->copy_to_device(BE(s), P(t) + 3 + 4 * i, &bad[i], sizeof(float));
}

static void check_relu2(ck *c, size_t n, int alias, float slope) {
    snprintf(c->shape, sizeof c->shape, "n=%zu slope=%g%s nonfinite%s", n, (double)slope, alias ? " in-place" : "", c->off ? " off=1" : "");
    tpair in = ck_rand(c, n + c->off, -2, 2);
    ck_poison(c, in, n + c->off);
    tpair out = alias ? ck_rand(c, n + c->off, -2, 2) : ck_tensor(c, n + c->off, NULL);
    if (alias) ck_poison(c, out, n + c->off);
    tpair dout = ck_rand(c, n + c->off, -1, 1);
    tpair din = alias ? dout : ck_tensor(c, n + c->off, NULL);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->relu2_backward(BE(s), PO(din), PO(dout), PO(in), n, slope);
            BE(s)->relu2_forward(BE(s), PO(out), alias ? PO(out) : PO(in), n, slope);
        }
        ck_compare(c, "relu2_forward", "out", out);
        ck_compare(c, "relu2_backward", "din", din);
    }
    ck_done(c, "relu2");
}

static void check_resid_mix(ck *c, int N, int C, int alias) {
    snprintf(c->shape, sizeof c->shape, "N=%d C=%d%s%s", N, C, alias ? " in-place" : "", c->off ? " off=1" : "");
    size_t n = (size_t)N * C;
    tpair x = ck_rand(c, n + c->off, -2, 2), x0 = ck_rand(c, n + c->off, -2, 2), mix = ck_rand(c, 2 * (size_t)C + c->off, -1, 1);
    tpair out = alias ? x : ck_tensor(c, n + c->off, NULL);
    tpair dout = ck_rand(c, n + c->off, -1, 1);
    tpair dx = alias ? dout : ck_tensor(c, n + c->off, NULL);
    tpair dx0 = ck_rand(c, n + c->off, -1, 1), dmix = ck_rand(c, 2 * (size_t)C + c->off, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            /* the backward reads x before the in-place forward overwrites it */
            BE(s)->resid_mix_backward(BE(s), PO(dx), PO(dx0), PO(dmix), PO(dout), PO(x), PO(x0), PO(mix),
                                      N, C);
            BE(s)->resid_mix_forward(BE(s), PO(out), PO(x), PO(x0), PO(mix), N, C);
        }
        ck_compare(c, "resid_mix_backward", "dx", dx);
        ck_compare(c, "resid_mix_backward", "dx0", dx0);
        ck_compare(c, "resid_mix_backward", "dmix", dmix);
        ck_compare(c, "resid_mix_forward", "out", out);
    }
    ck_done(c, "resid_mix");
}

static void check_scale_add(ck *c, int N, int C) {
    snprintf(c->shape, sizeof c->shape, "N=%d C=%d%s", N, C, c->off ? " off=1" : "");
    size_t n = (size_t)N * C;
    tpair x = ck_rand(c, n + c->off, -2, 2), sv = ck_rand(c, (size_t)C + c->off, -1, 1), y = ck_rand(c, n + c->off, -2, 2);
    tpair out = ck_tensor(c, n + c->off, NULL), dout = ck_rand(c, n + c->off, -1, 1);
    tpair dy = ck_tensor(c, n + c->off, NULL), ds = ck_rand(c, (size_t)C + c->off, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->scale_add_forward(BE(s), PO(out), PO(x), PO(sv), PO(y), N, C);
            BE(s)->scale_add_backward(BE(s), PO(dy), PO(ds), PO(dout), PO(y), PO(sv), N, C);
        }
        ck_compare(c, "scale_add_forward", "out", out);
        ck_compare(c, "scale_add_backward", "dy", dy);
        ck_compare(c, "scale_add_backward", "ds", ds);
    }
    ck_done(c, "scale_add");
}

static void check_softcap_xent(ck *c, int N, int V, int with_targets) {
    const float cap = 30.0f;
    snprintf(c->shape, sizeof c->shape, "N=%d V=%d cap=%g%s", N, V, cap,
             with_targets ? "" : " no-targets");
    tpair logits = ck_rand(c, (size_t)N * V, -60, 60);
    tpair lse = ck_tensor(c, (size_t)N, NULL), loss = ck_tensor(c, (size_t)N, NULL);
    ipair tg = ck_ids(c, (size_t)N, V);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->softcap_xent_forward(BE(s), P(logits), P(lse), with_targets ? P(loss) : NULL,
                                        with_targets ? P(tg) : NULL, N, V, cap);
        ck_compare(c, "softcap_xent_forward", "logits", logits);
        ck_compare(c, "softcap_xent_forward", "lse", lse);
        if (with_targets) {
            ck_compare(c, "softcap_xent_forward", "loss", loss);
            tpair z = ck_from_ref(c, logits), l = ck_from_ref(c, lse);
            if (!c->alloc_failed) {
                for (int s = 0; s < 2; s++)
                    BE(s)->softcap_xent_backward(BE(s), P(z), P(l), P(tg), N, V, cap, 1.0f / N);
                ck_compare(c, "softcap_xent_backward", "dlogits", z);
            }
        }
    }
    ck_done(c, "softcap_xent");
}

/* The student's logits from the reference softcap (the op's realistic range), the teacher's
 * random in [-cap, cap]; the gradient overwrites the teacher's copy. */
static void check_distill_kl(ck *c, int N, int V, float temp) {
    const float cap = 30.0f, alpha = 0.6f;
    snprintf(c->shape, sizeof c->shape, "N=%d V=%d T=%g alpha=%g", N, V, temp, alpha);
    tpair zs = ck_rand(c, (size_t)N * V, -30, 30), zt = ck_rand(c, (size_t)N * V, -30, 30);
    tpair loss = ck_tensor(c, (size_t)N, NULL);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->distill_kl(BE(s), P(zt), P(loss), P(zs), N, V, temp, alpha, cap, 1.0f / N);
        ck_compare(c, "distill_kl", "loss", loss);
        ck_compare(c, "distill_kl", "dlogits", zt);
    }
    ck_done(c, "distill_kl");
}

static void check_axpby(ck *c, size_t n) {
    snprintf(c->shape, sizeof c->shape, "n=%zu%s", n, c->off ? " off=1" : "");
    tpair x = ck_rand(c, n + c->off, -2, 2), y0 = ck_tensor(c, n + c->off, NULL), y1 = ck_rand(c, n + c->off, -2, 2);
    tpair xy = ck_rand(c, n + c->off, -2, 2);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->axpby(BE(s), n, 0.3f, PO(x), 0.0f, PO(y0)); /* y0 is NaN: must not be read */
            BE(s)->axpby(BE(s), n, -1.5f, PO(x), 0.9f, PO(y1));
            BE(s)->axpby(BE(s), n, 0.5f, PO(xy), 0.9f, PO(xy)); /* x aliases y */
        }
        ck_compare(c, "axpby", "y (b=0)", y0);
        ck_compare(c, "axpby", "y", y1);
        ck_compare(c, "axpby", "y (x=y)", xy);
    }
    ck_done(c, "axpby");
}

static void check_scale(ck *c, size_t n) {
    snprintf(c->shape, sizeof c->shape, "n=%zu%s", n, c->off ? " off=1" : "");
    tpair xs = ck_rand(c, n + c->off, -2, 2);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) BE(s)->scale(BE(s), n, -0.7f, PO(xs));
        ck_compare(c, "scale", "x", xs);
    }
    ck_done(c, "scale");
}

static void check_sumsq(ck *c, size_t n) {
    snprintf(c->shape, sizeof c->shape, "n=%zu%s", n, c->off ? " off=1" : "");
    tpair x = ck_rand(c, n + c->off, -2, 2);
    double sq[2] = {0, 0};
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) sq[s] = BE(s)->sumsq(BE(s), PO(x), n);
        ck_compare_scalar(c, "sumsq", sq[0], sq[1]);
    }
    ck_done(c, "sumsq");
}

static void check_adam_update(ck *c, size_t n) {
    snprintf(c->shape, sizeof c->shape, "n=%zu%s", n, c->off ? " off=1" : "");
    tpair p = ck_rand(c, n + c->off, -1, 1), g = ck_rand(c, n + c->off, -1, 1), m = ck_rand(c, n + c->off, -0.1f, 0.1f);
    tpair v = ck_rand(c, n + c->off, 0.0f, 0.01f);
    if (!c->alloc_failed) {
        float bc1 = 1.0f - powf(0.9f, 3.0f), bc2 = 1.0f - powf(0.95f, 3.0f);
        for (int s = 0; s < 2; s++)
            BE(s)->adam_update(BE(s), PO(p), PO(g), PO(m), PO(v), n, 0.01f, 0.9f, 0.95f, 1e-8f, bc1,
                               bc2);
        ck_compare(c, "adam_update", "p", p);
        ck_compare(c, "adam_update", "m", m);
        ck_compare(c, "adam_update", "v", v);
    }
    ck_done(c, "adam_update");
}

/* The vector slots on one length, in slot order. */
static void check_vector_slots(ck *c, size_t n) {
    check_axpby(c, n);
    check_scale(c, n);
    check_sumsq(c, n);
    check_adam_update(c, n);
}

/* QAT's fake quantisation must match the CPU export bit for bit (the artifact decodes to what
 * training saw), so this check allows no error at all. */
static void check_fake_quant_rows(ck *c, int rows, int cols, int bits) {
    snprintf(c->shape, sizeof c->shape, "rows=%d cols=%d bits=%d", rows, cols, bits);
    tpair w = ck_rand(c, (size_t)rows * cols, -0.2f, 0.2f), out = ck_tensor(c, (size_t)rows * cols, NULL);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) BE(s)->fake_quant_rows(BE(s), P(out), P(w), rows, cols, bits);
        double tol = c->max_nmse;
        c->max_nmse = 0.0;
        ck_compare(c, "fake_quant_rows", "out", out);
        c->max_nmse = tol;
    }
    ck_done(c, "fake_quant_rows");
}

/* Doubles in a float pair of 2 * count floats (normalize_batched's sums): guards as in ck_compare,
 * then the values compared as doubles with the NMSE bound, one report for the whole array. */
static void ck_compare_doubles(ck *c, const char *op, const char *tensor, tpair t, int count) {
    cad_opcheck_result r;
    float *hr, *hd;
    if (ck_fetch(c, &r, op, tensor, t, 2 * (size_t)count, &hr, &hd)) return;
    double err = 0.0, ref2 = 0.0;
    for (int i = 0; i < count; i++) {
        double a, b;
        memcpy(&a, hd + GUARD + 2 * (size_t)i, sizeof a);
        memcpy(&b, hr + GUARD + 2 * (size_t)i, sizeof b);
        if ((isfinite(a) != 0) != (isfinite(b) != 0)) { r.nonfinite_mismatch++; continue; }
        if (!isfinite(a)) continue;
        err += (a - b) * (a - b);
        ref2 += b * b;
        if (fabs(a - b) > r.max_abs) r.max_abs = fabs(a - b);
    }
    r.nmse = ref2 > 0.0 ? err / ref2 : err;
    r.pass = r.nmse <= c->max_nmse && r.nonfinite_mismatch == 0 && r.guard_hits == 0;
    free(hr);
    free(hd);
    ck_report(c, &r);
}

/* Muon's per-matrix normalisation: `batch` matrices of n floats, `gap` floats apart (the gaps
 * must stay untouched; a gap that keeps 16-byte alignment takes CUDA's 128-bit path). The sums
 * start as NaN (written, not accumulated). */
static void check_normalize_batched(ck *c, size_t n, int batch, int gap) {
    long long stride = (long long)n + gap;
    snprintf(c->shape, sizeof c->shape, "n=%zu batch=%d gap=%d%s", n, batch, gap, c->off ? " off=1" : "");
    tpair x = ck_rand(c, (size_t)stride * (size_t)batch + (size_t)c->off, -2, 2);
    tpair sq = ck_tensor(c, 2 * (size_t)batch, NULL);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->normalize_batched(BE(s), PO(x), n, stride, batch, 1e-7, (double *)(void *)P(sq));
        ck_compare(c, "normalize_batched", "x", x);
        ck_compare_doubles(c, "normalize_batched", "sumsq", sq, batch);
    }
    ck_done(c, "normalize_batched");
}

/* pos: a random permutation of [0, N*K) (Fisher-Yates), as the model's expert ordering is. */
static void check_moe_combine(ck *c, int N, int K, int C) {
    snprintf(c->shape, sizeof c->shape, "N=%d K=%d C=%d", N, K, C);
    size_t S = (size_t)N * K;
    ipair pos = {NULL, NULL, S};
    int32_t *perm = malloc((S ? S : 1) * sizeof *perm);
    if (!perm) c->alloc_failed = 1;
    else {
        for (size_t i = 0; i < S; i++) perm[i] = (int32_t)i;
        for (size_t i = S; i > 1; i--) {
            size_t j = (size_t)(ck_next(c) % (uint64_t)i);
            int32_t t = perm[i - 1];
            perm[i - 1] = perm[j], perm[j] = t;
        }
        for (int s = 0; s < 2; s++) {
            int32_t *p = ck_raw(c, BE(s), (S ? S : 1) * sizeof *p);
            if (!p) break;
            BE(s)->copy_to_device(BE(s), p, perm, S * sizeof *p);
            if (s) pos.d = p;
            else pos.r = p;
        }
        free(perm);
    }
    tpair h = ck_rand(c, S * (size_t)C, -2, 2), gate = ck_rand(c, S, 0, 1), out = ck_tensor(c, (size_t)N * C, NULL);
    tpair dout = ck_rand(c, (size_t)N * C, -1, 1), dh = ck_tensor(c, S * (size_t)C, NULL), dgate = ck_tensor(c, S, NULL);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->moe_combine_forward(BE(s), P(out), P(h), P(gate), P(pos), N, K, C);
            BE(s)->moe_combine_backward(BE(s), P(dh), P(dgate), P(dout), P(h), P(gate), P(pos), N, K, C);
        }
        ck_compare(c, "moe_combine_forward", "out", out);
        ck_compare(c, "moe_combine_backward", "dh", dh);
        ck_compare(c, "moe_combine_backward", "dgate", dgate);
    }
    ck_done(c, "moe_combine");
}

/* x a strided column slice (Mamba's half of in_proj's output), dx into a padded slice: the pad
 * columns start NaN on both sides and must stay NaN; dw/dbias accumulate onto random values. */
static void check_causal_conv1d(ck *c, int B, int T, int E, int K) {
    int N = B * T, ldx = 2 * E + 1, lddx = E + 3;
    snprintf(c->shape, sizeof c->shape, "B=%d T=%d E=%d K=%d", B, T, E, K);
    tpair x = ck_rand(c, (size_t)N * ldx, -2, 2), w = ck_rand(c, (size_t)E * K, -1, 1), bias = ck_rand(c, (size_t)E, -1, 1);
    tpair out = ck_tensor(c, (size_t)N * E, NULL), dout = ck_rand(c, (size_t)N * E, -1, 1);
    tpair dx = ck_tensor(c, (size_t)N * lddx, NULL), dw = ck_rand(c, (size_t)E * K, -1, 1);
    tpair db = ck_rand(c, (size_t)E, -1, 1);
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++) {
            BE(s)->causal_conv1d_forward(BE(s), P(out), P(x), ldx, P(w), P(bias), B, T, E, K);
            BE(s)->causal_conv1d_backward(BE(s), P(dx), lddx, P(dw), P(db), P(dout), P(x), ldx, P(w), P(bias), B, T, E, K);
        }
        ck_compare(c, "causal_conv1d_forward", "out", out);
        ck_compare(c, "causal_conv1d_backward", "dx", dx);
        ck_compare(c, "causal_conv1d_backward", "dw", dw);
        ck_compare(c, "causal_conv1d_backward", "dbias", db);
    }
    ck_done(c, "causal_conv1d");
}

/* As the model calls it: B and C column slices of x_proj's output [N, R+2S], z the second half
 * of in_proj's [N, 2E]; dB|dC into a NaN-filled [N, R+2S] whose dt columns must stay NaN, dz into
 * the second half of a NaN-filled [N, 2E]. The backward reads the reference forward's states. */
static void check_selective_scan(ck *c, int B, int T, int E, int S) {
    int N = B * T, R = 3, W = R + 2 * S, nc = (T + CAD_SCAN_CHUNK - 1) / CAD_SCAN_CHUNK;
    snprintf(c->shape, sizeof c->shape, "B=%d T=%d E=%d S=%d", B, T, E, S);
    tpair u = ck_rand(c, (size_t)N * E, -1, 1), dt = ck_rand(c, (size_t)N * E, -4, -1);
    tpair A_log = ck_rand(c, (size_t)E * S, 0, 2), xdbl = ck_rand(c, (size_t)N * W, -1, 1);
    tpair D = ck_rand(c, (size_t)E, -1, 1), xz = ck_rand(c, (size_t)N * 2 * E, -2, 2), bias = ck_rand(c, (size_t)E, -1, 0);
    tpair y = ck_tensor(c, (size_t)N * E, NULL), hs = ck_tensor(c, (size_t)B * nc * E * S, NULL);
    size_t sb[2];
    void *scratch[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        sb[s] = BE(s)->selective_scan_scratch_bytes(BE(s), B, T, E, S);
        scratch[s] = ck_raw(c, BE(s), sb[s]);
    }
    if (!c->alloc_failed) {
        for (int s = 0; s < 2; s++)
            BE(s)->selective_scan_forward(BE(s), P(y), P(hs), P(u), P(dt), P(A_log), P(xdbl) + R, P(xdbl) + R + S, W,
                                          P(D), P(xz) + E, 2 * E, P(bias), B, T, E, S);
        ck_compare(c, "selective_scan_forward", "y", y);
        ck_compare(c, "selective_scan_forward", "hs", hs);
        tpair hs_in = ck_from_ref(c, hs), dy = ck_rand(c, (size_t)N * E, -1, 1);
        tpair du = ck_tensor(c, (size_t)N * E, NULL), ddt = ck_tensor(c, (size_t)N * E, NULL);
        tpair dxdbl = ck_tensor(c, (size_t)N * W, NULL), dxz = ck_tensor(c, (size_t)N * 2 * E, NULL);
        tpair dA = ck_rand(c, (size_t)E * S, -1, 1), dD = ck_rand(c, (size_t)E, -1, 1), db = ck_rand(c, (size_t)E, -1, 1);
        if (!c->alloc_failed) {
            for (int s = 0; s < 2; s++)
                BE(s)->selective_scan_backward(BE(s), P(du), P(ddt), P(dxdbl) + R, P(dxdbl) + R + S, W, P(dxz) + E,
                                               2 * E, P(dA), P(dD), P(db), P(dy), P(u), P(dt), P(A_log),
                                               P(xdbl) + R, P(xdbl) + R + S, W, P(D), P(xz) + E, 2 * E, P(bias),
                                               P(hs_in), B, T, E, S, scratch[s], sb[s]);
            ck_compare(c, "selective_scan_backward", "du", du);
            ck_compare(c, "selective_scan_backward", "ddt", ddt);
            ck_compare(c, "selective_scan_backward", "dB|dC", dxdbl);
            ck_compare(c, "selective_scan_backward", "dz", dxz);
            ck_compare(c, "selective_scan_backward", "dA_log", dA);
            ck_compare(c, "selective_scan_backward", "dD", dD);
            ck_compare(c, "selective_scan_backward", "ddt_bias", db);
        }
    }
    ck_done(c, "selective_scan");
}

int cad_backend_opcheck(const cad_backend *ref, const cad_backend *dut, const cad_opcheck_opts *o,
                        cad_opcheck_report_fn fn, void *ud) {
    ck cs;
    memset(&cs, 0, sizeof cs);
    ck *c = &cs;
    c->ref = ref;
    c->dut = dut;
    c->max_nmse = o->max_nmse > 0 ? o->max_nmse : 1e-7;
    c->large = o->large;
    c->fn = fn;
    c->ud = ud;
    c->rng = o->seed * 0x2545F4914F6CDD1Dull + 1;

    /* every transpose combination, odd sizes, padded leading dimensions, beta 0 and 1 */
    check_matmul(c, 0, 1, 37, 45, 29, 1.0f, 0.0f, 3);
    check_matmul(c, 0, 0, 37, 45, 29, 1.0f, 0.0f, 0);
    check_matmul(c, 1, 0, 23, 19, 41, 0.5f, 1.0f, 2);
    check_matmul(c, 1, 1, 17, 9, 33, 1.0f, 1.0f, 1);
    check_matmul(c, 0, 0, 1, 1, 1, -2.0f, 0.5f, 0);
    check_matmul_batched(c, 0, 0, 19, 23, 17, 1.0f, 0.0f, 2, 3, 5);
    check_matmul_batched(c, 1, 0, 13, 29, 11, -0.5f, 1.5f, 0, 4, 5);
    check_matmul_batched(c, 0, 1, 9, 7, 21, 1.0f, 1.0f, 1, 1, 5);
    check_gram_batched(c, 0, 21, 33, 1.0f, 0.0f, 2, 3, 3); /* X X^T of a wide matrix */
    check_gram_batched(c, 1, 17, 40, 1.0f, 0.0f, 0, 2, 3); /* X^T X of a tall one */
    check_gram_batched(c, 0, 16, 16, 2.0315f, -4.775f, 1, 5, 3); /* Newton-Schulz's b A + c A A */
    check_gram_batched(c, 0, 19, 25, 1.0f, 0.0f, 1, 1, 3); /* one matrix: CUDA's syrk path */
    check_gram_batched(c, 1, 13, 30, 2.0315f, -4.775f, 2, 1, 3);
    check_embedding(c, 50, 45, 70);
    check_embedding(c, 3, 5000, 33);    /* a few ids, many tokens each: CUDA's lists overflow */
    check_embedding(c, 1000, 3000, 300); /* several owner blocks, columns past one pass */
    check_rmsnorm(c, 37, 70, 0);
    check_rmsnorm(c, 5, 300, 1);
    check_rmsnorm(c, 1, 1, 0);
    check_qk_norm_rope(c, 2, 5, 4, 2, 16); /* GQA */
    check_qk_norm_rope(c, 1, 3, 2, 1, 72); /* HD/2 > 32: lanes loop */
    check_qk_norm_rope(c, 2, 4, 3, 3, 8);  /* no GQA, HD/2 < 32 */
    /* CUDA's q_gain gradient is a two-pass reduction over 32-row chunks: several chunks with a
     * ragged last one (the large set has 128 chunks per head) */
    check_qk_norm_rope(c, 3, 50, 4, 2, 16);
    /* fp32 attention: the fused kernels recompute the same fp32 products in another order, so
     * the bound is far tighter than ggml's 1e-7 (measured ~1e-14 under emulation) */
    double ck_nmse = c->max_nmse;
    c->max_nmse = ck_nmse < 1e-10 ? ck_nmse : 1e-10;
    check_attention(c, 2, 13, 4, 2, 8);    /* GQA */
    check_attention(c, 1, 33, 2, 2, 16);   /* T > one warp */
    check_attention(c, 2, 1, 4, 1, 8);     /* T = 1, one kv head */
    check_attention(c, 2, 70, 4, 1, 64);   /* HD 64, NH/KV = 4, T past one 64-row tile */
    check_attention(c, 1, 37, 3, 3, 72);   /* HD > 64: smaller SIMT tiles; NH/KV = 1 */
    c->max_nmse = ck_nmse;
    check_xsa(c, 37, 4, 2, 8, 0); /* GQA: two heads add into each dv row */
    check_xsa(c, 5, 3, 3, 16, 1);
    check_head_gate(c, 37, 4, 8, 0);
    check_head_gate(c, 300, 3, 16, 1); /* several blocks of the grid stride */
    check_relu2(c, 1000, 0, 0.0f);
    check_relu2(c, 333, 1, 0.0f);
    check_relu2(c, 777, 0, 0.5f); /* the records' leaky_relu(x, 0.5)^2 */
    check_relu2(c, 333, 1, 0.5f);
    check_resid_mix(c, 37, 70, 0);
    check_resid_mix(c, 6, 33, 1);
    check_resid_mix(c, 600, 33, 0); /* several row chunks in the CUDA column sums */
    check_scale_add(c, 37, 70);
    check_scale_add(c, 6, 33);
    check_scale_add(c, 600, 33);
    check_softcap_xent(c, 9, 300, 1);
    check_softcap_xent(c, 3, 50, 0);
    check_distill_kl(c, 9, 300, 2.0f);
    check_distill_kl(c, 3, 50, 1.0f);
    check_distill_kl(c, 2, 1000, 0.5f); /* more columns than one block of threads */
    check_vector_slots(c, 1000);
    check_vector_slots(c, 5000); /* sumsq over several blocks */
    /* CUDA's elementwise kernels take 128-bit loads when every pointer is 16-byte aligned (and,
     * for the row-broadcast ops, C % 4 == 0), then a scalar tail; here: the vector path with
     * ragged tails (n % 4 = 1, 2, 3) and rows of C % 4 == 0, then the same with every pointer one
     * float off alignment (the scalar fallback). */
    for (c->off = 0; c->off < 2; c->off++) {
        check_relu2(c, 1001, 0, 0.0f);
        check_relu2(c, 1003, 1, 0.5f);
        check_resid_mix(c, 37, 68, 0);
        check_resid_mix(c, 5, 36, 1);
        check_scale_add(c, 37, 68);
        check_vector_slots(c, 1001);
        check_vector_slots(c, 1002);
    }
    c->off = 0;
    check_fake_quant_rows(c, 37, 70, 6);
    check_fake_quant_rows(c, 300, 33, 2);   /* more rows than one block of threads */
    check_fake_quant_rows(c, 5, 1, 8);      /* one column: the quantile is the value */
    check_fake_quant_rows(c, 37, 70, 1);    /* ternary */
    check_normalize_batched(c, 1000, 3, 5);  /* odd stride: scalar path */
    check_normalize_batched(c, 1001, 5, 3);  /* stride % 4 == 0: 128-bit path, ragged tail */
    check_normalize_batched(c, 5000, 2, 0);  /* several blocks per matrix */
    check_normalize_batched(c, 37, 300, 3);  /* more matrices than one chunk of partials */
    check_normalize_batched(c, 1, 1, 0);
    c->off = 1;                              /* every matrix one float off alignment */
    check_normalize_batched(c, 1000, 4, 4);
    c->off = 0;
    check_moe_combine(c, 37, 2, 70);
    check_moe_combine(c, 300, 1, 33); /* top-1: more slots than one block of threads */
    check_moe_combine(c, 5, 4, 1);
    check_causal_conv1d(c, 2, 9, 37, 4);
    check_causal_conv1d(c, 3, 2, 5, 4);   /* T < K: taps before the sequence start */
    check_causal_conv1d(c, 1, 50, 70, 1); /* several dw blocks, rows past the 16 row groups */
    check_selective_scan(c, 2, 70, 13, 16); /* three chunks; 13 channels: idle lanes in a block */
    check_selective_scan(c, 1, 5, 40, 4);
    check_selective_scan(c, 2, 33, 150, 2); /* two backward channel super-tiles */
    check_selective_scan(c, 1, 32, 9, 32);  /* one channel per warp; T exactly one chunk */
    check_selective_scan(c, 2, 7, 3, 1);
    /* matmul_precision: bf16. Both sides round operands to bf16 the same way (nearest even)
     * and accumulate in fp32, so only the summation order differs, as in fp32. */
    if (ref->set_matmul_precision(ref, CAD_PREC_BF16) == 0 && dut->set_matmul_precision(dut, CAD_PREC_BF16) == 0) {
        c->bf16 = 1;
        check_matmul(c, 0, 1, 37, 45, 29, 1.0f, 0.0f, 3);
        check_matmul(c, 1, 0, 23, 19, 41, 0.5f, 1.0f, 2);
        check_matmul_batched(c, 1, 0, 13, 29, 11, -0.5f, 1.5f, 0, 4, 5);
        check_gram_batched(c, 0, 16, 16, 2.0315f, -4.775f, 1, 5, 3);
        /* CUDA packs operands to bf16 with 128-bit loads when rows are 16-byte aligned (cols,
         * ld and item stride multiples of 4) and element by element otherwise; these shapes
         * take the vector path for both operands, for one of them, and with ragged K / odd
         * strides for neither, single and batched, wide and tall Gram products. */
        check_matmul(c, 0, 0, 24, 36, 44, 1.0f, 0.0f, 0);
        check_matmul(c, 1, 1, 17, 9, 33, 1.0f, 1.0f, 1);
        check_matmul(c, 0, 1, 33, 20, 12, -1.0f, 0.0f, 4);
        check_matmul(c, 0, 0, 1, 1, 1, -2.0f, 0.5f, 0);
        check_matmul_batched(c, 0, 0, 19, 24, 16, 1.0f, 0.0f, 4, 3, 8);
        check_matmul_batched(c, 0, 1, 9, 7, 21, 1.0f, 1.0f, 1, 1, 5);
        check_matmul_batched(c, 0, 0, 12, 20, 12, 1.0f, 3.4445f, 0, 3, 4); /* NS: X2 = a X + B X */
        check_gram_batched(c, 0, 21, 33, 1.0f, 0.0f, 2, 3, 3);
        check_gram_batched(c, 1, 16, 40, 1.0f, 0.0f, 0, 2, 4); /* tall X^T X, vector path */
        check_gram_batched(c, 0, 19, 25, 1.0f, 0.0f, 1, 1, 3);
        if (c->large) {
            check_matmul(c, 0, 1, 2048, 1536, 512, 1.0f, 0.0f, 0);
            check_gram_batched(c, 1, 512, 1024, 1.0f, 0.0f, 0, 2, 3);
        }
        /* Attention rounds its probabilities (and dS) to bf16 for the following products, and
         * the fused CUDA kernels round exp(s - running max) where the CPU rounds
         * exp(s - row max): the results then agree to bf16 precision (relative 2^-8, NMSE
         * ~1e-5), not to fp32 summation noise. */
        double fp32_nmse = c->max_nmse;
        c->max_nmse = fp32_nmse > 1e-4 ? fp32_nmse : 1e-4;
        check_attention(c, 2, 13, 4, 2, 8);   /* HD != 64: the SIMT kernels with bf16 operands */
        check_attention(c, 2, 70, 4, 1, 64);  /* tensor cores: NH/KV = 4, a partial tile */
        check_attention(c, 1, 130, 4, 2, 64); /* NH/KV = 2, three tiles */
        check_attention(c, 1, 65, 2, 2, 64);  /* NH/KV = 1, a one-row tile */
        if (c->large) check_attention(c, 4, 1024, 8, 4, 64);
        c->max_nmse = fp32_nmse;
        c->bf16 = 0;
    }
    ref->set_matmul_precision(ref, CAD_PREC_FP32);
    dut->set_matmul_precision(dut, CAD_PREC_FP32);
    if (c->large) {
        check_matmul(c, 0, 1, 2048, 1536, 512, 1.0f, 0.0f, 0);
        check_matmul(c, 1, 0, 512, 1536, 2048, 1.0f, 1.0f, 0);
        check_matmul(c, 0, 0, 512, 512, 512, 1.0f, 0.0f, 0);
        check_matmul_batched(c, 0, 0, 512, 1024, 512, 1.0f, 3.4445f, 0, 3, 5);
        check_gram_batched(c, 0, 512, 1024, 1.0f, 0.0f, 0, 3, 3);
        check_gram_batched(c, 1, 512, 1024, 1.0f, 0.0f, 0, 2, 3);
        check_embedding(c, 1024, 4096, 512);
        check_rmsnorm(c, 4096, 512, 0);
        check_qk_norm_rope(c, 4, 1024, 8, 4, 64);
        check_attention(c, 4, 1024, 8, 4, 64);
        check_relu2(c, (size_t)4096 * 1024, 0, 0.5f);
        check_resid_mix(c, 4096, 512, 0);
        check_scale_add(c, 4096, 512);
        check_softcap_xent(c, 4096, 1024, 1);
        check_distill_kl(c, 4096, 1024, 2.0f);
        check_vector_slots(c, (size_t)1 << 22);
        check_normalize_batched(c, (size_t)1024 * 512, 9, 0); /* a baseline shape group */
        check_moe_combine(c, 4096, 2, 512);
        check_causal_conv1d(c, 4, 1024, 1024, 4);
        check_selective_scan(c, 4, 1024, 1024, 16); /* Mamba at the baseline width, expand 2 */
    }
    return c->fails;
}

/* ---- GEMM kernel names ---------------------------------------------------------------------- */

int cad_gemm_kernel_is_tf32(const char *name) {
    for (const char *p = name; p && *p; p++)
        if ((p[0] == 't' || p[0] == 'T') && (p[1] == 'f' || p[1] == 'F') && p[2] == '3' && p[3] == '2') return 1;
    return 0;
}
