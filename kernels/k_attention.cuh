/*
 * k_attention.cuh — causal self-attention with GQA (backend.h attention_*), fused in the
 * flash-attention-2 manner: no T x T matrix ever reaches global memory.
 *
 * Per (b, query head h), kv head g = h / (NH/KV), row t attends keys 0..t:
 *   forward   one block per (query tile, b, h) walks the key tiles up to its diagonal with an
 *             online softmax (running max m and sum l in fp32, the accumulator rescaled by
 *             exp(m_old - m_new)); y = acc / l, lse = m + log l.
 *   backward  D = rowsum(dy * y) per (b, h, t) into scratch [B,NH,T] (k_attention_backward_dot),
 *             then two kernels that recompute P = exp(scale q.k - lse) tile by tile:
 *             dK/dV: one block per (key tile, b, kv head) loops over the group's query heads and
 *                    the query tiles at or below the diagonal, accumulating in registers
 *                    (dV += P^T dy, dS = P (dP - D) scale with dP = dy v^T, dK += dS^T q);
 *             dQ:    one block per (query tile, b, h) loops over the key tiles (dQ += dS k).
 *             Every output element is written once by one thread with a fixed summation order:
 *             deterministic, no atomics (the price: S and dP are recomputed by both kernels).
 * Two implementations of each kernel:
 *   SIMT (this file), fp32 FMA, register-blocked (256 threads as 16 x 16, each a block of
 *     rows x columns of every tile product, operands read from shared memory as float2 and
 *     reused across the block), tiles in dynamic shared memory sized by HD (any even
 *     HD <= K_ATT_MAX_HD): the `matmul_precision: fp32` path, and with bf16 = 1
 *     the bf16 fallback for HD != 64 (product operands rounded to bf16 as they are loaded, P and
 *     dS rounded before their products, exactly where the CPU reference's bf16 GEMMs round).
 *   tensor cores, bf16 mma.sync m16n8k16 with fp32 accumulation, HD = 64: the
 *     `matmul_precision: bf16` path, in two generations picked by CADDIE_ATTN_KERNEL
 *     (k_att_kernel_from_env): v1 (k_attention_mma.cuh), the default, and v2
 *     (k_attention_mma2.cuh: ldmatrix, cp.async double buffering, exp2, 128-row forward tiles).
 * FLOP / byte estimates per kernel: kernels/README.md "Attention".
 *
 * Not here: q/k norm, RoPE and q_gain (k_qk_norm_rope.cuh), XSA (k_xsa.cuh), the projections.
 */
#ifndef CADDIE_K_ATTENTION_CUH
#define CADDIE_K_ATTENTION_CUH

#include <string.h>

#include "kernels/k_common.cuh"

#define K_ATT_MAX_HD 128 /* SIMT register accumulators hold HD/16 columns per thread */
#define K_ATT_SHMEM (48 * 1024) /* dynamic shared memory without an opt-in attribute */
/* SIMT register blocking: 256 threads as 16 x 16 (ty, tx); thread (ty, tx) owns the score rows
 * ty + 16i and columns tx + 16j of each tile, and output columns tx + 16c. Tile sides are
 * multiples of 16, at most K_ATT_MAX_BQ query rows and K_ATT_MAX_BK key rows. */
#define K_ATT_SIMT_THREADS 256
#define K_ATT_MAX_BQ 64
#define K_ATT_MAX_BK 32
#define K_ATT_RQ (K_ATT_MAX_BQ / 16)
#define K_ATT_RK (K_ATT_MAX_BK / 16)
#define K_ATT_RD (K_ATT_MAX_HD / 16)

typedef struct k_attention_params {
    float *y, *lse;         /* forward outputs; lse is read by the backward */
    float *dq, *dk, *dv, *D; /* backward outputs; D: scratch [B,NH,T] */
    const float *q, *k, *v, *dy, *yf;
    int ldq, ldk, ldv, ldy, lddq, lddk, lddv, lddy;
    int B, T, NH, KV, HD, group;
    int bq, bk; /* SIMT tiles: query rows, key rows (multiples of 16) */
    int ldh;    /* SIMT: row stride of the [rows][HD] shared tiles, k_att_ldh(HD) */
    int bf16;   /* SIMT: round product operands to bf16 */
    float scale;
    /* tensor-core path: the operands packed by k_att_pack (row layout p*, transposed t*) and
     * the padded length Tp (k_attention_mma.cuh) */
    const unsigned *pq, *pk, *pv, *pdy, *tq, *tk, *tv, *tdy;
    int Tp;
} k_attention_params;

/* Row stride of a shared tile of width w (even): w + 2 or w + 4, whichever makes stride / 2 odd,
 * so the 64-bit loads of 16 different rows at one column hit 16 different bank pairs, and rows
 * stay 8-byte aligned for those loads. */
static inline int k_att_ldh(int w) { return w % 4 == 0 ? w + 2 : w + 4; }

/* A product operand as the selected precision sees it. */
static __device__ __forceinline__ float k_att_op(float x, int bf16) {
    return bf16 ? __bfloat162float(__float2bfloat16_rn(x)) : x;
}

/* rows [r0, r0 + n) of a strided [.., ld] matrix, columns [col, col + HD), into a [n][ldh]
 * tile; rows at or past T become zeros. */
static __device__ __forceinline__ void k_att_tile_load(float *dst, const float *src, int ld,
                                                       size_t rowb, int col, int r0, int n,
                                                       int T, int HD, int ldh, int bf16) {
    for (int i = threadIdx.x; i < n * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD;
        float x = r0 + r < T ? src[(rowb + r0 + r) * ld + col + d] : 0.0f;
        dst[r * ldh + d] = k_att_op(x, bf16);
    }
}

static __device__ __forceinline__ k_f2 k_att_zero2(void) {
    k_f2 z;
    z.x = 0.0f;
    z.y = 0.0f;
    return z;
}

/* Max / sum over the 16 lanes (tx) of a half warp: the threads that share a score row. */
static __device__ __forceinline__ float k_att_row_max(float v) {
    for (int o = 1; o < 16; o <<= 1) v = fmaxf(v, __shfl_xor_sync(K_FULL_MASK, v, o));
    return v;
}
static __device__ __forceinline__ float k_att_row_sum(float v) {
    for (int o = 1; o < 16; o <<= 1) v += __shfl_xor_sync(K_FULL_MASK, v, o);
    return v;
}

/* ---- SIMT forward ------------------------------------------------------------------------- */

/* grid (query tiles, B*NH), 256 threads. Dynamic shared memory: Q [bq][ldh], K and V
 * [bk][ldh], P [bq][bk+2]. Register blocking: per pair of head dims a thread loads rq + rk
 * float2 and does 2·rq·rk FMAs for S; per pair of keys rq float2 + 2·nd floats for 2·rq·nd
 * FMAs of P·V (nd = HD/16): 0.375 shared loads per FMA at (64, 32) tiles and HD 64, against 2
 * when each thread owned one row (kernels/README.md, "Attention"). */
__global__ void k_attention_forward_simt(k_attention_params p) {
    KSHARED_DYN(sm);
    int HD = p.HD, bq = p.bq, bk = p.bk, ldh = p.ldh, ldp = bk + 2;
    float *Qs = sm, *Ks = Qs + bq * ldh, *Vs = Ks + bk * ldh, *Ps = Vs + bk * ldh;
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * bq; /* the long diagonal tiles start first */
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15, rq = bq >> 4, rk = bk >> 4;
    int qend = q0 + bq < p.T ? q0 + bq : p.T, nd = (HD - tx + 15) >> 4;
    size_t rowb = (size_t)b * p.T;
    k_att_tile_load(Qs, p.q, p.ldq, rowb, h * HD, q0, bq, p.T, HD, ldh, p.bf16);
    float o[K_ATT_RQ][K_ATT_RD], m[K_ATT_RQ], l[K_ATT_RQ];
    K_UNROLL
    for (int i = 0; i < K_ATT_RQ; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
        K_UNROLL
        for (int c = 0; c < K_ATT_RD; c++) o[i][c] = 0.0f;
    }
    /* Key 0 is visible to every row (padding rows too), so m is finite after the first tile
     * and exp(m_old - m_new) never sees -inf - -inf. */
    for (int k0 = 0; k0 < qend; k0 += bk) {
        __syncthreads(); /* Q loaded; the previous tile's K/V/P reads are done */
        k_att_tile_load(Ks, p.k, p.ldk, rowb, g * HD, k0, bk, p.T, HD, ldh, p.bf16);
        k_att_tile_load(Vs, p.v, p.ldv, rowb, g * HD, k0, bk, p.T, HD, ldh, p.bf16);
        __syncthreads();
        float s[K_ATT_RQ][K_ATT_RK];
        K_UNROLL
        for (int i = 0; i < K_ATT_RQ; i++)
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) s[i][j] = 0.0f;
        for (int d = 0; d < HD; d += 2) {
            k_f2 a[K_ATT_RQ], kb[K_ATT_RK];
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++) a[i] = i < rq ? k_ld2(Qs + (ty + 16 * i) * ldh + d) : k_att_zero2();
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) kb[j] = j < rk ? k_ld2(Ks + (tx + 16 * j) * ldh + d) : k_att_zero2();
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++)
                K_UNROLL
                for (int j = 0; j < K_ATT_RK; j++) {
                    s[i][j] += a[i].x * kb[j].x;
                    s[i][j] += a[i].y * kb[j].y;
                }
        }
        float alpha[K_ATT_RQ];
        K_UNROLL
        for (int i = 0; i < K_ATT_RQ; i++) {
            alpha[i] = 1.0f;
            if (i >= rq) break;
            int t = q0 + ty + 16 * i;
            float mx = -INFINITY;
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) {
                if (j >= rk) break;
                s[i][j] = k0 + tx + 16 * j <= t ? s[i][j] * p.scale : -INFINITY;
                mx = fmaxf(mx, s[i][j]);
            }
            mx = k_att_row_max(mx);
            float mn = fmaxf(m[i], mx), sum = 0.0f;
            alpha[i] = expf(m[i] - mn);
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) {
                if (j >= rk) break;
                float e = expf(s[i][j] - mn);
                sum += e; /* the row sum is of the unrounded probabilities, as on the CPU */
                Ps[(ty + 16 * i) * ldp + tx + 16 * j] = k_att_op(e, p.bf16);
            }
            l[i] = l[i] * alpha[i] + k_att_row_sum(sum);
            m[i] = mn;
        }
        __syncwarp(K_FULL_MASK); /* a thread's P rows are written by the 16 lanes of its half warp */
        K_UNROLL
        for (int i = 0; i < K_ATT_RQ; i++)
            K_UNROLL
            for (int c = 0; c < K_ATT_RD; c++) o[i][c] *= alpha[i];
        for (int kk = 0; kk < bk; kk += 2) {
            k_f2 pr[K_ATT_RQ];
            float v0[K_ATT_RD], v1[K_ATT_RD];
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++) pr[i] = i < rq ? k_ld2(Ps + (ty + 16 * i) * ldp + kk) : k_att_zero2();
            K_UNROLL
            for (int c = 0; c < K_ATT_RD; c++) {
                v0[c] = c < nd ? Vs[kk * ldh + tx + 16 * c] : 0.0f;
                v1[c] = c < nd ? Vs[(kk + 1) * ldh + tx + 16 * c] : 0.0f;
            }
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++)
                K_UNROLL
                for (int c = 0; c < K_ATT_RD; c++) {
                    o[i][c] += pr[i].x * v0[c];
                    o[i][c] += pr[i].y * v1[c];
                }
        }
    }
    K_UNROLL
    for (int i = 0; i < K_ATT_RQ; i++) {
        int t = q0 + ty + 16 * i;
        if (i >= rq || t >= p.T) break;
        float inv = 1.0f / l[i], *yr = p.y + (rowb + t) * p.ldy + (size_t)h * HD;
        K_UNROLL
        for (int c = 0; c < K_ATT_RD; c++)
            if (c < nd) yr[tx + 16 * c] = o[i][c] * inv;
        if (tx == 0) p.lse[((size_t)b * p.NH + h) * p.T + t] = m[i] + logf(l[i]);
    }
}
EMU_KERNEL(k_attention_forward_simt, k_attention_params)

/* ---- backward: D = rowsum(dy * y) --------------------------------------------------------- */

/* One warp per (token row, head): D[b,h,t] = dy . y in double (as the CPU reference), 8 warps a
 * block; grid covers B*T*NH rows. */
__global__ void k_attention_backward_dot(k_attention_params p) {
    size_t w = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    size_t rows = (size_t)p.B * p.T * p.NH;
    size_t wr = w < rows ? w : rows - 1; /* surplus warps recompute the last row, write nothing */
    int h = (int)(wr % p.NH);
    size_t n = wr / p.NH;
    const float *dyr = p.dy + n * p.lddy + (size_t)h * p.HD, *yr = p.yf + n * p.ldy + (size_t)h * p.HD;
    double acc = 0.0;
    for (int d = lane; d < p.HD; d += 32) acc += (double)dyr[d] * yr[d];
    acc = k_warp_sum_d(acc);
    size_t b = n / p.T, t = n % p.T;
    if (w < rows && lane == 0) p.D[(b * p.NH + h) * p.T + t] = (float)acc;
}
EMU_KERNEL(k_attention_backward_dot, k_attention_params)

/* ---- SIMT backward: dQ -------------------------------------------------------------------- */

/* grid (query tiles, B*NH), 256 threads, blocked as the forward: thread (ty, tx) owns query rows
 * ty + 16i, key columns tx + 16j of S and dP, output columns tx + 16c. Shared: Q and dy
 * [bq][ldh], K and V [bk][ldh], dS [bq][bk+2]. */
__global__ void k_attention_backward_dq_simt(k_attention_params p) {
    KSHARED_DYN(sm);
    int HD = p.HD, bq = p.bq, bk = p.bk, ldh = p.ldh, ldp = bk + 2;
    float *Qs = sm, *dYs = Qs + bq * ldh, *Ks = dYs + bq * ldh, *Vs = Ks + bk * ldh;
    float *dSs = Vs + bk * ldh;
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * bq;
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15, rq = bq >> 4, rk = bk >> 4;
    int qend = q0 + bq < p.T ? q0 + bq : p.T, nd = (HD - tx + 15) >> 4;
    size_t rowb = (size_t)b * p.T, stat = ((size_t)b * p.NH + h) * p.T;
    k_att_tile_load(Qs, p.q, p.ldq, rowb, h * HD, q0, bq, p.T, HD, ldh, p.bf16);
    k_att_tile_load(dYs, p.dy, p.lddy, rowb, h * HD, q0, bq, p.T, HD, ldh, p.bf16);
    float lt[K_ATT_RQ], Dt[K_ATT_RQ], acc_dq[K_ATT_RQ][K_ATT_RD];
    K_UNROLL
    for (int i = 0; i < K_ATT_RQ; i++) {
        int t = q0 + ty + 16 * i;
        lt[i] = i < rq && t < p.T ? p.lse[stat + t] : 0.0f;
        Dt[i] = i < rq && t < p.T ? p.D[stat + t] : 0.0f;
        K_UNROLL
        for (int c = 0; c < K_ATT_RD; c++) acc_dq[i][c] = 0.0f;
    }
    for (int k0 = 0; k0 < qend; k0 += bk) {
        __syncthreads();
        k_att_tile_load(Ks, p.k, p.ldk, rowb, g * HD, k0, bk, p.T, HD, ldh, p.bf16);
        k_att_tile_load(Vs, p.v, p.ldv, rowb, g * HD, k0, bk, p.T, HD, ldh, p.bf16);
        __syncthreads();
        float sd[K_ATT_RQ][K_ATT_RK], pd[K_ATT_RQ][K_ATT_RK];
        K_UNROLL
        for (int i = 0; i < K_ATT_RQ; i++)
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) sd[i][j] = pd[i][j] = 0.0f;
        for (int d = 0; d < HD; d += 2) {
            k_f2 a[K_ATT_RQ], ay[K_ATT_RQ], kb[K_ATT_RK], vb[K_ATT_RK];
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++) {
                a[i] = i < rq ? k_ld2(Qs + (ty + 16 * i) * ldh + d) : k_att_zero2();
                ay[i] = i < rq ? k_ld2(dYs + (ty + 16 * i) * ldh + d) : k_att_zero2();
            }
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) {
                kb[j] = j < rk ? k_ld2(Ks + (tx + 16 * j) * ldh + d) : k_att_zero2();
                vb[j] = j < rk ? k_ld2(Vs + (tx + 16 * j) * ldh + d) : k_att_zero2();
            }
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++)
                K_UNROLL
                for (int j = 0; j < K_ATT_RK; j++) {
                    sd[i][j] += a[i].x * kb[j].x;
                    sd[i][j] += a[i].y * kb[j].y;
                    pd[i][j] += ay[i].x * vb[j].x;
                    pd[i][j] += ay[i].y * vb[j].y;
                }
        }
        K_UNROLL
        for (int i = 0; i < K_ATT_RQ; i++) {
            if (i >= rq) break;
            int t = q0 + ty + 16 * i;
            K_UNROLL
            for (int j = 0; j < K_ATT_RK; j++) {
                if (j >= rk) break;
                float pr = k0 + tx + 16 * j <= t && t < p.T ? expf(sd[i][j] * p.scale - lt[i]) : 0.0f;
                dSs[(ty + 16 * i) * ldp + tx + 16 * j] = k_att_op(pr * (pd[i][j] - Dt[i]) * p.scale, p.bf16);
            }
        }
        __syncwarp(K_FULL_MASK); /* dS rows are written and read by the same half warp */
        for (int kk = 0; kk < bk; kk += 2) {
            k_f2 ds[K_ATT_RQ];
            float k0v[K_ATT_RD], k1v[K_ATT_RD];
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++) ds[i] = i < rq ? k_ld2(dSs + (ty + 16 * i) * ldp + kk) : k_att_zero2();
            K_UNROLL
            for (int c = 0; c < K_ATT_RD; c++) {
                k0v[c] = c < nd ? Ks[kk * ldh + tx + 16 * c] : 0.0f;
                k1v[c] = c < nd ? Ks[(kk + 1) * ldh + tx + 16 * c] : 0.0f;
            }
            K_UNROLL
            for (int i = 0; i < K_ATT_RQ; i++)
                K_UNROLL
                for (int c = 0; c < K_ATT_RD; c++) {
                    acc_dq[i][c] += ds[i].x * k0v[c];
                    acc_dq[i][c] += ds[i].y * k1v[c];
                }
        }
    }
    K_UNROLL
    for (int i = 0; i < K_ATT_RQ; i++) {
        int t = q0 + ty + 16 * i;
        if (i >= rq || t >= p.T) break;
        float *dqr = p.dq + (rowb + t) * p.lddq + (size_t)h * HD;
        K_UNROLL
        for (int c = 0; c < K_ATT_RD; c++)
            if (c < nd) dqr[tx + 16 * c] = acc_dq[i][c];
    }
}
EMU_KERNEL(k_attention_backward_dq_simt, k_attention_params)

/* ---- SIMT backward: dK, dV ---------------------------------------------------------------- */

/* grid (key tiles, B*KV), 256 threads: thread (ty, tx) owns key rows k0 + ty + 16i, query
 * columns tx + 16j of each tile and output columns tx + 16c. The group's query heads run in
 * order inside the block, so dk/dv sum them in a fixed order. Shared: K and V [bk][ldh], Q and
 * dy [bq][ldh], P and dS [bk][bq+2], lse and D [bq]. */
__global__ void k_attention_backward_dkv_simt(k_attention_params p) {
    KSHARED_DYN(sm);
    int HD = p.HD, bq = p.bq, bk = p.bk, ldh = p.ldh, ldp = bq + 2;
    float *Ks = sm, *Vs = Ks + bk * ldh, *Qs = Vs + bk * ldh, *dYs = Qs + bq * ldh;
    float *Ps = dYs + bq * ldh, *dSs = Ps + bk * ldp, *ls = dSs + bk * ldp, *Ds = ls + bq;
    int g = blockIdx.y % p.KV, b = blockIdx.y / p.KV;
    int k0 = blockIdx.x * bk;
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15, rk = bk >> 4, rq = bq >> 4;
    int nd = (HD - tx + 15) >> 4;
    size_t rowb = (size_t)b * p.T;
    k_att_tile_load(Ks, p.k, p.ldk, rowb, g * HD, k0, bk, p.T, HD, ldh, p.bf16);
    k_att_tile_load(Vs, p.v, p.ldv, rowb, g * HD, k0, bk, p.T, HD, ldh, p.bf16);
    float acc_dk[K_ATT_RK][K_ATT_RD], acc_dv[K_ATT_RK][K_ATT_RD];
    K_UNROLL
    for (int i = 0; i < K_ATT_RK; i++)
        K_UNROLL
        for (int c = 0; c < K_ATT_RD; c++) acc_dk[i][c] = acc_dv[i][c] = 0.0f;
    for (int hh = 0; hh < p.group; hh++) {
        int h = g * p.group + hh;
        size_t stat = ((size_t)b * p.NH + h) * p.T;
        for (int q0 = k0 / bq * bq; q0 < p.T; q0 += bq) { /* query tiles at or below the diagonal */
            __syncthreads();
            k_att_tile_load(Qs, p.q, p.ldq, rowb, h * HD, q0, bq, p.T, HD, ldh, p.bf16);
            k_att_tile_load(dYs, p.dy, p.lddy, rowb, h * HD, q0, bq, p.T, HD, ldh, p.bf16);
            for (int i = threadIdx.x; i < bq; i += blockDim.x) {
                ls[i] = q0 + i < p.T ? p.lse[stat + q0 + i] : 0.0f;
                Ds[i] = q0 + i < p.T ? p.D[stat + q0 + i] : 0.0f;
            }
            __syncthreads();
            float sd[K_ATT_RK][K_ATT_RQ], pd[K_ATT_RK][K_ATT_RQ];
            K_UNROLL
            for (int i = 0; i < K_ATT_RK; i++)
                K_UNROLL
                for (int j = 0; j < K_ATT_RQ; j++) sd[i][j] = pd[i][j] = 0.0f;
            for (int d = 0; d < HD; d += 2) {
                k_f2 kr[K_ATT_RK], vr[K_ATT_RK], qc[K_ATT_RQ], yc[K_ATT_RQ];
                K_UNROLL
                for (int i = 0; i < K_ATT_RK; i++) {
                    kr[i] = i < rk ? k_ld2(Ks + (ty + 16 * i) * ldh + d) : k_att_zero2();
                    vr[i] = i < rk ? k_ld2(Vs + (ty + 16 * i) * ldh + d) : k_att_zero2();
                }
                K_UNROLL
                for (int j = 0; j < K_ATT_RQ; j++) {
                    qc[j] = j < rq ? k_ld2(Qs + (tx + 16 * j) * ldh + d) : k_att_zero2();
                    yc[j] = j < rq ? k_ld2(dYs + (tx + 16 * j) * ldh + d) : k_att_zero2();
                }
                K_UNROLL
                for (int i = 0; i < K_ATT_RK; i++)
                    K_UNROLL
                    for (int j = 0; j < K_ATT_RQ; j++) {
                        sd[i][j] += kr[i].x * qc[j].x;
                        sd[i][j] += kr[i].y * qc[j].y;
                        pd[i][j] += vr[i].x * yc[j].x;
                        pd[i][j] += vr[i].y * yc[j].y;
                    }
            }
            K_UNROLL
            for (int i = 0; i < K_ATT_RK; i++) {
                if (i >= rk) break;
                int key = k0 + ty + 16 * i;
                K_UNROLL
                for (int j = 0; j < K_ATT_RQ; j++) {
                    if (j >= rq) break;
                    int qi = tx + 16 * j, tq = q0 + qi;
                    float pr = key <= tq && tq < p.T ? expf(sd[i][j] * p.scale - ls[qi]) : 0.0f;
                    Ps[(ty + 16 * i) * ldp + qi] = k_att_op(pr, p.bf16);
                    dSs[(ty + 16 * i) * ldp + qi] = k_att_op(pr * (pd[i][j] - Ds[qi]) * p.scale, p.bf16);
                }
            }
            __syncwarp(K_FULL_MASK); /* P / dS rows are written and read by the same half warp */
            for (int qi = 0; qi < bq; qi += 2) {
                k_f2 pp[K_ATT_RK], dd[K_ATT_RK];
                float y0[K_ATT_RD], y1[K_ATT_RD], x0[K_ATT_RD], x1[K_ATT_RD];
                K_UNROLL
                for (int i = 0; i < K_ATT_RK; i++) {
                    pp[i] = i < rk ? k_ld2(Ps + (ty + 16 * i) * ldp + qi) : k_att_zero2();
                    dd[i] = i < rk ? k_ld2(dSs + (ty + 16 * i) * ldp + qi) : k_att_zero2();
                }
                K_UNROLL
                for (int c = 0; c < K_ATT_RD; c++) {
                    y0[c] = c < nd ? dYs[qi * ldh + tx + 16 * c] : 0.0f;
                    y1[c] = c < nd ? dYs[(qi + 1) * ldh + tx + 16 * c] : 0.0f;
                    x0[c] = c < nd ? Qs[qi * ldh + tx + 16 * c] : 0.0f;
                    x1[c] = c < nd ? Qs[(qi + 1) * ldh + tx + 16 * c] : 0.0f;
                }
                K_UNROLL
                for (int i = 0; i < K_ATT_RK; i++)
                    K_UNROLL
                    for (int c = 0; c < K_ATT_RD; c++) {
                        acc_dv[i][c] += pp[i].x * y0[c];
                        acc_dv[i][c] += pp[i].y * y1[c];
                        acc_dk[i][c] += dd[i].x * x0[c];
                        acc_dk[i][c] += dd[i].y * x1[c];
                    }
            }
        }
    }
    K_UNROLL
    for (int i = 0; i < K_ATT_RK; i++) {
        int key = k0 + ty + 16 * i;
        if (i >= rk || key >= p.T) break;
        float *dkr = p.dk + (rowb + key) * p.lddk + (size_t)g * HD;
        float *dvr = p.dv + (rowb + key) * p.lddv + (size_t)g * HD;
        K_UNROLL
        for (int c = 0; c < K_ATT_RD; c++)
            if (c < nd) {
                dkr[tx + 16 * c] = acc_dk[i][c];
                dvr[tx + 16 * c] = acc_dv[i][c];
            }
    }
}
EMU_KERNEL(k_attention_backward_dkv_simt, k_attention_params)

#include "kernels/k_attention_mma2.cuh"

/* ---- launchers ---------------------------------------------------------------------------- */

enum { K_ATT_FWD, K_ATT_DQ, K_ATT_DKV };

/* Dynamic shared floats of a SIMT kernel for tiles (bq query rows, bk key rows). */
static size_t k_att_simt_floats(int kind, int bq, int bk, int HD) {
    size_t h1 = (size_t)k_att_ldh(HD);
    if (kind == K_ATT_FWD) return (bq + 2 * (size_t)bk) * h1 + (size_t)bq * (bk + 2);
    if (kind == K_ATT_DQ) return (2 * (size_t)bq + 2 * (size_t)bk) * h1 + (size_t)bq * (bk + 2);
    return (2 * (size_t)bk + 2 * (size_t)bq) * h1 + 2 * (size_t)bk * (bq + 2) + 2 * (size_t)bq;
}

/* The largest SIMT tiles whose shared memory fits 48 KiB (HD <= 64: 64x32 forward, 32x32
 * backward; up to K_ATT_MAX_HD: 16x16). Sets p->bq, p->bk, p->ldh; returns the shared bytes.
 * Every candidate is a multiple of 16 within K_ATT_MAX_BQ x K_ATT_MAX_BK (the register
 * blocking's limits); 16x16 fits at HD = K_ATT_MAX_HD. */
static size_t k_att_simt_tiles(int kind, k_attention_params *p) {
    static const int cand[][2] = {{64, 32}, {32, 32}, {32, 16}, {16, 16}};
    p->ldh = k_att_ldh(p->HD);
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        size_t bytes = k_att_simt_floats(kind, cand[i][0], cand[i][1], p->HD) * sizeof(float);
        if (bytes <= K_ATT_SHMEM) {
            p->bq = cand[i][0];
            p->bk = cand[i][1];
            return bytes;
        }
    }
    K_ASSERT(!"head_dim too large for the SIMT attention tiles");
    return 0;
}

/* The tensor-core kernels serve bf16 precision at HD = 64; everything else runs SIMT. */
static int k_att_use_mma(int bf16, int HD) { return bf16 && HD == K_ATT_MMA_HD; }

/* Which tensor-core generation runs (the SIMT path has one): CADDIE_ATTN_KERNEL=v1 (64-row
 * tiles, scalar fragment loads, synchronous tiles: k_attention_mma.cuh) or v2 (ldmatrix,
 * cp.async double buffering, exp2, 128-row forward tiles: k_attention_mma2.cuh), unset = v1:
 * v1 is the generation a GPU has verified (selftest --large, docs/gpu-measurements.md); v2
 * becomes the default once a GPU session has run its selftest and timed it. Read once per
 * backend context (kb_ctx_init), so one binary can A/B both on a GPU (kernels/device_run.sh
 * measure does). Anything else is a caller error: abort, as K_ASSERT. */
static int k_att_kernel_from_env(void) {
    const char *v = getenv("CADDIE_ATTN_KERNEL");
    if (!v || !*v || strcmp(v, "v1") == 0) return 1;
    if (strcmp(v, "v2") == 0) return 2;
    fprintf(stderr, "[KERNEL ASSERT] CADDIE_ATTN_KERNEL=%s: expected v1 or v2\n", v);
    abort();
}

/* Scratch: D = rowsum(dy * y), [B,NH,T] floats, and on the tensor-core path the packed bf16
 * operands (k_att_pack): q and dy as rows and transposed ([B*NH][Tp][64] each), k as rows and
 * transposed, v as rows (the backward) or transposed (the forward) ([B*KV][Tp][64] each), every
 * array 256-byte aligned. The baseline micro-batch (B=64, T=1024, 8/4 heads): 2 MiB of D plus
 * 4 x 64 + 3 x 32 MiB of packs. v2 uses only the row arrays (pq, pdy, pk, pv) of the same
 * layout, so the size does not depend on the generation. */
typedef struct k_att_scratch {
    float *D;
    unsigned *pq, *tq, *pdy, *tdy, *pk, *tk, *pv, *tv;
    size_t bytes;
} k_att_scratch;

static size_t k_att_align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* Carves the scratch (base may be NULL to only size it). The forward's transposed v shares the
 * backward's row-v array: the two never run in one call. */
static k_att_scratch k_att_scratch_layout(void *base, int B, int T, int NH, int KV, int mma) {
    k_att_scratch sc;
    memset(&sc, 0, sizeof sc);
    char *at = (char *)base;
    size_t off = k_att_align256((size_t)B * NH * T * sizeof(float));
    sc.D = (float *)base;
    if (mma) {
        size_t Tp = (size_t)K_CEIL_DIV(T, K_ATT_MMA_TILE) * K_ATT_MMA_TILE;
        size_t nq = k_att_align256((size_t)B * NH * Tp * K_ATT_MMA_HD * 2);
        size_t nk = k_att_align256((size_t)B * KV * Tp * K_ATT_MMA_HD * 2);
        unsigned **qs[4] = {&sc.pq, &sc.tq, &sc.pdy, &sc.tdy}, **ks[3] = {&sc.pk, &sc.tk, &sc.pv};
        for (int i = 0; i < 4; i++, off += nq) *qs[i] = base ? (unsigned *)(at + off) : NULL;
        for (int i = 0; i < 3; i++, off += nk) *ks[i] = base ? (unsigned *)(at + off) : NULL;
        sc.tv = sc.pv;
    }
    sc.bytes = off;
    return sc;
}

static size_t k_attention_scratch_bytes(int B, int T, int NH, int KV, int mma) {
    return k_att_scratch_layout(NULL, B, T, NH, KV, mma).bytes;
}

/* Pack one operand (k_att_pack) for the tensor-core kernels. */
static void k_att_pack_launch(cudaStream_t s, const float *src, int ld, int B, int H, int T,
                              unsigned *row, unsigned *tr) {
    k_att_pack_params pp;
    pp.src = src, pp.ld = ld, pp.H = H, pp.T = T;
    pp.Tp = K_CEIL_DIV(T, K_ATT_MMA_TILE) * K_ATT_MMA_TILE;
    pp.row = row, pp.tr = tr;
    KLAUNCH(k_att_pack, KDIM3(pp.Tp / K_ATT_MMA_TILE, B * H, 1), 256, 0, s, pp);
    K_CHECK_LAUNCH();
}

static void k_att_check_shapes(int B, int T, int NH, int KV, int HD) {
    K_ASSERT(KV > 0 && NH % KV == 0 && HD > 0 && HD <= K_ATT_MAX_HD);
    K_ASSERT((long long)B * NH <= 65535 && T <= 65535 * 8);
}

static void k_attention_forward_launch(cudaStream_t s, int bf16, int variant, float *y, int ldy, float *lse,
                                       const float *q, int ldq, const float *k, int ldk,
                                       const float *v, int ldv, int B, int T, int NH, int KV,
                                       int HD, float scale, void *scratch, size_t scratch_bytes) {
    if (B <= 0 || T <= 0) return;
    k_att_check_shapes(B, T, NH, KV, HD);
    k_attention_params p;
    memset(&p, 0, sizeof p);
    p.y = y, p.lse = lse, p.q = q, p.k = k, p.v = v;
    p.ldq = ldq, p.ldk = ldk, p.ldv = ldv, p.ldy = ldy;
    p.B = B, p.T = T, p.NH = NH, p.KV = KV, p.HD = HD, p.group = NH / KV;
    p.bf16 = bf16, p.scale = scale;
    if (k_att_use_mma(bf16, HD)) {
        K_ASSERT(scratch_bytes >= k_attention_scratch_bytes(B, T, NH, KV, 1));
        k_att_scratch sc = k_att_scratch_layout(scratch, B, T, NH, KV, 1);
        k_att_pack_launch(s, q, ldq, B, NH, T, sc.pq, NULL);
        k_att_pack_launch(s, k, ldk, B, KV, T, sc.pk, NULL);
        p.Tp = K_CEIL_DIV(T, K_ATT_MMA_TILE) * K_ATT_MMA_TILE;
        p.pq = sc.pq, p.pk = sc.pk;
        if (variant == 2) { /* v rows (ldmatrix.trans reads them as columns) */
            k_att_pack_launch(s, v, ldv, B, KV, T, sc.pv, NULL);
            p.pv = sc.pv;
            KLAUNCH(k_attention_forward_mma2, KDIM3(K_CEIL_DIV(T, K_ATT2_FWD_ROWS), B * NH, 1),
                    K_ATT2_FWD_THREADS, 0, s, p);
        } else {
            k_att_pack_launch(s, v, ldv, B, KV, T, NULL, sc.tv);
            p.tv = sc.tv;
            KLAUNCH(k_attention_forward_mma, KDIM3(K_CEIL_DIV(T, K_ATT_MMA_TILE), B * NH, 1),
                    K_ATT_MMA_THREADS, 0, s, p);
        }
    } else {
        size_t shm = k_att_simt_tiles(K_ATT_FWD, &p);
        KLAUNCH(k_attention_forward_simt, KDIM3(K_CEIL_DIV(T, p.bq), B * NH, 1), K_ATT_SIMT_THREADS, shm, s,
                p);
    }
    K_CHECK_LAUNCH();
}

static void k_attention_backward_launch(cudaStream_t s, int bf16, int variant, float *dq, int lddq, float *dk,
                                        int lddk, float *dv, int lddv, const float *dy, int lddy,
                                        const float *y, int ldy, const float *lse, const float *q,
                                        int ldq, const float *k, int ldk, const float *v, int ldv,
                                        int B, int T, int NH, int KV, int HD, float scale,
                                        void *scratch, size_t scratch_bytes) {
    if (B <= 0 || T <= 0) return;
    k_att_check_shapes(B, T, NH, KV, HD);
    int mma = k_att_use_mma(bf16, HD);
    K_ASSERT(scratch_bytes >= k_attention_scratch_bytes(B, T, NH, KV, mma));
    k_attention_params p;
    memset(&p, 0, sizeof p);
    p.lse = (float *)lse, p.dq = dq, p.dk = dk, p.dv = dv, p.D = (float *)scratch;
    p.q = q, p.k = k, p.v = v, p.dy = dy, p.yf = y;
    p.ldq = ldq, p.ldk = ldk, p.ldv = ldv, p.ldy = ldy;
    p.lddq = lddq, p.lddk = lddk, p.lddv = lddv, p.lddy = lddy;
    p.B = B, p.T = T, p.NH = NH, p.KV = KV, p.HD = HD, p.group = NH / KV;
    p.bf16 = bf16, p.scale = scale;
    size_t rows = (size_t)B * T * NH;
    KLAUNCH(k_attention_backward_dot, (long long)K_CEIL_DIV(rows, 8), 256, 0, s, p);
    K_CHECK_LAUNCH();
    if (mma) {
        k_att_scratch sc = k_att_scratch_layout(scratch, B, T, NH, KV, 1);
        p.Tp = K_CEIL_DIV(T, K_ATT_MMA_TILE) * K_ATT_MMA_TILE;
        int tiles = K_CEIL_DIV(T, K_ATT_MMA_TILE);
        if (variant == 2) { /* rows only: the kernels transpose with ldmatrix.trans */
            k_att_pack_launch(s, q, ldq, B, NH, T, sc.pq, NULL);
            k_att_pack_launch(s, dy, lddy, B, NH, T, sc.pdy, NULL);
            k_att_pack_launch(s, k, ldk, B, KV, T, sc.pk, NULL);
            k_att_pack_launch(s, v, ldv, B, KV, T, sc.pv, NULL);
            p.pq = sc.pq, p.pdy = sc.pdy, p.pk = sc.pk, p.pv = sc.pv;
            KLAUNCH(k_attention_backward_dkv_mma2, KDIM3(tiles, B * KV, 1), K_ATT2_BWD_THREADS, 0, s, p);
            K_CHECK_LAUNCH();
            KLAUNCH(k_attention_backward_dq_mma2, KDIM3(tiles, B * NH, 1), K_ATT2_BWD_THREADS, 0, s, p);
            K_CHECK_LAUNCH();
            return;
        }
        k_att_pack_launch(s, q, ldq, B, NH, T, sc.pq, sc.tq);
        k_att_pack_launch(s, dy, lddy, B, NH, T, sc.pdy, sc.tdy);
        k_att_pack_launch(s, k, ldk, B, KV, T, sc.pk, sc.tk);
        k_att_pack_launch(s, v, ldv, B, KV, T, sc.pv, NULL);
        p.pq = sc.pq, p.tq = sc.tq, p.pdy = sc.pdy, p.tdy = sc.tdy, p.pk = sc.pk, p.tk = sc.tk, p.pv = sc.pv;
        KLAUNCH(k_attention_backward_dkv_mma, KDIM3(tiles, B * KV, 1), K_ATT_MMA_THREADS, 0, s, p);
        K_CHECK_LAUNCH();
        KLAUNCH(k_attention_backward_dq_mma, KDIM3(tiles, B * NH, 1), K_ATT_MMA_THREADS, 0, s, p);
        K_CHECK_LAUNCH();
        return;
    }
    size_t shm = k_att_simt_tiles(K_ATT_DKV, &p);
    KLAUNCH(k_attention_backward_dkv_simt, KDIM3(K_CEIL_DIV(T, p.bk), B * KV, 1), K_ATT_SIMT_THREADS, shm, s,
            p);
    K_CHECK_LAUNCH();
    shm = k_att_simt_tiles(K_ATT_DQ, &p);
    KLAUNCH(k_attention_backward_dq_simt, KDIM3(K_CEIL_DIV(T, p.bq), B * NH, 1), K_ATT_SIMT_THREADS, shm, s,
            p);
    K_CHECK_LAUNCH();
}

#endif
