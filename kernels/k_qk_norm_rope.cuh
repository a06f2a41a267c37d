/*
 * k_qk_norm_rope.cuh — attention pre-processing per (token, head): RMSNorm of the head vector, RoPE
 * with the half-split pairing, q_gain on query heads (backend.h qk_norm_rope_*).
 *
 * One warp per (token row n, head j), j < NH a query head (columns j*HD of the fused qkv row),
 * NH <= j < NH+KV a key head. Lane l handles the rotation pairs (d, d + HD/2) for d = l, l+32,..
 * so HD up to any even size works (HD/2 < 32 leaves lanes idle but still in the shuffles).
 * The backward runs a block per (row chunk, head) for dqkv; the query-head blocks also reduce
 * their chunk's q_gain gradient to one partial, and a second kernel (one block per query head)
 * adds the partials in chunk order: a two-pass reduction over the whole GPU with a fixed tree,
 * no atomics, so the backward is bit-reproducible. (The gain used to be one block per head
 * looping over all N rows: 8 blocks on 132 SMs, 24 ms per step on an H200.)
 *
 * Not here: the v columns (attention reads them directly), the attention itself.
 */
#ifndef CADDIE_K_QK_NORM_ROPE_CUH
#define CADDIE_K_QK_NORM_ROPE_CUH

#include "kernels/k_common.cuh"

#define K_ROPE_WARPS 4
#define K_ROPE_ROWS 32 /* rows per block in the backward */
#define K_GAIN_THREADS 256 /* threads per head in the q_gain second pass */

typedef struct k_qk_norm_rope_params {
    float *q_out, *k_out;   /* forward outputs; backward: the dq_out/dk_out inputs (read) */
    float *rstd_q, *rstd_k; /* forward: written; backward: read */
    float *dqkv, *dq_gain;  /* backward outputs */
    float *gpart;           /* backward: q_gain partials [NH][gchunks] (backend scratch) */
    const float *qkv, *q_gain, *cos, *sin;
    int B, T, NH, KV, HD;
    float eps;
    int gchunks;            /* backward: row chunks (blocks per head) */
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

/* grid (row chunks, NH+KV); block K_ROPE_WARPS warps; one warp per (row, head). A query-head
 * block also forms its chunk's share of the q_gain gradient, sum over its rows of
 * dq_out . rope(norm(q)), from the values it already holds (the separate gain pass re-read the
 * q columns and dq_out), and writes it to gpart[head][chunk]: lanes, then warps in a fixed tree
 * (k_block_sum), no atomics. */
__global__ void k_qk_norm_rope_backward(k_qk_norm_rope_params p) {
    __shared__ float sh[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int j = blockIdx.y, half = p.HD / 2, ld = (p.NH + 2 * p.KV) * p.HD, N = p.B * p.T;
    int is_q = j < p.NH;
    float g = is_q ? p.q_gain[j] : 1.0f, gacc = 0.0f;
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
            if (is_q) {
                float u1 = x[d] * r, u2 = x[d + half] * r;
                gacc += dro[d] * (u1 * cs[d] + u2 * sn[d]) + dro[d + half] * (-u1 * sn[d] + u2 * cs[d]);
            }
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
    if (is_q) { /* uniform over the block: every thread reaches the barriers inside */
        gacc = k_block_sum(gacc, sh);
        if (threadIdx.x == 0) p.gpart[(size_t)j * gridDim.x + blockIdx.x] = gacc;
    }
}
EMU_KERNEL(k_qk_norm_rope_backward, k_qk_norm_rope_params)

/* Second pass of the q_gain gradient: dq_gain[h] += sum over chunks of gpart[h][chunk]. One
 * block per query head; thread i adds chunks i, i + K_GAIN_THREADS, ... in order, then the
 * fixed block tree: the same bits on every run. */
__global__ void k_qk_norm_rope_backward_gain(k_qk_norm_rope_params p) {
    __shared__ float sh[32];
    int h = blockIdx.x;
    float acc = 0.0f;
    for (int c = threadIdx.x; c < p.gchunks; c += blockDim.x) acc += p.gpart[(size_t)h * p.gchunks + c];
    acc = k_block_sum(acc, sh);
    if (threadIdx.x == 0) p.dq_gain[h] += acc;
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
    k_qk_norm_rope_params p = {q_out, k_out, rstd_q, rstd_k, NULL, NULL, NULL, qkv, q_gain, cos, sin,
                               B, T, NH, KV, HD, eps, 0};
    KLAUNCH(k_qk_norm_rope_forward, (int)K_CEIL_DIV(items, K_ROPE_WARPS), 32 * K_ROPE_WARPS, 0,
            s, p);
    K_CHECK_LAUNCH();
}

/* gpart: backend scratch of at least NH * ceil(N / K_ROPE_ROWS) floats (gpart_floats). */
static void k_qk_norm_rope_backward_launch(cudaStream_t s, float *gpart, size_t gpart_floats, float *dqkv,
                                           float *dq_gain, const float *dq_out, const float *dk_out,
                                           const float *qkv, const float *rstd_q,
                                           const float *rstd_k, const float *q_gain,
                                           const float *cos, const float *sin, int B, int T,
                                           int NH, int KV, int HD) {
    int N = B * T;
    if (N <= 0) return;
    int chunks = K_CEIL_DIV(N, K_ROPE_ROWS);
    K_ASSERT(HD % 2 == 0 && NH + KV <= 65535);
    K_ASSERT((size_t)NH * chunks <= gpart_floats); /* N * NH up to 32M with the 1M-float buffer */
    /* the kernel reads dq_out/dk_out through the forward's output fields */
    k_qk_norm_rope_params p = {(float *)dq_out, (float *)dk_out, (float *)rstd_q, (float *)rstd_k, dqkv,
                               dq_gain, gpart, qkv, q_gain, cos, sin, B, T, NH, KV, HD, 0.0f, chunks};
    KLAUNCH(k_qk_norm_rope_backward, KDIM3(chunks, NH + KV, 1), 32 * K_ROPE_WARPS, 0, s, p);
    K_CHECK_LAUNCH();
    if (NH > 0) {
        KLAUNCH(k_qk_norm_rope_backward_gain, NH, K_GAIN_THREADS, 0, s, p);
        K_CHECK_LAUNCH();
    }
}

#endif
