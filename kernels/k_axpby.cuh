/*
 * k_axpby.cuh — y = a*x + b*y over a vector (backend.h axpby: optimizer updates, EMA).
 *
 * A grid-stride loop: one element per thread per iteration, a thread reads and writes only its
 * own element, so the "may alias" promises of engine/backend.h hold trivially. The formula is
 * written exactly like engine/backend_cpu.c so fp32 results agree to rounding.
 *
 * Not here: scaling in place (k_scale.cuh).
 */
#ifndef CADDIE_K_AXPBY_CUH
#define CADDIE_K_AXPBY_CUH

#include "kernels/k_common.cuh"

typedef struct k_axpby_params {
    size_t n;
    float a, b;
    const float *x;
    float *y;
} k_axpby_params;

/* y = a*x + b*y; b == 0 does not read y (it may hold NaN). x may alias y. */
__global__ void k_axpby(k_axpby_params p) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride)
        p.y[i] = p.b == 0.0f ? p.a * p.x[i] : p.a * p.x[i] + p.b * p.y[i];
}
EMU_KERNEL(k_axpby, k_axpby_params)

static void k_axpby_launch(cudaStream_t s, size_t n, float a, const float *x, float b, float *y) {
    if (n == 0) return;
    k_axpby_params p = {n, a, b, x, y};
    KLAUNCH(k_axpby, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
