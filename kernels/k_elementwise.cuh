/*
 * k_elementwise.cuh — elementwise kernels: (leaky) relu^2 forward/backward, axpby, scale, the Adam step,
 * and the row-broadcast residual forwards (resid_mix, scale_add).
 *
 * Each is a grid-stride loop: one element per thread per iteration, a thread reads and writes
 * only its own element, so the "may alias" promises of engine/backend.h hold trivially.
 * Formulas are written exactly like engine/backend_cpu.c so fp32 results agree to rounding.
 *
 * Not here: reductions (k_reduce.cuh, k_residual.cuh), anything with a barrier.
 */
#ifndef CADDIE_K_ELEMENTWISE_CUH
#define CADDIE_K_ELEMENTWISE_CUH

#include "kernels/k_common.cuh"

#define K_EW_BLOCK 256

/* ---- relu^2 --------------------------------------------------------------------------------- */

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

/* ---- axpby / scale -------------------------------------------------------------------------- */

typedef struct k_axpby_params {
    size_t n;
    float a, b;
    const float *x; /* NULL for scale */
    float *y;
} k_axpby_params;

/* y = a*x + b*y; b == 0 does not read y (it may hold NaN). x may alias y. */
__global__ void k_axpby(k_axpby_params p) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride)
        p.y[i] = p.b == 0.0f ? p.a * p.x[i] : p.a * p.x[i] + p.b * p.y[i];
}
EMU_KERNEL(k_axpby, k_axpby_params)

__global__ void k_scale(k_axpby_params p) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride)
        p.y[i] *= p.a;
}
EMU_KERNEL(k_scale, k_axpby_params)

static void k_axpby_launch(cudaStream_t s, size_t n, float a, const float *x, float b, float *y) {
    if (n == 0) return;
    k_axpby_params p = {n, a, b, x, y};
    KLAUNCH(k_axpby, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_scale_launch(cudaStream_t s, size_t n, float a, float *x) {
    if (n == 0) return;
    k_axpby_params p = {n, a, 0.0f, NULL, x};
    KLAUNCH(k_scale, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

/* ---- Adam ----------------------------------------------------------------------------------- */

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

/* ---- residual-stream forwards (per-column vectors broadcast over rows) ----------------------- */

typedef struct k_rowvec_params {
    float *out;
    const float *x, *y; /* resid_mix: y is x0 */
    const float *s;     /* resid_mix: mix[2,C]; scale_add: s[C] */
    int N, C;
} k_rowvec_params;

/* out = mix[0]*x + mix[1]*x0 */
__global__ void k_resid_mix_forward(k_rowvec_params p) {
    size_t n = (size_t)p.N * p.C, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        int c = (int)(i % (size_t)p.C);
        p.out[i] = p.s[c] * p.x[i] + p.s[p.C + c] * p.y[i];
    }
}
EMU_KERNEL(k_resid_mix_forward, k_rowvec_params)

/* out = x + s*y */
__global__ void k_scale_add_forward(k_rowvec_params p) {
    size_t n = (size_t)p.N * p.C, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        int c = (int)(i % (size_t)p.C);
        p.out[i] = p.x[i] + p.s[c] * p.y[i];
    }
}
EMU_KERNEL(k_scale_add_forward, k_rowvec_params)

static void k_resid_mix_forward_launch(cudaStream_t s, float *out, const float *x,
                                       const float *x0, const float *mix, int N, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    k_rowvec_params p = {out, x, x0, mix, N, C};
    KLAUNCH(k_resid_mix_forward, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_scale_add_forward_launch(cudaStream_t s, float *out, const float *x,
                                       const float *sv, const float *y, int N, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    k_rowvec_params p = {out, x, y, sv, N, C};
    KLAUNCH(k_scale_add_forward, k_grid_for(n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
