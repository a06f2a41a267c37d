/*
 * k_xsa.cuh — XSA (exclusive self-attention): each head output minus its component along the
 * token's own value vector, forward and backward (the formulas of engine/backend.h's xsa slots,
 * written like engine/backend_cpu.c's: dot products in double).
 *
 * One thread per (token, kv head): it handles the group's query heads in order, so the value
 * gradient of a kv head is summed by one thread in a fixed order (no atomics, deterministic).
 * Grid-stride over N*KV.
 *
 * Not here: attention itself (k_attention.cuh).
 */
#ifndef CADDIE_K_XSA_CUH
#define CADDIE_K_XSA_CUH

#include "kernels/k_common.cuh"

typedef struct k_xsa_params {
    float *out; /* forward: out; backward: dy */
    int ldo;
    float *dv; /* backward only */
    int lddv;
    const float *g; /* backward: dout */
    int ldg;
    const float *y;
    int ldy;
    const float *v;
    int ldv;
    int N, NH, KV, HD;
} k_xsa_params;

/* a.b over one head row, in double (|v| can be tiny) */
static __device__ __forceinline__ double k_xsa_dot(const float *a, const float *b, int HD) {
    double s = 0;
    for (int d = 0; d < HD; d++) s += (double)a[d] * b[d];
    return s;
}

__global__ void k_xsa_forward(k_xsa_params p) {
    size_t total = (size_t)p.N * p.KV, stride = (size_t)gridDim.x * blockDim.x;
    int group = p.NH / p.KV;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int n = (int)(i / p.KV), g = (int)(i % p.KV);
        const float *vr = p.v + (size_t)n * p.ldv + (size_t)g * p.HD;
        double vv = k_xsa_dot(vr, vr, p.HD);
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *yr = p.y + (size_t)n * p.ldy + (size_t)h * p.HD;
            float *o = p.out + (size_t)n * p.ldo + (size_t)h * p.HD;
            double yv = k_xsa_dot(yr, vr, p.HD);
            double c = vv > 0 ? yv / vv : 0.0;
            for (int d = 0; d < p.HD; d++) o[d] = (float)(yr[d] - c * vr[d]);
        }
    }
}
EMU_KERNEL(k_xsa_forward, k_xsa_params)

__global__ void k_xsa_backward(k_xsa_params p) {
    size_t total = (size_t)p.N * p.KV, stride = (size_t)gridDim.x * blockDim.x;
    int group = p.NH / p.KV;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int n = (int)(i / p.KV), g = (int)(i % p.KV);
        const float *vr = p.v + (size_t)n * p.ldv + (size_t)g * p.HD;
        float *dvr = p.dv ? p.dv + (size_t)n * p.lddv + (size_t)g * p.HD : NULL;
        double vv = k_xsa_dot(vr, vr, p.HD);
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *yr = p.y + (size_t)n * p.ldy + (size_t)h * p.HD;
            const float *gr = p.g + (size_t)n * p.ldg + (size_t)h * p.HD;
            float *dyr = p.out ? p.out + (size_t)n * p.ldo + (size_t)h * p.HD : NULL;
            double yv = k_xsa_dot(yr, vr, p.HD), gv = k_xsa_dot(gr, vr, p.HD);
            if (vv <= 0) {
                if (dyr)
                    for (int d = 0; d < p.HD; d++) dyr[d] = gr[d];
                continue;
            }
            double a = gv / vv, b = yv / vv, c = 2.0 * yv * gv / (vv * vv);
            for (int d = 0; d < p.HD; d++) {
                double gd = gr[d];
                if (dvr) dvr[d] += (float)(-a * yr[d] - b * gd + c * vr[d]);
                if (dyr) dyr[d] = (float)(gd - a * vr[d]);
            }
        }
    }
}
EMU_KERNEL(k_xsa_backward, k_xsa_params)

static void k_xsa_forward_launch(cudaStream_t s, float *out, int ldo, const float *y, int ldy, const float *v, int ldv,
                                 int N, int NH, int KV, int HD) {
    if (N <= 0) return;
    k_xsa_params p = {out, ldo, NULL, 0, NULL, 0, y, ldy, v, ldv, N, NH, KV, HD};
    KLAUNCH(k_xsa_forward, k_grid_for((size_t)N * KV, 128), 128, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_xsa_backward_launch(cudaStream_t s, float *dy, int lddy, float *dv, int lddv, const float *g, int ldg,
                                  const float *y, int ldy, const float *v, int ldv, int N, int NH, int KV, int HD) {
    if (N <= 0) return;
    k_xsa_params p = {dy, lddy, dv, lddv, g, ldg, y, ldy, v, ldv, N, NH, KV, HD};
    KLAUNCH(k_xsa_backward, k_grid_for((size_t)N * KV, 128), 128, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
