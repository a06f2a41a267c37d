/*
 * k_gemm.cuh — row-major GEMM on cuBLAS (which is column-major), single and strided-batched.
 *
 * A row-major C[M,N] is the column-major C^T[N,M] with the same leading dimension, and
 * C^T = op(B)^T op(A)^T, so a row-major product is cuBLAS's product with the operands swapped
 * and M/N exchanged; the transpose flags keep their meaning per operand. fp32 throughout with
 * the handle's default math mode (no TF32), so results stay comparable with the CPU reference.
 * Under the emulation layer these calls reach its reference cuBLAS, which validates leading
 * dimensions exactly like cuBLAS does.
 *
 * Not here: choosing shapes for an op (the callers: k_backend.cuh matmul, k_attention.cuh).
 */
#ifndef CADDIE_K_GEMM_CUH
#define CADDIE_K_GEMM_CUH

#include "k_common.cuh"

/* C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for b < batch, row-major, with
 * X[b] = X + b*strideX. op(A) is [M,K] (A is [K,M] when trans_a), op(B) is [K,N]. */
static void k_gemm_rm(cublasHandle_t h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, long long stride_a, const float *B, int ldb,
                      long long stride_b, float beta, float *C, int ldc, long long stride_c,
                      int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(h, op_b, op_a, N, M, K, &alpha, B, ldb, stride_b, A,
                                               lda, stride_a, &beta, C, ldc, stride_c, batch));
}

#endif
