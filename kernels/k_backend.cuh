/*
 * k_backend.cuh — every cad_backend slot (engine/backend.h) implemented with the kernels of
 * kernels/k_*.cuh and cuBLAS, on one stream. Shared, unchanged, by the GPU build
 * (kernels/backend_cuda.cu, nvcc) and the emulated-kernel tests (gcc + kernels/emu), so the
 * tests exercise the very launch code, grid shapes and GEMM mappings the GPU runs.
 *
 * Ownership: kb_ctx holds the stream, the cuBLAS handle and two fixed device buffers (sumsq
 * partials, also normalize_batched's; column-sum partials); kb_ctx_init/kb_ctx_free create and destroy them. The slots never allocate (scratch
 * for attention comes from the caller, as backend.h requires).
 * Memory slots: alloc is cudaMalloc + zero fill (backend.h promises zeroed memory), copies are
 * stream-ordered cudaMemcpyAsync; copy_to_host and sumsq synchronise the stream because they
 * hand a value to the host.
 *
 * Not here: device selection and the public entry point (backend_cuda.cu), NCCL.
 */
#ifndef CADDIE_K_BACKEND_CUH
#define CADDIE_K_BACKEND_CUH

#include <string.h>

#include "engine/backend.h"
#include "kernels/k_common.cuh"
#include "kernels/k_gemm.cuh"
/* one file per op, in the slot order of engine/backend.h */
#include "kernels/k_gram_batched.cuh"
#include "kernels/k_embedding.cuh"
#include "kernels/k_rmsnorm.cuh"
#include "kernels/k_qk_norm_rope.cuh"
#include "kernels/k_attention.cuh"
#include "kernels/k_xsa.cuh"
#include "kernels/k_head_gate.cuh"
#include "kernels/k_relu2.cuh"
#include "kernels/k_resid_mix.cuh"
#include "kernels/k_scale_add.cuh"
#include "kernels/k_softcap_xent.cuh"
#include "kernels/k_distill_kl.cuh"
#include "kernels/k_axpby.cuh"
#include "kernels/k_scale.cuh"
#include "kernels/k_sumsq.cuh"
#include "kernels/k_adam_update.cuh"
#include "kernels/k_fake_quant_rows.cuh"
#include "kernels/k_normalize_batched.cuh"
#include "kernels/k_moe_combine.cuh"
#include "kernels/k_causal_conv1d.cuh"
#include "kernels/k_selective_scan.cuh"

typedef struct kb_ctx {
    cudaStream_t stream;
    cublasHandle_t blas;
    double *partials;      /* device [K_SUMSQ_MAX_BLOCKS]: sumsq and normalize_batched partials */
    double *partials_host; /* pinned host copy */
    float *colpart;        /* device [K_COLPART_FLOATS]: column-sum partials (k_colsum.cuh), q_gain
                            * partials (k_qk_norm_rope.cuh); stream order keeps users apart */
    int attn_kernel;       /* tensor-core attention generation, 1 or 2 (k_att_kernel_from_env) */
} kb_ctx;

static kb_ctx *kb_of(const cad_backend *be) { return (kb_ctx *)be->ctx; }

static void kb_ctx_init(kb_ctx *c) {
    CUDA_CHECK(cudaStreamCreate(&c->stream));
    CUBLAS_CHECK(cublasCreate(&c->blas));
    CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    CUDA_CHECK(cudaMalloc((void **)&c->partials, K_SUMSQ_MAX_BLOCKS * sizeof(double)));
    CUDA_CHECK(cudaMallocHost((void **)&c->partials_host, K_SUMSQ_MAX_BLOCKS * sizeof(double)));
    CUDA_CHECK(cudaMalloc((void **)&c->colpart, K_COLPART_FLOATS * sizeof(float)));
    c->attn_kernel = k_att_kernel_from_env();
}

static inline void kb_ctx_free(kb_ctx *c) {
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    CUDA_CHECK(cudaFreeHost(c->partials_host));
    CUDA_CHECK(cudaFree(c->partials));
    CUDA_CHECK(cudaFree(c->colpart));
    k_gemm_ws_free();
    CUBLAS_CHECK(cublasDestroy(c->blas));
    CUDA_CHECK(cudaStreamDestroy(c->stream));
}

/* ---- memory ------------------------------------------------------------------------------- */

static void *kb_alloc(const cad_backend *be, size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 256;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free allocation error; caller reports */
        return NULL;
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, kb_of(be)->stream));
    return p;
}

static void kb_free(const cad_backend *be, void *p) {
    if (!p) return;
    /* cudaFree synchronises the device, so queued work on p finishes first */
    CUDA_CHECK(cudaStreamSynchronize(kb_of(be)->stream));
    CUDA_CHECK(cudaFree(p));
}

static void kb_copy_to_device(const cad_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, kb_of(be)->stream));
    /* the host buffer may be reused as soon as we return: wait for pageable copies */
    CUDA_CHECK(cudaStreamSynchronize(kb_of(be)->stream));
}

static void kb_copy_to_host(const cad_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, kb_of(be)->stream));
    CUDA_CHECK(cudaStreamSynchronize(kb_of(be)->stream));
}

static void kb_copy(const cad_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, kb_of(be)->stream));
}

static void kb_memset_zero(const cad_backend *be, void *p, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, kb_of(be)->stream));
}

static void kb_sync(const cad_backend *be) { CUDA_CHECK(cudaStreamSynchronize(kb_of(be)->stream)); }

static void kb_set_threads(const cad_backend *be, int n) {
    (void)be;
    (void)n; /* host threads do not matter to the GPU */
}

static int kb_set_matmul_precision(const cad_backend *be, int precision) {
    (void)be;
    if (precision != CAD_PREC_FP32 && precision != CAD_PREC_BF16) return -1;
    k_gemm_bf16 = precision == CAD_PREC_BF16;
    return 0;
}

/* ---- ops -------------------------------------------------------------------------------- */

static void kb_matmul(const cad_backend *be, int trans_a, int trans_b, int M, int N, int K,
                      float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                      float *C, int ldc) {
    k_gemm_rm(kb_of(be)->blas, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C,
              ldc, 0, 1);
}

static void kb_matmul_batched(const cad_backend *be, int trans_a, int trans_b, int M, int N, int K,
                              float alpha, const float *A, int lda, long long stride_a,
                              const float *B, int ldb, long long stride_b, float beta, float *C,
                              int ldc, long long stride_c, int batch) {
    k_gemm_rm(kb_of(be)->blas, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b,
              beta, C, ldc, stride_c, batch);
}

static void kb_gram_batched(const cad_backend *be, int trans_a, int M, int K, float alpha,
                            const float *A, int lda, long long stride_a, float beta, float *C,
                            int ldc, long long stride_c, int batch) {
    k_gram_batched_launch(kb_of(be)->blas, kb_of(be)->stream, trans_a, M, K, alpha, A, lda, stride_a,
                          beta, C, ldc, stride_c, batch);
}

static void kb_embedding_forward(const cad_backend *be, float *out, const int32_t *ids,
                                 const float *wte, int N, int C) {
    k_embedding_forward_launch(kb_of(be)->stream, out, ids, wte, N, C);
}

static void kb_embedding_backward(const cad_backend *be, float *dwte, const float *dout,
                                  const int32_t *ids, int N, int C) {
    k_embedding_backward_launch(kb_of(be)->stream, dwte, dout, ids, N, C);
}

static void kb_rmsnorm_forward(const cad_backend *be, float *out, float *rstd, const float *in,
                               int N, int C, float eps) {
    k_rmsnorm_forward_launch(kb_of(be)->stream, out, rstd, in, N, C, eps);
}

static void kb_rmsnorm_backward(const cad_backend *be, float *din, const float *dout,
                                const float *out, const float *rstd, int N, int C) {
    k_rmsnorm_backward_launch(kb_of(be)->stream, din, dout, out, rstd, N, C);
}

static void kb_qk_norm_rope_forward(const cad_backend *be, float *q_out, float *k_out,
                                    float *rstd_q, float *rstd_k, const float *qkv,
                                    const float *q_gain, const float *cos, const float *sin, int B,
                                    int T, int NH, int KV, int HD, float eps) {
    k_qk_norm_rope_forward_launch(kb_of(be)->stream, q_out, k_out, rstd_q, rstd_k, qkv, q_gain,
                                  cos, sin, B, T, NH, KV, HD, eps);
}

static void kb_qk_norm_rope_backward(const cad_backend *be, float *dqkv, float *dq_gain,
                                     const float *dq_out, const float *dk_out, const float *qkv,
                                     const float *rstd_q, const float *rstd_k,
                                     const float *q_gain, const float *cos, const float *sin,
                                     int B, int T, int NH, int KV, int HD) {
    k_qk_norm_rope_backward_launch(kb_of(be)->stream, kb_of(be)->colpart, K_COLPART_FLOATS, dqkv, dq_gain,
                                   dq_out, dk_out, qkv, rstd_q, rstd_k, q_gain, cos, sin, B, T, NH, KV, HD);
}

static size_t kb_attention_scratch_bytes(const cad_backend *be, int B, int T, int NH, int KV,
                                         int HD) {
    (void)be; /* the tensor-core path (bf16 precision, HD = 64) also packs its operands there */
    return k_attention_scratch_bytes(B, T, NH, KV, k_att_use_mma(k_gemm_bf16, HD));
}

/* The fused kernels pick their path by the backend's precision (k_gemm_bf16): tensor cores
 * with bf16 operands, or fp32 SIMT. */
static void kb_attention_forward(const cad_backend *be, float *y, int ldy, float *lse,
                                 const float *q, int ldq, const float *k, int ldk, const float *v,
                                 int ldv, int B, int T, int NH, int KV, int HD, float scale,
                                 void *scratch, size_t scratch_bytes) {
    k_attention_forward_launch(kb_of(be)->stream, k_gemm_bf16, kb_of(be)->attn_kernel, y, ldy, lse, q, ldq, k, ldk, v,
                               ldv, B, T, NH, KV, HD, scale, scratch, scratch_bytes);
}

static void kb_attention_backward(const cad_backend *be, float *dq, int lddq, float *dk, int lddk,
                                  float *dv, int lddv, const float *dy, int lddy, const float *y,
                                  int ldy, const float *lse, const float *q, int ldq,
                                  const float *k, int ldk, const float *v, int ldv, int B, int T,
                                  int NH, int KV, int HD, float scale, void *scratch,
                                  size_t scratch_bytes) {
    k_attention_backward_launch(kb_of(be)->stream, k_gemm_bf16, kb_of(be)->attn_kernel, dq, lddq, dk, lddk, dv, lddv, dy,
                                lddy, y, ldy, lse, q, ldq, k, ldk, v, ldv, B, T, NH, KV, HD,
                                scale, scratch, scratch_bytes);
}

static void kb_xsa_forward(const cad_backend *be, float *out, int ldo, const float *y, int ldy, const float *v,
                           int ldv, int N, int NH, int KV, int HD) {
    k_xsa_forward_launch(kb_of(be)->stream, out, ldo, y, ldy, v, ldv, N, NH, KV, HD);
}

static void kb_xsa_backward(const cad_backend *be, float *dy, int lddy, float *dv, int lddv, const float *dout,
                            int lddo, const float *y, int ldy, const float *v, int ldv, int N, int NH, int KV,
                            int HD) {
    k_xsa_backward_launch(kb_of(be)->stream, dy, lddy, dv, lddv, dout, lddo, y, ldy, v, ldv, N, NH, KV, HD);
}

static void kb_head_gate_forward(const cad_backend *be, float *out, int ldo, const float *y, int ldy, const float *gate,
                                 int N, int NH, int HD) {
    k_head_gate_forward_launch(kb_of(be)->stream, out, ldo, y, ldy, gate, N, NH, HD);
}

static void kb_head_gate_backward(const cad_backend *be, float *dy, int lddy, float *dgate, const float *dout, int lddo,
                                  const float *y, int ldy, const float *gate, int N, int NH, int HD) {
    k_head_gate_backward_launch(kb_of(be)->stream, dy, lddy, dgate, dout, lddo, y, ldy, gate, N, NH, HD);
}

static void kb_relu2_forward(const cad_backend *be, float *out, const float *in, size_t n, float slope) {
    k_relu2_forward_launch(kb_of(be)->stream, out, in, n, slope);
}

static void kb_relu2_backward(const cad_backend *be, float *din, const float *dout,
                              const float *in, size_t n, float slope) {
    k_relu2_backward_launch(kb_of(be)->stream, din, dout, in, n, slope);
}

static void kb_resid_mix_forward(const cad_backend *be, float *out, const float *x,
                                 const float *x0, const float *mix, int N, int C) {
    k_resid_mix_forward_launch(kb_of(be)->stream, out, x, x0, mix, N, C);
}

static void kb_resid_mix_backward(const cad_backend *be, float *dx, float *dx0, float *dmix,
                                  const float *dout, const float *x, const float *x0,
                                  const float *mix, int N, int C) {
    k_resid_mix_backward_launch(kb_of(be)->stream, kb_of(be)->colpart, dx, dx0, dmix, dout, x, x0,
                                mix, N, C);
}

static void kb_scale_add_forward(const cad_backend *be, float *out, const float *x,
                                 const float *s, const float *y, int N, int C) {
    k_scale_add_forward_launch(kb_of(be)->stream, out, x, s, y, N, C);
}

static void kb_scale_add_backward(const cad_backend *be, float *dy, float *ds, const float *dout,
                                  const float *y, const float *s, int N, int C) {
    k_scale_add_backward_launch(kb_of(be)->stream, kb_of(be)->colpart, dy, ds, dout, y, s, N, C);
}

static void kb_softcap_xent_forward(const cad_backend *be, float *logits, float *lse, float *loss,
                                    const int32_t *targets, int N, int V, float cap) {
    k_softcap_xent_forward_launch(kb_of(be)->stream, logits, lse, loss, targets, N, V, cap);
}

static void kb_softcap_xent_backward(const cad_backend *be, float *logits, const float *lse,
                                     const int32_t *targets, int N, int V, float cap,
                                     float dloss) {
    k_softcap_xent_backward_launch(kb_of(be)->stream, logits, lse, targets, N, V, cap, dloss);
}

static void kb_distill_kl(const cad_backend *be, float *tlogits, float *loss, const float *zs, int N, int V,
                          float temp, float alpha, float cap, float dloss) {
    k_distill_kl_launch(kb_of(be)->stream, tlogits, loss, zs, N, V, temp, alpha, cap, dloss);
}

static void kb_axpby(const cad_backend *be, size_t n, float a, const float *x, float b, float *y) {
    k_axpby_launch(kb_of(be)->stream, n, a, x, b, y);
}

static void kb_scale(const cad_backend *be, size_t n, float a, float *x) {
    k_scale_launch(kb_of(be)->stream, n, a, x);
}

/* Partials in block order, summed on the host in that order: deterministic. */
static double kb_sumsq(const cad_backend *be, const float *x, size_t n) {
    kb_ctx *c = kb_of(be);
    int blocks = k_sumsq_launch(c->stream, c->partials, x, n);
    CUDA_CHECK(cudaMemcpyAsync(c->partials_host, c->partials, (size_t)blocks * sizeof(double),
                               cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    double s = 0.0;
    for (int i = 0; i < blocks; i++) s += c->partials_host[i];
    return s;
}

static void kb_adam_update(const cad_backend *be, float *p, const float *g, float *m, float *v,
                           size_t n, float lr, float beta1, float beta2, float eps, float bc1,
                           float bc2) {
    k_adam_update_launch(kb_of(be)->stream, p, g, m, v, n, lr, beta1, beta2, eps, bc1, bc2);
}

static void kb_fake_quant_rows(const cad_backend *be, float *out, const float *w, int rows, int cols, int bits) {
    k_fake_quant_rows_launch(kb_of(be)->stream, out, w, rows, cols, bits);
}

/* The partials buffer of kb_sumsq, in stream order; nothing comes back to the host. */
static void kb_normalize_batched(const cad_backend *be, float *x, size_t n, long long stride, int batch,
                                 double eps, double *sumsq) {
    kb_ctx *c = kb_of(be);
    k_normalize_batched_launch(c->stream, c->partials, x, n, stride, batch, eps, sumsq);
}

static void kb_moe_combine_forward(const cad_backend *be, float *out, const float *h, const float *gate,
                                   const int32_t *pos, int N, int K, int C) {
    k_moe_combine_forward_launch(kb_of(be)->stream, out, h, gate, pos, N, K, C);
}

static void kb_moe_combine_backward(const cad_backend *be, float *dh, float *dgate, const float *dout,
                                    const float *h, const float *gate, const int32_t *pos, int N, int K, int C) {
    k_moe_combine_backward_launch(kb_of(be)->stream, dh, dgate, dout, h, gate, pos, N, K, C);
}

static void kb_causal_conv1d_forward(const cad_backend *be, float *out, const float *x, int ldx, const float *w,
                                     const float *bias, int B, int T, int E, int K) {
    k_causal_conv1d_forward_launch(kb_of(be)->stream, out, x, ldx, w, bias, B, T, E, K);
}

static void kb_causal_conv1d_backward(const cad_backend *be, float *dx, int lddx, float *dw, float *dbias,
                                      const float *dout, const float *x, int ldx, const float *w, const float *bias,
                                      int B, int T, int E, int K) {
    k_causal_conv1d_backward_launch(kb_of(be)->stream, dx, lddx, dw, dbias, dout, x, ldx, w, bias, B, T, E, K);
}

static size_t kb_selective_scan_scratch_bytes(const cad_backend *be, int B, int T, int E, int S) {
    (void)be;
    return k_selective_scan_scratch_bytes(B, T, E, S);
}

static void kb_selective_scan_forward(const cad_backend *be, float *y, float *hs, const float *u, const float *dt,
                                      const float *A_log, const float *Bm, const float *Cm, int ldbc, const float *D,
                                      const float *z, int ldz, const float *dt_bias, int B, int T, int E, int S) {
    k_selective_scan_forward_launch(kb_of(be)->stream, y, hs, u, dt, A_log, Bm, Cm, ldbc, D, z, ldz, dt_bias, B, T,
                                    E, S);
}

static void kb_selective_scan_backward(const cad_backend *be, float *du, float *ddt, float *dBm, float *dCm,
                                       int lddbc, float *dz, int lddz, float *dA_log, float *dD, float *ddt_bias,
                                       const float *dy, const float *u, const float *dt, const float *A_log,
                                       const float *Bm, const float *Cm, int ldbc, const float *D, const float *z,
                                       int ldz, const float *dt_bias, const float *hs, int B, int T, int E, int S,
                                       void *scratch, size_t scratch_bytes) {
    k_selective_scan_backward_launch(kb_of(be)->stream, du, ddt, dBm, dCm, lddbc, dz, lddz, dA_log, dD, ddt_bias, dy,
                                     u, dt, A_log, Bm, Cm, ldbc, D, z, ldz, dt_bias, hs, B, T, E, S, scratch,
                                     scratch_bytes);
}

/* Fill every slot (assignments, not designated initialisers: nvcc compiles this as C++17). */
static void kb_backend_fill(cad_backend *be, kb_ctx *ctx, const char *name) {
    memset(be, 0, sizeof *be);
    be->name = name;
    be->ctx = ctx;
    be->alloc = kb_alloc;
    be->free = kb_free;
    be->copy_to_device = kb_copy_to_device;
    be->copy_to_host = kb_copy_to_host;
    be->copy = kb_copy;
    be->memset_zero = kb_memset_zero;
    be->sync = kb_sync;
    be->set_threads = kb_set_threads;
    be->set_matmul_precision = kb_set_matmul_precision;
    be->matmul = kb_matmul;
    be->matmul_batched = kb_matmul_batched;
    be->gram_batched = kb_gram_batched;
    be->embedding_forward = kb_embedding_forward;
    be->embedding_backward = kb_embedding_backward;
    be->rmsnorm_forward = kb_rmsnorm_forward;
    be->rmsnorm_backward = kb_rmsnorm_backward;
    be->qk_norm_rope_forward = kb_qk_norm_rope_forward;
    be->qk_norm_rope_backward = kb_qk_norm_rope_backward;
    be->attention_scratch_bytes = kb_attention_scratch_bytes;
    be->attention_forward = kb_attention_forward;
    be->attention_backward = kb_attention_backward;
    be->xsa_forward = kb_xsa_forward;
    be->xsa_backward = kb_xsa_backward;
    be->head_gate_forward = kb_head_gate_forward;
    be->head_gate_backward = kb_head_gate_backward;
    be->relu2_forward = kb_relu2_forward;
    be->relu2_backward = kb_relu2_backward;
    be->resid_mix_forward = kb_resid_mix_forward;
    be->resid_mix_backward = kb_resid_mix_backward;
    be->scale_add_forward = kb_scale_add_forward;
    be->scale_add_backward = kb_scale_add_backward;
    be->softcap_xent_forward = kb_softcap_xent_forward;
    be->softcap_xent_backward = kb_softcap_xent_backward;
    be->distill_kl = kb_distill_kl;
    be->axpby = kb_axpby;
    be->scale = kb_scale;
    be->sumsq = kb_sumsq;
    be->adam_update = kb_adam_update;
    be->fake_quant_rows = kb_fake_quant_rows;
    be->normalize_batched = kb_normalize_batched;
    be->moe_combine_forward = kb_moe_combine_forward;
    be->moe_combine_backward = kb_moe_combine_backward;
    be->causal_conv1d_forward = kb_causal_conv1d_forward;
    be->causal_conv1d_backward = kb_causal_conv1d_backward;
    be->selective_scan_scratch_bytes = kb_selective_scan_scratch_bytes;
    be->selective_scan_forward = kb_selective_scan_forward;
    be->selective_scan_backward = kb_selective_scan_backward;
}

#endif
