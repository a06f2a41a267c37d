/*
 * k_gemm.cuh — row-major GEMM on cuBLAS (which is column-major), single and strided-batched:
 * the matmul and matmul_batched slots, and a helper of attention and gram_batched.
 *
 * A row-major C[M,N] is the column-major C^T[N,M] with the same leading dimension, and
 * C^T = op(B)^T op(A)^T, so a row-major product is cuBLAS's product with the operands swapped
 * and M/N exchanged; the transpose flags keep their meaning per operand. fp32 by default with
 * the handle's default math mode (no TF32), so results stay comparable with the CPU reference;
 * bf16 operands when the backend's precision says so (k_gemm_bf16).
 * Under the emulation layer these calls reach its reference cuBLAS, which validates leading
 * dimensions exactly like cuBLAS does.
 *
 * Not here: choosing shapes for an op (the callers: k_backend.cuh matmul, k_attention.cuh,
 * k_gram_batched.cuh).
 */
#ifndef CADDIE_K_GEMM_CUH
#define CADDIE_K_GEMM_CUH

#include "kernels/k_common.cuh"

/* The backend's matmul precision (set_matmul_precision): 0 = fp32 (cublasSgemm, no TF32);
 * 1 = bf16 operands with fp32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF: tensor cores, the
 * same products as the CPU backend's gemm_bf16.c). One GPU and one backend per process. */
static int k_gemm_bf16;

/* C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for b < batch, row-major, with
 * X[b] = X + b*strideX. op(A) is [M,K] (A is [K,M] when trans_a), op(B) is [K,N]. */
static void k_gemm_rm(cublasHandle_t h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, long long stride_a, const float *B, int ldb,
                      long long stride_b, float beta, float *C, int ldc, long long stride_c,
                      int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (k_gemm_bf16)
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, op_b, op_a, N, M, K, &alpha, B, CUDA_R_32F, ldb, stride_b, A,
                                                CUDA_R_32F, lda, stride_a, &beta, C, CUDA_R_32F, ldc, stride_c,
                                                batch, CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    else if (batch == 1)
        CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(h, op_b, op_a, N, M, K, &alpha, B, ldb, stride_b, A,
                                               lda, stride_a, &beta, C, ldc, stride_c, batch));
}

#endif
