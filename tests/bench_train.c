/*
 * bench_train.c — `make bench` figures for the CPU engine (a benchmark, never pass/fail):
 *   - OpenBLAS sgemm GFLOP/s on large square matrices with the same thread count (the peak
 *     the train step is compared against);
 *   - tokens/s and achieved GFLOP/s of a full train step (zero grads, forward + backward over
 *     the micro-batches, Muon + Adam step) for
 *       (a) 4 layers x 256, 4/2 heads, vocab 1024, seq 256, 8,192 tokens/step
 *       (b) the baseline 9 x 512, 8/4 heads, vocab 1024, seq 1024, 8,192 tokens/step.
 * FLOPs counted: cad_model_bench_flops (matmuls + causal attention, 3x forward) plus the
 * Newton-Schulz matmuls of the Muon step. Built by tests/bench.sh with release flags.
 * The PyTorch ratios use the figures for torch 1.13 fp32 on a 2-core machine: (a) ~3,400,
 * (b) ~400 tokens/s. Both configs run twice: fp32 products (the reference setting) and
 * matmul_precision: bf16 (the products train_gpt.py computes under autocast).
 * Usage: bench_train [threads]   (default: all cores)
 * Not here: correctness (the unit tests), GPU figures.
 */
#include "engine/backend.h"
#include "engine/gemm_bf16.h"
#include "engine/model.h"
#include "engine/optim.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double sgemm_peak(int threads, int n) {
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * (double)n * n / (now_s() - t) / 1e9;
        if (g > best) best = g;
    }
    openblas_set_num_threads(1); /* the CPU backend's setting: it parallelises around BLAS */
    free(a), free(b), free(c);
    return best;
}

/* Per Newton-Schulz iteration on an r x c matrix (r <= c): the Gram products X Xᵀ (r²c) and
 * A·A (r³) are symmetric, computed one triangle (syrk) and counted as such; B X is 2r²c. */
static double ns_flops(int rows, int cols, int steps) {
    double r = rows < cols ? rows : cols, c = rows < cols ? cols : rows;
    return steps * (r * r * c + r * r * r + 2 * r * r * c);
}

static void bench_config(const char *label, cad_model_config mc, int tokens_per_step, int n_steps, int threads,
                         double peak, double torch_tok_s, int precision) {
    const cad_backend *be = cad_backend_cpu();
    be->set_threads(be, threads);
    if (be->set_matmul_precision(be, precision)) { printf("%s: precision not supported\n", label); return; }
    int T = mc.max_seq_len, B = tokens_per_step / T;
    mc.max_batch_seqs = B;
    cad_model m;
    cad_err e = {0};
    if (cad_model_init(&m, &mc, be, 1337, &e)) { printf("%s: model init failed: %s\n", label, e.msg); return; }
    cad_optim_param *ps = calloc((size_t)m.n_params, sizeof *ps);
    int n = 0;
    double opt_flops = 0;
    for (int i = 0; i < m.n_params; i++) {
        cad_param *p = &m.params[i];
        if (!p->numel) continue;
        cad_optim_param *q = &ps[n++];
        q->name = p->name, q->numel = (size_t)p->numel, q->data = p->data, q->grad = p->grad;
        q->rows = (int)p->shape[0], q->cols = p->ndim >= 2 ? (int)(p->numel / p->shape[0]) : 1;
        q->kind = p->group == CAD_PG_MATRIX ? CAD_OPT_MUON : CAD_OPT_ADAM;
        q->base_lr = q->kind == CAD_OPT_MUON ? 0.04 : 0.05;
        if (q->kind == CAD_OPT_MUON) opt_flops += ns_flops(q->rows, q->cols, 5);
    }
    cad_optim o;
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.0, 0};
    if (cad_optim_init(&o, be, &hp, n, ps, &e)) { printf("%s: optim init failed: %s\n", label, e.msg); return; }
    int32_t *x = malloc((size_t)B * T * 4), *y = malloc((size_t)B * T * 4);
    unsigned s = 1;
    for (int i = 0; i < B * T; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (int32_t)((s >> 8) % (unsigned)mc.vocab_size);
        y[i] = (int32_t)((s >> 4) % (unsigned)mc.vocab_size);
    }
    double best = 1e30, total = 0, total_opt = 0;
    for (int st = 0; st < n_steps + 1; st++) {
        double t = now_s();
        float loss;
        cad_model_zero_grad(&m);
        if (cad_model_forward(&m, x, y, B, T, &loss, &e) || cad_model_backward(&m, &e)) {
            printf("%s: step failed: %s\n", label, e.msg);
            return;
        }
        be->sync(be);
        double t_opt = now_s();
        cad_optim_step(&o, 1.0, 0.95);
        be->sync(be);
        double dt = now_s() - t;
        if (st > 0) { /* the first step warms caches and page-faults the arenas */
            total += dt;
            total_opt += now_s() - t_opt;
            if (dt < best) best = dt;
        }
    }
    double flops = cad_model_bench_flops(&mc, B, T) + opt_flops;
    double mean = total / n_steps;
    printf("%-58s %9.0f tok/s (%.2fx PyTorch)  %6.1f GFLOP/s  (%4.0f%% of sgemm peak)  step %.3f s (best %.3f s = %.0f tok/s, %d steps;"
           " optimizer %.3f s = %.1f GFLOP/s)\n", label, tokens_per_step / mean, tokens_per_step / mean / torch_tok_s,
           flops / mean / 1e9, 100.0 * flops / mean / 1e9 / peak, mean, best, tokens_per_step / best, n_steps, total_opt / n_steps,
           opt_flops / (total_opt / n_steps) / 1e9);
    fflush(stdout);
    free(x), free(y), free(ps);
    cad_optim_free(&o);
    cad_model_free(&m);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
    omp_set_num_threads(threads);
    /* On a shared machine one measurement can be far below the real peak: take the best of a
     * measurement before and after the train steps (printed) and relate to the first here. */
    double peak = sgemm_peak(threads, 2048);
    printf("sgemm peak (OpenBLAS, 2048^3, %d threads, best of 6)        %6.1f GFLOP/s\n", threads, peak);
    fflush(stdout);
    cad_model_config a = {.vocab_size = 1024, .num_layers = 4, .model_dim = 256, .num_heads = 4, .num_kv_heads = 2,
                          .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_seq_len = 256};
    cad_model_config b = a;
    b.num_layers = 9, b.model_dim = 512, b.num_heads = 8, b.num_kv_heads = 4, b.max_seq_len = 1024;
    bench_config("train step (a) 4Lx256 4/2h V1024 seq256 8192 tok/step", a, 8192, 4, threads, peak, 3400.0,
                 CAD_PREC_FP32);
    bench_config("train step (b) 9Lx512 8/4h V1024 seq1024 8192 tok/step", b, 8192, 2, threads, peak, 400.0,
                 CAD_PREC_FP32);
    /* matmul_precision: bf16 (train_gpt.py's autocast products: bf16 operands, fp32 sums). The
     * percentage stays relative to the fp32 sgemm peak, so it can pass 100%. */
    printf("%s bf16 GEMM kernel: %s\n", "matmul_precision: bf16 --", cad_gemm_bf16_select(CAD_GEMM_BF16_AUTO));
    bench_config("train step (a) bf16 matmuls", a, 8192, 4, threads, peak, 3400.0, CAD_PREC_BF16);
    bench_config("train step (b) bf16 matmuls", b, 8192, 2, threads, peak, 400.0, CAD_PREC_BF16);
    double peak2 = sgemm_peak(threads, 2048);
    printf("sgemm peak again after the steps                           %6.1f GFLOP/s%s\n", peak2,
           peak2 > 1.2 * peak ? "  (machine was busy during the first measurement: percentages above are high)" : "");
    return 0;
}
