/*
 * k_colsum.cuh — shared by the backwards of the residual-stream ops whose parameter gradient is
 * a column sum over all N rows: resid_mix (dmix[2,C], k_resid_mix.cuh) and scale_add (ds[C],
 * k_scale_add.cuh). Their first-pass kernels live with their ops; this file holds the
 * parameter struct, the geometry and the second pass.
 *
 * Two passes, no atomics, the same bits on every run:
 * 1. grid (column tiles of 32, row chunks): a block owns 32 columns (threadIdx.x) of one chunk
 *    of rows, with K_COL_ROWS row lanes (threadIdx.y) walking the chunk; each thread does the
 *    elementwise part (dx, dx0, dy) on the way and keeps a running column sum; the row lanes
 *    are added in a fixed order through shared memory and the block writes one partial per
 *    column into part[chunk][vec][C].
 * 2. k_colpart_sum adds the chunk partials in chunk order into the gradient vector.
 * The chunk count spreads the work over the whole GPU (N = 65536 rows, C = 512 would otherwise
 * be 16 blocks); part is a fixed buffer owned by the backend context (K_COLPART_FLOATS), so no
 * slot allocates.
 *
 * Not here: the ops' own kernels.
 */
#ifndef CADDIE_K_COLSUM_CUH
#define CADDIE_K_COLSUM_CUH

#include "kernels/k_common.cuh"

#define K_COL_ROWS 16               /* row lanes per block */
#define K_COL_MAX_CHUNKS 64         /* row chunks (blocks per column tile) at most */
#define K_COL_MIN_CHUNK_ROWS 256    /* fewer rows than this per chunk is not worth a block */
#define K_COLPART_FLOATS (1 << 20)  /* size of the partials buffer the context owns */

typedef struct k_colgrad_params {
    float *dx;         /* resid_mix: dx (=, may alias dout); scale_add: dy (=) */
    float *dx0;        /* resid_mix: dx0 (+=); scale_add: unused */
    float *dvec;       /* resid_mix: dmix[2,C] (+=); scale_add: ds[C] (+=) */
    float *part;       /* [chunks][nvec][C] partial column sums */
    const float *dout;
    const float *x;    /* resid_mix: x; scale_add: y */
    const float *x0;   /* resid_mix: x0; scale_add: unused */
    const float *vec;  /* resid_mix: mix[2,C]; scale_add: s[C] */
    int N, C, nvec, chunk_rows;
} k_colgrad_params;

/* dvec[v*C + c] += sum over chunks k (in order) of part[(k*nvec + v)*C + c]. */
__global__ void k_colpart_sum(k_colgrad_params p) {
    size_t total = (size_t)p.nvec * p.C, stride = (size_t)gridDim.x * blockDim.x;
    int nchunks = K_CEIL_DIV(p.N, p.chunk_rows);
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float t = 0.0f;
        for (int k = 0; k < nchunks; k++) t += p.part[(size_t)k * total + i];
        p.dvec[i] += t;
    }
}
EMU_KERNEL(k_colpart_sum, k_colgrad_params)

/* Rows per chunk so that chunks <= K_COL_MAX_CHUNKS, each has >= K_COL_MIN_CHUNK_ROWS rows (when
 * N allows) and chunks * nvec * C fits the partials buffer. */
static int k_col_chunk_rows(int N, int C, int nvec) {
    long max_chunks = K_COLPART_FLOATS / ((long)nvec * C);
    K_ASSERT(max_chunks >= 1); /* C up to 512K columns */
    if (max_chunks > K_COL_MAX_CHUNKS) max_chunks = K_COL_MAX_CHUNKS;
    long want = ((long)N + K_COL_MIN_CHUNK_ROWS - 1) / K_COL_MIN_CHUNK_ROWS;
    long chunks = want < max_chunks ? want : max_chunks;
    if (chunks < 1) chunks = 1;
    return (int)(((long)N + chunks - 1) / chunks);
}

/* Second pass of a column-sum backward: add the chunk partials into p->dvec. */
static void k_colpart_sum_launch(cudaStream_t s, const k_colgrad_params *p) {
    KLAUNCH(k_colpart_sum, k_grid_for((size_t)p->nvec * p->C, 256), 256, 0, s, *p);
    K_CHECK_LAUNCH();
}

#endif
