/*
 * k_residual.cuh — backward of the residual-stream ops whose parameter gradient is a column sum
 * over all N rows: resid_mix (dmix[2,C]) and scale_add (ds[C]).
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
 * Not here: the forwards (k_elementwise.cuh).
 */
#ifndef CADDIE_K_RESIDUAL_CUH
#define CADDIE_K_RESIDUAL_CUH

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

__global__ void k_resid_mix_backward(k_colgrad_params p) {
    __shared__ float s0[K_COL_ROWS][32];
    __shared__ float s1[K_COL_ROWS][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    int r0 = blockIdx.y * p.chunk_rows, r1 = r0 + p.chunk_rows < p.N ? r0 + p.chunk_rows : p.N;
    float a0 = 0.0f, a1 = 0.0f;
    if (c < p.C) {
        float m0 = p.vec[c], m1 = p.vec[p.C + c];
        for (int n = r0 + ty; n < r1; n += K_COL_ROWS) {
            size_t o = (size_t)n * p.C + c;
            float d = p.dout[o];
            a0 += d * p.x[o];
            a1 += d * p.x0[o];
            p.dx0[o] += m1 * d;
            p.dx[o] = m0 * d; /* last: dx may alias dout */
        }
    }
    s0[ty][tx] = a0;
    s1[ty][tx] = a1;
    __syncthreads();
    if (ty == 0 && c < p.C) {
        float t0 = 0.0f, t1 = 0.0f;
        for (int r = 0; r < K_COL_ROWS; r++) {
            t0 += s0[r][tx];
            t1 += s1[r][tx];
        }
        p.part[((size_t)blockIdx.y * 2 + 0) * p.C + c] = t0;
        p.part[((size_t)blockIdx.y * 2 + 1) * p.C + c] = t1;
    }
}
EMU_KERNEL(k_resid_mix_backward, k_colgrad_params)

__global__ void k_scale_add_backward(k_colgrad_params p) {
    __shared__ float s0[K_COL_ROWS][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    int r0 = blockIdx.y * p.chunk_rows, r1 = r0 + p.chunk_rows < p.N ? r0 + p.chunk_rows : p.N;
    float a = 0.0f;
    if (c < p.C) {
        float sc = p.vec[c];
        for (int n = r0 + ty; n < r1; n += K_COL_ROWS) {
            size_t o = (size_t)n * p.C + c;
            float d = p.dout[o];
            a += d * p.x[o];
            p.dx[o] = sc * d;
        }
    }
    s0[ty][tx] = a;
    __syncthreads();
    if (ty == 0 && c < p.C) {
        float t = 0.0f;
        for (int r = 0; r < K_COL_ROWS; r++) t += s0[r][tx];
        p.part[(size_t)blockIdx.y * p.C + c] = t;
    }
}
EMU_KERNEL(k_scale_add_backward, k_colgrad_params)

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

static void k_colgrad_launch(cudaStream_t s, k_colgrad_params *p, int resid_mix) {
    int nchunks = K_CEIL_DIV(p->N, p->chunk_rows);
    if (resid_mix)
        KLAUNCH(k_resid_mix_backward, KDIM3(K_CEIL_DIV(p->C, 32), nchunks, 1),
                KDIM3(32, K_COL_ROWS, 1), 0, s, *p);
    else
        KLAUNCH(k_scale_add_backward, KDIM3(K_CEIL_DIV(p->C, 32), nchunks, 1),
                KDIM3(32, K_COL_ROWS, 1), 0, s, *p);
    K_CHECK_LAUNCH();
    KLAUNCH(k_colpart_sum, k_grid_for((size_t)p->nvec * p->C, 256), 256, 0, s, *p);
    K_CHECK_LAUNCH();
}

static void k_resid_mix_backward_launch(cudaStream_t s, float *part, float *dx, float *dx0,
                                        float *dmix, const float *dout, const float *x,
                                        const float *x0, const float *mix, int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_colgrad_params p = {dx, dx0, dmix, part, dout, x, x0, mix, N, C, 2,
                          k_col_chunk_rows(N, C, 2)};
    k_colgrad_launch(s, &p, 1);
}

static void k_scale_add_backward_launch(cudaStream_t s, float *part, float *dy, float *ds,
                                        const float *dout, const float *y, const float *sv,
                                        int N, int C) {
    if (N <= 0 || C <= 0) return;
    k_colgrad_params p = {dy, NULL, ds, part, dout, y, NULL, sv, N, C, 1,
                          k_col_chunk_rows(N, C, 1)};
    k_colgrad_launch(s, &p, 0);
}

#endif
