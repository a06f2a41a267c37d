/*
 * k_sumsq.cuh — sum of squares of a vector in double (grad-norm clipping, Muon's Frobenius
 * norm), deterministic: a fixed number of blocks each writes one double partial (grid-stride
 * thread sums, then the fixed-shape block tree), and the HOST adds the partials in block order.
 *
 * Not here: the host side of the copy and the final sum (k_backend.cuh kb_sumsq), which also
 * owns the partials buffer.
 */
#ifndef CADDIE_K_SUMSQ_CUH
#define CADDIE_K_SUMSQ_CUH

#include "kernels/k_common.cuh"

#define K_SUMSQ_BLOCK 256
#define K_SUMSQ_MAX_BLOCKS 256

typedef struct k_sumsq_params {
    double *partials; /* [gridDim.x] */
    const float *x;
    size_t n;
} k_sumsq_params;

__global__ void k_sumsq(k_sumsq_params p) {
    __shared__ double sh[32];
    size_t stride = (size_t)gridDim.x * blockDim.x;
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride)
        s += (double)p.x[i] * p.x[i];
    s = k_block_sum_d(s, sh);
    if (threadIdx.x == 0) p.partials[blockIdx.x] = s;
}
EMU_KERNEL(k_sumsq, k_sumsq_params)

/* Queue the partial sums; returns how many partials[] the host must add. */
static int k_sumsq_launch(cudaStream_t s, double *partials, const float *x, size_t n) {
    int blocks = k_grid_for(n, K_SUMSQ_BLOCK);
    if (blocks > K_SUMSQ_MAX_BLOCKS) blocks = K_SUMSQ_MAX_BLOCKS;
    k_sumsq_params p = {partials, x, n};
    KLAUNCH(k_sumsq, blocks, K_SUMSQ_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
    return blocks;
}

#endif
