/*
 * k_gram_batched.cuh — the batched Gram product C = alpha op(A) op(A)^T + beta C (backend.h
 * gram_batched; Newton-Schulz): one cuBLAS call for the whole batch (syrk for a single fp32
 * matrix, a strided-batched GEMM otherwise), then a kernel mirroring the lower triangle so C
 * comes out exactly symmetric.
 *
 * Not here: the row-major cuBLAS mapping (k_gemm.cuh).
 */
#ifndef CADDIE_K_GRAM_BATCHED_CUH
#define CADDIE_K_GRAM_BATCHED_CUH

#include "kernels/k_common.cuh"
#include "kernels/k_gemm.cuh"

/* Row-major upper triangle from the lower one, for each of `batch` [n,n] matrices:
 * C[r][c] = C[c][r] for r < c. One thread per element of the matrix, grid-stride. */
typedef struct k_gram_batched_params {
    float *C;
    int n, ldc;
    long long stride_c;
    int batch;
} k_gram_batched_params;

__global__ void k_gram_batched_mirror(k_gram_batched_params p) {
    size_t total = (size_t)p.n * p.n * p.batch, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t b = i / ((size_t)p.n * p.n), e = i % ((size_t)p.n * p.n);
        int r = (int)(e / p.n), c = (int)(e % p.n);
        float *C = p.C + (long long)b * p.stride_c;
        if (r < c) C[(size_t)r * p.ldc + c] = C[(size_t)c * p.ldc + r];
    }
}
EMU_KERNEL(k_gram_batched_mirror, k_gram_batched_params)

/* Row-major C[b][M,M] = alpha op(A[b]) op(A[b])^T + beta C[b] (op(A) is [M,K]; A is [K,M] when
 * trans_a), both triangles written, exactly symmetric.
 * - fp32, batch 1: cuBLAS syrk on the column-major view (half the FLOPs of a GEMM): row-major A
 *   [M,K] is column-major [K,M], so A A^T is syrk with OP_T, and A^T A (trans_a) is OP_N.
 *   FILL_MODE_UPPER of the column-major C is the row-major lower triangle, which the mirror
 *   kernel then copies across.
 * - fp32, batch > 1: ONE strided-batched SGEMM of the full product. cuBLAS has no batched syrk,
 *   and a syrk per matrix cost 540 launches and 18.4 ms per Newton-Schulz step on an H200
 *   (docs/gpu-measurements.md) for 512x512..1024 matrices that are launch-bound, not FLOP-bound.
 * - bf16: the full product through k_gemm_rm's bf16 path (no bf16 syrk exists); A is packed to
 *   bf16 once and serves as both operands.
 * In every case the mirror makes C exactly symmetric (a GEMM's two triangles need not agree bit
 * for bit on the GPU). */
static void k_gram_batched_launch(cublasHandle_t h, cudaStream_t s, int trans_a, int M, int K,
                                  float alpha, const float *A, int lda, long long stride_a,
                                  float beta, float *C, int ldc, long long stride_c, int batch) {
    if (M <= 0 || batch <= 0) return;
    cublasOperation_t op = trans_a ? CUBLAS_OP_N : CUBLAS_OP_T;
    if (k_gemm_bf16 || batch > 1)
        k_gemm_rm(h, trans_a, !trans_a, M, M, K, alpha, A, lda, stride_a, A, lda, stride_a, beta, C, ldc,
                  stride_c, batch);
    else
        CUBLAS_CHECK(cublasSsyrk(h, CUBLAS_FILL_MODE_UPPER, op, M, K, &alpha, A, lda, &beta, C, ldc));
    k_gram_batched_params p = {C, M, ldc, stride_c, batch};
    KLAUNCH(k_gram_batched_mirror, k_grid_for((size_t)M * M * batch, 256), 256, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif
