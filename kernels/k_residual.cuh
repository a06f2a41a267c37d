/*
 * k_residual.cuh — backward of the residual-stream ops whose parameter gradient is a column sum
 * over all N rows: resid_mix (dmix[2,C]) and scale_add (ds[C]).
 *
 * Layout: a block owns 32 columns (threadIdx.x) and K_COL_ROWS row lanes (threadIdx.y); each
 * thread walks rows ty, ty+K_COL_ROWS, ... of its column, does the elementwise part (dx, dx0,
 * dy) on the way and keeps a running column sum; the row lanes are then added in a fixed order
 * through shared memory. No atomics: the result is the same bits on every run.
 *
 * Not here: the forwards (k_elementwise.cuh).
 */
#ifndef CADDIE_K_RESIDUAL_CUH
#define CADDIE_K_RESIDUAL_CUH

#include "k_common.cuh"

#define K_COL_ROWS 16

typedef struct k_colgrad_params {
    float *dx;         /* resid_mix: dx (=, may alias dout); scale_add: dy (=) */
    float *dx0;        /* resid_mix: dx0 (+=); scale_add: unused */
    float *dvec;       /* resid_mix: dmix[2,C] (+=); scale_add: ds[C] (+=) */
    const float *dout;
    const float *x;    /* resid_mix: x; scale_add: y */
    const float *x0;   /* resid_mix: x0; scale_add: unused */
    const float *vec;  /* resid_mix: mix[2,C]; scale_add: s[C] */
    int N, C;
} k_colgrad_params;

__global__ void k_resid_mix_backward(k_colgrad_params p) {
    __shared__ float s0[K_COL_ROWS][32];
    __shared__ float s1[K_COL_ROWS][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    float a0 = 0.0f, a1 = 0.0f;
    if (c < p.C) {
        float m0 = p.vec[c], m1 = p.vec[p.C + c];
        for (int n = ty; n < p.N; n += K_COL_ROWS) {
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
        p.dvec[c] += t0;
        p.dvec[p.C + c] += t1;
    }
}
EMU_KERNEL(k_resid_mix_backward, k_colgrad_params)

__global__ void k_scale_add_backward(k_colgrad_params p) {
    __shared__ float s0[K_COL_ROWS][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    float a = 0.0f;
    if (c < p.C) {
        float sc = p.vec[c];
        for (int n = ty; n < p.N; n += K_COL_ROWS) {
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
        p.dvec[c] += t;
    }
}
EMU_KERNEL(k_scale_add_backward, k_colgrad_params)

static void k_resid_mix_backward_launch(cudaStream_t s, float *dx, float *dx0, float *dmix,
                                        const float *dout, const float *x, const float *x0,
                                        const float *mix, int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_colgrad_params p = {dx, dx0, dmix, dout, x, x0, mix, N, C};
    KLAUNCH(k_resid_mix_backward, K_CEIL_DIV(C, 32), KDIM3(32, K_COL_ROWS, 1), 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_scale_add_backward_launch(cudaStream_t s, float *dy, float *ds, const float *dout,
                                        const float *y, const float *sv, int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_colgrad_params p = {dy, NULL, ds, dout, y, NULL, sv, N, C};
    KLAUNCH(k_scale_add_backward, K_CEIL_DIV(C, 32), KDIM3(32, K_COL_ROWS, 1), 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
