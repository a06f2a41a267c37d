/*
 * k_adam_update.cuh — the torch.optim.Adam step over a vector (backend.h adam_update).
 *
 * A grid-stride loop over groups of 4 elements with 128-bit loads/stores when every pointer is
 * 16-byte aligned (vec), then a scalar tail (n % 4, or everything when not aligned). A thread
 * reads and writes only its own elements, so the "may alias" promises of engine/backend.h hold
 * trivially. The formula is written exactly like engine/backend_cpu.c (one function for both
 * paths) so fp32 results agree to rounding.
 *
 * Not here: learning rates, bias corrections and parameter groups (engine/optim.c).
 */
#ifndef CADDIE_K_ADAM_UPDATE_CUH
#define CADDIE_K_ADAM_UPDATE_CUH

#include "kernels/k_common.cuh"

typedef struct k_adam_params {
    float *p, *m, *v;
    const float *g;
    size_t n;
    float step_size, beta1, beta2, eps, bc2_sqrt;
    int vec;
} k_adam_params;

/* torch.optim.Adam (no weight decay) on one element, the same fp32 expression order as
 * backend_cpu.c: updates *m, *v and returns the new p. */
static __device__ __forceinline__ float k_adam_one(const k_adam_params *a, float p, float g, float *m,
                                                   float *v) {
    float mi = a->beta1 * *m + (1.0f - a->beta1) * g;
    float vi = a->beta2 * *v + (1.0f - a->beta2) * g * g;
    *m = mi;
    *v = vi;
    return p - a->step_size * mi / (sqrtf(vi) / a->bc2_sqrt + a->eps);
}

__global__ void k_adam_update(k_adam_params a) {
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    size_t nv = a.vec ? a.n / 4 : 0;
    for (size_t i = tid; i < nv; i += stride) {
        k_f4 p = k_ld4(a.p + 4 * i), g = k_ld4(a.g + 4 * i), m = k_ld4(a.m + 4 * i), v = k_ld4(a.v + 4 * i);
        p.x = k_adam_one(&a, p.x, g.x, &m.x, &v.x);
        p.y = k_adam_one(&a, p.y, g.y, &m.y, &v.y);
        p.z = k_adam_one(&a, p.z, g.z, &m.z, &v.z);
        p.w = k_adam_one(&a, p.w, g.w, &m.w, &v.w);
        k_st4(a.m + 4 * i, m);
        k_st4(a.v + 4 * i, v);
        k_st4(a.p + 4 * i, p);
    }
    for (size_t i = 4 * nv + tid; i < a.n; i += stride) a.p[i] = k_adam_one(&a, a.p[i], a.g[i], &a.m[i], &a.v[i]);
}
EMU_KERNEL(k_adam_update, k_adam_params)

static void k_adam_update_launch(cudaStream_t s, float *p, const float *g, float *m, float *v,
                                 size_t n, float lr, float beta1, float beta2, float eps,
                                 float bc1, float bc2) {
    if (n == 0) return;
    int vec = k_aligned16(p) && k_aligned16(g) && k_aligned16(m) && k_aligned16(v);
    k_adam_params a = {p, m, v, g, n, lr / bc1, beta1, beta2, eps, sqrtf(bc2), vec};
    KLAUNCH(k_adam_update, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, a);
    K_CHECK_LAUNCH();
}

#endif
