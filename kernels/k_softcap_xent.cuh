/*
 * k_softcap_xent.cuh — fused logit softcap + cross-entropy on logits[N,V] in place, one block per
 * token row (backend.h softcap_xent_*).
 *
 * Forward: z = cap*tanh(raw/cap) written back, lse = max + log(sum exp(z - max)), and the
 * per-token NLL lse - z[target] when targets are given. Backward: z -> dloss * (softmax(z) -
 * onehot) * (1 - (z/cap)^2), the gradient w.r.t. the raw logits, using lse from the forward.
 * libm-accurate tanhf/expf/logf here versus the CPU reference's ~1-2 ulp polynomials: the
 * difference is rounding-level and covered by the tests' NMSE bound.
 *
 * Not here: the head matmul that produces the logits, the mean over tokens (dloss = 1/N).
 */
#ifndef CADDIE_K_SOFTCAP_XENT_CUH
#define CADDIE_K_SOFTCAP_XENT_CUH

#include "kernels/k_common.cuh"

#define K_XENT_BLOCK 256

typedef struct k_softcap_xent_params {
    float *logits;
    float *lse;  /* forward: written; backward: read */
    float *loss; /* forward, NULL without targets */
    const int32_t *targets;
    int N, V;
    float cap, dloss;
} k_softcap_xent_params;

__global__ void k_softcap_xent_forward(k_softcap_xent_params p) {
    __shared__ float sh[32];
    float *z = p.logits + (size_t)blockIdx.x * p.V;
    float inv_cap = 1.0f / p.cap, mx = -INFINITY;
    for (int j = threadIdx.x; j < p.V; j += blockDim.x) {
        float v = p.cap * tanhf(z[j] * inv_cap);
        z[j] = v;
        mx = fmaxf(mx, v);
    }
    mx = k_block_max(mx, sh); /* its barriers also publish every z[j] to the block */
    float sum = 0.0f;
    for (int j = threadIdx.x; j < p.V; j += blockDim.x) sum += expf(z[j] - mx);
    sum = k_block_sum(sum, sh);
    if (threadIdx.x == 0) {
        float l = mx + logf(sum);
        p.lse[blockIdx.x] = l;
        if (p.targets) p.loss[blockIdx.x] = l - z[p.targets[blockIdx.x]];
    }
}
EMU_KERNEL(k_softcap_xent_forward, k_softcap_xent_params)

__global__ void k_softcap_xent_backward(k_softcap_xent_params p) {
    float *z = p.logits + (size_t)blockIdx.x * p.V;
    float l = p.lse[blockIdx.x], inv_cap = 1.0f / p.cap;
    int tgt = p.targets[blockIdx.x];
    for (int j = threadIdx.x; j < p.V; j += blockDim.x) {
        float pr = expf(z[j] - l) - (j == tgt ? 1.0f : 0.0f);
        float th = z[j] * inv_cap;
        z[j] = p.dloss * pr * (1.0f - th * th);
    }
}
EMU_KERNEL(k_softcap_xent_backward, k_softcap_xent_params)

static void k_softcap_xent_forward_launch(cudaStream_t s, float *logits, float *lse, float *loss,
                                          const int32_t *targets, int N, int V, float cap) {
    if (N <= 0) return;
    k_softcap_xent_params p = {logits, lse, loss, targets, N, V, cap, 0.0f};
    KLAUNCH(k_softcap_xent_forward, N, k_row_block(V, K_XENT_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_softcap_xent_backward_launch(cudaStream_t s, float *logits, const float *lse,
                                           const int32_t *targets, int N, int V, float cap,
                                           float dloss) {
    if (N <= 0) return;
    k_softcap_xent_params p = {logits, (float *)lse, NULL, targets, N, V, cap, dloss};
    KLAUNCH(k_softcap_xent_backward, N, k_row_block(V, K_XENT_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
