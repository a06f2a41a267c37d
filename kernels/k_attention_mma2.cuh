/*
 * k_attention_mma2.cuh — the second generation of the tensor-core attention kernels (bf16
 * operands, fp32 accumulation, mma.sync m16n8k16, HD = 64), FA2-style for H100/H200:
 * - fragments come from shared memory through ldmatrix.x4 (one instruction per two mma B
 *   fragments, instead of 8 scalar 32-bit loads); the operands an mma needs with k along the
 *   tile's rows (V in O += P V, K in dQ += dS K, dY and Q in dV/dK) are read with
 *   ldmatrix.trans from the same row-layout tile, so the transposed packs are gone (the
 *   launchers pack q, k, v, dy as rows only: 3 of v1's 7 pack writes per step disappear);
 * - the streamed tiles (K/V in the forward and dQ, Q/dY and the lse/D rows in dK/dV) are
 *   double-buffered: the cp.async copies of tile j+1 are issued before tile j's math, one
 *   commit group per tile, wait_group 1 + a barrier before the math, a barrier after it (the
 *   next issue overwrites the buffer just read);
 * - the softmax runs in base 2: scores are scaled by scale*log2(e) once, exp2f everywhere, lse
 *   converted back to natural log at the end (the slot contract: lse = max + log(sum));
 * - the forward takes 128-row query tiles with 8 warps (each warp 16 rows, as in v1) and runs
 *   its online softmax 32 keys at a time (registers: see the kernel); a warp skips the math
 *   of key blocks entirely above its rows.
 * The backward keeps v1's deterministic two-kernel structure (dK/dV per key tile, dQ per query
 * tile, no atomics, 64-row tiles and 4 warps: their register footprint, 160+ accumulators,
 * leaves no room for 8 warps at 2 blocks an SM). Rounding points are v1's (q, k, v, dy, P, dS
 * to bf16; scores, statistics, D and accumulators fp32); the per-element k order of every
 * product is unchanged; only expf -> exp2f differs, within the bf16 bound of check_attention.
 * Shared tiles are [64][K_ATT_MMA_LDW] words: the 144-byte row stride puts the 8 rows an
 * ldmatrix phase reads on 8 distinct 16-byte bank groups (no conflicts) and keeps rows 16-byte
 * aligned for cp.async.
 * Selected by CADDIE_ATTN_KERNEL=v2 (k_attention.cuh, k_att_kernel_from_env); v1 stays the default
 * until a GPU session has run this generation's selftest and timed it.
 *
 * Not here: the packing kernel, the v1 kernels and the fragment helpers shared with them
 * (k_attention_mma.cuh), the launchers (k_attention.cuh), the PTX wrappers (k_common.cuh).
 */
#ifndef CADDIE_K_ATTENTION_MMA2_CUH
#define CADDIE_K_ATTENTION_MMA2_CUH

#include "kernels/k_attention_mma.cuh"

#define K_ATT2_FWD_ROWS 128    /* query rows of a forward block */
#define K_ATT2_FWD_THREADS 256 /* 8 warps x 16 rows */
#define K_ATT2_BWD_THREADS 128 /* 4 warps x 16 rows of a 64-row tile */
#define K_ATT2_STAGE (K_ATT_MMA_TILE * K_ATT_MMA_LDW) /* words of one shared 64-row tile */
#define K_ATT2_LOG2E 1.4426950408889634f
#define K_ATT2_LN2 0.6931471805599453f

/* Issue (not wait for) the cp.async copies of 64 rows x 128 bytes of the row layout (src: the
 * first row, 32 words a row) into a [64][LDW] shared tile: 512 copies, `nthr` threads (a
 * constant) each 512/nthr. */
static __device__ __forceinline__ void k_att2_fill_async(unsigned *dst, const unsigned *src, int nthr) {
    K_UNROLL
    for (int j = 0; j < K_ATT_MMA_TILE * 8 / nthr; j++) {
        int i = (int)threadIdx.x + j * nthr, r = i / 8, c = i % 8;
        k_cp_async16(dst + r * K_ATT_MMA_LDW + 4 * c, src + (size_t)r * 32 + 4 * c);
    }
}

/* acc[nt] += A (16 x 64, fragments a) times B^T for nts n-tiles (8 or 4, a constant): B the
 * first of 8*nts rows of a [64][LDW] shared tile (n = its rows, k = its 64 columns). One
 * ldmatrix.x4 gives the B fragments of two k-steps of one n-tile (matrices: rows nt*8..,
 * columns 32kp + {0, 8, 16, 24}). Per accumulator the k order is 0..3, as in v1. */
static __device__ __forceinline__ void k_att2_abt(float acc[][4], unsigned a[4][4], const unsigned *B, int nts) {
    int lane = threadIdx.x % 32;
    const unsigned *row = B + (lane & 7) * K_ATT_MMA_LDW + 4 * (lane >> 3);
    K_UNROLL
    for (int kp = 0; kp < 2; kp++)
        K_UNROLL
        for (int nt = 0; nt < nts; nt++) {
            unsigned b[4];
            k_ldmatrix_x4(b, row + nt * 8 * K_ATT_MMA_LDW + 16 * kp);
            k_mma_bf16_16816(acc[nt], a[2 * kp], b, acc[nt]);
            k_mma_bf16_16816(acc[nt], a[2 * kp + 1], b + 2, acc[nt]);
        }
}

/* acc[nt] += A (16 x 16*kss, k = tile rows; kss k-steps, 4 or 2, a constant) times B for all 64
 * columns: B the first of 16*kss rows of a [64][LDW] shared tile (k = its rows, n = its
 * columns). One ldmatrix.x4.trans gives the B fragments of two n-tiles of one k-step
 * (matrices: rows 16ks + {0, 8}, columns 16np + {0, 8}). */
static __device__ __forceinline__ void k_att2_ab(float acc[8][4], unsigned a[][4], const unsigned *B, int kss) {
    int lane = threadIdx.x % 32;
    const unsigned *row = B + ((lane & 7) + 8 * ((lane >> 3) & 1)) * K_ATT_MMA_LDW + 4 * (lane >> 4);
    K_UNROLL
    for (int ks = 0; ks < kss; ks++)
        K_UNROLL
        for (int np = 0; np < 4; np++) {
            unsigned b[4];
            k_ldmatrix_x4_trans(b, row + 16 * ks * K_ATT_MMA_LDW + 8 * np);
            k_mma_bf16_16816(acc[2 * np], a[ks], b, acc[2 * np]);
            k_mma_bf16_16816(acc[2 * np + 1], a[ks], b + 2, acc[2 * np + 1]);
        }
}

/* ---- forward ------------------------------------------------------------------------------ */

/* grid (query tiles of 128, B*NH), 256 threads. Warp w: query rows q0 + 16w + {g, g+8}, their
 * Q fragments in registers; a warp whose first row is at or past T has nothing to compute (it
 * loads rows 0..15, always in the pack, and never uses them) but joins every barrier and copy.
 * Shared (36 KiB): K and V, two stages each; tile j+1 is issued before tile j's math. The
 * online softmax steps 32 keys at a time (half a tile): S is then 16 registers instead of 32,
 * which is what keeps 8 warps at <= 128 registers (2 blocks, 16 warps an SM) with no spills
 * (with whole-tile steps ptxas wants 165, or spills at 128); the price is one extra rescale of
 * the 32 output accumulators per tile. A warp skips a half entirely above its rows. */
__global__ void K_LAUNCH_BOUNDS(K_ATT2_FWD_THREADS, 2) k_attention_forward_mma2(k_attention_params p) {
    __shared__ K_ALIGN16 unsigned Ks[2 * K_ATT2_STAGE], Vs[2 * K_ATT2_STAGE];
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * K_ATT2_FWD_ROWS;
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, gid = lane >> 2, tig = lane & 3;
    int r0 = q0 + 16 * w, t0 = r0 + gid, active = r0 < p.T;
    int qend = q0 + K_ATT2_FWD_ROWS < p.T ? q0 + K_ATT2_FWD_ROWS : p.T;
    int nk = K_CEIL_DIV(qend, K_ATT_MMA_TILE);
    size_t kv = (size_t)(b * p.KV + g) * p.Tp * 32; /* K and V share the offset */
    float sl2 = p.scale * K_ATT2_LOG2E;
    k_att2_fill_async(Ks, p.pk + kv, K_ATT2_FWD_THREADS);
    k_att2_fill_async(Vs, p.pv + kv, K_ATT2_FWD_THREADS);
    k_cp_async_commit();
    unsigned qa[4][4];
    k_att_mma_afrag(qa, k_att_rows_at(p.pq, blockIdx.y, 0, p.Tp), active ? r0 : 0);
    float o[8][4];
    k_att_mma_zero(o);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; /* rows t0, t0 + 8; m in log2 units */
    for (int j = 0; j < nk; j++) {
        int st = j & 1, k0 = j * K_ATT_MMA_TILE;
        if (j + 1 < nk) {
            size_t at = kv + (size_t)(k0 + K_ATT_MMA_TILE) * 32;
            k_att2_fill_async(Ks + (st ^ 1) * K_ATT2_STAGE, p.pk + at, K_ATT2_FWD_THREADS);
            k_att2_fill_async(Vs + (st ^ 1) * K_ATT2_STAGE, p.pv + at, K_ATT2_FWD_THREADS);
        }
        k_cp_async_commit(); /* possibly empty: one group per iteration keeps wait_group 1 right */
        K_CP_ASYNC_WAIT(1);  /* tile j's copies (tile j+1's may stay in flight) */
        __syncthreads();     /* ... of every thread */
        int run = active && k0 <= r0 + 15; /* warp-uniform */
        K_UNROLL
        for (int hf = 0; hf < 2; hf++) {
            int kh = k0 + 32 * hf;
            if (!run || kh > r0 + 15) continue; /* keys 0..31 always run first: m is finite after */
            float s[4][4];
            K_UNROLL
            for (int nt = 0; nt < 4; nt++)
                K_UNROLL
                for (int c = 0; c < 4; c++) s[nt][c] = 0.0f;
            k_att2_abt(s, qa, Ks + st * K_ATT2_STAGE + 32 * hf * K_ATT_MMA_LDW, 4);
            float mx[2] = {-INFINITY, -INFINITY};
            int diag = kh + 31 > r0; /* keys past the warp's first row (and past T): mask */
            K_UNROLL
            for (int nt = 0; nt < 4; nt++)
                K_UNROLL
                for (int c = 0; c < 4; c++) {
                    int key = kh + nt * 8 + 2 * tig + (c & 1), row = t0 + 8 * (c >> 1);
                    s[nt][c] = !diag || key <= row ? s[nt][c] * sl2 : -INFINITY;
                    mx[c >> 1] = fmaxf(mx[c >> 1], s[nt][c]);
                }
            float alpha[2], sum[2];
            K_UNROLL
            for (int r = 0; r < 2; r++) {
                mx[r] = k_att_quad_max(mx[r]);
                float mn = fmaxf(m[r], mx[r]);
                alpha[r] = exp2f(m[r] - mn);
                m[r] = mn;
                sum[r] = 0.0f;
            }
            K_UNROLL
            for (int nt = 0; nt < 4; nt++)
                K_UNROLL
                for (int c = 0; c < 4; c++) {
                    s[nt][c] = exp2f(s[nt][c] - m[c >> 1]);
                    sum[c >> 1] += s[nt][c];
                }
            K_UNROLL
            for (int nt = 0; nt < 8; nt++)
                K_UNROLL
                for (int c = 0; c < 4; c++) o[nt][c] *= alpha[c >> 1];
            K_UNROLL
            for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + k_att_quad_sum(sum[r]);
            unsigned pa[2][4]; /* P to A fragments (the FA2 register trick, k_att_mma_c2a's layout) */
            K_UNROLL
            for (int ks = 0; ks < 2; ks++) {
                pa[ks][0] = k_bf16_pack(s[2 * ks][0], s[2 * ks][1]);
                pa[ks][1] = k_bf16_pack(s[2 * ks][2], s[2 * ks][3]);
                pa[ks][2] = k_bf16_pack(s[2 * ks + 1][0], s[2 * ks + 1][1]);
                pa[ks][3] = k_bf16_pack(s[2 * ks + 1][2], s[2 * ks + 1][3]);
            }
            k_att2_ab(o, pa, Vs + st * K_ATT2_STAGE + 32 * hf * K_ATT_MMA_LDW, 2);
        }
        __syncthreads(); /* the next iteration's copies overwrite this stage */
    }
    if (!active) return; /* no barrier follows */
    size_t rowb = (size_t)b * p.T;
    float inv[2] = {1.0f / l[0], 1.0f / l[1]};
    k_att_mma_store(p.y, p.ldy, rowb, h * K_ATT_MMA_HD, t0, p.T, o, inv);
    K_UNROLL
    for (int r = 0; r < 2; r++)
        if (tig == 0 && t0 + 8 * r < p.T) p.lse[((size_t)b * p.NH + h) * p.T + t0 + 8 * r] = (m[r] + log2f(l[r])) * K_ATT2_LN2;
}
EMU_KERNEL(k_attention_forward_mma2, k_attention_params)

/* ---- backward: dQ ------------------------------------------------------------------------- */

/* grid (query tiles of 64, B*NH), 128 threads, warp rows as in v1. Shared: K and V, two stages
 * each (36 KiB); K serves S = Q K^T (ldmatrix) and dQ += dS K (ldmatrix.trans). */
__global__ void K_LAUNCH_BOUNDS(K_ATT2_BWD_THREADS, 3) k_attention_backward_dq_mma2(k_attention_params p) {
    __shared__ K_ALIGN16 unsigned Ks[2 * K_ATT2_STAGE], Vs[2 * K_ATT2_STAGE];
    int h = blockIdx.y % p.NH, b = blockIdx.y / p.NH, g = h / p.group;
    int q0 = (gridDim.x - 1 - blockIdx.x) * K_ATT_MMA_TILE;
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, gid = lane >> 2, tig = lane & 3;
    int t0 = q0 + 16 * w + gid, nk = q0 / K_ATT_MMA_TILE + 1;
    size_t stat = ((size_t)b * p.NH + h) * p.T;
    const unsigned *kt = k_att_rows_at(p.pk, b * p.KV + g, 0, p.Tp);
    const unsigned *vt = k_att_rows_at(p.pv, b * p.KV + g, 0, p.Tp);
    float sl2 = p.scale * K_ATT2_LOG2E;
    k_att2_fill_async(Ks, kt, K_ATT2_BWD_THREADS);
    k_att2_fill_async(Vs, vt, K_ATT2_BWD_THREADS);
    k_cp_async_commit();
    unsigned qa[4][4], da[4][4], sa[4][4];
    k_att_mma_afrag(qa, k_att_rows_at(p.pq, blockIdx.y, 0, p.Tp), q0 + 16 * w);
    k_att_mma_afrag(da, k_att_rows_at(p.pdy, blockIdx.y, 0, p.Tp), q0 + 16 * w);
    float lr[2], Dr[2]; /* lse in log2 units */
    K_UNROLL
    for (int r = 0; r < 2; r++) {
        int t = t0 + 8 * r;
        lr[r] = t < p.T ? p.lse[stat + t] * K_ATT2_LOG2E : 0.0f;
        Dr[r] = t < p.T ? p.D[stat + t] : 0.0f;
    }
    float dq[8][4], s[8][4], dp[8][4];
    k_att_mma_zero(dq);
    for (int j = 0; j < nk; j++) {
        int st = j & 1, k0 = j * K_ATT_MMA_TILE;
        if (j + 1 < nk) {
            k_att2_fill_async(Ks + (st ^ 1) * K_ATT2_STAGE, kt + (size_t)(k0 + K_ATT_MMA_TILE) * 32, K_ATT2_BWD_THREADS);
            k_att2_fill_async(Vs + (st ^ 1) * K_ATT2_STAGE, vt + (size_t)(k0 + K_ATT_MMA_TILE) * 32, K_ATT2_BWD_THREADS);
        }
        k_cp_async_commit();
        K_CP_ASYNC_WAIT(1);
        __syncthreads();
        const unsigned *Kc = Ks + st * K_ATT2_STAGE;
        k_att_mma_zero(s);
        k_att_mma_zero(dp);
        k_att2_abt(s, qa, Kc, 8);
        k_att2_abt(dp, da, Vs + st * K_ATT2_STAGE, 8);
        int diag = k0 == q0; /* masked keys and rows past T only in the diagonal tile */
        K_UNROLL
        for (int nt = 0; nt < 8; nt++)
            K_UNROLL
            for (int c = 0; c < 4; c++) {
                int key = k0 + nt * 8 + 2 * tig + (c & 1), row = t0 + 8 * (c >> 1);
                float pr = !diag || (key <= row && row < p.T) ? exp2f(s[nt][c] * sl2 - lr[c >> 1]) : 0.0f;
                s[nt][c] = pr * (dp[nt][c] - Dr[c >> 1]) * p.scale; /* dS */
            }
        k_att_mma_c2a(sa, s);
        k_att2_ab(dq, sa, Kc, 4);
        __syncthreads();
    }
    size_t rowb = (size_t)b * p.T;
    const float one[2] = {1.0f, 1.0f};
    k_att_mma_store(p.dq, p.lddq, rowb, h * K_ATT_MMA_HD, t0, p.T, dq, one);
}
EMU_KERNEL(k_attention_backward_dq_mma2, k_attention_params)

/* ---- backward: dK, dV --------------------------------------------------------------------- */

/* grid (key tiles of 64, B*KV), 128 threads, as v1: K and V fragments of the warp's key rows in
 * registers, S^T = K Q^T and dP^T = V dY^T, P^T and dS^T straight into A fragments for
 * dV += P^T dY and dK += dS^T Q. The (query head, query tile) pairs run as one sequence, heads
 * outer (v1's fixed summation order), so the pipeline crosses head boundaries. Shared: Q and dY,
 * two stages each (36 KiB), and the tile's lse (log2 units) and D rows, two stages: those are
 * not padded to the tile, so threads 0-63 load the next tile's values into registers before
 * the math and store them after it. */
__global__ void K_LAUNCH_BOUNDS(K_ATT2_BWD_THREADS, 2) k_attention_backward_dkv_mma2(k_attention_params p) {
    __shared__ K_ALIGN16 unsigned Qs[2 * K_ATT2_STAGE], dYs[2 * K_ATT2_STAGE];
    __shared__ float ls[2][K_ATT_MMA_TILE], Ds[2][K_ATT_MMA_TILE];
    int g = blockIdx.y % p.KV, b = blockIdx.y / p.KV;
    int k0 = blockIdx.x * K_ATT_MMA_TILE, tid = threadIdx.x;
    int lane = tid % 32, w = tid / 32, gid = lane >> 2, tig = lane & 3;
    int kr0 = k0 + 16 * w + gid;
    int nq = p.Tp / K_ATT_MMA_TILE - blockIdx.x, niter = p.group * nq; /* tiles at or below the diagonal */
    float sl2 = p.scale * K_ATT2_LOG2E;
    /* tile j: head g*group + j/nq, query rows from k0 + (j%nq)*64 */
#define K_ATT2_DKV_HEAD(j) (b * p.NH + g * p.group + (j) / nq)
#define K_ATT2_DKV_Q0(j) (k0 + ((j) % nq) * K_ATT_MMA_TILE)
    k_att2_fill_async(Qs, k_att_rows_at(p.pq, K_ATT2_DKV_HEAD(0), k0, p.Tp), K_ATT2_BWD_THREADS);
    k_att2_fill_async(dYs, k_att_rows_at(p.pdy, K_ATT2_DKV_HEAD(0), k0, p.Tp), K_ATT2_BWD_THREADS);
    k_cp_async_commit();
    if (tid < K_ATT_MMA_TILE) {
        size_t stat = (size_t)K_ATT2_DKV_HEAD(0) * p.T;
        int t = k0 + tid;
        ls[0][tid] = t < p.T ? p.lse[stat + t] * K_ATT2_LOG2E : 0.0f;
        Ds[0][tid] = t < p.T ? p.D[stat + t] : 0.0f;
    }
    unsigned ka[4][4], va[4][4], xa[4][4];
    k_att_mma_afrag(ka, k_att_rows_at(p.pk, blockIdx.y, 0, p.Tp), k0 + 16 * w);
    k_att_mma_afrag(va, k_att_rows_at(p.pv, blockIdx.y, 0, p.Tp), k0 + 16 * w);
    float dk[8][4], dv[8][4], st[8][4], dpt[8][4];
    k_att_mma_zero(dk);
    k_att_mma_zero(dv);
    for (int j = 0; j < niter; j++) {
        int sg = j & 1, q0 = K_ATT2_DKV_Q0(j);
        float nl = 0.0f, nD = 0.0f;
        if (j + 1 < niter) {
            int bq = K_ATT2_DKV_HEAD(j + 1), q1 = K_ATT2_DKV_Q0(j + 1);
            k_att2_fill_async(Qs + (sg ^ 1) * K_ATT2_STAGE, k_att_rows_at(p.pq, bq, q1, p.Tp), K_ATT2_BWD_THREADS);
            k_att2_fill_async(dYs + (sg ^ 1) * K_ATT2_STAGE, k_att_rows_at(p.pdy, bq, q1, p.Tp), K_ATT2_BWD_THREADS);
            if (tid < K_ATT_MMA_TILE && q1 + tid < p.T) {
                nl = p.lse[(size_t)bq * p.T + q1 + tid] * K_ATT2_LOG2E;
                nD = p.D[(size_t)bq * p.T + q1 + tid];
            }
        }
        k_cp_async_commit();
        K_CP_ASYNC_WAIT(1);
        __syncthreads();
        const unsigned *Qc = Qs + sg * K_ATT2_STAGE, *dYc = dYs + sg * K_ATT2_STAGE;
        k_att_mma_zero(st);
        k_att_mma_zero(dpt);
        k_att2_abt(st, ka, Qc, 8);
        k_att2_abt(dpt, va, dYc, 8);
        int edge = q0 == k0 || q0 + K_ATT_MMA_TILE > p.T; /* the diagonal or the last tile */
        K_UNROLL
        for (int nt = 0; nt < 8; nt++)
            K_UNROLL
            for (int c = 0; c < 4; c++) {
                int qi = nt * 8 + 2 * tig + (c & 1), tq = q0 + qi, key = kr0 + 8 * (c >> 1);
                float pr = !edge || (key <= tq && tq < p.T) ? exp2f(st[nt][c] * sl2 - ls[sg][qi]) : 0.0f;
                st[nt][c] = pr;
                dpt[nt][c] = pr * (dpt[nt][c] - Ds[sg][qi]) * p.scale; /* dS^T */
            }
        k_att_mma_c2a(xa, st);
        k_att2_ab(dv, xa, dYc, 4);
        k_att_mma_c2a(xa, dpt);
        k_att2_ab(dk, xa, Qc, 4);
        if (j + 1 < niter && tid < K_ATT_MMA_TILE) { /* nobody reads stage sg^1 until the barrier */
            ls[sg ^ 1][tid] = nl;
            Ds[sg ^ 1][tid] = nD;
        }
        __syncthreads();
    }
#undef K_ATT2_DKV_HEAD
#undef K_ATT2_DKV_Q0
    size_t rowb = (size_t)b * p.T;
    const float one[2] = {1.0f, 1.0f};
    k_att_mma_store(p.dk, p.lddk, rowb, g * K_ATT_MMA_HD, kr0, p.T, dk, one);
    k_att_mma_store(p.dv, p.lddv, rowb, g * K_ATT_MMA_HD, kr0, p.T, dv, one);
}
EMU_KERNEL(k_attention_backward_dkv_mma2, k_attention_params)

#endif
