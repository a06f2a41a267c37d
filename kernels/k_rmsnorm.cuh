/*
 * k_rmsnorm.cuh — weightless RMSNorm over rows of C (F.rms_norm(x, (C,), eps)), forward and
 * backward, one block per row.
 *
 * Forward: out = in * rstd, rstd = 1/sqrt(mean(in^2) + eps) (out may alias in: every element is
 * read into the sum before the barrier inside k_block_sum and written after it, by its owner).
 * Backward (from the forward OUTPUT and rstd): din += rstd * (dout - out * mean(dout*out)).
 * Sums are fp32 per thread then a fixed-shape tree (the CPU reference sums in double; the
 * difference is rounding, far inside the tests' NMSE bound).
 *
 * Not here: the per-head q/k norm (k_qk_norm_rope.cuh).
 */
#ifndef CADDIE_K_RMSNORM_CUH
#define CADDIE_K_RMSNORM_CUH

#include "kernels/k_common.cuh"

#define K_RMS_BLOCK 128

typedef struct k_rmsnorm_params {
    float *out;        /* forward: out; backward: din */
    float *rstd;       /* forward: written */
    const float *in;   /* forward: in; backward: out of the forward */
    const float *dout; /* backward only */
    const float *rstd_in; /* backward only */
    int N, C;
    float eps;
} k_rmsnorm_params;

__global__ void k_rmsnorm_forward(k_rmsnorm_params p) {
    __shared__ float sh[32];
    const float *x = p.in + (size_t)blockIdx.x * p.C;
    float *y = p.out + (size_t)blockIdx.x * p.C;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) ss += x[c] * x[c];
    ss = k_block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / (float)p.C + p.eps);
    if (threadIdx.x == 0) p.rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) y[c] = x[c] * r;
}
EMU_KERNEL(k_rmsnorm_forward, k_rmsnorm_params)

__global__ void k_rmsnorm_backward(k_rmsnorm_params p) {
    __shared__ float sh[32];
    const float *y = p.in + (size_t)blockIdx.x * p.C;
    const float *dy = p.dout + (size_t)blockIdx.x * p.C;
    float *dx = p.out + (size_t)blockIdx.x * p.C;
    float dot = 0.0f;
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) dot += dy[c] * y[c];
    dot = k_block_sum(dot, sh);
    float m = dot / (float)p.C, r = p.rstd_in[blockIdx.x];
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) dx[c] += r * (dy[c] - y[c] * m);
}
EMU_KERNEL(k_rmsnorm_backward, k_rmsnorm_params)

static void k_rmsnorm_forward_launch(cudaStream_t s, float *out, float *rstd, const float *in,
                                     int N, int C, float eps) {
    if (N <= 0) return;
    k_rmsnorm_params p = {out, rstd, in, NULL, NULL, N, C, eps};
    KLAUNCH(k_rmsnorm_forward, N, k_row_block(C, K_RMS_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_rmsnorm_backward_launch(cudaStream_t s, float *din, const float *dout,
                                      const float *out, const float *rstd, int N, int C) {
    if (N <= 0) return;
    k_rmsnorm_params p = {din, NULL, out, dout, rstd, N, C, 0.0f};
    KLAUNCH(k_rmsnorm_backward, N, k_row_block(C, K_RMS_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
