/*
 * timed_backend.c — the per-slot timing wrapper of timed_backend.h and the wall-clock timer.
 * One forwarding function per backend.h slot (FWD below), each bracketed by two timer marks
 * when recording is on.
 */
#include "engine/timed_backend.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* backend.h slot order */
#define CAD_SLOTS(X)                                                                                                 \
    X(alloc) X(free) X(copy_to_device) X(copy_to_host) X(copy) X(memset_zero) X(sync) X(set_threads)                 \
    X(set_matmul_precision) X(matmul) X(matmul_batched) X(gram_batched) X(embedding_forward) X(embedding_backward)   \
    X(rmsnorm_forward) X(rmsnorm_backward) X(qk_norm_rope_forward) X(qk_norm_rope_backward)                          \
    X(attention_scratch_bytes) X(attention_forward) X(attention_backward) X(xsa_forward) X(xsa_backward)             \
    X(head_gate_forward) X(head_gate_backward)                                                                       \
    X(relu2_forward) X(relu2_backward) X(resid_mix_forward) X(resid_mix_backward) X(scale_add_forward)               \
    X(scale_add_backward) X(softcap_xent_forward) X(softcap_xent_backward) X(distill_kl) X(axpby) X(scale) X(sumsq) X(adam_update)  \
    X(fake_quant_rows) X(normalize_batched) X(moe_combine_forward) X(moe_combine_backward)                           \
    X(causal_conv1d_forward) X(causal_conv1d_backward) X(selective_scan_scratch_bytes) X(selective_scan_forward)     \
    X(selective_scan_backward)

enum {
#define X(s) S_##s,
    CAD_SLOTS(X)
#undef X
    S_COUNT
};
_Static_assert(S_COUNT == CAD_TIMED_NSLOTS, "CAD_TIMED_NSLOTS must count the slots of CAD_SLOTS");
/* Every member after name and ctx is a slot: a slot added to backend.h without a forwarder here
 * changes the struct's size and stops the build. */
_Static_assert(sizeof(cad_backend) == offsetof(cad_backend, alloc) + CAD_TIMED_NSLOTS * sizeof(void (*)(void)),
               "engine/backend.h has a slot that engine/timed_backend.c does not forward");

static const char *const slot_names[S_COUNT] = {
#define X(s) #s,
    CAD_SLOTS(X)
#undef X
};

struct cad_timed_backend {
    cad_backend be;
    const cad_backend *inner;
    cad_slot_timer *timer;
    int on;
    int n_pending;
    int *p_slot, *p_from, *p_to; /* timer->capacity / 2 pending calls */
    cad_slot_stat stats[S_COUNT];
};

/* ---- wall-clock timer ---------------------------------------------------------------------- */

typedef struct clock_timer {
    int n, cap;
    double *t; /* ms */
} clock_timer;

static int clock_mark(void *ctx) {
    clock_timer *c = ctx;
    if (c->n >= c->cap) return -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->t[c->n] = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    return c->n++;
}
static double clock_span(void *ctx, int from, int to) {
    clock_timer *c = ctx;
    return c->t[to] - c->t[from];
}
static void clock_reset(void *ctx) { ((clock_timer *)ctx)->n = 0; }
static void clock_destroy(void *ctx) {
    clock_timer *c = ctx;
    if (c) free(c->t);
    free(c);
}

int cad_clock_timer_create(cad_slot_timer **out, int capacity, cad_err *e) {
    *out = NULL;
    if (capacity < 2) return cad_fail(e, CAD_ECONFIG, "clock timer: capacity %d < 2", capacity);
    cad_slot_timer *t = calloc(1, sizeof *t);
    clock_timer *c = calloc(1, sizeof *c);
    double *v = malloc((size_t)capacity * sizeof *v);
    if (!t || !c || !v) {
        free(t), free(c), free(v);
        return cad_fail(e, CAD_ENOMEM, "clock timer: out of memory for %d marks", capacity);
    }
    c->t = v;
    c->cap = capacity;
    *t = (cad_slot_timer){"wall clock", c, capacity, clock_mark, clock_span, clock_reset, clock_destroy};
    *out = t;
    return CAD_OK;
}

void cad_slot_timer_free(cad_slot_timer *t) {
    if (!t) return;
    t->destroy(t->ctx);
    free(t);
}

/* ---- recording ------------------------------------------------------------------------------- */

void cad_timed_flush(cad_timed_backend *tb) {
    if (tb->n_pending == 0) return;
    tb->inner->sync(tb->inner);
    for (int i = 0; i < tb->n_pending; i++) {
        cad_slot_stat *s = &tb->stats[tb->p_slot[i]];
        s->calls++;
        s->ms += tb->timer->span_ms(tb->timer->ctx, tb->p_from[i], tb->p_to[i]);
    }
    tb->n_pending = 0;
    tb->timer->reset(tb->timer->ctx);
}

/* The mark before a call (-1: not recording). Flushes first when the call's two marks would not
 * fit; the flush's sync happens before the call, so it never lands inside a measured span. */
static int tb_begin(cad_timed_backend *tb) {
    if (!tb->on) return -1;
    if (2 * (tb->n_pending + 1) > tb->timer->capacity) cad_timed_flush(tb);
    return tb->timer->mark(tb->timer->ctx);
}
static void tb_end(cad_timed_backend *tb, int slot, int from) {
    if (from < 0) return;
    int to = tb->timer->mark(tb->timer->ctx);
    if (to < 0) return; /* cannot happen: tb_begin left room for two marks */
    tb->p_slot[tb->n_pending] = slot;
    tb->p_from[tb->n_pending] = from;
    tb->p_to[tb->n_pending] = to;
    tb->n_pending++;
}

#define TB(be) ((cad_timed_backend *)(be)->ctx)
/* A forwarder for a slot returning void: PARAMS are its parameters after be, ARGS the names. */
#define FWD(slot, PARAMS, ARGS)                                                                                      \
    static void t_##slot PARAMS {                                                                                    \
        cad_timed_backend *tb = TB(be);                                                                              \
        int m0 = tb_begin(tb);                                                                                       \
        tb->inner->slot ARGS;                                                                                        \
        tb_end(tb, S_##slot, m0);                                                                                    \
    }
/* ... and for one returning a value of type R. */
#define FWDR(R, slot, PARAMS, ARGS)                                                                                  \
    static R t_##slot PARAMS {                                                                                       \
        cad_timed_backend *tb = TB(be);                                                                              \
        int m0 = tb_begin(tb);                                                                                       \
        R r = tb->inner->slot ARGS;                                                                                  \
        tb_end(tb, S_##slot, m0);                                                                                    \
        return r;                                                                                                    \
    }
#define IN tb->inner

FWDR(void *, alloc, (const cad_backend *be, size_t bytes), (IN, bytes))
FWD(free, (const cad_backend *be, void *p), (IN, p))
FWD(copy_to_device, (const cad_backend *be, void *dst, const void *src, size_t bytes), (IN, dst, src, bytes))
FWD(copy_to_host, (const cad_backend *be, void *dst, const void *src, size_t bytes), (IN, dst, src, bytes))
FWD(copy, (const cad_backend *be, void *dst, const void *src, size_t bytes), (IN, dst, src, bytes))
FWD(memset_zero, (const cad_backend *be, void *p, size_t bytes), (IN, p, bytes))
FWD(sync, (const cad_backend *be), (IN))
FWD(set_threads, (const cad_backend *be, int n), (IN, n))
FWDR(int, set_matmul_precision, (const cad_backend *be, int precision), (IN, precision))
FWD(matmul,
    (const cad_backend *be, int ta, int tb_, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
     int ldb, float beta, float *C, int ldc),
    (IN, ta, tb_, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
FWD(matmul_batched,
    (const cad_backend *be, int ta, int tb_, int M, int N, int K, float alpha, const float *A, int lda, long long sa,
     const float *B, int ldb, long long sb, float beta, float *C, int ldc, long long sc, int batch),
    (IN, ta, tb_, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch))
FWD(gram_batched,
    (const cad_backend *be, int ta, int M, int K, float alpha, const float *A, int lda, long long sa, float beta,
     float *C, int ldc, long long sc, int batch),
    (IN, ta, M, K, alpha, A, lda, sa, beta, C, ldc, sc, batch))
FWD(embedding_forward, (const cad_backend *be, float *out, const int32_t *ids, const float *wte, int N, int C),
    (IN, out, ids, wte, N, C))
FWD(embedding_backward, (const cad_backend *be, float *dwte, const float *dout, const int32_t *ids, int N, int C),
    (IN, dwte, dout, ids, N, C))
FWD(rmsnorm_forward, (const cad_backend *be, float *out, float *rstd, const float *in, int N, int C, float eps),
    (IN, out, rstd, in, N, C, eps))
FWD(rmsnorm_backward,
    (const cad_backend *be, float *din, const float *dout, const float *out, const float *rstd, int N, int C),
    (IN, din, dout, out, rstd, N, C))
FWD(qk_norm_rope_forward,
    (const cad_backend *be, float *q_out, float *k_out, float *rstd_q, float *rstd_k, const float *qkv,
     const float *q_gain, const float *cos, const float *sin, int B, int T, int NH, int KV, int HD, float eps),
    (IN, q_out, k_out, rstd_q, rstd_k, qkv, q_gain, cos, sin, B, T, NH, KV, HD, eps))
FWD(qk_norm_rope_backward,
    (const cad_backend *be, float *dqkv, float *dq_gain, const float *dq_out, const float *dk_out, const float *qkv,
     const float *rstd_q, const float *rstd_k, const float *q_gain, const float *cos, const float *sin, int B, int T,
     int NH, int KV, int HD),
    (IN, dqkv, dq_gain, dq_out, dk_out, qkv, rstd_q, rstd_k, q_gain, cos, sin, B, T, NH, KV, HD))
FWDR(size_t, attention_scratch_bytes, (const cad_backend *be, int B, int T, int NH, int KV, int HD),
     (IN, B, T, NH, KV, HD))
FWD(attention_forward,
    (const cad_backend *be, float *y, int ldy, float *lse, const float *q, int ldq, const float *k, int ldk,
     const float *v, int ldv, int B, int T, int NH, int KV, int HD, float scale, void *scratch, size_t scratch_bytes),
    (IN, y, ldy, lse, q, ldq, k, ldk, v, ldv, B, T, NH, KV, HD, scale, scratch, scratch_bytes))
FWD(attention_backward,
    (const cad_backend *be, float *dq, int lddq, float *dk, int lddk, float *dv, int lddv, const float *dy, int lddy,
     const float *y, int ldy, const float *lse, const float *q, int ldq, const float *k, int ldk, const float *v,
     int ldv, int B, int T, int NH, int KV, int HD, float scale, void *scratch, size_t scratch_bytes),
    (IN, dq, lddq, dk, lddk, dv, lddv, dy, lddy, y, ldy, lse, q, ldq, k, ldk, v, ldv, B, T, NH, KV, HD, scale,
     scratch, scratch_bytes))
FWD(xsa_forward,
    (const cad_backend *be, float *out, int ldo, const float *y, int ldy, const float *v, int ldv, int N, int NH,
     int KV, int HD),
    (IN, out, ldo, y, ldy, v, ldv, N, NH, KV, HD))
FWD(xsa_backward,
    (const cad_backend *be, float *dy, int lddy, float *dv, int lddv, const float *dout, int lddo, const float *y,
     int ldy, const float *v, int ldv, int N, int NH, int KV, int HD),
    (IN, dy, lddy, dv, lddv, dout, lddo, y, ldy, v, ldv, N, NH, KV, HD))
FWD(head_gate_forward,
    (const cad_backend *be, float *out, int ldo, const float *y, int ldy, const float *gate, int N, int NH, int HD),
    (IN, out, ldo, y, ldy, gate, N, NH, HD))
FWD(head_gate_backward,
    (const cad_backend *be, float *dy, int lddy, float *dgate, const float *dout, int lddo, const float *y, int ldy,
     const float *gate, int N, int NH, int HD),
    (IN, dy, lddy, dgate, dout, lddo, y, ldy, gate, N, NH, HD))
FWD(relu2_forward, (const cad_backend *be, float *out, const float *in, size_t n, float slope),
    (IN, out, in, n, slope))
FWD(relu2_backward, (const cad_backend *be, float *din, const float *dout, const float *in, size_t n, float slope),
    (IN, din, dout, in, n, slope))
FWD(resid_mix_forward,
    (const cad_backend *be, float *out, const float *x, const float *x0, const float *mix, int N, int C),
    (IN, out, x, x0, mix, N, C))
FWD(resid_mix_backward,
    (const cad_backend *be, float *dx, float *dx0, float *dmix, const float *dout, const float *x, const float *x0,
     const float *mix, int N, int C),
    (IN, dx, dx0, dmix, dout, x, x0, mix, N, C))
FWD(scale_add_forward,
    (const cad_backend *be, float *out, const float *x, const float *s, const float *y, int N, int C),
    (IN, out, x, s, y, N, C))
FWD(scale_add_backward,
    (const cad_backend *be, float *dy, float *ds, const float *dout, const float *y, const float *s, int N, int C),
    (IN, dy, ds, dout, y, s, N, C))
FWD(softcap_xent_forward,
    (const cad_backend *be, float *logits, float *lse, float *loss, const int32_t *targets, int N, int V, float cap),
    (IN, logits, lse, loss, targets, N, V, cap))
FWD(softcap_xent_backward,
    (const cad_backend *be, float *logits, const float *lse, const int32_t *targets, int N, int V, float cap,
     float dloss),
    (IN, logits, lse, targets, N, V, cap, dloss))
FWD(distill_kl,
    (const cad_backend *be, float *tlogits, float *loss, const float *zs, int N, int V, float temp, float alpha,
     float cap, float dloss),
    (IN, tlogits, loss, zs, N, V, temp, alpha, cap, dloss))
FWD(axpby, (const cad_backend *be, size_t n, float a, const float *x, float b, float *y), (IN, n, a, x, b, y))
FWD(scale, (const cad_backend *be, size_t n, float a, float *x), (IN, n, a, x))
FWDR(double, sumsq, (const cad_backend *be, const float *x, size_t n), (IN, x, n))
FWD(adam_update,
    (const cad_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
     float eps, float bc1, float bc2),
    (IN, p, g, m, v, n, lr, beta1, beta2, eps, bc1, bc2))
FWD(fake_quant_rows, (const cad_backend *be, float *out, const float *w, int rows, int cols, int bits),
    (IN, out, w, rows, cols, bits))
FWD(normalize_batched,
    (const cad_backend *be, float *x, size_t n, long long stride, int batch, double eps, double *sumsq),
    (IN, x, n, stride, batch, eps, sumsq))
FWD(moe_combine_forward,
    (const cad_backend *be, float *out, const float *h, const float *gate, const int32_t *pos, int N, int K, int C),
    (IN, out, h, gate, pos, N, K, C))
FWD(moe_combine_backward,
    (const cad_backend *be, float *dh, float *dgate, const float *dout, const float *h, const float *gate,
     const int32_t *pos, int N, int K, int C),
    (IN, dh, dgate, dout, h, gate, pos, N, K, C))
FWD(causal_conv1d_forward,
    (const cad_backend *be, float *out, const float *x, int ldx, const float *w, const float *bias, int B, int T,
     int E, int K),
    (IN, out, x, ldx, w, bias, B, T, E, K))
FWD(causal_conv1d_backward,
    (const cad_backend *be, float *dx, int lddx, float *dw, float *dbias, const float *dout, const float *x, int ldx,
     const float *w, const float *bias, int B, int T, int E, int K),
    (IN, dx, lddx, dw, dbias, dout, x, ldx, w, bias, B, T, E, K))
FWDR(size_t, selective_scan_scratch_bytes, (const cad_backend *be, int B, int T, int E, int S), (IN, B, T, E, S))
FWD(selective_scan_forward,
    (const cad_backend *be, float *y, float *hs, const float *u, const float *dt, const float *A_log, const float *Bm,
     const float *Cm, int ldbc, const float *D, const float *z, int ldz, const float *dt_bias, int B, int T, int E,
     int S),
    (IN, y, hs, u, dt, A_log, Bm, Cm, ldbc, D, z, ldz, dt_bias, B, T, E, S))
FWD(selective_scan_backward,
    (const cad_backend *be, float *du, float *ddt, float *dBm, float *dCm, int lddbc, float *dz, int lddz,
     float *dA_log, float *dD, float *ddt_bias, const float *dy, const float *u, const float *dt, const float *A_log,
     const float *Bm, const float *Cm, int ldbc, const float *D, const float *z, int ldz, const float *dt_bias,
     const float *hs, int B, int T, int E, int S, void *scratch, size_t scratch_bytes),
    (IN, du, ddt, dBm, dCm, lddbc, dz, lddz, dA_log, dD, ddt_bias, dy, u, dt, A_log, Bm, Cm, ldbc, D, z, ldz, dt_bias,
     hs, B, T, E, S, scratch, scratch_bytes))
#undef IN

/* ---- lifetime ------------------------------------------------------------------------------- */

int cad_timed_backend_create(const cad_backend *inner, cad_slot_timer *timer, cad_timed_backend **out, cad_err *e) {
    *out = NULL;
    if (!inner || !timer || timer->capacity < 2)
        return cad_fail(e, CAD_ECONFIG, "timed backend: needs a backend and a timer with at least 2 marks");
    cad_timed_backend *tb = calloc(1, sizeof *tb);
    int pairs = timer->capacity / 2;
    if (tb) {
        tb->p_slot = malloc((size_t)pairs * sizeof(int));
        tb->p_from = malloc((size_t)pairs * sizeof(int));
        tb->p_to = malloc((size_t)pairs * sizeof(int));
    }
    if (!tb || !tb->p_slot || !tb->p_from || !tb->p_to) {
        cad_timed_backend_free(tb);
        return cad_fail(e, CAD_ENOMEM, "timed backend: out of memory for %d pending calls", pairs);
    }
    tb->inner = inner;
    tb->timer = timer;
    tb->be.name = inner->name;
    tb->be.ctx = tb;
#define X(s) tb->be.s = t_##s;
    CAD_SLOTS(X)
#undef X
    for (int i = 0; i < S_COUNT; i++) tb->stats[i].slot = slot_names[i];
    *out = tb;
    return CAD_OK;
}

void cad_timed_backend_free(cad_timed_backend *tb) {
    if (!tb) return;
    free(tb->p_slot);
    free(tb->p_from);
    free(tb->p_to);
    free(tb);
}

const cad_backend *cad_timed_backend_get(cad_timed_backend *tb) { return &tb->be; }

void cad_timed_backend_enable(cad_timed_backend *tb, int on) {
    if (!on) cad_timed_flush(tb);
    tb->on = on;
}

void cad_timed_reset(cad_timed_backend *tb) {
    tb->n_pending = 0;
    tb->timer->reset(tb->timer->ctx);
    for (int i = 0; i < S_COUNT; i++) tb->stats[i].calls = 0, tb->stats[i].ms = 0;
}

const cad_slot_stat *cad_timed_stats(const cad_timed_backend *tb) { return tb->stats; }
