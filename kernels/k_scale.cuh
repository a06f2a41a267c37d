/*
 * k_scale.cuh — x *= a over a vector (backend.h scale: weight decay, gradient clipping).
 *
 * A grid-stride loop: one element per thread per iteration, a thread reads and writes only its
 * own element, so the "may alias" promises of engine/backend.h hold trivially. The formula is
 * written exactly like engine/backend_cpu.c so fp32 results agree to rounding.
 *
 * Not here: y = a*x + b*y (k_axpby.cuh).
 */
#ifndef CADDIE_K_SCALE_CUH
#define CADDIE_K_SCALE_CUH

#include "kernels/k_common.cuh"

typedef struct k_scale_params {
    size_t n;
    float a;
    float *x;
} k_scale_params;

/* x *= a */
__global__ void k_scale(k_scale_params p) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride)
        p.x[i] *= p.a;
}
EMU_KERNEL(k_scale, k_scale_params)

static void k_scale_launch(cudaStream_t s, size_t n, float a, float *x) {
    if (n == 0) return;
    k_scale_params p = {n, a, x};
    KLAUNCH(k_scale, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
