/*
 * gemm_bf16.h — single-threaded GEMM with bfloat16 operands and fp32 accumulation, the CPU
 * side of `matmul_precision: bf16` (train_gpt.py trains under torch.autocast(bfloat16): its
 * matmuls read bf16 operands; here the operands are rounded to bf16, round-to-nearest-even,
 * as they are packed, products accumulate in fp32 and C stays fp32).
 *
 * Same contract as cblas_sgemm(CblasRowMajor, ...) for one thread: C[M,N] = alpha op(A) op(B)
 * + beta C, beta == 0 means C is not read. Callers (engine/backend_cpu.c) split work across
 * threads as they do for sgemm. On a CPU with AVX512-BF16 (Zen 4, Cooper Lake, Sapphire
 * Rapids) the inner kernel is vdpbf16ps; elsewhere a portable kernel computes the same sums.
 *
 * Not here: threading, the choice of precision (the backend's), fp32 GEMM (OpenBLAS).
 */
#ifndef CADDIE_GEMM_BF16_H
#define CADDIE_GEMM_BF16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void cad_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* float -> bf16 bits, round to nearest even; NaN stays NaN (quietened). */
uint16_t cad_bf16_from_float(float x);
float cad_bf16_to_float(uint16_t b);

/* Which inner kernel runs: CAD_GEMM_BF16_AUTO picks AVX512-BF16 when the CPU has it. The
 * portable one is selectable so tests can compare both on one machine. Returns the name of
 * the kernel now in use ("avx512bf16" or "portable"). */
enum { CAD_GEMM_BF16_AUTO = 0, CAD_GEMM_BF16_PORTABLE = 1 };
const char *cad_gemm_bf16_select(int which);

#ifdef __cplusplus
}
#endif
#endif
