/*
 * k_adam_update.cuh — the torch.optim.Adam step over a vector (backend.h adam_update).
 *
 * A grid-stride loop: one element per thread per iteration, a thread reads and writes only its
 * own element, so the "may alias" promises of engine/backend.h hold trivially. The formula is
 * written exactly like engine/backend_cpu.c so fp32 results agree to rounding.
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
} k_adam_params;

/* torch.optim.Adam (no weight decay), the same fp32 expression order as backend_cpu.c. */
__global__ void k_adam_update(k_adam_params a) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += stride) {
        float gi = a.g[i];
        float mi = a.beta1 * a.m[i] + (1.0f - a.beta1) * gi;
        float vi = a.beta2 * a.v[i] + (1.0f - a.beta2) * gi * gi;
        a.m[i] = mi;
        a.v[i] = vi;
        a.p[i] -= a.step_size * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
    }
}
EMU_KERNEL(k_adam_update, k_adam_params)

static void k_adam_update_launch(cudaStream_t s, float *p, const float *g, float *m, float *v,
                                 size_t n, float lr, float beta1, float beta2, float eps,
                                 float bc1, float bc2) {
    if (n == 0) return;
    k_adam_params a = {p, m, v, g, n, lr / bc1, beta1, beta2, eps, sqrtf(bc2)};
    KLAUNCH(k_adam_update, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, a);
    K_CHECK_LAUNCH();
}

#endif
