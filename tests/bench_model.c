/*
 * bench_model.c — forward+backward throughput of the model on the CPU backend (no optimizer),
 * for issue 4's two benchmark configs, next to a measured sgemm rate on this machine.
 *
 *   (a) 4 layers x 256, 4/2 heads, vocab 1024, seq 256, 8192 tokens/step
 *   (b) 9 layers x 512, 8/4 heads, vocab 1024, seq 1024, 8192 tokens/step (the baseline shape)
 *
 * Build (release flags, from the repo root):
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -iquote . tests/bench_model.c \
 *       engine/model.c engine/mamba.c engine/backend_cpu.c engine/gemm_bf16.c engine/status.c -lopenblas -lm \
 *       -o build/bench_model
 *   ./build/bench_model [steps] [a|b|ab]
 * Prints figures, never pass/fail. `make bench` (the trainer's) times full train steps.
 * Not here: optimizer cost, data loading.
 */
#include "engine/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sgemm_rate(const cad_backend *be) {
    int n = 1024;
    float *a = be->alloc(be, sizeof(float) * n * n), *b = be->alloc(be, sizeof(float) * n * n);
    float *c = be->alloc(be, sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    be->matmul(be, 0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    /* best of 5 trials: the machine is shared, the best trial is the closest to the peak */
    int reps = 3;
    double dt = 1e30;
    for (int trial = 0; trial < 5; trial++) {
        double t0 = now_s();
        for (int r = 0; r < reps; r++) be->matmul(be, 0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double d = now_s() - t0;
        dt = d < dt ? d : dt;
    }
    be->free(be, a), be->free(be, b), be->free(be, c);
    return 2.0 * n * n * n * reps / dt / 1e9;
}

/* ---- per-slot timing: a copy of the CPU backend whose heavy slots are timed wrappers ---- */
static const cad_backend *inner;
static double t_matmul, t_att_f, t_att_b, t_xent;
#define TIMED(acc, call)           \
    do {                           \
        double t0_ = now_s();      \
        call;                      \
        acc += now_s() - t0_;      \
    } while (0)
static void w_matmul(const cad_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    (void)be;
    TIMED(t_matmul, inner->matmul(inner, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}
static void w_att_f(const cad_backend *be, float *y, int ldy, float *lse, const float *q, int ldq, const float *k,
                    int ldk, const float *v, int ldv, int B, int T, int NH, int KV, int HD, float scale, void *sc,
                    size_t sb) {
    (void)be;
    TIMED(t_att_f, inner->attention_forward(inner, y, ldy, lse, q, ldq, k, ldk, v, ldv, B, T, NH, KV, HD, scale, sc, sb));
}
static void w_att_b(const cad_backend *be, float *dq, int lddq, float *dk, int lddk, float *dv, int lddv,
                    const float *dy, int lddy, const float *y, int ldy, const float *lse, const float *q, int ldq,
                    const float *k, int ldk, const float *v, int ldv, int B, int T, int NH, int KV, int HD,
                    float scale, void *sc, size_t sb) {
    (void)be;
    TIMED(t_att_b, inner->attention_backward(inner, dq, lddq, dk, lddk, dv, lddv, dy, lddy, y, ldy, lse, q, ldq, k,
                                             ldk, v, ldv, B, T, NH, KV, HD, scale, sc, sb));
}
static void w_xent_f(const cad_backend *be, float *logits, float *lse, float *loss, const int32_t *tg, int N, int V,
                     float cap) {
    (void)be;
    TIMED(t_xent, inner->softcap_xent_forward(inner, logits, lse, loss, tg, N, V, cap));
}
static void w_xent_b(const cad_backend *be, float *logits, const float *lse, const int32_t *tg, int N, int V,
                     float cap, float dloss) {
    (void)be;
    TIMED(t_xent, inner->softcap_xent_backward(inner, logits, lse, tg, N, V, cap, dloss));
}
static cad_backend timed_backend(void) {
    inner = cad_backend_cpu();
    cad_backend b = *inner;
    b.matmul = w_matmul, b.attention_forward = w_att_f, b.attention_backward = w_att_b;
    b.softcap_xent_forward = w_xent_f, b.softcap_xent_backward = w_xent_b;
    return b;
}

static void bench(const char *label, cad_model_config c, int tokens, int steps) {
    static cad_backend timed;
    timed = timed_backend();
    const cad_backend *be = &timed;
    int T = c.max_seq_len, B = tokens / T;
    c.max_batch_seqs = B;
    cad_model m;
    cad_err e;
    if (cad_model_init(&m, &c, be, 1, &e)) {
        printf("%s: %s\n", label, e.msg);
        return;
    }
    int32_t *x = malloc(sizeof(int32_t) * tokens), *y = malloc(sizeof(int32_t) * tokens);
    for (int i = 0; i < tokens; i++) x[i] = (i * 7919) % c.vocab_size, y[i] = (i * 104729 + 3) % c.vocab_size;
    float loss;
    cad_model_forward(&m, x, y, B, T, &loss, &e); /* warm up: page in the arenas */
    cad_model_backward(&m, &e);
    t_matmul = t_att_f = t_att_b = t_xent = 0.0;
    double tf = 0.0, tb = 0.0, c0 = cpu_s();
    for (int s = 0; s < steps; s++) {
        double t0 = now_s();
        cad_model_forward(&m, x, y, B, T, &loss, &e);
        double t1 = now_s();
        cad_model_backward(&m, &e);
        tf += t1 - t0, tb += now_s() - t1;
    }
    double cpu_per = (cpu_s() - c0) / steps;
    double per = (tf + tb) / steps, flops = cad_model_bench_flops(&c, B, T);
    printf("%s: %d x %d tokens, params %zu, activations %.1f MiB | fwd %.0f ms, bwd %.0f ms | "
           "%.0f tok/s fwd+bwd, %.1f GFLOP/s, %.2f CPU-s/step (loss %.4f)\n",
           label, B, T, m.n_param_floats, m.act_bytes / 1048576.0, 1e3 * tf / steps, 1e3 * tb / steps,
           tokens / per, flops / per / 1e9, cpu_per, loss);
    double tot = tf + tb;
    printf("    time share: matmul %.0f%%, attention fwd %.0f%% bwd %.0f%% (incl. their GEMMs), softcap+xent %.0f%%, "
           "other ops %.0f%%\n", 100 * t_matmul / tot, 100 * t_att_f / tot, 100 * t_att_b / tot, 100 * t_xent / tot,
           100 * (tot - t_matmul - t_att_f - t_att_b - t_xent) / tot);
    free(x), free(y);
    cad_model_free(&m);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 3;
    const cad_backend *be = cad_backend_cpu();
    printf("sgemm 1024^3: %.1f GFLOP/s\n", sgemm_rate(be));
    cad_model_config a = {.vocab_size = 1024, .num_layers = 4, .model_dim = 256, .num_heads = 4, .num_kv_heads = 2,
                          .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_seq_len = 256};
    cad_model_config b = a;
    b.num_layers = 9, b.model_dim = 512, b.num_heads = 8, b.num_kv_heads = 4, b.max_seq_len = 1024;
    const char *which = argc > 2 ? argv[2] : "ab"; /* run only (a) or (b): ./bench_model 3 a */
    if (strchr(which, 'a')) bench("(a) 4x256 seq256", a, 8192, steps);
    if (strchr(which, 'b')) bench("(b) 9x512 seq1024", b, 8192, steps);
    return 0;
}
