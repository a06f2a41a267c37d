/*
 * k_relu2.cuh — the MLP activation (leaky) relu^2, forward and backward (backend.h relu2_*).
 *
 * A grid-stride loop over groups of 4 elements with 128-bit loads/stores when every pointer is
 * 16-byte aligned (vec), then a scalar tail (n % 4, or everything when not aligned). A thread
 * reads and writes only its own elements, so the "may alias" promises of engine/backend.h hold
 * trivially. The formula (one function for both paths) is written exactly like
 * engine/backend_cpu.c so fp32 results agree to rounding.
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
    int vec;     /* out, in (and dout) 16-byte aligned: float4 groups, then the tail */
} k_relu2_params;

static __device__ __forceinline__ float k_relu2_f(float x, float slope) {
    float r = x > 0.0f ? x : slope * x;
    return r * r;
}
/* s2 = 2 slope^2: d(slope x)^2/dx = 2 slope^2 x */
static __device__ __forceinline__ float k_relu2_b(float x, float d, float s2) {
    return x > 0.0f ? 2.0f * x * d : s2 * x * d;
}

__global__ void k_relu2_forward(k_relu2_params p) {
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    size_t nv = p.vec ? p.n / 4 : 0;
    for (size_t i = tid; i < nv; i += stride) {
        k_f4 v = k_ld4(p.in + 4 * i);
        v.x = k_relu2_f(v.x, p.slope);
        v.y = k_relu2_f(v.y, p.slope);
        v.z = k_relu2_f(v.z, p.slope);
        v.w = k_relu2_f(v.w, p.slope);
        k_st4(p.out + 4 * i, v);
    }
    for (size_t i = 4 * nv + tid; i < p.n; i += stride) p.out[i] = k_relu2_f(p.in[i], p.slope);
}
EMU_KERNEL(k_relu2_forward, k_relu2_params)

__global__ void k_relu2_backward(k_relu2_params p) {
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const float s2 = 2.0f * p.slope * p.slope;
    size_t nv = p.vec ? p.n / 4 : 0;
    for (size_t i = tid; i < nv; i += stride) {
        k_f4 x = k_ld4(p.in + 4 * i), d = k_ld4(p.dout + 4 * i);
        d.x = k_relu2_b(x.x, d.x, s2);
        d.y = k_relu2_b(x.y, d.y, s2);
        d.z = k_relu2_b(x.z, d.z, s2);
        d.w = k_relu2_b(x.w, d.w, s2);
        k_st4(p.out + 4 * i, d);
    }
    for (size_t i = 4 * nv + tid; i < p.n; i += stride) p.out[i] = k_relu2_b(p.in[i], p.dout[i], s2);
}
EMU_KERNEL(k_relu2_backward, k_relu2_params)

static void k_relu2_forward_launch(cudaStream_t s, float *out, const float *in, size_t n, float slope) {
    if (n == 0) return;
    int vec = k_aligned16(out) && k_aligned16(in);
    k_relu2_params p = {out, in, NULL, n, slope, vec};
    KLAUNCH(k_relu2_forward, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_relu2_backward_launch(cudaStream_t s, float *din, const float *dout,
                                    const float *in, size_t n, float slope) {
    if (n == 0) return;
    int vec = k_aligned16(din) && k_aligned16(in) && k_aligned16(dout);
    k_relu2_params p = {din, in, dout, n, slope, vec};
    KLAUNCH(k_relu2_backward, k_grid_for(vec ? n / 4 : n, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
