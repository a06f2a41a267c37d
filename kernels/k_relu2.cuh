/*
 * k_relu2.cuh — the MLP activation (leaky) relu^2, forward and backward (backend.h relu2_*).
 *
 * A grid-stride loop: one element per thread per iteration, a thread reads and writes only its
 * own element, so the "may alias" promises of engine/backend.h hold trivially. The formula is
 * written exactly like engine/backend_cpu.c so fp32 results agree to rounding.
 *
 * Not here: the MLP's matmuls (model code via matmul).
 */
#ifndef CADDIE_K_RELU2_CUH
#define CADDIE_K_RELU2_CUH

#include "kernels/k_common.cuh"

typedef struct k_relu2_params {
    float *out; /* forward: out; backward: din */
    const float *in;
    const float *dout; /* backward only */
    size_t n;
    float slope; /* 0: relu^2; leaky_relu(x, slope)^2 otherwise */
} k_relu2_params;

__global__ void k_relu2_forward(k_relu2_params p) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        float r = p.in[i] > 0.0f ? p.in[i] : p.slope * p.in[i];
        p.out[i] = r * r;
    }
}
EMU_KERNEL(k_relu2_forward, k_relu2_params)

__global__ void k_relu2_backward(k_relu2_params p) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    const float s2 = 2.0f * p.slope * p.slope;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride)
        p.out[i] = p.in[i] > 0.0f ? 2.0f * p.in[i] * p.dout[i] : s2 * p.in[i] * p.dout[i];
}
EMU_KERNEL(k_relu2_backward, k_relu2_params)

static void k_relu2_forward_launch(cudaStream_t s, float *out, const float *in, size_t n, float slope) {
    if (n == 0) return;
    k_relu2_params p = {out, in, NULL, n, slope};
    KLAUNCH(k_relu2_forward, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_relu2_backward_launch(cudaStream_t s, float *din, const float *dout,
                                    const float *in, size_t n, float slope) {
    if (n == 0) return;
    k_relu2_params p = {din, in, dout, n, slope};
    KLAUNCH(k_relu2_backward, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
