/*
 * k_gemm.cuh — row-major GEMM on cuBLAS (which is column-major), single and strided-batched:
 * the matmul and matmul_batched slots, and a helper of gram_batched.
 *
 * A row-major C[M,N] is the column-major C^T[N,M] with the same leading dimension, and
 * C^T = op(B)^T op(A)^T, so a row-major product is cuBLAS's product with the operands swapped
 * and M/N exchanged; the transpose flags keep their meaning per operand.
 *
 * Precision (set_matmul_precision), and what cuBLAS is asked for, so TF32 cannot come back:
 * - fp32: cublasSgemm / cublasSgemmStridedBatched on the handle's default math mode
 *   (CUBLAS_DEFAULT_MATH: no TF32), exact fp32 products comparable with the CPU reference.
 * - bf16: the operands are converted to bf16 IN MEMORY (k_gemm_to_bf16, round to nearest even
 *   exactly like the CPU backend's gemm_bf16.c) into a backend-owned workspace, then
 *   cublasGemmEx / cublasGemmStridedBatchedEx with A/B CUDA_R_16BF, C CUDA_R_32F,
 *   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT: bf16 tensor-core kernels with fp32 accumulation.
 *   fp32 operands with CUBLAS_COMPUTE_32F_FAST_16BF (the previous path) let cuBLAS pick TF32
 *   kernels on H200 (docs/gpu-measurements.md), which round operands differently from bf16.
 * The packed bf16 copies have leading dimensions rounded up to 8 elements (16 bytes), which
 * the tensor-core kernels need for their vector loads.
 * Under the emulation layer these calls reach its reference cuBLAS, which validates leading
 * dimensions and data/compute types like cuBLAS does.
 *
 * Not here: choosing shapes for an op (the callers: k_backend.cuh matmul,
 * k_gram_batched.cuh).
 */
#ifndef CADDIE_K_GEMM_CUH
#define CADDIE_K_GEMM_CUH

#include "kernels/k_common.cuh"

/* The backend's matmul precision (set_matmul_precision): 0 = fp32, 1 = bf16 operands with fp32
 * accumulation. One GPU and one backend per process, so these are file statics, like the bf16
 * workspace below. */
static int k_gemm_bf16;

/* ---- fp32 -> bf16 operand packing ---------------------------------------------------------- */

/* dst[b][r][c] (leading dimension ldd, item stride stride_d) = bf16(src[b*stride_s + r*ld + c])
 * for b < batch, r < rows, c < cols. vec: cols, ld and stride_s are multiples of 4 and src is
 * 16-byte aligned, so each thread converts 4 consecutive columns with one 128-bit load and one
 * 64-bit store (ldd is a multiple of 8 and dst 256-byte aligned, so the store is aligned). */
typedef struct k_to_bf16_params {
    unsigned short *dst;
    const float *src;
    int rows, cols, ld, ldd;
    long long stride_s, stride_d;
    int batch, vec;
} k_to_bf16_params;

__global__ void k_gemm_to_bf16(k_to_bf16_params p) {
    size_t per_row = p.vec ? (size_t)(p.cols / 4) : (size_t)p.cols;
    size_t total = per_row * p.rows * p.batch, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t row = i / per_row, c = i % per_row;
        size_t b = row / (size_t)p.rows, r = row % (size_t)p.rows;
        const float *s = p.src + (long long)b * p.stride_s + r * (size_t)p.ld;
        unsigned short *d = p.dst + (long long)b * p.stride_d + r * (size_t)p.ldd;
        if (p.vec) {
            k_f4 v = k_ld4(s + 4 * c);
            k_st_bf16x4(d + 4 * c, k_bf16_rne(v.x) | (k_bf16_rne(v.y) << 16),
                        k_bf16_rne(v.z) | (k_bf16_rne(v.w) << 16));
        } else {
            d[c] = (unsigned short)k_bf16_rne(s[c]);
        }
    }
}
EMU_KERNEL(k_gemm_to_bf16, k_to_bf16_params)

/* The bf16 operand workspace: grows (never shrinks) to the largest pair of operands seen. Shapes
 * are fixed after the first training step, so the steady state never allocates; the growth is
 * a cudaFree (which waits for queued work that may still read the old buffer) + cudaMalloc.
 * Backend-private like cuBLAS's own workspace: engine/backend.h's "no slot allocates" is about
 * tensors the caller would have to plan; this buffer is not visible to it. */
static unsigned short *k_gemm_ws;
static size_t k_gemm_ws_bytes;

static unsigned short *k_gemm_ws_reserve(size_t bytes) {
    if (bytes < 256) bytes = 256;
    if (bytes > k_gemm_ws_bytes) {
        size_t grow = k_gemm_ws_bytes + k_gemm_ws_bytes / 2; /* few regrowths while shapes vary */
        if (grow > bytes) bytes = grow;
        bytes = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
        if (k_gemm_ws) CUDA_CHECK(cudaFree(k_gemm_ws));
        k_gemm_ws = NULL;
        k_gemm_ws_bytes = 0;
        CUDA_CHECK(cudaMalloc((void **)&k_gemm_ws, bytes));
        k_gemm_ws_bytes = bytes;
    }
    return k_gemm_ws;
}

static void k_gemm_ws_free(void) {
    if (k_gemm_ws) CUDA_CHECK(cudaFree(k_gemm_ws));
    k_gemm_ws = NULL;
    k_gemm_ws_bytes = 0;
}

/* bf16 leading dimension of a packed [rows, cols] operand: cols rounded up to 8 (16 bytes). */
static int k_bf16_ld(int cols) { return cols < 1 ? 8 : (cols + 7) / 8 * 8; }

/* Bytes of a packed operand (items of rows x ldd bf16, 256-byte aligned end). */
static size_t k_bf16_bytes(int rows, int cols, int items) {
    size_t b = (size_t)items * rows * k_bf16_ld(cols) * sizeof(unsigned short);
    return (b + 255) & ~(size_t)255;
}

/* Queue the packing of `items` [rows, cols] fp32 matrices (ld, item stride stride_s) into dst. */
static void k_gemm_to_bf16_launch(cudaStream_t s, unsigned short *dst, const float *src, int rows,
                                  int cols, int ld, long long stride_s, int items) {
    if (rows <= 0 || cols <= 0 || items <= 0) return;
    int ldd = k_bf16_ld(cols);
    int vec = cols % 4 == 0 && ld % 4 == 0 && (items == 1 || stride_s % 4 == 0) && k_aligned16(src);
    k_to_bf16_params p = {dst, src, rows, cols, ld, ldd, stride_s, (long long)rows * ldd, items, vec};
    size_t work = (size_t)(vec ? cols / 4 : cols) * rows * items;
    KLAUNCH(k_gemm_to_bf16, k_grid_for(work, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

/* The bf16 product: pack op(A) and op(B) storage, one cuBLAS call on the packed copies. A batch
 * with stride 0 (an operand broadcast over the batch) is packed once and keeps stride 0. When B
 * is the very same operand as A (gram_batched: A A^T), it is packed once. */
static void k_gemm_rm_bf16(cublasHandle_t h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, long long stride_a, const float *B, int ldb,
                           long long stride_b, float beta, float *C, int ldc, long long stride_c,
                           int batch) {
    cudaStream_t s;
    CUBLAS_CHECK(cublasGetStream(h, &s));
    int arows = trans_a ? K : M, acols = trans_a ? M : K, brows = trans_b ? N : K, bcols = trans_b ? K : N;
    int items_a = stride_a == 0 ? 1 : batch, items_b = stride_b == 0 ? 1 : batch;
    int same = A == B && lda == ldb && stride_a == stride_b && arows == brows && acols == bcols;
    size_t bytes_a = k_bf16_bytes(arows, acols, items_a);
    size_t bytes_b = same ? 0 : k_bf16_bytes(brows, bcols, items_b);
    unsigned short *wa = k_gemm_ws_reserve(bytes_a + bytes_b);
    unsigned short *wb = same ? wa : wa + bytes_a / sizeof(unsigned short);
    k_gemm_to_bf16_launch(s, wa, A, arows, acols, lda, stride_a, items_a);
    if (!same) k_gemm_to_bf16_launch(s, wb, B, brows, bcols, ldb, stride_b, items_b);
    int pla = k_bf16_ld(acols), plb = k_bf16_ld(bcols);
    long long psa = items_a == 1 ? 0 : (long long)arows * pla, psb = items_b == 1 ? 0 : (long long)brows * plb;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, N, M, K, &alpha, wb, CUDA_R_16BF, plb, wa, CUDA_R_16BF, pla,
                                  &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, op_b, op_a, N, M, K, &alpha, wb, CUDA_R_16BF, plb, psb, wa,
                                                CUDA_R_16BF, pla, psa, &beta, C, CUDA_R_32F, ldc, stride_c,
                                                batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

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
        k_gemm_rm_bf16(h, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                       stride_c, batch);
    else if (batch == 1)
        CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(h, op_b, op_a, N, M, K, &alpha, B, ldb, stride_b, A,
                                               lda, stride_a, &beta, C, ldc, stride_c, batch));
}

#endif
