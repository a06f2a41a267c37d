/*
 * k_head_gate.cuh — the per-head attention output gate (attn_gate), forward and backward (the
 * formulas of engine/backend.h's head_gate slots, written like engine/backend_cpu.c's: the
 * gate's dot product in double, in head-dim order).
 *
 * One thread per (token, head): it reads the head's gate once and walks the head's HD values,
 * so the backward's dot product is summed by one thread in a fixed order (deterministic).
 * Grid-stride over N*NH.
 *
 * Not here: the gate's pre-activation (a matmul in engine/model.c), attention (k_attention.cuh).
 */
#ifndef CADDIE_K_HEAD_GATE_CUH
#define CADDIE_K_HEAD_GATE_CUH

#include "kernels/k_common.cuh"

typedef struct k_head_gate_params {
    float *out; /* forward: out; backward: dy */
    int ldo;
    float *dgate; /* backward only */
    const float *g; /* backward: dout */
    int ldg;
    const float *y;
    int ldy;
    const float *gate;
    int N, NH, HD;
} k_head_gate_params;

static __device__ __forceinline__ float k_head_gate_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void k_head_gate_forward(k_head_gate_params p) {
    size_t total = (size_t)p.N * p.NH, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int n = (int)(i / p.NH), h = (int)(i % p.NH);
        float g = k_head_gate_sigmoid(p.gate[i]);
        const float *yr = p.y + (size_t)n * p.ldy + (size_t)h * p.HD;
        float *o = p.out + (size_t)n * p.ldo + (size_t)h * p.HD;
        for (int d = 0; d < p.HD; d++) o[d] = yr[d] * g;
    }
}
EMU_KERNEL(k_head_gate_forward, k_head_gate_params)

__global__ void k_head_gate_backward(k_head_gate_params p) {
    size_t total = (size_t)p.N * p.NH, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int n = (int)(i / p.NH), h = (int)(i % p.NH);
        float g = k_head_gate_sigmoid(p.gate[i]);
        const float *gr = p.g + (size_t)n * p.ldg + (size_t)h * p.HD, *yr = p.y + (size_t)n * p.ldy + (size_t)h * p.HD;
        float *dyr = p.out + (size_t)n * p.ldo + (size_t)h * p.HD;
        double s = 0; /* before dy overwrites dout (they may alias) */
        for (int d = 0; d < p.HD; d++) s += (double)gr[d] * yr[d];
        p.dgate[i] = (float)(s * g * (1.0 - g));
        for (int d = 0; d < p.HD; d++) dyr[d] = gr[d] * g;
    }
}
EMU_KERNEL(k_head_gate_backward, k_head_gate_params)

static void k_head_gate_forward_launch(cudaStream_t s, float *out, int ldo, const float *y, int ldy, const float *gate,
                                       int N, int NH, int HD) {
    if (N <= 0) return;
    k_head_gate_params p = {out, ldo, NULL, NULL, 0, y, ldy, gate, N, NH, HD};
    KLAUNCH(k_head_gate_forward, k_grid_for((size_t)N * NH, 128), 128, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_head_gate_backward_launch(cudaStream_t s, float *dy, int lddy, float *dgate, const float *dout, int lddo,
                                        const float *y, int ldy, const float *gate, int N, int NH, int HD) {
    if (N <= 0) return;
    k_head_gate_params p = {dy, lddy, dgate, dout, lddo, y, ldy, gate, N, NH, HD};
    KLAUNCH(k_head_gate_backward, k_grid_for((size_t)N * NH, 128), 128, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
