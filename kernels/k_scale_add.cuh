/*
 * k_scale_add.cuh — out = x + s*y with s[C] broadcast over the rows (attn_scale, mlp_scale,
 * skip_weights), forward and backward (backend.h scale_add_*).
 *
 * Forward: a grid-stride loop, 4 elements of one row per thread with 128-bit loads when C is a
 * multiple of 4 and every pointer 16-byte aligned (vec), one element otherwise. Backward: the two-pass deterministic
 * column sum of k_colsum.cuh for ds, doing dy on the way.
 *
 * Not here: the column-sum machinery shared with resid_mix (k_colsum.cuh).
 */
#ifndef CADDIE_K_SCALE_ADD_CUH
#define CADDIE_K_SCALE_ADD_CUH

#include "kernels/k_colsum.cuh"
#include "kernels/k_common.cuh"

/* ---- forward ---- */

typedef struct k_scale_add_params {
    float *out;
    const float *x, *y;
    const float *s; /* [C] */
    int N, C, vec;
} k_scale_add_params;

/* out = x + s*y */
__global__ void k_scale_add_forward(k_scale_add_params p) {
    size_t n = (size_t)p.N * p.C, stride = (size_t)gridDim.x * blockDim.x;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p.vec) { /* C % 4 == 0: a group of 4 never straddles two rows */
        for (size_t i = tid; i < n / 4; i += stride) {
            int c = (int)((4 * i) % (size_t)p.C);
            k_f4 x = k_ld4(p.x + 4 * i), y = k_ld4(p.y + 4 * i), sc = k_ld4(p.s + c);
            x.x = x.x + sc.x * y.x;
            x.y = x.y + sc.y * y.y;
            x.z = x.z + sc.z * y.z;
            x.w = x.w + sc.w * y.w;
            k_st4(p.out + 4 * i, x);
        }
    } else {
        for (size_t i = tid; i < n; i += stride) {
            int c = (int)(i % (size_t)p.C);
            p.out[i] = p.x[i] + p.s[c] * p.y[i];
        }
    }
}
EMU_KERNEL(k_scale_add_forward, k_scale_add_params)

static void k_scale_add_forward_launch(cudaStream_t s, float *out, const float *x,
                                       const float *sv, const float *y, int N, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    int vec = C % 4 == 0 && k_aligned16(out) && k_aligned16(x) && k_aligned16(y) && k_aligned16(sv);
    k_scale_add_params p = {out, x, y, sv, N, C, vec};
    KLAUNCH(k_scale_add_forward, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

/* ---- backward ---- */

__global__ void k_scale_add_backward(k_colgrad_params p) {
    __shared__ float s0[K_COL_ROWS][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    int r0 = blockIdx.y * p.chunk_rows, r1 = r0 + p.chunk_rows < p.N ? r0 + p.chunk_rows : p.N;
    float a = 0.0f;
    if (c < p.C) {
        float sc = p.vec[c];
        for (int n = r0 + ty; n < r1; n += K_COL_ROWS) {
            size_t o = (size_t)n * p.C + c;
            float d = p.dout[o];
            a += d * p.x[o];
            p.dx[o] = sc * d;
        }
    }
    s0[ty][tx] = a;
    __syncthreads();
    if (ty == 0 && c < p.C) {
        float t = 0.0f;
        for (int r = 0; r < K_COL_ROWS; r++) t += s0[r][tx];
        p.part[(size_t)blockIdx.y * p.C + c] = t;
    }
}
EMU_KERNEL(k_scale_add_backward, k_colgrad_params)

static void k_scale_add_backward_launch(cudaStream_t s, float *part, float *dy, float *ds,
                                        const float *dout, const float *y, const float *sv,
                                        int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_colgrad_params p = {dy, NULL, ds, part, dout, y, NULL, sv, N, C, 1,
                          k_col_chunk_rows(N, C, 1)};
    int nchunks = K_CEIL_DIV(p.N, p.chunk_rows);
    KLAUNCH(k_scale_add_backward, KDIM3(K_CEIL_DIV(p.C, 32), nchunks, 1), KDIM3(32, K_COL_ROWS, 1), 0, s, p);
    K_CHECK_LAUNCH();
    k_colpart_sum_launch(s, &p);
}

#endif
