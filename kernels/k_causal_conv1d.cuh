/*
 * k_causal_conv1d.cuh — Mamba's depthwise causal convolution + SiLU, forward and backward
 * (engine/backend.h causal_conv1d_*), written like engine/backend_cpu.c's reference so fp32
 * results agree to rounding.
 *
 * - forward: grid-stride, one thread per output element (n, e): K taps of its own channel,
 *   coalesced across e.
 * - backward dx: one thread per (n, e): dx = sum_k w[e,k] * dpre[n + K-1-k, e], the SiLU
 *   derivative recomputed at those rows (K^2 FLOPs a element, no scratch).
 * - backward dw, dbias: one block per 32 channels, 16 row groups; thread (group j, channel) sums
 *   the rows j, j+16, ... in order, then the 16 partials are added in group order in shared
 *   memory: a fixed order on every schedule (no atomics), so it is deterministic.
 *
 * Not here: the scan that reads the output (k_selective_scan.cuh).
 */
#ifndef CADDIE_K_CAUSAL_CONV1D_CUH
#define CADDIE_K_CAUSAL_CONV1D_CUH

#include "kernels/k_common.cuh"

#define K_CONV_MAX_K 16   /* backend.h: 1 <= K <= 16 */
#define K_CONV_CH 32      /* channels per dw block */
#define K_CONV_RG 16      /* row groups per dw block */

typedef struct k_causal_conv1d_params {
    float *out;        /* forward: out [N,E]; backward: dx (lddx) */
    int ldo;
    float *dw, *dbias; /* backward */
    const float *dout; /* backward: [N,E] */
    const float *x;
    int ldx;
    const float *w, *bias;
    int B, T, E, K;
} k_causal_conv1d_params;

static __device__ __forceinline__ float k_conv_pre(const k_causal_conv1d_params *p, size_t n, int t, int e) {
    float acc = p->bias[e];
    for (int k = 0; k < p->K; k++) {
        int back = p->K - 1 - k;
        if (t - back >= 0) acc += p->w[(size_t)e * p->K + k] * p->x[(n - (size_t)back) * p->ldx + e];
    }
    return acc;
}

/* d silu(pre) / d pre times the output gradient at row n */
static __device__ __forceinline__ float k_conv_dpre(const k_causal_conv1d_params *p, size_t n, int t, int e) {
    float pre = k_conv_pre(p, n, t, e), sg = 1.0f / (1.0f + expf(-pre));
    return p->dout[n * p->E + e] * sg * (1.0f + pre * (1.0f - sg));
}

__global__ void k_causal_conv1d_forward(k_causal_conv1d_params p) {
    size_t total = (size_t)p.B * p.T * p.E, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t n = i / p.E;
        int e = (int)(i % p.E), t = (int)(n % p.T);
        float pre = k_conv_pre(&p, n, t, e);
        p.out[n * p.E + e] = pre / (1.0f + expf(-pre));
    }
}
EMU_KERNEL(k_causal_conv1d_forward, k_causal_conv1d_params)

__global__ void k_causal_conv1d_backward_dx(k_causal_conv1d_params p) {
    size_t total = (size_t)p.B * p.T * p.E, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t n = i / p.E;
        int e = (int)(i % p.E), t = (int)(n % p.T);
        float acc = 0.0f;
        for (int k = 0; k < p.K; k++) { /* row n feeds output row n + back through tap k */
            int back = p.K - 1 - k;
            if (t + back < p.T) acc += k_conv_dpre(&p, n + (size_t)back, t + back, e) * p.w[(size_t)e * p.K + k];
        }
        p.out[n * p.ldo + e] = acc;
    }
}
EMU_KERNEL(k_causal_conv1d_backward_dx, k_causal_conv1d_params)

__global__ void k_causal_conv1d_backward_dw(k_causal_conv1d_params p) {
    __shared__ float part[K_CONV_RG][K_CONV_CH][K_CONV_MAX_K + 1];
    int c = (int)threadIdx.x % K_CONV_CH, j = (int)threadIdx.x / K_CONV_CH;
    int e = (int)blockIdx.x * K_CONV_CH + c;
    float acc[K_CONV_MAX_K + 1];
    for (int k = 0; k <= K_CONV_MAX_K; k++) acc[k] = 0.0f;
    size_t N = (size_t)p.B * p.T;
    if (e < p.E)
        for (size_t n = (size_t)j; n < N; n += K_CONV_RG) {
            int t = (int)(n % p.T);
            float dp = k_conv_dpre(&p, n, t, e);
            acc[p.K] += dp; /* bias */
            for (int k = 0; k < p.K; k++) {
                int back = p.K - 1 - k;
                if (t - back >= 0) acc[k] += dp * p.x[(n - (size_t)back) * p.ldx + e];
            }
        }
    for (int k = 0; k <= p.K; k++) part[j][c][k] = acc[k];
    __syncthreads();
    if (j == 0 && e < p.E) {
        for (int k = 0; k <= p.K; k++) {
            float s = 0.0f;
            for (int g = 0; g < K_CONV_RG; g++) s += part[g][c][k];
            if (k < p.K) p.dw[(size_t)e * p.K + k] += s;
            else p.dbias[e] += s;
        }
    }
}
EMU_KERNEL(k_causal_conv1d_backward_dw, k_causal_conv1d_params)

static void k_causal_conv1d_forward_launch(cudaStream_t s, float *out, const float *x, int ldx, const float *w,
                                           const float *bias, int B, int T, int E, int K) {
    if (B <= 0 || T <= 0 || E <= 0) return;
    K_ASSERT(K >= 1 && K <= K_CONV_MAX_K);
    k_causal_conv1d_params p = {out, E, NULL, NULL, NULL, x, ldx, w, bias, B, T, E, K};
    KLAUNCH(k_causal_conv1d_forward, k_grid_for((size_t)B * T * E, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_causal_conv1d_backward_launch(cudaStream_t s, float *dx, int lddx, float *dw, float *dbias,
                                            const float *dout, const float *x, int ldx, const float *w,
                                            const float *bias, int B, int T, int E, int K) {
    if (B <= 0 || T <= 0 || E <= 0) return;
    K_ASSERT(K >= 1 && K <= K_CONV_MAX_K);
    k_causal_conv1d_params p = {dx, lddx, dw, dbias, dout, x, ldx, w, bias, B, T, E, K};
    KLAUNCH(k_causal_conv1d_backward_dx, k_grid_for((size_t)B * T * E, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
    KLAUNCH(k_causal_conv1d_backward_dw, K_CEIL_DIV(E, K_CONV_CH), K_CONV_CH * K_CONV_RG, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
