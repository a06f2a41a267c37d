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
 *   SIMT (this file), fp32 FMA, 4 threads per tile row, tiles in dynamic shared memory sized
 *     by HD (any HD <= K_ATT_MAX_HD): the `matmul_precision: fp32` path, and with bf16 = 1
 *     the bf16 fallback for HD != 64 (product operands rounded to bf16 as they are loaded, P and
 *     dS rounded before their products, exactly where the CPU reference's bf16 GEMMs round).
 *   tensor cores (k_attention_mma.cuh), bf16 mma.sync m16n8k16 with fp32 accumulation, HD = 64:
 *     the `matmul_precision: bf16` path.
 * FLOP / byte estimates per kernel: kernels/README.md "Attention".
 *
 * Not here: q/k norm, RoPE and q_gain (k_qk_norm_rope.cuh), XSA (k_xsa.cuh), the projections.
 */
#ifndef CADDIE_K_ATTENTION_CUH
#define CADDIE_K_ATTENTION_CUH

#include <string.h>

#include "kernels/k_common.cuh"

#define K_ATT_MAX_HD 128 /* SIMT register accumulators hold HD/4 columns per thread */
#define K_ATT_MAX_TILE 64 /* SIMT tile side limit (register array of a row's scores) */
#define K_ATT_SHMEM (48 * 1024) /* dynamic shared memory without an opt-in attribute */

typedef struct k_attention_params {
    float *y, *lse;         /* forward outputs; lse is read by the backward */
    float *dq, *dk, *dv, *D; /* backward outputs; D: scratch [B,NH,T] */
    const float *q, *k, *v, *dy, *yf;
    int ldq, ldk, ldv, ldy, lddq, lddk, lddv, lddy;
    int B, T, NH, KV, HD, group;
    int bq, bk; /* SIMT tiles: query rows, key rows */
    int bf16;   /* SIMT: round product operands to bf16 */
    float scale;
} k_attention_params;

/* A product operand as the selected precision sees it. */
static __device__ __forceinline__ float k_att_op(float x, int bf16) {
    return bf16 ? __bfloat162float(__float2bfloat16_rn(x)) : x;
}

/* rows [r0, r0 + n) of a strided [.., ld] matrix, columns [col, col + HD), into a [n][HD+1] tile
 * (the +1 staggers rows across shared-memory banks); rows at or past T become zeros. */
static __device__ __forceinline__ void k_att_tile_load(float *dst, const float *src, int ld,
                                                       size_t rowb, int col, int r0, int n,
                                                       int T, int HD, int bf16) {
    for (int i = threadIdx.x; i < n * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD;
        float x = r0 + r < T ? src[(rowb + r0 + r) * ld + col + d] : 0.0f;
        dst[r * (HD + 1) + d] = k_att_op(x, bf16);
    }
}

/* ---- SIMT forward ------------------------------------------------------------------------- */

/* grid (query tiles, B*NH), 4*bq threads: thread (r, sub) owns query row q0 + r, the key
 * columns sub + 4i of each score tile and the output columns sub + 4j. Dynamic shared memory:
 * Q [bq][HD+1], K and V [bk][HD+1], P [bq][bk+1]. */
__global__ void k_attention_forward_simt(k_attention_params p) {
    KSHARED_DYN(sm);
    int HD = p.HD, bq = p.bq, bk = p.bk, ldh = HD + 1, ldp = bk + 1;
    float *Qs = sm, *Ks = Qs + bq * ldh, *Vs = Ks + bk * ldh, *Ps = Vs + bk * ldh;
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * bq; /* the long diagonal tiles start first */
    int r = threadIdx.x >> 2, sub = threadIdx.x & 3, t = q0 + r;
    int qend = q0 + bq < p.T ? q0 + bq : p.T, nd = (HD - sub + 3) / 4;
    size_t rowb = (size_t)b * p.T;
    k_att_tile_load(Qs, p.q, p.ldq, rowb, h * HD, q0, bq, p.T, HD, p.bf16);
    float o[K_ATT_MAX_HD / 4], s[K_ATT_MAX_TILE / 4];
    K_UNROLL
    for (int j = 0; j < K_ATT_MAX_HD / 4; j++) o[j] = 0.0f;
    /* Key 0 is visible to every row (padding rows too), so m is finite after the first tile
     * and exp(m_old - m_new) never sees -inf - -inf. */
    float m = -INFINITY, l = 0.0f;
    for (int k0 = 0; k0 < qend; k0 += bk) {
        __syncthreads(); /* Q loaded; the previous tile's K/V/P reads are done */
        k_att_tile_load(Ks, p.k, p.ldk, rowb, g * HD, k0, bk, p.T, HD, p.bf16);
        k_att_tile_load(Vs, p.v, p.ldv, rowb, g * HD, k0, bk, p.T, HD, p.bf16);
        __syncthreads();
        float mx = -INFINITY;
        K_UNROLL
        for (int i = 0; i < K_ATT_MAX_TILE / 4; i++) {
            if (i >= bk / 4) break;
            int jj = sub + 4 * i;
            float acc = 0.0f;
            for (int d = 0; d < HD; d++) acc += Qs[r * ldh + d] * Ks[jj * ldh + d];
            s[i] = k0 + jj <= t ? acc * p.scale : -INFINITY;
            mx = fmaxf(mx, s[i]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(K_FULL_MASK, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(K_FULL_MASK, mx, 2));
        float mn = fmaxf(m, mx), alpha = expf(m - mn), sum = 0.0f;
        K_UNROLL
        for (int i = 0; i < K_ATT_MAX_TILE / 4; i++) {
            if (i >= bk / 4) break;
            float e = expf(s[i] - mn);
            sum += e; /* the row sum is of the unrounded probabilities, as on the CPU */
            Ps[r * ldp + sub + 4 * i] = k_att_op(e, p.bf16);
        }
        sum += __shfl_xor_sync(K_FULL_MASK, sum, 1);
        sum += __shfl_xor_sync(K_FULL_MASK, sum, 2);
        l = l * alpha + sum;
        m = mn;
        __syncwarp(K_FULL_MASK); /* row r's P is written by the 4 lanes that read it */
        K_UNROLL
        for (int j = 0; j < K_ATT_MAX_HD / 4; j++) {
            if (j >= nd) break;
            float acc = 0.0f;
            for (int jj = 0; jj < bk; jj++) acc += Ps[r * ldp + jj] * Vs[jj * ldh + sub + 4 * j];
            o[j] = o[j] * alpha + acc;
        }
    }
    if (t < p.T) {
        float inv = 1.0f / l, *yr = p.y + (rowb + t) * p.ldy + (size_t)h * HD;
        K_UNROLL
        for (int j = 0; j < K_ATT_MAX_HD / 4; j++)
            if (j < nd) yr[sub + 4 * j] = o[j] * inv;
        if (sub == 0) p.lse[((size_t)b * p.NH + h) * p.T + t] = m + logf(l);
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

/* grid (query tiles, B*NH), 4*bq threads, thread (r, sub) as in the forward. Shared: Q and dy
 * [bq][HD+1], K and V [bk][HD+1], dS [bq][bk+1]. */
__global__ void k_attention_backward_dq_simt(k_attention_params p) {
    KSHARED_DYN(sm);
    int HD = p.HD, bq = p.bq, bk = p.bk, ldh = HD + 1, ldp = bk + 1;
    float *Qs = sm, *dYs = Qs + bq * ldh, *Ks = dYs + bq * ldh, *Vs = Ks + bk * ldh;
    float *dSs = Vs + bk * ldh;
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * bq;
    int r = threadIdx.x >> 2, sub = threadIdx.x & 3, t = q0 + r;
    int qend = q0 + bq < p.T ? q0 + bq : p.T, nd = (HD - sub + 3) / 4;
    size_t rowb = (size_t)b * p.T, stat = ((size_t)b * p.NH + h) * p.T;
    k_att_tile_load(Qs, p.q, p.ldq, rowb, h * HD, q0, bq, p.T, HD, p.bf16);
    k_att_tile_load(dYs, p.dy, p.lddy, rowb, h * HD, q0, bq, p.T, HD, p.bf16);
    float lt = t < p.T ? p.lse[stat + t] : 0.0f, Dt = t < p.T ? p.D[stat + t] : 0.0f;
    float acc_dq[K_ATT_MAX_HD / 4];
    K_UNROLL
    for (int j = 0; j < K_ATT_MAX_HD / 4; j++) acc_dq[j] = 0.0f;
    for (int k0 = 0; k0 < qend; k0 += bk) {
        __syncthreads();
        k_att_tile_load(Ks, p.k, p.ldk, rowb, g * HD, k0, bk, p.T, HD, p.bf16);
        k_att_tile_load(Vs, p.v, p.ldv, rowb, g * HD, k0, bk, p.T, HD, p.bf16);
        __syncthreads();
        for (int i = 0; i < bk / 4; i++) {
            int jj = sub + 4 * i;
            float sd = 0.0f, pd = 0.0f;
            for (int d = 0; d < HD; d++) {
                sd += Qs[r * ldh + d] * Ks[jj * ldh + d];
                pd += dYs[r * ldh + d] * Vs[jj * ldh + d];
            }
            float pr = k0 + jj <= t && t < p.T ? expf(sd * p.scale - lt) : 0.0f;
            dSs[r * ldp + jj] = k_att_op(pr * (pd - Dt) * p.scale, p.bf16);
        }
        __syncwarp(K_FULL_MASK);
        K_UNROLL
        for (int j = 0; j < K_ATT_MAX_HD / 4; j++) {
            if (j >= nd) break;
            float acc = 0.0f;
            for (int jj = 0; jj < bk; jj++) acc += dSs[r * ldp + jj] * Ks[jj * ldh + sub + 4 * j];
            acc_dq[j] += acc;
        }
    }
    if (t < p.T) {
        float *dqr = p.dq + (rowb + t) * p.lddq + (size_t)h * HD;
        K_UNROLL
        for (int j = 0; j < K_ATT_MAX_HD / 4; j++)
            if (j < nd) dqr[sub + 4 * j] = acc_dq[j];
    }
}
EMU_KERNEL(k_attention_backward_dq_simt, k_attention_params)

/* ---- SIMT backward: dK, dV ---------------------------------------------------------------- */

/* grid (key tiles, B*KV), 4*bk threads: thread (r, sub) owns key row k0 + r, query columns
 * sub + 4i of each tile and output columns sub + 4j. The group's query heads run in order inside
 * the block, so dk/dv sum them in a fixed order. Shared: K and V [bk][HD+1], Q and dy
 * [bq][HD+1], P and dS [bk][bq+1], lse and D [bq]. */
__global__ void k_attention_backward_dkv_simt(k_attention_params p) {
    KSHARED_DYN(sm);
    int HD = p.HD, bq = p.bq, bk = p.bk, ldh = HD + 1, ldp = bq + 1;
    float *Ks = sm, *Vs = Ks + bk * ldh, *Qs = Vs + bk * ldh, *dYs = Qs + bq * ldh;
    float *Ps = dYs + bq * ldh, *dSs = Ps + bk * ldp, *ls = dSs + bk * ldp, *Ds = ls + bq;
    int g = blockIdx.y % p.KV, b = blockIdx.y / p.KV;
    int k0 = blockIdx.x * bk;
    int r = threadIdx.x >> 2, sub = threadIdx.x & 3, key = k0 + r, nd = (HD - sub + 3) / 4;
    size_t rowb = (size_t)b * p.T;
    k_att_tile_load(Ks, p.k, p.ldk, rowb, g * HD, k0, bk, p.T, HD, p.bf16);
    k_att_tile_load(Vs, p.v, p.ldv, rowb, g * HD, k0, bk, p.T, HD, p.bf16);
    float acc_dk[K_ATT_MAX_HD / 4], acc_dv[K_ATT_MAX_HD / 4];
    K_UNROLL
    for (int j = 0; j < K_ATT_MAX_HD / 4; j++) acc_dk[j] = acc_dv[j] = 0.0f;
    for (int hh = 0; hh < p.group; hh++) {
        int h = g * p.group + hh;
        size_t stat = ((size_t)b * p.NH + h) * p.T;
        for (int q0 = k0 / bq * bq; q0 < p.T; q0 += bq) { /* query tiles at or below the diagonal */
            __syncthreads();
            k_att_tile_load(Qs, p.q, p.ldq, rowb, h * HD, q0, bq, p.T, HD, p.bf16);
            k_att_tile_load(dYs, p.dy, p.lddy, rowb, h * HD, q0, bq, p.T, HD, p.bf16);
            for (int i = threadIdx.x; i < bq; i += blockDim.x) {
                ls[i] = q0 + i < p.T ? p.lse[stat + q0 + i] : 0.0f;
                Ds[i] = q0 + i < p.T ? p.D[stat + q0 + i] : 0.0f;
            }
            __syncthreads();
            for (int i = 0; i < bq / 4; i++) {
                int qi = sub + 4 * i, tq = q0 + qi;
                float sd = 0.0f, pd = 0.0f;
                for (int d = 0; d < HD; d++) {
                    sd += Ks[r * ldh + d] * Qs[qi * ldh + d];
                    pd += Vs[r * ldh + d] * dYs[qi * ldh + d];
                }
                float pr = key <= tq && tq < p.T ? expf(sd * p.scale - ls[qi]) : 0.0f;
                Ps[r * ldp + qi] = k_att_op(pr, p.bf16);
                dSs[r * ldp + qi] = k_att_op(pr * (pd - Ds[qi]) * p.scale, p.bf16);
            }
            __syncwarp(K_FULL_MASK);
            K_UNROLL
            for (int j = 0; j < K_ATT_MAX_HD / 4; j++) {
                if (j >= nd) break;
                int d = sub + 4 * j;
                float av = 0.0f, ak = 0.0f;
                for (int qi = 0; qi < bq; qi++) {
                    av += Ps[r * ldp + qi] * dYs[qi * ldh + d];
                    ak += dSs[r * ldp + qi] * Qs[qi * ldh + d];
                }
                acc_dv[j] += av;
                acc_dk[j] += ak;
            }
        }
    }
    if (key < p.T) {
        float *dkr = p.dk + (rowb + key) * p.lddk + (size_t)g * HD;
        float *dvr = p.dv + (rowb + key) * p.lddv + (size_t)g * HD;
        K_UNROLL
        for (int j = 0; j < K_ATT_MAX_HD / 4; j++)
            if (j < nd) {
                dkr[sub + 4 * j] = acc_dk[j];
                dvr[sub + 4 * j] = acc_dv[j];
            }
    }
}
EMU_KERNEL(k_attention_backward_dkv_simt, k_attention_params)

#include "kernels/k_attention_mma.cuh"

/* ---- launchers ---------------------------------------------------------------------------- */

enum { K_ATT_FWD, K_ATT_DQ, K_ATT_DKV };

/* Dynamic shared floats of a SIMT kernel for tiles (bq query rows, bk key rows). */
static size_t k_att_simt_floats(int kind, int bq, int bk, int HD) {
    size_t h1 = (size_t)HD + 1;
    if (kind == K_ATT_FWD) return (bq + 2 * (size_t)bk) * h1 + (size_t)bq * (bk + 1);
    if (kind == K_ATT_DQ) return (2 * (size_t)bq + 2 * (size_t)bk) * h1 + (size_t)bq * (bk + 1);
    return (2 * (size_t)bk + 2 * (size_t)bq) * h1 + 2 * (size_t)bk * (bq + 1) + 2 * (size_t)bq;
}

/* The largest SIMT tiles whose shared memory fits 48 KiB (HD <= 64: 64x32 forward, 32x32
 * backward; up to K_ATT_MAX_HD: 16x16). Sets p->bq, p->bk; returns the shared bytes. */
static size_t k_att_simt_tiles(int kind, k_attention_params *p) {
    static const int cand[][2] = {{64, 32}, {32, 32}, {32, 16}, {16, 16}, {8, 8}};
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

/* Scratch: D = rowsum(dy * y), [B,NH,T] floats (the backward's only global intermediate). */
static size_t k_attention_scratch_bytes(int B, int T, int NH) {
    return (size_t)B * NH * T * sizeof(float);
}

static void k_att_check_shapes(int B, int T, int NH, int KV, int HD) {
    K_ASSERT(KV > 0 && NH % KV == 0 && HD > 0 && HD <= K_ATT_MAX_HD);
    K_ASSERT((long long)B * NH <= 65535 && T <= 65535 * 8);
}

static void k_attention_forward_launch(cudaStream_t s, int bf16, float *y, int ldy, float *lse,
                                       const float *q, int ldq, const float *k, int ldk,
                                       const float *v, int ldv, int B, int T, int NH, int KV,
                                       int HD, float scale) {
    if (B <= 0 || T <= 0) return;
    k_att_check_shapes(B, T, NH, KV, HD);
    k_attention_params p;
    memset(&p, 0, sizeof p);
    p.y = y, p.lse = lse, p.q = q, p.k = k, p.v = v;
    p.ldq = ldq, p.ldk = ldk, p.ldv = ldv, p.ldy = ldy;
    p.B = B, p.T = T, p.NH = NH, p.KV = KV, p.HD = HD, p.group = NH / KV;
    p.bf16 = bf16, p.scale = scale;
    if (k_att_use_mma(bf16, HD)) {
        KLAUNCH(k_attention_forward_mma, KDIM3(K_CEIL_DIV(T, K_ATT_MMA_TILE), B * NH, 1),
                K_ATT_MMA_THREADS, 0, s, p);
    } else {
        size_t shm = k_att_simt_tiles(K_ATT_FWD, &p);
        KLAUNCH(k_attention_forward_simt, KDIM3(K_CEIL_DIV(T, p.bq), B * NH, 1), 4 * p.bq, shm, s, p);
    }
    K_CHECK_LAUNCH();
}

static void k_attention_backward_launch(cudaStream_t s, int bf16, float *dq, int lddq, float *dk,
                                        int lddk, float *dv, int lddv, const float *dy, int lddy,
                                        const float *y, int ldy, const float *lse, const float *q,
                                        int ldq, const float *k, int ldk, const float *v, int ldv,
                                        int B, int T, int NH, int KV, int HD, float scale,
                                        void *scratch, size_t scratch_bytes) {
    if (B <= 0 || T <= 0) return;
    k_att_check_shapes(B, T, NH, KV, HD);
    K_ASSERT(scratch_bytes >= k_attention_scratch_bytes(B, T, NH));
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
    if (k_att_use_mma(bf16, HD)) {
        int tiles = K_CEIL_DIV(T, K_ATT_MMA_TILE);
        KLAUNCH(k_attention_backward_dkv_mma, KDIM3(tiles, B * KV, 1), K_ATT_MMA_THREADS, 0, s, p);
        K_CHECK_LAUNCH();
        KLAUNCH(k_attention_backward_dq_mma, KDIM3(tiles, B * NH, 1), K_ATT_MMA_THREADS, 0, s, p);
        K_CHECK_LAUNCH();
        return;
    }
    size_t shm = k_att_simt_tiles(K_ATT_DKV, &p);
    KLAUNCH(k_attention_backward_dkv_simt, KDIM3(K_CEIL_DIV(T, p.bk), B * KV, 1), 4 * p.bk, shm, s, p);
    K_CHECK_LAUNCH();
    shm = k_att_simt_tiles(K_ATT_DQ, &p);
    KLAUNCH(k_attention_backward_dq_simt, KDIM3(K_CEIL_DIV(T, p.bq), B * NH, 1), 4 * p.bq, shm, s, p);
    K_CHECK_LAUNCH();
}

#endif
