/*
 * k_embedding.cuh — token embedding gather (forward) and scatter-add (backward), one block per
 * token row.
 *
 * The backward adds rows of dout into dwte[ids[n]] with atomicAdd: two tokens with the same id
 * add into the same row, so the order of those adds (and the last bits of the sum) depends on
 * scheduling. This is the one non-deterministic output of the CUDA backend (the CPU reference
 * partitions columns instead): a deterministic kernel would own one vocab row per block, but
 * the slot does not pass V (nor scratch for a sort). The tests compare it with an NMSE bound.
 *
 * Not here: id validation (the data stream checks ids < V before they reach a backend).
 */
#ifndef CADDIE_K_EMBEDDING_CUH
#define CADDIE_K_EMBEDDING_CUH

#include "kernels/k_common.cuh"

#define K_EMB_BLOCK 128

typedef struct k_embedding_params {
    float *dst;        /* forward: out[N,C]; backward: dwte[V,C] */
    const float *src;  /* forward: wte[V,C]; backward: dout[N,C] */
    const int32_t *ids;
    int N, C;
} k_embedding_params;

__global__ void k_embedding_forward(k_embedding_params p) {
    const float *row = p.src + (size_t)p.ids[blockIdx.x] * p.C;
    float *out = p.dst + (size_t)blockIdx.x * p.C;
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) out[c] = row[c];
}
EMU_KERNEL(k_embedding_forward, k_embedding_params)

__global__ void k_embedding_backward(k_embedding_params p) {
    float *row = p.dst + (size_t)p.ids[blockIdx.x] * p.C;
    const float *d = p.src + (size_t)blockIdx.x * p.C;
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) atomicAdd(&row[c], d[c]);
}
EMU_KERNEL(k_embedding_backward, k_embedding_params)

static void k_embedding_forward_launch(cudaStream_t s, float *out, const int32_t *ids,
                                       const float *wte, int N, int C) {
    if (N <= 0) return;
    k_embedding_params p = {out, wte, ids, N, C};
    KLAUNCH(k_embedding_forward, N, k_row_block(C, K_EMB_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

static void k_embedding_backward_launch(cudaStream_t s, float *dwte, const float *dout,
                                        const int32_t *ids, int N, int C) {
    if (N <= 0) return;
    k_embedding_params p = {dwte, dout, ids, N, C};
    KLAUNCH(k_embedding_backward, N, k_row_block(C, K_EMB_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
