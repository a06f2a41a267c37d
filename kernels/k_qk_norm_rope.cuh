/*
 * k_qk_norm_rope.cuh — attention pre-processing per (token, head): RMSNorm of the head vector, RoPE
 * with the half-split pairing, q_gain on query heads (backend.h qk_norm_rope_*).
 *
 * One warp per (token row n, head j), j < NH a query head (columns j*HD of the fused qkv row),
 * NH <= j < NH+KV a key head. Lane l handles the rotation pairs (d, d + HD/2) for d = l, l+32,..
 * so HD up to any even size works (HD/2 < 32 leaves lanes idle but still in the shuffles).
 * The backward runs a block per (row chunk, head) for dqkv, and a second kernel with one block
 * per query head for the q_gain gradient (a fixed reduction tree over all rows, no atomics), so
 * the backward is bit-reproducible.
 *
 * Not here: the v columns (attention reads them directly), the attention itself.
 */
#ifndef CADDIE_K_QK_NORM_ROPE_CUH
#define CADDIE_K_QK_NORM_ROPE_CUH

#include "kernels/k_common.cuh"

#define K_ROPE_WARPS 4
#define K_ROPE_ROWS 32 /* rows per block in the backward */
#define K_GAIN_WARPS 16 /* warps per head in the q_gain reduction */

typedef struct k_qk_norm_rope_params {
    float *q_out, *k_out;   /* forward outputs; backward: the dq_out/dk_out inputs (read) */
    float *rstd_q, *rstd_k; /* forward: written; backward: read */
    float *dqkv, *dq_gain;  /* backward outputs */
    const float *qkv, *q_gain, *cos, *sin;
    int B, T, NH, KV, HD;
    float eps;
} k_qk_norm_rope_params;

__global__ void k_qk_norm_rope_forward(k_qk_norm_rope_params p) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int heads = p.NH + p.KV, half = p.HD / 2, ld = (p.NH + 2 * p.KV) * p.HD;
    long item = (long)blockIdx.x * K_ROPE_WARPS + warp;
    if (item >= (long)p.B * p.T * heads) return; /* a whole warp leaves; no block barrier here */
    int n = (int)(item / heads), j = (int)(item % heads), t = n % p.T;
    const float *x = p.qkv + (size_t)n * ld + (size_t)j * p.HD;
    const float *cs = p.cos + (size_t)t * half, *sn = p.sin + (size_t)t * half;
    float ss = 0.0f;
    for (int d = lane; d < p.HD; d += 32) ss += x[d] * x[d];
    ss = k_warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)p.HD + p.eps);
    int is_q = j < p.NH;
    float g = is_q ? p.q_gain[j] : 1.0f;
    float *out = is_q ? p.q_out + (size_t)n * p.NH * p.HD + (size_t)j * p.HD
                      : p.k_out + (size_t)n * p.KV * p.HD + (size_t)(j - p.NH) * p.HD;
    for (int d = lane; d < half; d += 32) {
        float u1 = x[d] * r, u2 = x[d + half] * r;
        out[d] = g * (u1 * cs[d] + u2 * sn[d]);
        out[d + half] = g * (-u1 * sn[d] + u2 * cs[d]);
    }
    if (lane == 0) {
        if (is_q) p.rstd_q[(size_t)n * p.NH + j] = r;
        else p.rstd_k[(size_t)n * p.KV + (j - p.NH)] = r;
    }
}
EMU_KERNEL(k_qk_norm_rope_forward, k_qk_norm_rope_params)

/* grid (row chunks, NH+KV); block K_ROPE_WARPS warps; one warp per (row, head). */
__global__ void k_qk_norm_rope_backward(k_qk_norm_rope_params p) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int j = blockIdx.y, half = p.HD / 2, ld = (p.NH + 2 * p.KV) * p.HD, N = p.B * p.T;
    int is_q = j < p.NH;
    float g = is_q ? p.q_gain[j] : 1.0f;
    int n0 = blockIdx.x * K_ROPE_ROWS, n1 = n0 + K_ROPE_ROWS < N ? n0 + K_ROPE_ROWS : N;
    for (int n = n0 + warp; n < n1; n += K_ROPE_WARPS) {
        int t = n % p.T;
        const float *x = p.qkv + (size_t)n * ld + (size_t)j * p.HD;
        float *dx = p.dqkv + (size_t)n * ld + (size_t)j * p.HD;
        const float *cs = p.cos + (size_t)t * half, *sn = p.sin + (size_t)t * half;
        const float *dro = is_q ? p.q_out + (size_t)n * p.NH * p.HD + (size_t)j * p.HD
                                : p.k_out + (size_t)n * p.KV * p.HD + (size_t)(j - p.NH) * p.HD;
        float r = is_q ? p.rstd_q[(size_t)n * p.NH + j] : p.rstd_k[(size_t)n * p.KV + (j - p.NH)];
        float dot = 0.0f;
        for (int d = lane; d < half; d += 32) {
            float dr1 = g * dro[d], dr2 = g * dro[d + half];
            float du1 = dr1 * cs[d] - dr2 * sn[d];
            float du2 = dr1 * sn[d] + dr2 * cs[d];
            dot += du1 * x[d] * r + du2 * x[d + half] * r;
        }
        dot = k_warp_sum(dot);
        float m = dot / (float)p.HD;
        for (int d = lane; d < half; d += 32) {
            float dr1 = g * dro[d], dr2 = g * dro[d + half];
            float du1 = dr1 * cs[d] - dr2 * sn[d];
            float du2 = dr1 * sn[d] + dr2 * cs[d];
            dx[d] = r * (du1 - x[d] * r * m);
            dx[d + half] = r * (du2 - x[d + half] * r * m);
        }
    }
}
EMU_KERNEL(k_qk_norm_rope_backward, k_qk_norm_rope_params)

/* dq_gain[h] += sum over rows of dq_out . rope(norm(q)): grid NH, one block per head, warps
 * take rows w, w+K_GAIN_WARPS, ...; lanes, then warps in order: a fixed summation tree, so the
 * result does not depend on scheduling (no atomics). */
__global__ void k_qk_norm_rope_backward_gain(k_qk_norm_rope_params p) {
    __shared__ float sh[K_GAIN_WARPS];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int h = blockIdx.x, half = p.HD / 2, ld = (p.NH + 2 * p.KV) * p.HD, N = p.B * p.T;
    float acc = 0.0f;
    for (int n = warp; n < N; n += K_GAIN_WARPS) {
        int t = n % p.T;
        const float *x = p.qkv + (size_t)n * ld + (size_t)h * p.HD;
        const float *dro = p.q_out + (size_t)n * p.NH * p.HD + (size_t)h * p.HD;
        const float *cs = p.cos + (size_t)t * half, *sn = p.sin + (size_t)t * half;
        float r = p.rstd_q[(size_t)n * p.NH + h];
        for (int d = lane; d < half; d += 32) {
            float u1 = x[d] * r, u2 = x[d + half] * r;
            acc += dro[d] * (u1 * cs[d] + u2 * sn[d]) + dro[d + half] * (-u1 * sn[d] + u2 * cs[d]);
        }
    }
    acc = k_warp_sum(acc);
    if (lane == 0) sh[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int w = 0; w < K_GAIN_WARPS; w++) s += sh[w];
        p.dq_gain[h] += s;
    }
}
EMU_KERNEL(k_qk_norm_rope_backward_gain, k_qk_norm_rope_params)

static void k_qk_norm_rope_forward_launch(cudaStream_t s, float *q_out, float *k_out,
                                          float *rstd_q, float *rstd_k, const float *qkv,
                                          const float *q_gain, const float *cos,
                                          const float *sin, int B, int T, int NH, int KV,
                                          int HD, float eps) {
    long items = (long)B * T * (NH + KV);
    if (items <= 0) return;
    K_ASSERT(HD % 2 == 0);
    k_qk_norm_rope_params p = {q_out, k_out, rstd_q, rstd_k, NULL, NULL, qkv, q_gain, cos, sin,
                       B, T, NH, KV, HD, eps};
    KLAUNCH(k_qk_norm_rope_forward, (int)K_CEIL_DIV(items, K_ROPE_WARPS), 32 * K_ROPE_WARPS, 0,
            s, p);
    K_CHECK_LAUNCH();
}

static void k_qk_norm_rope_backward_launch(cudaStream_t s, float *dqkv, float *dq_gain,
                                           const float *dq_out, const float *dk_out,
                                           const float *qkv, const float *rstd_q,
                                           const float *rstd_k, const float *q_gain,
                                           const float *cos, const float *sin, int B, int T,
                                           int NH, int KV, int HD) {
    int N = B * T;
    if (N <= 0) return;
    K_ASSERT(HD % 2 == 0 && NH + KV <= 65535);
    /* the kernel reads dq_out/dk_out through the forward's output fields */
    k_qk_norm_rope_params p = {(float *)dq_out, (float *)dk_out, (float *)rstd_q, (float *)rstd_k, dqkv,
                       dq_gain, qkv, q_gain, cos, sin, B, T, NH, KV, HD, 0.0f};
    KLAUNCH(k_qk_norm_rope_backward, KDIM3(K_CEIL_DIV(N, K_ROPE_ROWS), NH + KV, 1),
            32 * K_ROPE_WARPS, 0, s, p);
    K_CHECK_LAUNCH();
    KLAUNCH(k_qk_norm_rope_backward_gain, NH, 32 * K_GAIN_WARPS, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
