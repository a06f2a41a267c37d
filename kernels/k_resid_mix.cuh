/*
 * k_resid_mix.cuh — Block.resid_mix, out = mix[0]*x + mix[1]*x0 with mix[2,C] broadcast over the
 * rows, forward and backward (backend.h resid_mix_*).
 *
 * Forward: a grid-stride loop, 4 elements of one row per thread with 128-bit loads when C is a
 * multiple of 4 and every pointer 16-byte aligned (vec), one element otherwise. Backward: the two-pass deterministic
 * column sum of k_colsum.cuh for dmix, doing dx and dx0 on the way.
 *
 * Not here: the column-sum machinery shared with scale_add (k_colsum.cuh).
 */
#ifndef CADDIE_K_RESID_MIX_CUH
#define CADDIE_K_RESID_MIX_CUH

#include "kernels/k_colsum.cuh"
#include "kernels/k_common.cuh"

/* ---- forward ---- */

typedef struct k_resid_mix_params {
    float *out;
    const float *x, *x0;
    const float *mix; /* [2,C] */
    int N, C, vec;
} k_resid_mix_params;

/* out = mix[0]*x + mix[1]*x0 */
__global__ void k_resid_mix_forward(k_resid_mix_params p) {
    size_t n = (size_t)p.N * p.C, stride = (size_t)gridDim.x * blockDim.x;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p.vec) { /* C % 4 == 0: a group of 4 never straddles two rows */
        for (size_t i = tid; i < n / 4; i += stride) {
            int c = (int)((4 * i) % (size_t)p.C);
            k_f4 x = k_ld4(p.x + 4 * i), x0 = k_ld4(p.x0 + 4 * i);
            k_f4 m0 = k_ld4(p.mix + c), m1 = k_ld4(p.mix + p.C + c);
            x.x = m0.x * x.x + m1.x * x0.x;
            x.y = m0.y * x.y + m1.y * x0.y;
            x.z = m0.z * x.z + m1.z * x0.z;
            x.w = m0.w * x.w + m1.w * x0.w;
            k_st4(p.out + 4 * i, x);
        }
    } else {
        for (size_t i = tid; i < n; i += stride) {
            int c = (int)(i % (size_t)p.C);
            p.out[i] = p.mix[c] * p.x[i] + p.mix[p.C + c] * p.x0[i];
        }
    }
}
EMU_KERNEL(k_resid_mix_forward, k_resid_mix_params)

static void k_resid_mix_forward_launch(cudaStream_t s, float *out, const float *x,
                                       const float *x0, const float *mix, int N, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    int vec = C % 4 == 0 && k_aligned16(out) && k_aligned16(x) && k_aligned16(x0) && k_aligned16(mix);
    k_resid_mix_params p = {out, x, x0, mix, N, C, vec};
    KLAUNCH(k_resid_mix_forward, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

/* ---- backward ---- */

__global__ void k_resid_mix_backward(k_colgrad_params p) {
    __shared__ float s0[K_COL_ROWS][32];
    __shared__ float s1[K_COL_ROWS][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    int r0 = blockIdx.y * p.chunk_rows, r1 = r0 + p.chunk_rows < p.N ? r0 + p.chunk_rows : p.N;
    float a0 = 0.0f, a1 = 0.0f;
    if (c < p.C) {
        float m0 = p.vec[c], m1 = p.vec[p.C + c];
        for (int n = r0 + ty; n < r1; n += K_COL_ROWS) {
            size_t o = (size_t)n * p.C + c;
            float d = p.dout[o];
            a0 += d * p.x[o];
            a1 += d * p.x0[o];
            p.dx0[o] += m1 * d;
            p.dx[o] = m0 * d; /* last: dx may alias dout */
        }
    }
    s0[ty][tx] = a0;
    s1[ty][tx] = a1;
    __syncthreads();
    if (ty == 0 && c < p.C) {
        float t0 = 0.0f, t1 = 0.0f;
        for (int r = 0; r < K_COL_ROWS; r++) {
            t0 += s0[r][tx];
            t1 += s1[r][tx];
        }
        p.part[((size_t)blockIdx.y * 2 + 0) * p.C + c] = t0;
        p.part[((size_t)blockIdx.y * 2 + 1) * p.C + c] = t1;
    }
}
EMU_KERNEL(k_resid_mix_backward, k_colgrad_params)

static void k_resid_mix_backward_launch(cudaStream_t s, float *part, float *dx, float *dx0,
                                        float *dmix, const float *dout, const float *x,
                                        const float *x0, const float *mix, int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_colgrad_params p = {dx, dx0, dmix, part, dout, x, x0, mix, N, C, 2,
                          k_col_chunk_rows(N, C, 2)};
    int nchunks = K_CEIL_DIV(p.N, p.chunk_rows);
    KLAUNCH(k_resid_mix_backward, KDIM3(K_CEIL_DIV(p.C, 32), nchunks, 1), KDIM3(32, K_COL_ROWS, 1), 0, s, p);
    K_CHECK_LAUNCH();
    k_colpart_sum_launch(s, &p);
}

#endif
