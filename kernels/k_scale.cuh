/*
 * k_scale.cuh — x *= a over a vector (backend.h scale: weight decay, gradient clipping).
 *
 * A grid-stride loop over groups of 4 elements with 128-bit loads/stores when every pointer is
 * 16-byte aligned (vec), then a scalar tail (n % 4, or everything when not aligned). A thread
 * reads and writes only its own elements, so the "may alias" promises of engine/backend.h hold
 * trivially. The formula is written exactly like engine/backend_cpu.c (one function for both
 * paths) so fp32 results agree to rounding.
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
    int vec;
} k_scale_params;

/* x *= a */
__global__ void k_scale(k_scale_params p) {
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    size_t nv = p.vec ? p.n / 4 : 0;
    for (size_t i = tid; i < nv; i += stride) {
        k_f4 v = k_ld4(p.x + 4 * i);
        v.x *= p.a;
        v.y *= p.a;
        v.z *= p.a;
        v.w *= p.a;
        k_st4(p.x + 4 * i, v);
    }
    for (size_t i = 4 * nv + tid; i < p.n; i += stride) p.x[i] *= p.a;
}
EMU_KERNEL(k_scale, k_scale_params)

static void k_scale_launch(cudaStream_t s, size_t n, float a, float *x) {
    if (n == 0) return;
    int vec = k_aligned16(x);
    k_scale_params p = {n, a, x, vec};
    KLAUNCH(k_scale, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
