/*
 * k_attention_mma.cuh — the tensor-core attention kernels (bf16 operands, fp32 accumulation,
 * mma.sync m16n8k16 through k_mma_bf16_16816) for `matmul_precision: bf16` at HD = 64. Included
 * by k_attention.cuh, which holds the parameter struct, the SIMT kernels (the fp32 path and
 * the bf16 fallback for other HD) and the launchers.
 *
 * Geometry: 4 warps a block, 64-row tiles on both sides; each warp owns 16 rows of its block's
 * tile. Operands are rounded to bf16 once, when they are loaded (from global into registers for
 * the warp's own rows, into shared memory for the tile every warp reads), and stored as bf16
 * pairs in 32-bit words: rows [64][36] (72 bf16, the 4-word pad puts the 8 rows x 4 words a
 * fragment load touches on 32 distinct banks) or, for the operands an mma needs with k along
 * the row index, transposed [64][36] (word (d, j/2) = rows j, j+1 of column d).
 * The FA2 register trick: the fp32 C fragment of a score tile (16 rows x 8 keys per n-tile) is
 * laid out exactly like the A fragment of the next product (two n-tiles = one 16-wide k-step),
 * so P and dS go from accumulators to operands without touching shared memory.
 * Rounding points match the CPU bf16 reference: q, k, v, dy, P and dS are rounded; scores,
 * the softmax statistics, D and every accumulator stay fp32.
 *
 * The packing kernel, the tile addressing, the A-fragment / C-to-A helpers and the epilogue
 * (k_att_mma_store) serve the v2 kernels too (k_attention_mma2.cuh, opt-in with CADDIE_ATTN_KERNEL=v2; these v1
 * kernels are the default, the generation a GPU has verified).
 *
 * Not here: the SIMT kernels and launchers (k_attention.cuh), the mma wrapper (k_common.cuh).
 */
#ifndef CADDIE_K_ATTENTION_MMA_CUH
#define CADDIE_K_ATTENTION_MMA_CUH

#include "kernels/k_common.cuh"

#define K_ATT_MMA_HD 64
#define K_ATT_MMA_TILE 64
#define K_ATT_MMA_THREADS 128
#define K_ATT_MMA_LDW 36 /* words per shared row: 32 bf16 pairs + 4 pad */

/* ---- packing: the operands rounded to bf16 once per call, in tile-friendly layouts ---------
 * k_att_pack reads one head's [T, 64] slice of a strided fp32 matrix (column offset h*64 in the
 * row of token b*T+t) and writes it rounded to bf16 (RNE, the CPU reference's rule) as words of
 * two bf16, zero-padded to Tp = T rounded up to the tile:
 *   row layout        [B*H][Tp][32 words]   (word w of row t: columns 2w, 2w+1)
 *   transposed layout [B*H][64][Tp/2 words] (word j of row d: tokens 2j, 2j+1 of column d)
 * so every tile the mma kernels stage is 64 rows of 128 contiguous bytes: 16-byte copies, no
 * conversion and no bounds checks in the inner loops, and the zero padding makes keys and
 * queries past T contribute nothing (zero q/k rows, zero dy rows). The rounding is the one the
 * tile loaders used to do, so the results are bit-identical to rounding at load. */
typedef struct k_att_pack_params {
    const float *src;
    int ld, H, T, Tp;
    unsigned *row, *tr; /* either may be NULL */
} k_att_pack_params;

/* grid (Tp/64, B*H), 256 threads: one 64-token x 64-column tile through shared memory. */
__global__ void k_att_pack(k_att_pack_params p) {
    __shared__ float tile[K_ATT_MMA_TILE][K_ATT_MMA_HD + 1];
    int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, r0 = blockIdx.x * K_ATT_MMA_TILE;
    for (int i = threadIdx.x; i < K_ATT_MMA_TILE * K_ATT_MMA_HD; i += blockDim.x) {
        int r = i / K_ATT_MMA_HD, d = i % K_ATT_MMA_HD, t = r0 + r;
        tile[r][d] = t < p.T ? p.src[((size_t)b * p.T + t) * p.ld + (size_t)h * K_ATT_MMA_HD + d] : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < K_ATT_MMA_TILE * 32; i += blockDim.x) {
        int r = i / 32, w = i % 32;
        if (p.row) p.row[((size_t)bh * p.Tp + r0 + r) * 32 + w] = k_bf16_pack(tile[r][2 * w], tile[r][2 * w + 1]);
        if (p.tr)
            p.tr[((size_t)bh * K_ATT_MMA_HD + r) * (p.Tp / 2) + r0 / 2 + w] =
                k_bf16_pack(tile[2 * w][r], tile[2 * w + 1][r]); /* here r is the column d */
    }
}
EMU_KERNEL(k_att_pack, k_att_pack_params)

/* Stage 64 rows x 32 words (row stride `stride` words in global, K_ATT_MMA_LDW in shared) with
 * 16-byte copies: 512 of them, 4 per thread. Both layouts are 16-byte aligned: tiles start at
 * multiples of 64 tokens and the shared row (36 words) is 9 x 16 bytes. */
static __device__ __forceinline__ void k_att_mma_fill(unsigned *dst, const unsigned *src, size_t stride) {
    for (int i = threadIdx.x; i < K_ATT_MMA_TILE * 8; i += blockDim.x) {
        int r = i / 8, c = i % 8;
        k_st4((float *)(dst + r * K_ATT_MMA_LDW + 4 * c), k_ld4((const float *)(src + r * stride + 4 * c)));
    }
}
/* The tile of rows [r0, r0+64) of head bh in the row layout / the transposed layout. */
static __device__ __forceinline__ const unsigned *k_att_rows_at(const unsigned *buf, int bh, int r0, int Tp) {
    return buf + ((size_t)bh * Tp + r0) * 32;
}
static __device__ __forceinline__ const unsigned *k_att_cols_at(const unsigned *buf, int bh, int r0, int Tp) {
    return buf + (size_t)bh * K_ATT_MMA_HD * (Tp / 2) + r0 / 2;
}

/* A fragments of a warp's 16 rows (t0 = its first row) x 64 columns from the row layout:
 * frag[ks][0..3] for k-step ks (columns 16ks..16ks+15), register order of the PTX table
 * (k_mma_bf16_16816). Padded rows are zeros already. */
static __device__ __forceinline__ void k_att_mma_afrag(unsigned frag[4][4], const unsigned *rows, int t0) {
    int lane = threadIdx.x % 32, g = lane >> 2, tig = lane & 3;
    K_UNROLL
    for (int ks = 0; ks < 4; ks++)
        K_UNROLL
        for (int half = 0; half < 2; half++) { /* rows g, g + 8 */
            const unsigned *x = rows + (size_t)(t0 + g + 8 * half) * 32 + 8 * ks + tig;
            frag[ks][half] = x[0];
            frag[ks][half + 2] = x[4];
        }
}

/* acc[nt] += A (16 x 64, fragments a) times B^T where B is a [64][LDW] row-layout shared
 * tile: acc[nt] covers B rows nt*8..nt*8+7 (the n index), k runs over B's 64 columns. */
static __device__ __forceinline__ void k_att_mma_abt(float acc[8][4], unsigned a[4][4],
                                                     const unsigned *B) {
    int lane = threadIdx.x % 32, g = lane >> 2, tig = lane & 3;
    K_UNROLL
    for (int nt = 0; nt < 8; nt++)
        K_UNROLL
        for (int ks = 0; ks < 4; ks++) {
            unsigned bf[2];
            bf[0] = B[(nt * 8 + g) * K_ATT_MMA_LDW + 8 * ks + tig];
            bf[1] = B[(nt * 8 + g) * K_ATT_MMA_LDW + 8 * ks + 4 + tig];
            k_mma_bf16_16816(acc[nt], a[ks], bf, acc[nt]);
        }
}

/* C fragments (16 x 64 fp32, 8 n-tiles) -> bf16 A fragments of the 4 k-steps they span. */
static __device__ __forceinline__ void k_att_mma_c2a(unsigned a[4][4], float c[8][4]) {
    K_UNROLL
    for (int ks = 0; ks < 4; ks++) {
        a[ks][0] = k_bf16_pack(c[2 * ks][0], c[2 * ks][1]);         /* row g,   k 2tig    */
        a[ks][1] = k_bf16_pack(c[2 * ks][2], c[2 * ks][3]);         /* row g+8, k 2tig    */
        a[ks][2] = k_bf16_pack(c[2 * ks + 1][0], c[2 * ks + 1][1]); /* row g,   k 2tig+8  */
        a[ks][3] = k_bf16_pack(c[2 * ks + 1][2], c[2 * ks + 1][3]); /* row g+8, k 2tig+8  */
    }
}

static __device__ __forceinline__ void k_att_mma_zero(float acc[8][4]) {
    K_UNROLL
    for (int nt = 0; nt < 8; nt++)
        K_UNROLL
        for (int c = 0; c < 4; c++) acc[nt][c] = 0.0f;
}

/* Max / sum over the 4 lanes of a quad (the lanes that share a C-fragment row). */
static __device__ __forceinline__ float k_att_quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(K_FULL_MASK, v, 1));
    return fmaxf(v, __shfl_xor_sync(K_FULL_MASK, v, 2));
}
static __device__ __forceinline__ float k_att_quad_sum(float v) {
    v += __shfl_xor_sync(K_FULL_MASK, v, 1);
    return v + __shfl_xor_sync(K_FULL_MASK, v, 2);
}

/* A warp's 16 x 64 C fragments (lane rows t0 and t0 + 8), row r times mul[r], into the fp32
 * rows b*T + t (t < T only) of a matrix with row stride ld, columns col..col+63. */
static __device__ __forceinline__ void k_att_mma_store(float *out, int ld, size_t rowb, int col, int t0, int T,
                                                       float acc[8][4], const float mul[2]) {
    int tig = threadIdx.x % 4;
    K_UNROLL
    for (int r = 0; r < 2; r++) {
        int t = t0 + 8 * r;
        if (t >= T) continue;
        float *o = out + (rowb + t) * ld + col;
        K_UNROLL
        for (int nt = 0; nt < 8; nt++) {
            o[nt * 8 + 2 * tig] = acc[nt][2 * r] * mul[r];
            o[nt * 8 + 2 * tig + 1] = acc[nt][2 * r + 1] * mul[r];
        }
    }
}

/* ---- forward ------------------------------------------------------------------------------ */

/* grid (query tiles, B*NH), 128 threads. Warp w: query rows q0 + 16w + {g, g+8}. Shared: K
 * (row layout, for S = Q K^T) and V transposed (for O += P V). */
__global__ void k_attention_forward_mma(k_attention_params p) {
    __shared__ unsigned Ks[K_ATT_MMA_TILE * K_ATT_MMA_LDW], Vt[K_ATT_MMA_HD * K_ATT_MMA_LDW];
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * K_ATT_MMA_TILE;
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, gid = lane >> 2, tig = lane & 3;
    int t0 = q0 + 16 * w + gid, qend = q0 + K_ATT_MMA_TILE < p.T ? q0 + K_ATT_MMA_TILE : p.T;
    size_t rowb = (size_t)b * p.T;
    int bq = blockIdx.y, bkv = b * p.KV + g;
    unsigned qa[4][4], pa[4][4];
    k_att_mma_afrag(qa, k_att_rows_at(p.pq, bq, 0, p.Tp), q0 + 16 * w);
    float o[8][4], s[8][4];
    k_att_mma_zero(o);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; /* rows t0, t0 + 8 */
    for (int k0 = 0; k0 < qend; k0 += K_ATT_MMA_TILE) {
        __syncthreads();
        k_att_mma_fill(Ks, k_att_rows_at(p.pk, bkv, k0, p.Tp), 32);
        k_att_mma_fill(Vt, k_att_cols_at(p.tv, bkv, k0, p.Tp), p.Tp / 2);
        __syncthreads();
        k_att_mma_zero(s);
        k_att_mma_abt(s, qa, Ks);
        float mx[2] = {-INFINITY, -INFINITY};
        int diag = k0 == q0; /* only the diagonal tile has masked keys (and keys past T) */
        K_UNROLL
        for (int nt = 0; nt < 8; nt++)
            K_UNROLL
            for (int c = 0; c < 4; c++) {
                int key = k0 + nt * 8 + 2 * tig + (c & 1), row = t0 + 8 * (c >> 1);
                s[nt][c] = !diag || key <= row ? s[nt][c] * p.scale : -INFINITY;
                mx[c >> 1] = fmaxf(mx[c >> 1], s[nt][c]);
            }
        float alpha[2], sum[2];
        K_UNROLL
        for (int r = 0; r < 2; r++) { /* the 4 lanes of a group share the row */
            mx[r] = k_att_quad_max(mx[r]);
            float mn = fmaxf(m[r], mx[r]); /* finite: key 0 is in every row's first tile */
            alpha[r] = expf(m[r] - mn);
            m[r] = mn;
            sum[r] = 0.0f;
        }
        K_UNROLL
        for (int nt = 0; nt < 8; nt++)
            K_UNROLL
            for (int c = 0; c < 4; c++) {
                s[nt][c] = expf(s[nt][c] - m[c >> 1]);
                sum[c >> 1] += s[nt][c];
                o[nt][c] *= alpha[c >> 1];
            }
        K_UNROLL
        for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + k_att_quad_sum(sum[r]);
        k_att_mma_c2a(pa, s);
        k_att_mma_abt(o, pa, Vt); /* Vt rows are head columns: O[:, nt*8..] += P V */
    }
    float inv[2] = {1.0f / l[0], 1.0f / l[1]};
    k_att_mma_store(p.y, p.ldy, rowb, h * K_ATT_MMA_HD, t0, p.T, o, inv);
    K_UNROLL
    for (int r = 0; r < 2; r++)
        if (tig == 0 && t0 + 8 * r < p.T) p.lse[((size_t)b * p.NH + h) * p.T + t0 + 8 * r] = m[r] + logf(l[r]);
}
EMU_KERNEL(k_attention_forward_mma, k_attention_params)

/* ---- backward: dQ ------------------------------------------------------------------------- */

/* grid (query tiles, B*NH), 128 threads, warp rows as in the forward. Shared: K and V (row
 * layout, for S = Q K^T and dP = dy V^T) and K transposed (for dQ += dS K). */
__global__ void k_attention_backward_dq_mma(k_attention_params p) {
    __shared__ unsigned Ks[K_ATT_MMA_TILE * K_ATT_MMA_LDW], Vs[K_ATT_MMA_TILE * K_ATT_MMA_LDW];
    __shared__ unsigned Kt[K_ATT_MMA_HD * K_ATT_MMA_LDW];
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * K_ATT_MMA_TILE;
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, gid = lane >> 2, tig = lane & 3;
    int t0 = q0 + 16 * w + gid, qend = q0 + K_ATT_MMA_TILE < p.T ? q0 + K_ATT_MMA_TILE : p.T;
    size_t rowb = (size_t)b * p.T, stat = ((size_t)b * p.NH + h) * p.T;
    int bq = blockIdx.y, bkv = b * p.KV + g;
    unsigned qa[4][4], da[4][4], sa[4][4];
    k_att_mma_afrag(qa, k_att_rows_at(p.pq, bq, 0, p.Tp), q0 + 16 * w);
    k_att_mma_afrag(da, k_att_rows_at(p.pdy, bq, 0, p.Tp), q0 + 16 * w);
    float lr[2], Dr[2];
    K_UNROLL
    for (int r = 0; r < 2; r++) {
        int t = t0 + 8 * r;
        lr[r] = t < p.T ? p.lse[stat + t] : 0.0f;
        Dr[r] = t < p.T ? p.D[stat + t] : 0.0f;
    }
    float dq[8][4], s[8][4], dp[8][4];
    k_att_mma_zero(dq);
    for (int k0 = 0; k0 < qend; k0 += K_ATT_MMA_TILE) {
        __syncthreads();
        k_att_mma_fill(Ks, k_att_rows_at(p.pk, bkv, k0, p.Tp), 32);
        k_att_mma_fill(Vs, k_att_rows_at(p.pv, bkv, k0, p.Tp), 32);
        k_att_mma_fill(Kt, k_att_cols_at(p.tk, bkv, k0, p.Tp), p.Tp / 2);
        __syncthreads();
        k_att_mma_zero(s);
        k_att_mma_zero(dp);
        k_att_mma_abt(s, qa, Ks);
        k_att_mma_abt(dp, da, Vs);
        int diag = k0 == q0; /* masked keys and rows past T only in the diagonal tile */
        K_UNROLL
        for (int nt = 0; nt < 8; nt++)
            K_UNROLL
            for (int c = 0; c < 4; c++) {
                int key = k0 + nt * 8 + 2 * tig + (c & 1), row = t0 + 8 * (c >> 1);
                float pr = !diag || (key <= row && row < p.T) ? expf(s[nt][c] * p.scale - lr[c >> 1]) : 0.0f;
                s[nt][c] = pr * (dp[nt][c] - Dr[c >> 1]) * p.scale; /* dS */
            }
        k_att_mma_c2a(sa, s);
        k_att_mma_abt(dq, sa, Kt);
    }
    const float one[2] = {1.0f, 1.0f};
    k_att_mma_store(p.dq, p.lddq, rowb, h * K_ATT_MMA_HD, t0, p.T, dq, one);
}
EMU_KERNEL(k_attention_backward_dq_mma, k_attention_params)

/* ---- backward: dK, dV --------------------------------------------------------------------- */

/* grid (key tiles, B*KV), 128 threads. Warp w: key rows k0 + 16w + {g, g+8}, whose K and V
 * fragments stay in registers; the products run transposed (S^T = K Q^T, dP^T = V dy^T), so
 * P^T and dS^T come out as A fragments for dV += P^T dy and dK += dS^T Q. Shared: Q and dy in
 * row layout and transposed, lse and D of the query tile. The group's query heads run in order
 * inside the block (fixed summation order). */
__global__ void k_attention_backward_dkv_mma(k_attention_params p) {
    __shared__ unsigned Qs[K_ATT_MMA_TILE * K_ATT_MMA_LDW], Qt[K_ATT_MMA_HD * K_ATT_MMA_LDW];
    __shared__ unsigned dYs[K_ATT_MMA_TILE * K_ATT_MMA_LDW], dYt[K_ATT_MMA_HD * K_ATT_MMA_LDW];
    __shared__ float ls[K_ATT_MMA_TILE], Ds[K_ATT_MMA_TILE];
    int g = blockIdx.y % p.KV, b = blockIdx.y / p.KV;
    int k0 = blockIdx.x * K_ATT_MMA_TILE;
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, gid = lane >> 2, tig = lane & 3;
    int kr0 = k0 + 16 * w + gid;
    size_t rowb = (size_t)b * p.T;
    int bkv = blockIdx.y;
    unsigned ka[4][4], va[4][4], xa[4][4];
    k_att_mma_afrag(ka, k_att_rows_at(p.pk, bkv, 0, p.Tp), k0 + 16 * w);
    k_att_mma_afrag(va, k_att_rows_at(p.pv, bkv, 0, p.Tp), k0 + 16 * w);
    float dk[8][4], dv[8][4], st[8][4], dpt[8][4];
    k_att_mma_zero(dk);
    k_att_mma_zero(dv);
    for (int hh = 0; hh < p.group; hh++) {
        int h = g * p.group + hh;
        size_t stat = ((size_t)b * p.NH + h) * p.T;
        for (int q0 = k0; q0 < p.T; q0 += K_ATT_MMA_TILE) { /* tiles at or below the diagonal */
            __syncthreads();
            int bq = b * p.NH + h;
            k_att_mma_fill(Qs, k_att_rows_at(p.pq, bq, q0, p.Tp), 32);
            k_att_mma_fill(Qt, k_att_cols_at(p.tq, bq, q0, p.Tp), p.Tp / 2);
            k_att_mma_fill(dYs, k_att_rows_at(p.pdy, bq, q0, p.Tp), 32);
            k_att_mma_fill(dYt, k_att_cols_at(p.tdy, bq, q0, p.Tp), p.Tp / 2);
            for (int i = threadIdx.x; i < K_ATT_MMA_TILE; i += blockDim.x) {
                ls[i] = q0 + i < p.T ? p.lse[stat + q0 + i] : 0.0f;
                Ds[i] = q0 + i < p.T ? p.D[stat + q0 + i] : 0.0f;
            }
            __syncthreads();
            k_att_mma_zero(st);
            k_att_mma_zero(dpt);
            k_att_mma_abt(st, ka, Qs);
            k_att_mma_abt(dpt, va, dYs);
            int edge = q0 == k0 || q0 + K_ATT_MMA_TILE > p.T; /* the diagonal or the last tile */
            K_UNROLL
            for (int nt = 0; nt < 8; nt++)
                K_UNROLL
                for (int c = 0; c < 4; c++) {
                    int qi = nt * 8 + 2 * tig + (c & 1), tq = q0 + qi, key = kr0 + 8 * (c >> 1);
                    float pr = !edge || (key <= tq && tq < p.T) ? expf(st[nt][c] * p.scale - ls[qi]) : 0.0f;
                    st[nt][c] = pr;
                    dpt[nt][c] = pr * (dpt[nt][c] - Ds[qi]) * p.scale; /* dS^T */
                }
            k_att_mma_c2a(xa, st);
            k_att_mma_abt(dv, xa, dYt);
            k_att_mma_c2a(xa, dpt);
            k_att_mma_abt(dk, xa, Qt);
        }
    }
    const float one[2] = {1.0f, 1.0f};
    k_att_mma_store(p.dk, p.lddk, rowb, g * K_ATT_MMA_HD, kr0, p.T, dk, one);
    k_att_mma_store(p.dv, p.lddv, rowb, g * K_ATT_MMA_HD, kr0, p.T, dv, one);
}
EMU_KERNEL(k_attention_backward_dkv_mma, k_attention_params)

#endif
