/*
 * k_axpby.cuh — y = a*x + b*y over a vector (backend.h axpby: optimizer updates, EMA).
 *
 * A grid-stride loop over groups of 4 elements with 128-bit loads/stores when every pointer is
 * 16-byte aligned (vec), then a scalar tail (n % 4, or everything when not aligned). A thread
 * reads and writes only its own elements, so the "may alias" promises of engine/backend.h hold
 * trivially. The formula is written exactly like engine/backend_cpu.c (one function for both
 * paths) so fp32 results agree to rounding.
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
    int vec;
} k_axpby_params;

/* y = a*x + b*y; b == 0 does not read y (it may hold NaN). x may alias y. */
__global__ void k_axpby(k_axpby_params p) {
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    size_t nv = p.vec ? p.n / 4 : 0;
    for (size_t i = tid; i < nv; i += stride) {
        k_f4 x = k_ld4(p.x + 4 * i), y;
        if (p.b == 0.0f) {
            y.x = p.a * x.x;
            y.y = p.a * x.y;
            y.z = p.a * x.z;
            y.w = p.a * x.w;
        } else {
            y = k_ld4(p.y + 4 * i);
            y.x = p.a * x.x + p.b * y.x;
            y.y = p.a * x.y + p.b * y.y;
            y.z = p.a * x.z + p.b * y.z;
            y.w = p.a * x.w + p.b * y.w;
        }
        k_st4(p.y + 4 * i, y);
    }
    for (size_t i = 4 * nv + tid; i < p.n; i += stride)
        p.y[i] = p.b == 0.0f ? p.a * p.x[i] : p.a * p.x[i] + p.b * p.y[i];
}
EMU_KERNEL(k_axpby, k_axpby_params)

static void k_axpby_launch(cudaStream_t s, size_t n, float a, const float *x, float b, float *y) {
    if (n == 0) return;
    int vec = k_aligned16(x) && k_aligned16(y);
    k_axpby_params p = {n, a, b, x, y, vec};
    KLAUNCH(k_axpby, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
