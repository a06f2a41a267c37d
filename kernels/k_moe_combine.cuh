/*
 * k_moe_combine.cuh — micro-MoE's combine: each token's output is the gated sum of its top-k
 * expert rows, forward and backward (engine/backend.h moe_combine_*).
 *
 * The routing itself (softmax, top-k, the expert-ordered row lists) is computed on the host by
 * engine/moe.c and the experts run on the existing gather (embedding) and matmul slots; only
 * this gated sum needs a kernel. Forward: one thread per output element (token n, column c),
 * summing its K rows in j order, the CPU reference's order. Backward: one thread per routing
 * slot (n, j): it writes the slot's dh row (pos is a permutation, so no two threads share a
 * row) and the gate gradient, a dot product in double in column order. No atomics: both are
 * deterministic and the gate gradient is bit-equal to the CPU's.
 *
 * Not here: routing, the experts' matmuls, the router gradient (engine/moe.c).
 */
#ifndef CADDIE_K_MOE_COMBINE_CUH
#define CADDIE_K_MOE_COMBINE_CUH

#include "kernels/k_common.cuh"

typedef struct k_moe_combine_params {
    float *out;         /* forward: out [N, C]; backward: dh [N*K, C] */
    float *dgate;       /* backward only: [N*K] */
    const float *dout;  /* backward only: [N, C] */
    const float *h;     /* [N*K, C] expert-ordered rows */
    const float *gate;  /* [N*K] */
    const int32_t *pos; /* [N*K] row of h of each (token, j) */
    int N, K, C;
} k_moe_combine_params;

__global__ void k_moe_combine_forward(k_moe_combine_params p) {
    size_t total = (size_t)p.N * p.C, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t n = i / (size_t)p.C, c = i % (size_t)p.C;
        float acc = 0.0f;
        for (int j = 0; j < p.K; j++) {
            size_t s = n * (size_t)p.K + (size_t)j;
            acc += p.gate[s] * p.h[(size_t)p.pos[s] * p.C + c];
        }
        p.out[i] = acc;
    }
}
EMU_KERNEL(k_moe_combine_forward, k_moe_combine_params)

__global__ void k_moe_combine_backward(k_moe_combine_params p) {
    size_t total = (size_t)p.N * p.K, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t s = (size_t)blockIdx.x * blockDim.x + threadIdx.x; s < total; s += stride) {
        const float *d = p.dout + (s / (size_t)p.K) * p.C;
        const float *hr = p.h + (size_t)p.pos[s] * p.C;
        float *dr = p.out + (size_t)p.pos[s] * p.C;
        float g = p.gate[s];
        double acc = 0.0;
        for (int c = 0; c < p.C; c++) {
            acc += (double)d[c] * hr[c];
            dr[c] = g * d[c];
        }
        p.dgate[s] = (float)acc;
    }
}
EMU_KERNEL(k_moe_combine_backward, k_moe_combine_params)

static void k_moe_combine_forward_launch(cudaStream_t s, float *out, const float *h, const float *gate,
                                         const int32_t *pos, int N, int K, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    k_moe_combine_params p = {out, NULL, NULL, h, gate, pos, N, K, C};
    KLAUNCH(k_moe_combine_forward, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_moe_combine_backward_launch(cudaStream_t s, float *dh, float *dgate, const float *dout,
                                          const float *h, const float *gate, const int32_t *pos, int N, int K,
                                          int C) {
    size_t n = (size_t)N * K;
    if (n == 0 || C <= 0) return;
    k_moe_combine_params p = {dh, dgate, dout, h, gate, pos, N, K, C};
    /* a slot per thread walks C columns: small blocks keep many SMs busy at modest N*K */
    KLAUNCH(k_moe_combine_backward, k_grid_for(n, 128), 128, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
