/*
 * k_normalize_batched.cuh — Muon's X_b /= ‖X_b‖ + eps for `batch` same-size matrices, with the
 * norms kept on the device (backend.h normalize_batched): no host round trip per matrix.
 *
 * Two kernels per chunk of at most K_NORM_MAX_BATCH matrices, both over a (per, batch) grid:
 * - k_normalize_batched_sumsq: block (j, b) sums the squares of its grid-stride share of matrix
 *   b in double (128-bit loads when aligned) and the fixed-shape block tree, and writes ONE
 *   partial, partials[b * per + j];
 * - k_normalize_batched_scale: every thread of matrix b's blocks adds the `per` partials in j
 *   order (the same bits in every thread), forms the factor (float)(1 / (sqrt(s) + eps)) in
 *   double like the CPU reference, block (0, b) stores s in sumsq[b], and all scale their share.
 * The partials buffer is the backend's sumsq partials (K_SUMSQ_MAX_BLOCKS doubles), so the
 * chunk times `per` never exceeds it; stream order keeps this slot and `sumsq` apart. Fixed
 * grid and fixed summation order: bit-reproducible run to run (not bit-equal to the CPU, whose
 * partition is by thread count).
 *
 * Not here: the host's eps policy (engine/optim.c), the one-vector `sumsq` (k_sumsq.cuh).
 */
#ifndef CADDIE_K_NORMALIZE_BATCHED_CUH
#define CADDIE_K_NORMALIZE_BATCHED_CUH

#include "kernels/k_common.cuh"
#include "kernels/k_sumsq.cuh"

#define K_NORM_BLOCK 256
#define K_NORM_MAX_BATCH K_SUMSQ_MAX_BLOCKS /* one partial per matrix at least */

typedef struct k_normalize_batched_params {
    float *x;          /* first matrix of the chunk */
    size_t n;          /* floats per matrix */
    long long stride;  /* floats between matrices */
    int per;           /* sumsq blocks per matrix (partials per matrix) */
    int vec;           /* 128-bit path: x and stride 16-byte aligned */
    double eps;
    double *partials;  /* [batch * per] */
    double *sumsq;     /* [batch] of the chunk */
} k_normalize_batched_params;

__global__ void k_normalize_batched_sumsq(k_normalize_batched_params p) {
    __shared__ double sh[32];
    const float *xb = p.x + (size_t)blockIdx.y * (size_t)p.stride;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
    size_t nv = p.vec ? p.n / 4 : 0;
    double s = 0.0;
    for (size_t i = tid; i < nv; i += step) {
        k_f4 v = k_ld4(xb + 4 * i);
        s += (double)v.x * v.x;
        s += (double)v.y * v.y;
        s += (double)v.z * v.z;
        s += (double)v.w * v.w;
    }
    for (size_t i = 4 * nv + tid; i < p.n; i += step) s += (double)xb[i] * xb[i];
    s = k_block_sum_d(s, sh);
    if (threadIdx.x == 0) p.partials[(size_t)blockIdx.y * p.per + blockIdx.x] = s;
}
EMU_KERNEL(k_normalize_batched_sumsq, k_normalize_batched_params)

__global__ void k_normalize_batched_scale(k_normalize_batched_params p) {
    const double *part = p.partials + (size_t)blockIdx.y * p.per;
    double s = 0.0;
    for (int j = 0; j < p.per; j++) s += part[j]; /* one order for every thread and block */
    float f = (float)(1.0 / (sqrt(s) + p.eps));
    if (blockIdx.x == 0 && threadIdx.x == 0) p.sumsq[blockIdx.y] = s;
    float *xb = p.x + (size_t)blockIdx.y * (size_t)p.stride;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
    size_t nv = p.vec ? p.n / 4 : 0;
    for (size_t i = tid; i < nv; i += step) {
        k_f4 v = k_ld4(xb + 4 * i);
        v.x *= f;
        v.y *= f;
        v.z *= f;
        v.w *= f;
        k_st4(xb + 4 * i, v);
    }
    for (size_t i = 4 * nv + tid; i < p.n; i += step) xb[i] *= f;
}
EMU_KERNEL(k_normalize_batched_scale, k_normalize_batched_params)

/* partials: the backend's K_SUMSQ_MAX_BLOCKS doubles. */
static void k_normalize_batched_launch(cudaStream_t s, double *partials, float *x, size_t n,
                                       long long stride, int batch, double eps, double *sumsq) {
    if (batch <= 0) return;
    if (n == 0) { /* empty matrices: the sums are 0 and nothing is scaled */
        CUDA_CHECK(cudaMemsetAsync(sumsq, 0, (size_t)batch * sizeof(double), s));
        return;
    }
    K_ASSERT(batch == 1 || (size_t)stride >= n);
    int vec = k_aligned16(x) && stride % 4 == 0;
    for (int b0 = 0; b0 < batch; b0 += K_NORM_MAX_BATCH) {
        int cb = batch - b0 < K_NORM_MAX_BATCH ? batch - b0 : K_NORM_MAX_BATCH;
        /* as many blocks per matrix as the partials allow and the matrix fills (4 floats a
         * thread in the first pass) */
        int per = K_SUMSQ_MAX_BLOCKS / cb, fill = k_grid_for(vec ? n / 4 : n, K_NORM_BLOCK);
        if (per > fill) per = fill;
        int sblocks = k_grid_for(vec ? n / 4 : n, K_NORM_BLOCK);
        k_normalize_batched_params p = {x + (size_t)b0 * (size_t)stride, n, stride, per, vec, eps,
                                        partials, sumsq + b0};
        KLAUNCH(k_normalize_batched_sumsq, KDIM3(per, cb, 1), K_NORM_BLOCK, 0, s, p);
        K_CHECK_LAUNCH();
        KLAUNCH(k_normalize_batched_scale, KDIM3(sblocks, cb, 1), K_NORM_BLOCK, 0, s, p);
        K_CHECK_LAUNCH();
    }
}

#endif
