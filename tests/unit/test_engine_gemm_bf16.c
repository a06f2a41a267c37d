/*
 * test_engine_gemm_bf16.c — the bf16-operand GEMM (engine/gemm_bf16.c) and the CPU backend's
 * matmul_precision switch.
 *
 * The reference is a double-precision product of the operands rounded to bf16 by the same
 * rule, so the only admissible difference is fp32 accumulation: bounded by K * 2^-23 * sum of
 * |a||b| per element (checked with a factor of 4 to spare). A missed rounding shows as ~2^-9
 * relative, a packing error as O(1): both far outside.
 * Not here: speed (make bench), the model in bf16 (test_engine_model.c's bf16 parity).
 */
#include "engine/backend.h"
#include "check.h"
#include "engine/gemm_bf16.h"

#include <stdint.h>

static uint32_t rng_state = 12345;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

static float rb(float x) { return cad_bf16_to_float(cad_bf16_from_float(x)); }

static void test_rounding_rule(void) {
    CHECK_EQ_INT(cad_bf16_from_float(1.0f), 0x3f80);
    CHECK_EQ_INT(cad_bf16_from_float(-2.0f), 0xc000);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0) */
    CHECK_EQ_INT(cad_bf16_from_float(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one */
    CHECK_EQ_INT(cad_bf16_from_float(1.0f + 3 * 0x1p-8f), 0x3f82);
    CHECK_EQ_INT(cad_bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); /* above half: up */
    CHECK_EQ_INT(cad_bf16_from_float(INFINITY), 0x7f80);
    CHECK_EQ_INT(cad_bf16_from_float(3.4028235e38f), 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(isnan(cad_bf16_to_float(cad_bf16_from_float(NAN))));
    CHECK(isnan(cad_bf16_to_float(cad_bf16_from_float(-NAN))));
    CHECK(cad_bf16_to_float(0x3f81) == 1.0078125f);
}

/* One product checked element by element; C starts as NaN when beta == 0 (must not be read). */
static void gemm_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *C0 = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) A[i] = frand();
    for (size_t i = 0; i < nb; i++) B[i] = frand();
    for (size_t i = 0; i < nc; i++) C[i] = C0[i] = beta == 0.0f ? NAN : frand();
    cad_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int bad = 0;
    for (int i = 0; i < M && bad < 3; i++)
        for (int j = 0; j < N && bad < 3; j++) {
            double acc = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double a = rb(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                double b = rb(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                acc += a * b, mag += fabs(a * b);
            }
            double c0 = beta == 0.0f ? 0.0 : beta * (double)C0[(size_t)i * ldc + j]; /* C0 is NaN then */
            double want = alpha * acc + c0;
            double tol = 4.0 * (K + 2) * 0x1p-23 * (fabs(alpha) * mag + fabs(c0) + 1e-30);
            double got = C[(size_t)i * ldc + j];
            if (!(fabs(got - want) <= tol)) {
                bad++;
                CHECK_MSG(0, "ta=%d tb=%d M=%d N=%d K=%d: C[%d][%d] = %.9g, expected %.9g (tol %.3g)", ta, tb, M, N, K,
                          i, j, got, want, tol);
            }
        }
    /* padding columns of C are never written */
    for (int i = 0; i < M && pad; i++)
        for (int j = N; j < ldc; j++) {
            float a = C[(size_t)i * ldc + j], b = C0[(size_t)i * ldc + j];
            CHECK_MSG((isnan(a) && isnan(b)) || a == b, "padding C[%d][%d] written", i, j);
        }
    free(A), free(B), free(C), free(C0);
}

/* Shapes straddle every blocking edge of gemm_bf16.c (MR 12, NR 32, KC 512, MC 96, NC 1024):
 * partial micro-tiles, odd K (a zero-padded pair), K over one slice, N over one column block. */
static void run_shapes(void) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(ta, tb, 1, 1, 1, 1.0f, 0.0f, 0);
            gemm_case(ta, tb, 13, 33, 7, 0.5f, 0.0f, 3);
            gemm_case(ta, tb, 37, 45, 19, -1.0f, 0.75f, 1);
            gemm_case(ta, tb, 100, 70, 517, 1.0f, 1.0f, 0);
        }
    gemm_case(0, 1, 200, 1100, 64, 1.0f, 0.0f, 5);
    gemm_case(1, 0, 97, 40, 1030, 2.0f, -0.5f, 2);
    gemm_case(0, 0, 5, 3, 0, 1.0f, 0.5f, 0); /* K = 0: C = beta C */
}

static void test_products_avx512bf16(void) {
    const char *k = cad_gemm_bf16_select(CAD_GEMM_BF16_AUTO);
    if (strcmp(k, "avx512bf16") != 0) {
        SKIP("this CPU has no AVX512-BF16 (kernel in use: %s)", k);
        return;
    }
    run_shapes();
}

static void test_products_portable(void) {
    CHECK_STR(cad_gemm_bf16_select(CAD_GEMM_BF16_PORTABLE), "portable");
    run_shapes();
    cad_gemm_bf16_select(CAD_GEMM_BF16_AUTO);
}

/* The backend switch: bf16 products equal cad_gemm_bf16's (also split over threads), fp32
 * products are plain sgemm again afterwards, an unknown precision is refused. */
static void test_backend_precision_switch(void) {
    const cad_backend *be = cad_backend_cpu();
    be->set_threads(be, 2);
    int M = 256, N = 96, K = 160;
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)N * K * 4);
    float *C = malloc((size_t)M * N * 4), *R = malloc((size_t)M * N * 4);
    for (int i = 0; i < M * K; i++) A[i] = frand();
    for (int i = 0; i < N * K; i++) B[i] = frand();
    CHECK_EQ_INT(be->set_matmul_precision(be, 7), -1);
    CHECK_EQ_INT(be->set_matmul_precision(be, CAD_PREC_BF16), 0);
    be->matmul(be, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
    cad_gemm_bf16(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, R, N);
    /* row slabs of a multiple of 16 rows start on a micro-tile of the same packing: equal */
    CHECK(memcmp(C, R, (size_t)M * N * 4) == 0);
    CHECK_EQ_INT(be->set_matmul_precision(be, CAD_PREC_FP32), 0);
    be->matmul(be, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
    double maxd = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)A[i * K + k] * B[j * K + k];
            maxd = fmax(maxd, fabs(acc - C[i * N + j]));
        }
    CHECK_MSG(maxd < 1e-4, "fp32 matmul after switching back: max error %g (bf16 would be ~1e-2)", maxd);
    free(A), free(B), free(C), free(R);
}

int main(void) {
    RUN(test_rounding_rule);
    RUN(test_products_avx512bf16);
    RUN(test_products_portable);
    RUN(test_backend_precision_switch);
    return check_report();
}
