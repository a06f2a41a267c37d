/*
 * k_selective_scan.cuh — Mamba-1's selective scan (engine/backend.h selective_scan_*): the
 * recurrence h = exp(delta A) h + delta B u per (sequence, channel, state), y = C.h + D u gated
 * by silu(z), forward and backward; formulas written like engine/backend_cpu.c's reference.
 *
 * Layout: a block of 128 threads covers (one sequence b, 128/S channels); thread (channel e,
 * state s), s fastest, so the S states of a channel are S adjacent lanes of one warp and every
 * sum over the states (y, and du / d delta in the backward) is a log2(S)-step xor butterfly
 * with no shared memory. Each thread keeps its state h in a register and walks the sequence in
 * chunks of CAD_SCAN_CHUNK positions, carrying h from chunk to chunk; the forward saves the
 * state entering each chunk (hs).
 *
 * Backward, block (channel super-tile of K_SCAN_EG channels, b): the tile's channels are taken
 * 128/S at a time; for each, the chunks are walked last to first with the adjoint
 * g_t = C_t dy_t + a_{t+1} g_{t+1} carried across them: a chunk's states are recomputed forward
 * from hs into shared memory (each thread its own column), then the chunk is walked backward.
 * Memory choice: recompute, not store. Saving every state would cost B*T*E*S floats per layer
 * (4.3 GB at the baseline shape with E = 1024, S = 16); hs costs 1/32 of that, and the
 * recomputation is one more pass of the recurrence inside the backward.
 * dB and dC are sums over all E channels of a token: no atomics — per chunk, the block adds
 * its channels' contributions in channel order (shared memory) and adds that into its own
 * partial row of the scratch (part_dB/part_dC [B][super-tile][T][S], one writer per element,
 * channel groups in order); a second kernel adds the super-tiles in order into dB/dC (=).
 * dA_log, dD and ddt_bias (sums over sequences and positions) go through per-sequence partials
 * the same way. So the result is the same on every schedule (deterministic).
 *
 * Not here: the conv that produces u (k_causal_conv1d.cuh), the projections (cuBLAS).
 */
#ifndef CADDIE_K_SELECTIVE_SCAN_CUH
#define CADDIE_K_SELECTIVE_SCAN_CUH

#include "kernels/k_common.cuh"

#define K_SCAN_THREADS 128
#define K_SCAN_EG 128 /* channels per backward block: the dB/dC partials are E / K_SCAN_EG deep */

typedef struct k_selective_scan_params {
    float *y, *hs;                           /* forward outputs */
    float *du, *ddt, *dBm, *dCm, *dz;         /* backward outputs (=) */
    int lddbc, lddz;
    float *dA_log, *dD, *ddt_bias;            /* (+=) */
    const float *dy, *u, *dt, *A_log, *Bm, *Cm, *D, *z, *dt_bias, *hs_in;
    int ldbc, ldz;
    int B, T, E, S, nc, nst;
    float *part_dB, *part_dC, *part_A, *part_D, *part_b; /* scratch */
} k_selective_scan_params;

/* Sum over the S adjacent lanes of a channel (S a power of two <= 32); every lane gets it. */
static __device__ __forceinline__ float k_scan_group_sum(float v, int S) {
    for (int o = S / 2; o > 0; o >>= 1) v += __shfl_xor_sync(K_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float k_scan_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__global__ void k_selective_scan_forward(k_selective_scan_params p) {
    int S = p.S, epb = K_SCAN_THREADS / S, s = (int)threadIdx.x % S;
    int e = (int)blockIdx.x * epb + (int)threadIdx.x / S, b = (int)blockIdx.y;
    int valid = e < p.E, ec = valid ? e : p.E - 1; /* lanes past E run along (the shuffles need them) */
    float A = -expf(p.A_log[(size_t)ec * S + s]), bias = p.dt_bias[ec], Dv = p.D[ec], h = 0.0f;
    for (int t = 0; t < p.T; t++) {
        size_t n = (size_t)b * p.T + t;
        if (t % CAD_SCAN_CHUNK == 0 && valid)
            p.hs[(((size_t)b * p.nc + t / CAD_SCAN_CHUNK) * p.E + e) * S + s] = h;
        float delta = k_scan_softplus(p.dt[n * p.E + ec] + bias), ut = p.u[n * p.E + ec];
        h = expf(delta * A) * h + delta * p.Bm[n * p.ldbc + s] * ut;
        float acc = k_scan_group_sum(p.Cm[n * p.ldbc + s] * h, S);
        if (s == 0 && valid) {
            float zt = p.z[n * p.ldz + e];
            p.y[n * p.E + e] = (acc + Dv * ut) * (zt / (1.0f + expf(-zt)));
        }
    }
}
EMU_KERNEL(k_selective_scan_forward, k_selective_scan_params)

__global__ void k_selective_scan_backward(k_selective_scan_params p) {
    __shared__ float hsh[CAD_SCAN_CHUNK][K_SCAN_THREADS]; /* a thread's chunk states, its own column */
    __shared__ float sdB[CAD_SCAN_CHUNK][K_SCAN_THREADS], sdC[CAD_SCAN_CHUNK][K_SCAN_THREADS];
    int S = p.S, epb = K_SCAN_THREADS / S, tid = (int)threadIdx.x, s = tid % S, el = tid / S;
    int st = (int)blockIdx.x, b = (int)blockIdx.y;
    for (int g = 0; g < K_SCAN_EG / epb; g++) {
        int e0 = st * K_SCAN_EG + g * epb;
        if (e0 >= p.E) break; /* the same for every thread of the block */
        int e = e0 + el, valid = e < p.E, ec = valid ? e : p.E - 1;
        float A = -expf(p.A_log[(size_t)ec * S + s]), bias = p.dt_bias[ec], Dv = p.D[ec];
        float gn = 0.0f, dA = 0.0f, dDacc = 0.0f, dbacc = 0.0f;
        for (int c = p.nc - 1; c >= 0; c--) {
            int t0 = c * CAD_SCAN_CHUNK, t1 = t0 + CAD_SCAN_CHUNK < p.T ? t0 + CAD_SCAN_CHUNK : p.T;
            float hin = p.hs_in[(((size_t)b * p.nc + c) * p.E + ec) * S + s], h = hin;
            for (int t = t0; t < t1; t++) {
                size_t n = (size_t)b * p.T + t;
                float delta = k_scan_softplus(p.dt[n * p.E + ec] + bias);
                h = expf(delta * A) * h + delta * p.Bm[n * p.ldbc + s] * p.u[n * p.E + ec];
                hsh[t - t0][tid] = h;
            }
            for (int t = t1 - 1; t >= t0; t--) {
                size_t n = (size_t)b * p.T + t;
                float pre = p.dt[n * p.E + ec] + bias, delta = k_scan_softplus(pre), ut = p.u[n * p.E + ec];
                float ht = hsh[t - t0][tid], hp = t > t0 ? hsh[t - t0 - 1][tid] : hin;
                float zt = p.z[n * p.ldz + ec], sz = 1.0f / (1.0f + expf(-zt));
                float dyt = valid ? p.dy[n * p.E + e] : 0.0f, dy0 = dyt * (zt * sz);
                float a = expf(delta * A), bs = p.Bm[n * p.ldbc + s], cs = p.Cm[n * p.ldbc + s];
                float gg = cs * dy0 + gn; /* dL/dh_t */
                sdC[t - t0][tid] = dy0 * ht;
                sdB[t - t0][tid] = gg * delta * ut;
                float y0 = k_scan_group_sum(cs * ht, S) + Dv * ut;
                float ddelta = k_scan_group_sum(gg * (A * a * hp + bs * ut), S);
                float dus = k_scan_group_sum(gg * delta * bs, S) + Dv * dy0;
                dA += gg * delta * a * hp;
                gn = a * gg;
                float dpre = pre > 20.0f ? ddelta : ddelta / (1.0f + expf(-pre));
                if (s == 0 && valid) {
                    p.du[n * p.E + e] = dus;
                    p.ddt[n * p.E + e] = dpre;
                    p.dz[n * p.lddz + e] = dyt * y0 * sz * (1.0f + zt * (1.0f - sz));
                }
                dDacc += dy0 * ut;
                dbacc += dpre;
            }
            __syncthreads();
            /* this group's channels, in order, into the block's partial rows */
            for (int i = tid; i < (t1 - t0) * S; i += K_SCAN_THREADS) {
                int tl = i / S, ss = i % S;
                float sb = 0.0f, sc = 0.0f;
                for (int k = 0; k < epb; k++) sb += sdB[tl][k * S + ss], sc += sdC[tl][k * S + ss];
                size_t idx = (((size_t)b * p.nst + st) * p.T + t0 + tl) * S + ss;
                if (g == 0) p.part_dB[idx] = sb, p.part_dC[idx] = sc;
                else p.part_dB[idx] += sb, p.part_dC[idx] += sc;
            }
            __syncthreads();
        }
        if (valid) {
            p.part_A[((size_t)b * p.E + e) * S + s] = dA * A; /* dA/dA_log = A */
            if (s == 0) p.part_D[(size_t)b * p.E + e] = dDacc, p.part_b[(size_t)b * p.E + e] = dbacc;
        }
    }
}
EMU_KERNEL(k_selective_scan_backward, k_selective_scan_params)

/* dB, dC (=): the super-tiles' partials of each (token, state), added in tile order */
__global__ void k_selective_scan_backward_bc(k_selective_scan_params p) {
    size_t total = (size_t)p.B * p.T * p.S, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t n = i / p.S;
        int s = (int)(i % p.S), b = (int)(n / p.T), t = (int)(n % p.T);
        float sb = 0.0f, sc = 0.0f;
        for (int st = 0; st < p.nst; st++) {
            size_t idx = (((size_t)b * p.nst + st) * p.T + t) * p.S + s;
            sb += p.part_dB[idx], sc += p.part_dC[idx];
        }
        p.dBm[n * p.lddbc + s] = sb;
        p.dCm[n * p.lddbc + s] = sc;
    }
}
EMU_KERNEL(k_selective_scan_backward_bc, k_selective_scan_params)

/* dA_log, dD, ddt_bias (+=): the per-sequence partials added in sequence order */
__global__ void k_selective_scan_backward_params(k_selective_scan_params p) {
    size_t total = (size_t)p.E * p.S, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t e = i / p.S;
        int s = (int)(i % p.S);
        float sa = 0.0f, sd = 0.0f, sbias = 0.0f;
        for (int b = 0; b < p.B; b++) {
            sa += p.part_A[((size_t)b * p.E + e) * p.S + s];
            if (s == 0) sd += p.part_D[(size_t)b * p.E + e], sbias += p.part_b[(size_t)b * p.E + e];
        }
        p.dA_log[i] += sa;
        if (s == 0) p.dD[e] += sd, p.ddt_bias[e] += sbias;
    }
}
EMU_KERNEL(k_selective_scan_backward_params, k_selective_scan_params)

static int k_scan_nst(int E) { return K_CEIL_DIV(E, K_SCAN_EG); }

/* part_dB, part_dC [B][nst][T][S], part_A [B][E][S], part_D, part_b [B][E] */
static size_t k_selective_scan_scratch_bytes(int B, int T, int E, int S) {
    return sizeof(float) * ((size_t)2 * B * k_scan_nst(E) * T * S + (size_t)B * E * S + (size_t)2 * B * E);
}

static void k_selective_scan_forward_launch(cudaStream_t st, float *y, float *hs, const float *u, const float *dt,
                                            const float *A_log, const float *Bm, const float *Cm, int ldbc,
                                            const float *D, const float *z, int ldz, const float *dt_bias, int B,
                                            int T, int E, int S) {
    if (B <= 0 || T <= 0 || E <= 0) return;
    K_ASSERT(S >= 1 && S <= 32 && (S & (S - 1)) == 0);
    k_selective_scan_params p;
    memset(&p, 0, sizeof p);
    p.y = y, p.hs = hs, p.u = u, p.dt = dt, p.A_log = A_log, p.Bm = Bm, p.Cm = Cm, p.ldbc = ldbc, p.D = D;
    p.z = z, p.ldz = ldz, p.dt_bias = dt_bias, p.B = B, p.T = T, p.E = E, p.S = S;
    p.nc = K_CEIL_DIV(T, CAD_SCAN_CHUNK);
    KLAUNCH(k_selective_scan_forward, KDIM3(K_CEIL_DIV(E, K_SCAN_THREADS / S), B, 1), K_SCAN_THREADS, 0, st, p);
    K_CHECK_LAUNCH();
}

static void k_selective_scan_backward_launch(cudaStream_t st, float *du, float *ddt, float *dBm, float *dCm,
                                             int lddbc, float *dz, int lddz, float *dA_log, float *dD,
                                             float *ddt_bias, const float *dy, const float *u, const float *dt,
                                             const float *A_log, const float *Bm, const float *Cm, int ldbc,
                                             const float *D, const float *z, int ldz, const float *dt_bias,
                                             const float *hs, int B, int T, int E, int S, void *scratch,
                                             size_t scratch_bytes) {
    if (B <= 0 || T <= 0 || E <= 0) return;
    K_ASSERT(S >= 1 && S <= 32 && (S & (S - 1)) == 0);
    K_ASSERT(scratch && scratch_bytes >= k_selective_scan_scratch_bytes(B, T, E, S));
    k_selective_scan_params p;
    memset(&p, 0, sizeof p);
    p.du = du, p.ddt = ddt, p.dBm = dBm, p.dCm = dCm, p.lddbc = lddbc, p.dz = dz, p.lddz = lddz;
    p.dA_log = dA_log, p.dD = dD, p.ddt_bias = ddt_bias, p.dy = dy, p.u = u, p.dt = dt, p.A_log = A_log;
    p.Bm = Bm, p.Cm = Cm, p.ldbc = ldbc, p.D = D, p.z = z, p.ldz = ldz, p.dt_bias = dt_bias, p.hs_in = hs;
    p.B = B, p.T = T, p.E = E, p.S = S, p.nc = K_CEIL_DIV(T, CAD_SCAN_CHUNK), p.nst = k_scan_nst(E);
    float *f = (float *)scratch;
    size_t nbc = (size_t)B * p.nst * T * S;
    p.part_dB = f, p.part_dC = f + nbc, p.part_A = f + 2 * nbc, p.part_D = p.part_A + (size_t)B * E * S;
    p.part_b = p.part_D + (size_t)B * E;
    KLAUNCH(k_selective_scan_backward, KDIM3(p.nst, B, 1), K_SCAN_THREADS, 0, st, p);
    K_CHECK_LAUNCH();
    KLAUNCH(k_selective_scan_backward_bc, k_grid_for((size_t)B * T * S, K_EW_BLOCK), K_EW_BLOCK, 0, st, p);
    K_CHECK_LAUNCH();
    KLAUNCH(k_selective_scan_backward_params, k_grid_for((size_t)E * S, K_EW_BLOCK), K_EW_BLOCK, 0, st, p);
    K_CHECK_LAUNCH();
}

#endif
