/*
 * backend_cpu.c — the CPU reference backend: every cad_backend slot in plain C11 with OpenMP,
 * dense products through OpenBLAS sgemm.
 *
 * This is the backend every other backend is judged against (tests/unit/test_engine_ops.c
 * checks each backward here against finite differences), and the one `make demo` trains with,
 * so it is written to be both readable and fast enough on a 2-core box:
 * - OpenBLAS runs single-threaded per call (openblas_set_num_threads(1) once) and this file
 *   splits work across the OpenMP team itself. Two thread pools spinning on two cores starve
 *   each other; one pool that hands each thread its own slab of rows does not.
 * - Attention is flash-style: scores are computed in row blocks with sgemm, probabilities are
 *   never stored across calls (only the log-sum-exp per row), and the backward recomputes them.
 * - exp/tanh on the [N,V] logits use vectorisable polynomial approximations (Cephes
 *   coefficients, ~1-2 ulp), because libm's scalar calls would dominate the loss.
 * - Row reductions into parameter gradients partition columns (or fix the thread partition),
 *   so results do not depend on scheduling: same thread count, same bits.
 *
 * Layout: one section per op, a rule with the op's name (the slot name without _forward /
 * _backward) holding its cpu_<slot> functions and the helpers only it uses, in the slot order
 * of engine/backend.h; helpers several ops share sit in "shared: ..." sections before their
 * first user. kernels/README.md's op table points at these sections (tests/cli/t0901 checks it).
 *
 * Not here: anything about which op runs on which buffer (engine/model.c), optimizer policy
 * (engine/optim.c), memory planning (callers pass every buffer, including scratch).
 */
#include "engine/backend.h"
#include "engine/gemm_bf16.h"
#include "engine/export.h"

/* The release build is -O2, whose "very cheap" vectoriser cost model refuses the omp simd
 * reductions below (softmax max/sum, rmsnorm sums); they are the difference between scalar and
 * 16-wide exp over the [T,T] scores, so this file asks for the normal cost model. */
#pragma GCC optimize("vect-cost-model=dynamic")

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


/* Threads the ops use; 0 until set_threads or first use (then omp_get_max_threads()). */
static int cpu_threads;

static int cpu_nthreads(void) {
    if (cpu_threads <= 0) cpu_threads = omp_get_max_threads();
    return cpu_threads;
}

/* ---- memory ----------------------------------------------------------------------------- */

static void *cpu_alloc(const cad_backend *be, size_t bytes) {
    (void)be;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

static void cpu_free(const cad_backend *be, void *p) {
    (void)be;
    free(p);
}

/* Large copies (Newton-Schulz stacks) go in one contiguous slice per thread: one core's memcpy
 * does not saturate the memory bus. */
static void cpu_copy(const cad_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    int nt = cpu_nthreads();
    if (nt == 1 || bytes < ((size_t)1 << 20) || omp_in_parallel()) {
        if (bytes) memcpy(dst, src, bytes);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = (bytes * tid / team) & ~(size_t)63;
        size_t hi = tid == team - 1 ? bytes : (bytes * (tid + 1) / team) & ~(size_t)63;
        memcpy((char *)dst + lo, (const char *)src + lo, hi - lo);
    }
}

static void cpu_memset_zero(const cad_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
}

static void cpu_sync(const cad_backend *be) { (void)be; }

static void cpu_set_threads(const cad_backend *be, int n) {
    (void)be;
    if (n <= 0) return; /* keep the default (OMP_NUM_THREADS or all cores) */
    cpu_threads = n;
    omp_set_num_threads(n);
}

/* ---- shared: vectorised exp and tanh ---------------------------------------------------- */

/* gcc's auto-vectoriser gives up on the float<->int bit cast that exp needs (memcpy or union),
 * so exp/tanh over arrays are written with GCC vector extensions (16 floats; gcc lowers them
 * to whatever -march offers); the scalar versions below evaluate the same polynomials for the
 * tails (they may differ in the last bit where the compiler contracts to FMA differently).
 *
 * exp(x): Cephes expf polynomial on r = x - n*ln2 (|r| <= ln2/2, n rounded to nearest with
 * the 1.5*2^23 trick), 2^n built from n's bits. The input is clamped to [-87.3, 88.7]: below,
 * 2^n stays a normal float (exp(-87.3) ~ 1.2e-38 instead of a denormal: irrelevant in softmax
 * sums; denormals are slow); above, n reaches 128 from x ~ 88.38 on, whose 2^n is +Inf.
 * Non-finite inputs give what expf gives, with no extra work after the polynomial (the vector
 * loops are register-bound): +Inf clamps to 88.7, so +Inf; -Inf clamps to -88 instead of
 * -87.3, where n = -127 makes 2^n = +0, so 0; a NaN stays NaN in r, and the polynomial carries
 * it to the result. n never goes through a float -> int conversion (a NaN there is undefined
 * behaviour; on x86 it gave INT_MIN, and "+ 127 << 23" then shifted a negative value):
 * t + 1.5*2^23 holds n in its low mantissa bits, so n = bits(t + M) - bits(M) in unsigned
 * arithmetic, exactly (int)n for every finite input and harmless garbage for a NaN.
 * tanh(x): Cephes tanhf, odd polynomial below |x| 0.625, 1 - 2/(e^{2|x|}+1) above. ~2 ulp. */
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
#define V16 16
#define EXP_LO -87.3f
#define EXP_HI 88.7f
#define EXP_NEG_INF -88.0f /* where -Inf clamps: n = -127, 2^n = +0 */
#define ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: (t + M) - M rounds t to the nearest integer */

static inline float fast_expf(float x) {
    float xc = x < EXP_LO ? (x == -INFINITY ? EXP_NEG_INF : EXP_LO) : (x > EXP_HI ? EXP_HI : x);
    float nm = xc * 1.44269504088896341f + ROUND_MAGIC, n = nm - ROUND_MAGIC;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t nm_bits, magic_bits, bits;
    float magic = ROUND_MAGIC, two_n;
    memcpy(&nm_bits, &nm, sizeof nm_bits);
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    bits = (nm_bits - magic_bits + 127u) << 23;
    memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
}

static inline float fast_tanhf(float x) {
    float ax = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = fast_expf(2.0f * ax);
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

/* The vector helpers are macros, not functions: a function taking or returning a 64-byte vector
 * makes gcc print psABI notes in builds without AVX-512 (the sanitizer build). */
#define V16_SPLAT(a) ((v16f){0} + (a))
#define V16_LOAD(v, p) memcpy(&(v), (p), sizeof(v16f))
#define V16_STORE(p, v) memcpy((p), &(v), sizeof(v16f))
/* mask ? a : b with all-ones/zero lanes (C has no ?: on vectors) */
#define V16_SELECT(mask, a, b) ((v16f)(((v16i)(a) & (mask)) | ((v16i)(b) & ~(mask))))
/* dst = exp(src), the vector twin of fast_expf (same operations, same results) */
#define V16_EXP(dst, src)                                                                      \
    do {                                                                                       \
        v16f x_ = (src);                                                                       \
        v16f lo_ = V16_SELECT(x_ == -INFINITY, V16_SPLAT(EXP_NEG_INF), V16_SPLAT(EXP_LO));     \
        x_ = V16_SELECT(x_ < EXP_LO, lo_, x_);                                                 \
        x_ = V16_SELECT(x_ > EXP_HI, V16_SPLAT(EXP_HI), x_);                                   \
        v16f nm_ = x_ * 1.44269504088896341f + ROUND_MAGIC, n_ = nm_ - ROUND_MAGIC;            \
        v16f r_ = x_ - n_ * 0.693359375f;                                                      \
        r_ = r_ - n_ * -2.12194440e-4f;                                                        \
        v16f p_ = V16_SPLAT(1.9875691500e-4f);                                                 \
        p_ = p_ * r_ + 1.3981999507e-3f;                                                       \
        p_ = p_ * r_ + 8.3334519073e-3f;                                                       \
        p_ = p_ * r_ + 4.1665795894e-2f;                                                       \
        p_ = p_ * r_ + 1.6666665459e-1f;                                                       \
        p_ = p_ * r_ + 5.0000001201e-1f;                                                       \
        p_ = p_ * r_ * r_ + r_ + 1.0f;                                                         \
        v16u bits_ = ((v16u)nm_ - (v16u)V16_SPLAT(ROUND_MAGIC) + 127u) << 23;                  \
        (dst) = p_ * (v16f)bits_;                                                              \
    } while (0)
/* dst = tanh(src), the vector twin of fast_tanhf */
#define V16_TANH(dst, src)                                                                     \
    do {                                                                                       \
        v16f t_ = (src);                                                                       \
        v16i sign_ = (v16i)t_ & (int32_t)0x80000000;                                           \
        v16f at_ = (v16f)((v16i)t_ & 0x7fffffff);                                              \
        v16f z_ = t_ * t_;                                                                     \
        v16f small_ = ((((-5.70498872745e-3f * z_ + 2.06390887954e-2f) * z_ - 5.37397155531e-2f) * z_ + \
                        1.33314422036e-1f) * z_ - 3.33332819422e-1f) * z_ * t_ + t_;           \
        v16f e_;                                                                               \
        V16_EXP(e_, 2.0f * at_);                                                               \
        v16f big_ = 1.0f - 2.0f / (e_ + 1.0f);                                                 \
        big_ = (v16f)((v16i)big_ ^ sign_);                                                     \
        (dst) = V16_SELECT(at_ < 0.625f, small_, big_);                                        \
    } while (0)

/* ---- shared: one thread's GEMM ---------------------------------------------------------- */

/* Every dense product of this file runs through gemm1: one thread's row-major GEMM, fp32
 * (OpenBLAS sgemm) or bf16 operands with fp32 accumulation (gemm_bf16.c), chosen by
 * set_matmul_precision for the whole backend, the way torch.autocast covers a whole region. */
typedef void (*gemm1_fn)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);

static void sgemm1(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static gemm1_fn gemm1 = sgemm1;

/* ---- set_matmul_precision --------------------------------------------------------------- */

static int cpu_set_matmul_precision(const cad_backend *be, int precision) {
    (void)be;
    if (precision != CAD_PREC_FP32 && precision != CAD_PREC_BF16) return -1;
    gemm1 = precision == CAD_PREC_BF16 ? cad_gemm_bf16 : sgemm1;
    return 0;
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* Row-major sgemm, split over the OpenMP team along the larger of M and N (each thread runs
 * a single-threaded sgemm on its slab). Small products and calls from inside a parallel
 * region run directly. */
static void cpu_matmul(const cad_backend *be, int trans_a, int trans_b, int M, int N, int K,
                       float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                       float *C, int ldc) {
    (void)be;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* op(A) op(B) is the zero matrix: C = beta*C (beta 0: C not read) */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    int nt = cpu_nthreads();
    double flops = 2.0 * M * N * K;
    if (nt == 1 || omp_in_parallel() || flops < 4e6) {
        gemm1(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_m = M >= N;
    int dim = split_m ? M : N;
    int chunk = (dim + nt - 1) / nt;
    chunk = (chunk + 15) & ~15; /* keep slabs a multiple of the sgemm register tile */
    int nchunks = (dim + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < nchunks; c++) {
        int lo = c * chunk, len = dim - lo < chunk ? dim - lo : chunk;
        if (split_m) {
            const float *a = trans_a ? A + lo : A + (size_t)lo * lda;
            gemm1(trans_a, trans_b, len, N, K, alpha, a, lda, B, ldb, beta,
                        C + (size_t)lo * ldc, ldc);
        } else {
            const float *b = trans_b ? B + (size_t)lo * ldb : B + lo;
            gemm1(trans_a, trans_b, M, len, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
        }
    }
}

/* ---- matmul_batched --------------------------------------------------------------------- */

/* Batched matmul. Thread t owns whole items t, t+team, ... below batch - batch % team (one
 * single-threaded sgemm each: a whole small matrix runs far closer to the sgemm peak than a
 * slice of it); each item left over is cut into `team` slabs as in cpu_matmul, thread t taking
 * slab t, so a batch that does not divide evenly leaves no thread idle. Deterministic for a
 * thread count (the partition is fixed). */
static void cpu_matmul_batched(const cad_backend *be, int trans_a, int trans_b, int M, int N, int K,
                               float alpha, const float *A, int lda, long long stride_a,
                               const float *B, int ldb, long long stride_b, float beta, float *C,
                               int ldc, long long stride_c, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    int nt = cpu_nthreads();
    if (K <= 0 || nt == 1 || omp_in_parallel() || batch == 1) {
        for (int b = 0; b < batch; b++)
            cpu_matmul(be, trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b,
                       ldb, beta, C + b * stride_c, ldc);
        return;
    }
    int split_m = M >= N, dim = split_m ? M : N;
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        int whole = batch - batch % team;
        for (int b = tid; b < whole; b += team)
            gemm1(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b,
                        ldb, beta, C + b * stride_c, ldc);
        int chunk = ((dim + team - 1) / team + 15) & ~15;
        int lo = tid * chunk, len = dim - lo < chunk ? dim - lo : chunk;
        for (int b = whole; b < batch && len > 0; b++) {
            const float *Ab = A + b * stride_a, *Bb = B + b * stride_b;
            float *Cb = C + b * stride_c;
            if (split_m)
                gemm1(trans_a, trans_b, len, N, K, alpha,
                            trans_a ? Ab + lo : Ab + (size_t)lo * lda, lda, Bb, ldb, beta,
                            Cb + (size_t)lo * ldc, ldc);
            else
                gemm1(trans_a, trans_b, M, len, K, alpha, Ab, lda,
                            trans_b ? Bb + (size_t)lo * ldb : Bb + lo, ldb, beta, Cb + lo, ldc);
        }
    }
}

/* ---- gram_batched ----------------------------------------------------------------------- */

/* Rows [r0, r1) of the upper triangle of the row-major C[M,M] = alpha op(A) op(A)^T + beta C:
 * ssyrk on the diagonal block, sgemm right of it. */
static void gram_rows(int trans_a, int M, int K, float alpha, const float *A, int lda, float beta,
                      float *C, int ldc, int r0, int r1) {
    if (r1 <= r0) return;
    const float *a0 = trans_a ? A + r0 : A + (size_t)r0 * lda; /* op(A) rows r0.. */
    const float *a1 = trans_a ? A + r1 : A + (size_t)r1 * lda; /* op(A) rows r1.. */
    if (gemm1 == sgemm1)
        cblas_ssyrk(CblasRowMajor, CblasUpper, trans_a ? CblasTrans : CblasNoTrans, r1 - r0, K, alpha,
                    a0, lda, beta, C + (size_t)r0 * ldc + r0, ldc);
    else /* no bf16 syrk: the whole diagonal block (both triangles; the mirror rewrites one) */
        gemm1(trans_a, !trans_a, r1 - r0, r1 - r0, K, alpha, a0, lda, a0, lda, beta,
              C + (size_t)r0 * ldc + r0, ldc);
    if (r1 < M)
        gemm1(trans_a, !trans_a,
                    r1 - r0, M - r1, K, alpha, a0, lda, a1, lda, beta, C + (size_t)r0 * ldc + r1, ldc);
}

/* Lower triangle of rows [r0, r1) from the upper one: C[i][j] = C[j][i], j < i. */
static void gram_mirror(float *C, int ldc, int r0, int r1) {
    for (int i = r0; i < r1; i++)
        for (int j = 0; j < i; j++) C[(size_t)i * ldc + j] = C[(size_t)j * ldc + i];
}

/* Batched Gram product: the same partition as cpu_matmul_batched. A left-over item is split
 * into row slabs of the upper triangle with equal areas (row r's share is M - r), then mirrored
 * after a barrier (a row's lower half is other rows' upper halves). */
static void cpu_gram_batched(const cad_backend *be, int trans_a, int M, int K, float alpha,
                             const float *A, int lda, long long stride_a, float beta, float *C,
                             int ldc, long long stride_c, int batch) {
    (void)be;
    if (M <= 0 || batch <= 0) return;
    if (K <= 0) { /* op(A) op(A)^T is zero: C = beta*C (symmetric on entry, so all of it) */
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < M; j++) {
                    float *c = C + b * stride_c + (size_t)i * ldc + j;
                    *c = beta == 0.0f ? 0.0f : beta * *c;
                }
        return;
    }
    int nt = cpu_nthreads();
    if (nt == 1 || omp_in_parallel() || (double)M * M * K * batch < 2e6) {
        for (int b = 0; b < batch; b++) {
            gram_rows(trans_a, M, K, alpha, A + b * stride_a, lda, beta, C + b * stride_c, ldc, 0, M);
            gram_mirror(C + b * stride_c, ldc, 0, M);
        }
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        int whole = batch - batch % team;
        for (int b = tid; b < whole; b += team) {
            gram_rows(trans_a, M, K, alpha, A + b * stride_a, lda, beta, C + b * stride_c, ldc, 0, M);
            gram_mirror(C + b * stride_c, ldc, 0, M);
        }
        /* rows [M(1 - sqrt(1 - t/team))) hold 1/team of the triangle each; multiples of 16 */
        int r0 = tid == 0 ? 0 : ((int)(M * (1.0 - sqrt(1.0 - (double)tid / team))) + 8) & ~15;
        int r1 = tid == team - 1 ? M : ((int)(M * (1.0 - sqrt(1.0 - (double)(tid + 1) / team))) + 8) & ~15;
        r0 = r0 > M ? M : r0;
        r1 = r1 > M ? M : r1;
        for (int b = whole; b < batch; b++) {
            gram_rows(trans_a, M, K, alpha, A + b * stride_a, lda, beta, C + b * stride_c, ldc, r0, r1);
#pragma omp barrier
            gram_mirror(C + b * stride_c, ldc, r0, r1);
        }
    }
}

/* ---- embedding -------------------------------------------------------------------------- */

static void cpu_embedding_forward(const cad_backend *be, float *out, const int32_t *ids,
                                  const float *wte, int N, int C) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, sizeof(float) * C);
}

/* Columns are partitioned across threads so the scatter-add has no races and a fixed order. */
#define COL_BLOCK 64
static void cpu_embedding_backward(const cad_backend *be, float *dwte, const float *dout,
                                   const int32_t *ids, int N, int C) {
    (void)be;
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int cb = 0; cb < nblk; cb++) {
        int c0 = cb * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            float *dst = dwte + (size_t)ids[n] * C;
            const float *src = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

/* ---- rmsnorm ---------------------------------------------------------------------------- */

static void cpu_rmsnorm_forward(const cad_backend *be, float *out, float *rstd, const float *in,
                                int N, int C, float eps) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        rstd[n] = r;
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = x[c] * r;
    }
}

static void cpu_rmsnorm_backward(const cad_backend *be, float *din, const float *dout,
                                 const float *out, const float *rstd, int N, int C) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *dy = dout + (size_t)n * C, *y = out + (size_t)n * C;
        float *dx = din + (size_t)n * C;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++) dot += (double)dy[c] * y[c];
        float m = (float)(dot / C), r = rstd[n];
#pragma omp simd
        for (int c = 0; c < C; c++) dx[c] += r * (dy[c] - y[c] * m);
    }
}

/* ---- qk_norm_rope ----------------------------------------------------------------------- */

/* Normalise one head vector x[HD] with eps, rotate by (cos, sin)[HD/2], scale by g. */
static inline float head_norm_rope(float *out, const float *x, const float *cs, const float *sn,
                                   int HD, float eps, float g) {
    int half = HD / 2;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int d = 0; d < HD; d++) ss += (double)x[d] * x[d];
    float r = 1.0f / sqrtf((float)(ss / HD) + eps);
#pragma omp simd
    for (int d = 0; d < half; d++) {
        float u1 = x[d] * r, u2 = x[d + half] * r;
        out[d] = g * (u1 * cs[d] + u2 * sn[d]);
        out[d + half] = g * (-u1 * sn[d] + u2 * cs[d]);
    }
    return r;
}

static void cpu_qk_norm_rope_forward(const cad_backend *be, float *q_out, float *k_out,
                                     float *rstd_q, float *rstd_k, const float *qkv,
                                     const float *q_gain, const float *cos, const float *sin,
                                     int B, int T, int NH, int KV, int HD, float eps) {
    (void)be;
    int N = B * T, ld = (NH + 2 * KV) * HD, half = HD / 2;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        int t = n % T;
        const float *row = qkv + (size_t)n * ld;
        const float *cs = cos + (size_t)t * half, *sn = sin + (size_t)t * half;
        for (int h = 0; h < NH; h++)
            rstd_q[(size_t)n * NH + h] = head_norm_rope(q_out + (size_t)n * NH * HD + h * HD,
                                                        row + h * HD, cs, sn, HD, eps, q_gain[h]);
        for (int g = 0; g < KV; g++)
            rstd_k[(size_t)n * KV + g] = head_norm_rope(k_out + (size_t)n * KV * HD + g * HD,
                                                        row + (NH + g) * HD, cs, sn, HD, eps, 1.0f);
    }
}

/* Backward of head_norm_rope for gradient dr of the rotated (unscaled) vector: inverse
 * rotation, then the rmsnorm backward with u = x*r recomputed from the input. */
static inline void head_norm_rope_backward(float *dx, const float *dr, const float *x, float r,
                                           const float *cs, const float *sn, int HD) {
    int half = HD / 2;
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int d = 0; d < half; d++) {
        float du1 = dr[d] * cs[d] - dr[d + half] * sn[d];
        float du2 = dr[d] * sn[d] + dr[d + half] * cs[d];
        dx[d] = du1; /* park du in dx, finished below */
        dx[d + half] = du2;
        dot += (double)du1 * x[d] * r + (double)du2 * x[d + half] * r;
    }
    float m = (float)(dot / HD);
#pragma omp simd
    for (int d = 0; d < HD; d++) dx[d] = r * (dx[d] - x[d] * r * m);
}

static void cpu_qk_norm_rope_backward(const cad_backend *be, float *dqkv, float *dq_gain,
                                      const float *dq_out, const float *dk_out, const float *qkv,
                                      const float *rstd_q, const float *rstd_k,
                                      const float *q_gain, const float *cos, const float *sin,
                                      int B, int T, int NH, int KV, int HD) {
    (void)be;
    int N = B * T, ld = (NH + 2 * KV) * HD, half = HD / 2;
    int nt = cpu_nthreads();
    /* q_gain partial sums per thread over a fixed row partition, summed in thread order. */
    double part[nt][NH];
    memset(part, 0, sizeof(part));
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        int lo = (int)((long)N * tid / team), hi = (int)((long)N * (tid + 1) / team);
        float dr[HD];
        for (int n = lo; n < hi; n++) {
            int t = n % T;
            const float *row = qkv + (size_t)n * ld;
            float *drow = dqkv + (size_t)n * ld;
            const float *cs = cos + (size_t)t * half, *sn = sin + (size_t)t * half;
            for (int h = 0; h < NH; h++) {
                const float *dqo = dq_out + (size_t)n * NH * HD + h * HD;
                const float *x = row + h * HD;
                float r = rstd_q[(size_t)n * NH + h], g = q_gain[h];
                double gsum = 0.0;
#pragma omp simd reduction(+ : gsum)
                for (int d = 0; d < half; d++) { /* rotated normalised q, for dq_gain */
                    float u1 = x[d] * r, u2 = x[d + half] * r;
                    gsum += (double)dqo[d] * (u1 * cs[d] + u2 * sn[d]) +
                            (double)dqo[d + half] * (-u1 * sn[d] + u2 * cs[d]);
                }
                part[tid][h] += gsum;
#pragma omp simd
                for (int d = 0; d < HD; d++) dr[d] = g * dqo[d];
                head_norm_rope_backward(drow + h * HD, dr, x, r, cs, sn, HD);
            }
            for (int g = 0; g < KV; g++)
                head_norm_rope_backward(drow + (NH + g) * HD, dk_out + (size_t)n * KV * HD + g * HD,
                                        row + (NH + g) * HD, rstd_k[(size_t)n * KV + g], cs, sn, HD);
        }
    }
    for (int h = 0; h < NH; h++) {
        double s = 0.0;
        for (int i = 0; i < nt; i++) s += part[i][h];
        dq_gain[h] += (float)s;
    }
}

/* ---- attention -------------------------------------------------------------------------- */

/* Query rows per block and head: scores for a block are [ATT_RB, T] per query head. 64 measured
 * best of 64/128/256 (single thread, T = 256 and 1024); -DATT_RB=n rebuilds with another.
 *
 * The query heads of a GQA group share their k and v rows, so a task stacks the group's heads:
 * their q (and dy) rows are packed one head after the other into a [group*ATT_RB, HD] block and
 * every product runs once for the whole group. That doubles (for 2 heads per kv head) the rows
 * each packed k/v panel of the sgemm serves and the depth of the dK/dV accumulations, without
 * the extra masked work a taller row block would bring. */
#ifndef ATT_RB
#define ATT_RB 64
#endif

/* Per-thread scratch in floats: S and dP [R, T], packed q, dy and the [R, HD] product (R =
 * group * ATT_RB stacked rows), and D / row sums [R]. */
static size_t att_per_thread(int T, int NH, int KV, int HD) {
    size_t R = (size_t)(NH / KV) * ATT_RB;
    return 2 * R * T + 3 * R * HD + R;
}

static size_t cpu_attention_scratch_bytes(const cad_backend *be, int B, int T, int NH, int KV,
                                          int HD) {
    (void)be; (void)B;
    return (size_t)cpu_nthreads() * att_per_thread(T, NH, KV, HD) * sizeof(float);
}

static int att_threads(size_t per_floats, size_t scratch_bytes) {
    int nt = cpu_nthreads();
    int fit = (int)(scratch_bytes / (per_floats * sizeof(float)));
    return fit < nt ? (fit < 1 ? 1 : fit) : nt;
}

/* dst[hh*nr + i][0:HD] = src[row i][(h0 + hh)*HD ...] for the group's heads hh: the stacked block. */
static void att_pack(float *dst, const float *src, int ld, int h0, int group, int nr, int HD) {
    for (int hh = 0; hh < group; hh++)
        for (int i = 0; i < nr; i++)
            memcpy(dst + ((size_t)hh * nr + i) * HD, src + (size_t)i * ld + (size_t)(h0 + hh) * HD,
                   sizeof(float) * HD);
}

/* s[j] = exp(s[j] - sub) for j < n; returns the sum of the results. */
static float array_exp_sub(float *s, int n, float sub) {
    v16f acc = V16_SPLAT(0.0f), v, e;
    int j = 0;
    for (; j + V16 <= n; j += V16) {
        V16_LOAD(v, s + j);
        V16_EXP(e, v - sub);
        V16_STORE(s + j, e);
        acc += e;
    }
    float sum = 0.0f;
    for (int i = 0; i < V16; i++) sum += acc[i];
    for (; j < n; j++) sum += (s[j] = fast_expf(s[j] - sub));
    return sum;
}

static void cpu_attention_forward(const cad_backend *be, float *y, int ldy, float *lse,
                                  const float *q, int ldq, const float *k, int ldk,
                                  const float *v, int ldv, int B, int T, int NH, int KV, int HD,
                                  float scale, void *scratch, size_t scratch_bytes) {
    (void)be;
    int group = NH / KV, nrb = (T + ATT_RB - 1) / ATT_RB, R = group * ATT_RB;
    int ntasks = B * KV * nrb;
    size_t per = att_per_thread(T, NH, KV, HD);
    int nt = att_threads(per, scratch_bytes);
    /* dynamic: the causal triangle makes late row blocks cost more than early ones */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = ntasks - 1; task >= 0; task--) {
        int rb = task % nrb, g = (task / nrb) % KV, b = task / (nrb * KV);
        float *S = (float *)scratch + per * omp_get_thread_num();
        float *Qp = S + (size_t)2 * R * T, *Yp = Qp + (size_t)2 * R * HD; /* dy slot unused here */
        float *rowsum = Yp + (size_t)R * HD;
        int r0 = rb * ATT_RB, r1 = r0 + ATT_RB < T ? r0 + ATT_RB : T, nr = r1 - r0, nk = r1;
        int rows = group * nr;
        const float *kb = k + (size_t)b * T * ldk + g * HD;
        const float *vb = v + (size_t)b * T * ldv + g * HD;
        att_pack(Qp, q + (size_t)(b * T + r0) * ldq, ldq, g * group, group, nr, HD);
        gemm1(0, 1, rows, nk, HD, scale, Qp, HD, kb, ldk,
                    0.0f, S, nk);
        for (int ii = 0; ii < rows; ii++) {
            int hh = ii / nr, i = ii % nr, h = g * group + hh;
            float *s = S + (size_t)ii * nk;
            int nv = r0 + i + 1; /* keys 0..t visible */
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < nv; j++) mx = s[j] > mx ? s[j] : mx;
            float sum = array_exp_sub(s, nv, mx);
            for (int j = nv; j < nk; j++) s[j] = 0.0f;
            rowsum[ii] = sum; /* P stays unnormalised; y's row is divided by the sum instead (HD, not T, divides) */
            lse[((size_t)b * NH + h) * T + r0 + i] = mx + logf(sum);
        }
        gemm1(0, 0, rows, HD, nk, 1.0f, S, nk, vb, ldv,
                    0.0f, Yp, HD);
        for (int ii = 0; ii < rows; ii++) {
            int hh = ii / nr, i = ii % nr;
            float inv = 1.0f / rowsum[ii], *yr = y + (size_t)(b * T + r0 + i) * ldy + (size_t)(g * group + hh) * HD;
            const float *src = Yp + (size_t)ii * HD;
            for (int d = 0; d < HD; d++) yr[d] = src[d] * inv;
        }
    }
}

static void cpu_attention_backward(const cad_backend *be, float *dq, int lddq, float *dk, int lddk,
                                   float *dv, int lddv, const float *dy, int lddy, const float *y,
                                   int ldy, const float *lse, const float *q, int ldq,
                                   const float *k, int ldk, const float *v, int ldv, int B, int T,
                                   int NH, int KV, int HD, float scale, void *scratch,
                                   size_t scratch_bytes) {
    (void)be;
    int group = NH / KV, nrb = (T + ATT_RB - 1) / ATT_RB, R = group * ATT_RB;
    size_t per = att_per_thread(T, NH, KV, HD);
    int nt = att_threads(per, scratch_bytes);
    /* one task per (b, kv head): the query heads of a group all add into the same dk/dv rows,
     * so they run in one task (stacked), in order (no races, fixed summation order). */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < B * KV; task++) {
        int b = task / KV, g = task % KV, h0 = g * group;
        float *S = (float *)scratch + per * omp_get_thread_num();
        float *dP = S + (size_t)R * T, *Qp = dP + (size_t)R * T, *dYp = Qp + (size_t)R * HD;
        float *dQp = dYp + (size_t)R * HD, *D = dQp + (size_t)R * HD;
        const float *kb = k + (size_t)b * T * ldk + g * HD;
        const float *vb = v + (size_t)b * T * ldv + g * HD;
        float *dkb = dk + (size_t)b * T * lddk + g * HD;
        float *dvb = dv + (size_t)b * T * lddv + g * HD;
        for (int t = 0; t < T; t++) {
            memset(dkb + (size_t)t * lddk, 0, sizeof(float) * HD);
            memset(dvb + (size_t)t * lddv, 0, sizeof(float) * HD);
        }
        for (int rb = 0; rb < nrb; rb++) {
            int r0 = rb * ATT_RB, r1 = r0 + ATT_RB < T ? r0 + ATT_RB : T, nr = r1 - r0, nk = r1;
            int rows = group * nr;
            att_pack(Qp, q + (size_t)(b * T + r0) * ldq, ldq, h0, group, nr, HD);
            att_pack(dYp, dy + (size_t)(b * T + r0) * lddy, lddy, h0, group, nr, HD);
            /* P = exp(scale q k^T - lse), causal */
            gemm1(0, 1, rows, nk, HD, scale, Qp, HD, kb, ldk,
                        0.0f, S, nk);
            for (int ii = 0; ii < rows; ii++) {
                int hh = ii / nr, i = ii % nr, h = h0 + hh;
                float *s = S + (size_t)ii * nk, l = lse[((size_t)b * NH + h) * T + r0 + i];
                int nv = r0 + i + 1;
                array_exp_sub(s, nv, l);
                for (int j = nv; j < nk; j++) s[j] = 0.0f;
                const float *yr = y + (size_t)(b * T + r0 + i) * ldy + (size_t)h * HD, *dyr = dYp + (size_t)ii * HD;
                double dd = 0.0; /* D_i = dy_i . y_i = sum_j P_ij dP_ij */
                for (int d = 0; d < HD; d++) dd += (double)dyr[d] * yr[d];
                D[ii] = (float)dd;
            }
            /* dV[0:nk] += P^T dY (both heads in one product) */
            gemm1(1, 0, nk, HD, rows, 1.0f, S, nk, dYp, HD,
                        1.0f, dvb, lddv);
            /* dP = dY V^T */
            gemm1(0, 1, rows, nk, HD, 1.0f, dYp, HD, vb, ldv,
                        0.0f, dP, nk);
            /* dS = P * (dP - D) * scale (zero where masked since P is zero there) */
            for (int ii = 0; ii < rows; ii++) {
                float *s = S + (size_t)ii * nk, *dp = dP + (size_t)ii * nk, di = D[ii];
#pragma omp simd
                for (int j = 0; j < nk; j++) dp[j] = s[j] * (dp[j] - di) * scale;
            }
            /* dQ = dS K (stacked, then written to each head's columns); dK[0:nk] += dS^T Q */
            gemm1(0, 0, rows, HD, nk, 1.0f, dP, nk, kb, ldk,
                        0.0f, dQp, HD);
            for (int ii = 0; ii < rows; ii++) {
                int hh = ii / nr, i = ii % nr;
                memcpy(dq + (size_t)(b * T + r0 + i) * lddq + (size_t)(h0 + hh) * HD, dQp + (size_t)ii * HD,
                       sizeof(float) * HD);
            }
            gemm1(1, 0, nk, HD, rows, 1.0f, dP, nk, Qp, HD, 1.0f,
                        dkb, lddk);
        }
    }
}

/* ---- xsa -------------------------------------------------------------------------------- */

/* |v|^2, y.v and (g non-NULL) g.v of one head row against its kv head's value, in double: |v|
 * can be tiny, and the projection is applied to every head of the group. */
static void xsa_dots(const float *v, const float *y, const float *g, int HD, double *vv, double *yv, double *gv) {
    double a = 0, b = 0, c = 0;
    for (int d = 0; d < HD; d++) {
        a += (double)v[d] * v[d], b += (double)y[d] * v[d];
        if (g) c += (double)g[d] * v[d];
    }
    *vv = a, *yv = b, *gv = c;
}

static void cpu_xsa_forward(const cad_backend *be, float *out, int ldo, const float *y, int ldy, const float *v,
                            int ldv, int N, int NH, int KV, int HD) {
    (void)be;
    int group = NH / KV;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++) {
            const float *vr = v + (size_t)n * ldv + (size_t)(h / group) * HD, *yr = y + (size_t)n * ldy + (size_t)h * HD;
            float *o = out + (size_t)n * ldo + (size_t)h * HD;
            double vv, yv, gv;
            xsa_dots(vr, yr, NULL, HD, &vv, &yv, &gv);
            double c = vv > 0 ? yv / vv : 0.0; /* (y.u) u = (y.v) v / |v|^2 */
            for (int d = 0; d < HD; d++) o[d] = (float)(yr[d] - c * vr[d]);
        }
}

static void cpu_xsa_backward(const cad_backend *be, float *dy, int lddy, float *dv, int lddv, const float *dout,
                             int lddo, const float *y, int ldy, const float *v, int ldv, int N, int NH, int KV,
                             int HD) {
    (void)be;
    int group = NH / KV;
    /* one token per iteration: the group's heads add into the same dv row in a fixed order */
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++) {
            const float *vr = v + (size_t)n * ldv + (size_t)(h / group) * HD, *yr = y + (size_t)n * ldy + (size_t)h * HD;
            const float *gr = dout + (size_t)n * lddo + (size_t)h * HD;
            float *dyr = dy ? dy + (size_t)n * lddy + (size_t)h * HD : NULL;
            float *dvr = dv ? dv + (size_t)n * lddv + (size_t)(h / group) * HD : NULL;
            double vv, yv, gv;
            xsa_dots(vr, yr, gr, HD, &vv, &yv, &gv);
            if (vv <= 0) { /* u undefined: the forward passed y through */
                if (dy)
                    for (int d = 0; d < HD; d++) dyr[d] = gr[d];
                continue;
            }
            double a = gv / vv, b = yv / vv, c = 2.0 * yv * gv / (vv * vv);
            for (int d = 0; d < HD; d++) {
                double g = gr[d];
                if (dv) dvr[d] += (float)(-a * yr[d] - b * g + c * vr[d]);
                if (dy) dyr[d] = (float)(g - a * vr[d]);
            }
        }
}

/* ---- head_gate -------------------------------------------------------------------------- */

static void cpu_head_gate_forward(const cad_backend *be, float *out, int ldo, const float *y, int ldy,
                                  const float *gate, int N, int NH, int HD) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++) {
            float g = 1.0f / (1.0f + expf(-gate[(size_t)n * NH + h]));
            const float *yr = y + (size_t)n * ldy + (size_t)h * HD;
            float *o = out + (size_t)n * ldo + (size_t)h * HD;
            for (int d = 0; d < HD; d++) o[d] = yr[d] * g;
        }
}

static void cpu_head_gate_backward(const cad_backend *be, float *dy, int lddy, float *dgate, const float *dout,
                                   int lddo, const float *y, int ldy, const float *gate, int N, int NH, int HD) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++) {
            float g = 1.0f / (1.0f + expf(-gate[(size_t)n * NH + h]));
            const float *gr = dout + (size_t)n * lddo + (size_t)h * HD, *yr = y + (size_t)n * ldy + (size_t)h * HD;
            float *dyr = dy + (size_t)n * lddy + (size_t)h * HD;
            double s = 0; /* before dy overwrites dout (they may alias) */
            for (int d = 0; d < HD; d++) s += (double)gr[d] * yr[d];
            dgate[(size_t)n * NH + h] = (float)(s * g * (1.0 - g));
            for (int d = 0; d < HD; d++) dyr[d] = gr[d] * g;
        }
}

/* ---- relu2 ------------------------------------------------------------------------------ */

static void cpu_relu2_forward(const cad_backend *be, float *out, const float *in, size_t n, float slope) {
    (void)be;
#pragma omp parallel for simd num_threads(cpu_nthreads()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float r = in[i] > 0.0f ? in[i] : slope * in[i];
        out[i] = r * r;
    }
}

static void cpu_relu2_backward(const cad_backend *be, float *din, const float *dout,
                               const float *in, size_t n, float slope) {
    (void)be;
    const float s2 = 2.0f * slope * slope; /* d/dx (slope x)^2 = 2 slope^2 x */
#pragma omp parallel for simd num_threads(cpu_nthreads()) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] = in[i] > 0.0f ? 2.0f * in[i] * dout[i] : s2 * in[i] * dout[i];
}

/* ---- resid_mix -------------------------------------------------------------------------- */

static void cpu_resid_mix_forward(const cad_backend *be, float *out, const float *x,
                                  const float *x0, const float *mix, int N, int C) {
    (void)be;
    const float *m0 = mix, *m1 = mix + C;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) out[o + c] = m0[c] * x[o + c] + m1[c] * x0[o + c];
    }
}

/* Row reductions into parameter gradients (dmix, ds): every thread owns a fixed contiguous
 * slice of rows, sums it in double into its own slot of `part`, and the slots are added in
 * thread order afterwards, so the result depends on the thread count only, never on
 * scheduling. Rows, not column blocks, are partitioned so each thread streams through whole
 * rows (column blocks made every thread walk each [N,C] tensor with a stride). Columns go in
 * chunks of RED_CHUNK to bound the partials. */
#define RED_CHUNK 256

static void cpu_resid_mix_backward(const cad_backend *be, float *dx, float *dx0, float *dmix,
                                   const float *dout, const float *x, const float *x0,
                                   const float *mix, int N, int C) {
    (void)be;
    const float *m0 = mix, *m1 = mix + C;
    int nt = cpu_nthreads();
    double part[nt][2][RED_CHUNK];
    for (int c0 = 0; c0 < C; c0 += RED_CHUNK) {
        int w = C - c0 < RED_CHUNK ? C - c0 : RED_CHUNK;
#pragma omp parallel num_threads(nt)
        {
            int tid = omp_get_thread_num(), team = omp_get_num_threads();
            int lo = (int)((long)N * tid / team), hi = (int)((long)N * (tid + 1) / team);
            double *a0 = part[tid][0], *a1 = part[tid][1];
            for (int c = 0; c < w; c++) a0[c] = a1[c] = 0.0;
            for (int n = lo; n < hi; n++) {
                size_t o = (size_t)n * C + c0;
                /* simd is safe with dx == dout: each lane reads its element before writing it */
#pragma omp simd
                for (int c = 0; c < w; c++) {
                    float d = dout[o + c];
                    a0[c] += (double)d * x[o + c];
                    a1[c] += (double)d * x0[o + c];
                    dx0[o + c] += m1[c0 + c] * d;
                    dx[o + c] = m0[c0 + c] * d;
                }
            }
            if (tid == 0)
                for (int i = team; i < nt; i++)
                    for (int c = 0; c < w; c++) part[i][0][c] = part[i][1][c] = 0.0;
        }
        for (int c = 0; c < w; c++) {
            double s0 = 0.0, s1 = 0.0;
            for (int i = 0; i < nt; i++) s0 += part[i][0][c], s1 += part[i][1][c];
            dmix[c0 + c] += (float)s0;
            dmix[C + c0 + c] += (float)s1;
        }
    }
}

/* ---- scale_add -------------------------------------------------------------------------- */

static void cpu_scale_add_forward(const cad_backend *be, float *out, const float *x,
                                  const float *s, const float *y, int N, int C) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) out[o + c] = x[o + c] + s[c] * y[o + c];
    }
}

static void cpu_scale_add_backward(const cad_backend *be, float *dy, float *ds, const float *dout,
                                   const float *y, const float *s, int N, int C) {
    (void)be;
    int nt = cpu_nthreads();
    double part[nt][RED_CHUNK]; /* fixed row partition, see resid_mix_backward */
    for (int c0 = 0; c0 < C; c0 += RED_CHUNK) {
        int w = C - c0 < RED_CHUNK ? C - c0 : RED_CHUNK;
#pragma omp parallel num_threads(nt)
        {
            int tid = omp_get_thread_num(), team = omp_get_num_threads();
            int lo = (int)((long)N * tid / team), hi = (int)((long)N * (tid + 1) / team);
            double *acc = part[tid];
            for (int c = 0; c < w; c++) acc[c] = 0.0;
            for (int n = lo; n < hi; n++) {
                size_t o = (size_t)n * C + c0;
#pragma omp simd
                for (int c = 0; c < w; c++) {
                    acc[c] += (double)dout[o + c] * y[o + c];
                    dy[o + c] = s[c0 + c] * dout[o + c];
                }
            }
            if (tid == 0)
                for (int i = team; i < nt; i++)
                    for (int c = 0; c < w; c++) part[i][c] = 0.0;
        }
        for (int c = 0; c < w; c++) {
            double sum = 0.0;
            for (int i = 0; i < nt; i++) sum += part[i][c];
            ds[c0 + c] += (float)sum;
        }
    }
}

/* ---- softcap_xent ----------------------------------------------------------------------- */

/* sum_j exp(s[j] - sub), s unchanged. */
static float array_sum_exp_sub(const float *s, int n, float sub) {
    v16f acc = V16_SPLAT(0.0f), v, e;
    int j = 0;
    for (; j + V16 <= n; j += V16) {
        V16_LOAD(v, s + j);
        V16_EXP(e, v - sub);
        acc += e;
    }
    float sum = 0.0f;
    for (int i = 0; i < V16; i++) sum += acc[i];
    for (; j < n; j++) sum += fast_expf(s[j] - sub);
    return sum;
}

/* z[j] = cap * tanh(z[j] / cap); returns max_j z[j]. */
static float array_softcap(float *z, int n, float cap) {
    float inv = 1.0f / cap, mx = -INFINITY;
    v16f vmx = V16_SPLAT(-INFINITY), v, t;
    int j = 0;
    for (; j + V16 <= n; j += V16) {
        V16_LOAD(v, z + j);
        V16_TANH(t, v * inv);
        t = cap * t;
        V16_STORE(z + j, t);
        vmx = V16_SELECT(t > vmx, t, vmx);
    }
    for (int i = 0; i < V16; i++) mx = vmx[i] > mx ? vmx[i] : mx;
    for (; j < n; j++) {
        z[j] = cap * fast_tanhf(z[j] * inv);
        mx = z[j] > mx ? z[j] : mx;
    }
    return mx;
}

/* z[j] = dl * exp(z[j] - l) * (1 - (z[j]/cap)^2): the softcapped softmax gradient without the
 * one-hot term (the caller fixes the target column). */
static void array_xent_grad(float *z, int n, float l, float dl, float cap) {
    float inv = 1.0f / cap;
    v16f v, e, th, g;
    int j = 0;
    for (; j + V16 <= n; j += V16) {
        V16_LOAD(v, z + j);
        th = v * inv;
        V16_EXP(e, v - l);
        g = dl * e * (1.0f - th * th);
        V16_STORE(z + j, g);
    }
    for (; j < n; j++) {
        float t = z[j] * inv;
        z[j] = dl * fast_expf(z[j] - l) * (1.0f - t * t);
    }
}

static void cpu_softcap_xent_forward(const cad_backend *be, float *logits, float *lse, float *loss,
                                     const int32_t *targets, int N, int V, float cap) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        float mx = array_softcap(z, V, cap);
        float l = mx + logf(array_sum_exp_sub(z, V, mx));
        lse[n] = l;
        if (targets) loss[n] = l - z[targets[n]];
    }
}

static void cpu_softcap_xent_backward(const cad_backend *be, float *logits, const float *lse,
                                      const int32_t *targets, int N, int V, float cap, float dloss) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V, l = lse[n];
        int tgt = targets[n];
        float zt = z[tgt], th = zt / cap;
        array_xent_grad(z, V, l, dloss, cap);
        z[tgt] = dloss * (fast_expf(zt - l) - 1.0f) * (1.0f - th * th); /* the one-hot term */
    }
}

/* ---- distill_kl ------------------------------------------------------------------------- */

/* max_j z[j]*inv and log sum_j exp(z[j]*inv - max) + max: the row's log-normaliser at temperature
 * 1/inv, summed in double (a plain reference: libm expf/logf, no vector paths). */
static float row_lse_at(const float *z, int V, float inv) {
    float mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = fmaxf(mx, z[j] * inv);
    double sum = 0.0;
    for (int j = 0; j < V; j++) sum += expf(z[j] * inv - mx);
    return mx + (float)log(sum);
}

static void cpu_distill_kl(const cad_backend *be, float *tlogits, float *loss, const float *zs, int N, int V,
                           float temp, float alpha, float cap, float dloss) {
    (void)be;
    float inv = 1.0f / temp, inv_cap = 1.0f / cap, gscale = dloss * alpha * temp, lscale = alpha * temp * temp;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        float *zt = tlogits + (size_t)n * V;
        const float *z = zs + (size_t)n * V;
        float ls = row_lse_at(z, V, inv), lt = row_lse_at(zt, V, inv);
        double kl = 0.0;
        for (int j = 0; j < V; j++) {
            float lp = zt[j] * inv - lt, lq = z[j] * inv - ls, p = expf(lp), th = z[j] * inv_cap;
            kl += (double)(p * (lp - lq));
            zt[j] = gscale * (expf(lq) - p) * (1.0f - th * th);
        }
        loss[n] = lscale * (float)kl;
    }
}

/* ---- axpby ------------------------------------------------------------------------------ */

static void cpu_axpby(const cad_backend *be, size_t n, float a, const float *x, float b, float *y) {
    (void)be;
    if (b == 0.0f) {
#pragma omp parallel for simd num_threads(cpu_nthreads()) schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = a * x[i];
    } else {
#pragma omp parallel for simd num_threads(cpu_nthreads()) schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
    }
}

/* ---- scale ------------------------------------------------------------------------------ */

static void cpu_scale(const cad_backend *be, size_t n, float a, float *x) {
    (void)be;
#pragma omp parallel for simd num_threads(cpu_nthreads()) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

/* ---- sumsq ------------------------------------------------------------------------------ */

/* Fixed partition by thread id and an in-order final sum: deterministic for a thread count. */
static double cpu_sumsq(const cad_backend *be, const float *x, size_t n) {
    (void)be;
    int nt = cpu_nthreads();
    if (n < 65536) nt = 1;
    double part[nt];
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = n * tid / team, hi = n * (tid + 1) / team;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[tid] = s;
        if (tid == 0)
            for (int i = team; i < nt; i++) part[i] = 0.0;
    }
    double s = 0.0;
    for (int i = 0; i < nt; i++) s += part[i];
    return s;
}

/* ---- adam_update ------------------------------------------------------------------------ */

static void cpu_adam_update(const cad_backend *be, float *p, const float *g, float *m, float *v,
                            size_t n, float lr, float beta1, float beta2, float eps, float bc1,
                            float bc2) {
    (void)be;
    const float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    int nt = cpu_nthreads();
#pragma omp parallel num_threads(nt)
    {
        /* locals (see softcap_xent_forward) and a fixed contiguous slice per thread */
        const float b1 = beta1, b2 = beta2, ep = eps, ss = step_size, bs = bc2_sqrt;
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo = n * tid / team, hi = n * (tid + 1) / team;
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= ss * mi / (sqrtf(vi) / bs + ep);
        }
    }
}

/* ---- the backend table ------------------------------------------------------------------ */

/* ---- fake_quant_rows -------------------------------------------------------------------- */

/* The quantile of cad_int8_quantile_abs from the two largest |w| only (no sort, no scratch):
 * for 2 <= n < 600000 the rank q*(n-1) lies in [n-2, n-1), so the interpolation reads exactly
 * those two order statistics; n == 1 reads the one value. Same fp32 operations as the export. */
static float fq_quantile_top2(const float *row, int n, float q) {
    float top1 = -1.0f, top2 = -1.0f;
    for (int c = 0; c < n; c++) {
        float a = fabsf(row[c]);
        if (a > top1) top2 = top1, top1 = a;
        else if (a > top2) top2 = a;
    }
    if (n == 1) top2 = top1;
    float rank = q * (float)(n - 1);
    size_t lo = (size_t)rank, hi = (size_t)ceilf(rank);
    if (hi >= (size_t)n) hi = (size_t)n - 1;
    float w = rank - (float)lo, a = lo + 1 >= (size_t)n ? top1 : top2, b = hi + 1 >= (size_t)n ? top1 : top2;
    return fabsf(w) < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

static void cpu_fake_quant_rows(const cad_backend *be, float *out, const float *w, int rows, int cols, int bits) {
    (void)be;
    int nt = cpu_nthreads();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * cols;
        float *o = out + (size_t)r * cols;
        float scale, clip, qmax;
        if (bits == CAD_QUANT_TERNARY) {
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += fabsf(row[c]);
            scale = (float)(sum / cols);
            if (!(scale > 0)) scale = 1.0f;
            clip = INFINITY, qmax = 1.0f;
        } else {
            qmax = (float)((1 << (bits - 1)) - 1);
            clip = fq_quantile_top2(row, cols, (float)CAD_INT8_CLIP_Q);
            scale = clip / qmax;
            if (scale < 1.0f / qmax) scale = 1.0f / qmax;
        }
        float deq = cad_f16_to_f32(cad_f32_to_f16(scale));
        for (int c = 0; c < cols; c++) {
            float v = row[c] < clip ? row[c] : clip;
            v = v > -clip ? v : -clip;
            float qv = nearbyintf(v / scale);
            if (qv > qmax) qv = qmax;
            if (qv < -qmax) qv = -qmax;
            o[c] = (float)(int)qv * deq; /* through the integer code, as the artifact stores it: -0 -> 0 */
        }
    }
}

/* ---- normalize_batched ------------------------------------------------------------------ */

/* Per matrix exactly what optim.c did before this slot existed (sumsq, then scale by the factor
 * computed in double), so the CPU Muon step keeps its bits. */
static void cpu_normalize_batched(const cad_backend *be, float *x, size_t n, long long stride, int batch,
                                  double eps, double *sumsq) {
    for (int b = 0; b < batch; b++) {
        float *xb = x + (size_t)b * (size_t)stride;
        double s = cpu_sumsq(be, xb, n);
        sumsq[b] = s;
        cpu_scale(be, n, (float)(1.0 / (sqrt(s) + eps)), xb);
    }
}

/* ---- moe_combine ------------------------------------------------------------------------ */

/* Token-major gather-sums (no scatter, so no races and a fixed order per element). */
static void cpu_moe_combine_forward(const cad_backend *be, float *out, const float *h, const float *gate,
                                    const int32_t *pos, int N, int K, int C) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        for (int j = 0; j < K; j++) {
            float g = gate[(size_t)n * K + j];
            const float *hr = h + (size_t)pos[(size_t)n * K + j] * C;
            for (int c = 0; c < C; c++) o[c] += g * hr[c];
        }
    }
}

static void cpu_moe_combine_backward(const cad_backend *be, float *dh, float *dgate, const float *dout,
                                     const float *h, const float *gate, const int32_t *pos, int N, int K, int C) {
    (void)be;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int s = 0; s < N * K; s++) {
        const float *d = dout + (size_t)(s / K) * C;
        const float *hr = h + (size_t)pos[s] * C;
        float *dr = dh + (size_t)pos[s] * C;
        float g = gate[s];
        double acc = 0.0;
        for (int c = 0; c < C; c++) {
            acc += (double)d[c] * hr[c];
            dr[c] = g * d[c];
        }
        dgate[s] = (float)acc;
    }
}

/* ---- causal_conv1d ---------------------------------------------------------------------- */

static inline float silu_f(float x) { return x / (1.0f + expf(-x)); }

/* pre-activation of channel e at row n (position t of its sequence) */
static inline float conv_pre(const float *x, int ldx, const float *w, const float *bias, int n, int t, int e,
                             int K) {
    float acc = bias[e];
    for (int k = 0; k < K; k++) {
        int back = K - 1 - k; /* tap k reads position t - back */
        if (t - back >= 0) acc += w[(size_t)e * K + k] * x[(size_t)(n - back) * ldx + e];
    }
    return acc;
}

static void cpu_causal_conv1d_forward(const cad_backend *be, float *out, const float *x, int ldx,
                                      const float *w, const float *bias, int B, int T, int E, int K) {
    (void)be;
    long N = (long)B * T;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (long n = 0; n < N; n++)
        for (int e = 0; e < E; e++)
            out[(size_t)n * E + e] = silu_f(conv_pre(x, ldx, w, bias, (int)n, (int)(n % T), e, K));
}

/* Parallel over channels: each thread owns whole columns, so dw/dbias sum the rows in order. */
static void cpu_causal_conv1d_backward(const cad_backend *be, float *dx, int lddx, float *dw, float *dbias,
                                       const float *dout, const float *x, int ldx, const float *w,
                                       const float *bias, int B, int T, int E, int K) {
    (void)be;
    long N = (long)B * T;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int e = 0; e < E; e++) {
        double db = 0.0, dwk[16] = {0}; /* K <= 16 (backend.h) */
        for (long n = 0; n < N; n++) dx[(size_t)n * lddx + e] = 0.0f;
        for (long n = 0; n < N; n++) {
            int t = (int)(n % T);
            float pre = conv_pre(x, ldx, w, bias, (int)n, t, e, K);
            float sg = 1.0f / (1.0f + expf(-pre));
            float dp = dout[(size_t)n * E + e] * sg * (1.0f + pre * (1.0f - sg)); /* silu' */
            db += dp;
            for (int k = 0; k < K; k++) {
                int back = K - 1 - k;
                if (t - back < 0) continue;
                dwk[k] += (double)dp * x[(size_t)(n - back) * ldx + e];
                dx[(size_t)(n - back) * lddx + e] += dp * w[(size_t)e * K + k];
            }
        }
        dbias[e] += (float)db;
        for (int k = 0; k < K; k++) dw[(size_t)e * K + k] += (float)dwk[k];
    }
}

/* ---- selective_scan --------------------------------------------------------------------- */

/* torch.nn.functional.softplus (beta 1, threshold 20) */
static inline float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* Per sequence: E*S dA_log partials, then E dD and E ddt_bias partials (summed over sequences in
 * order after the parallel loop, so the result does not depend on the thread count). */
static size_t cpu_selective_scan_scratch_bytes(const cad_backend *be, int B, int T, int E, int S) {
    (void)be, (void)T;
    return sizeof(double) * (size_t)B * (size_t)E * (size_t)(S + 2);
}

static void cpu_selective_scan_forward(const cad_backend *be, float *y, float *hs, const float *u,
                                       const float *dt, const float *A_log, const float *Bm,
                                       const float *Cm, int ldbc, const float *D, const float *z, int ldz,
                                       const float *dt_bias, int B, int T, int E, int S) {
    (void)be;
    int nc = (T + CAD_SCAN_CHUNK - 1) / CAD_SCAN_CHUNK;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            float h[32] = {0}, A[32];
            for (int s = 0; s < S; s++) A[s] = -expf(A_log[(size_t)e * S + s]);
            for (int t = 0; t < T; t++) {
                size_t n = (size_t)b * T + t;
                if (t % CAD_SCAN_CHUNK == 0)
                    memcpy(hs + (((size_t)b * nc + t / CAD_SCAN_CHUNK) * E + e) * S, h, sizeof(float) * (size_t)S);
                float delta = softplus_f(dt[n * E + e] + dt_bias[e]), ut = u[n * E + e], acc = 0.0f;
                for (int s = 0; s < S; s++) {
                    h[s] = expf(delta * A[s]) * h[s] + delta * Bm[n * ldbc + s] * ut;
                    acc += Cm[n * ldbc + s] * h[s];
                }
                y[n * E + e] = (acc + D[e] * ut) * silu_f(z[n * ldz + e]);
            }
        }
}

/* Parallel over sequences: a sequence's dBm/dCm rows add its channels in order e = 0..E-1, and
 * the parameter gradients go through per-sequence partials in the scratch. Within a chunk the
 * states are recomputed forward from hs into hbuf, then the chunk is walked backward with the
 * adjoint g_t = C_t dy_t + a_{t+1} g_{t+1} carried across chunk boundaries. */
static void cpu_selective_scan_backward(const cad_backend *be, float *du, float *ddt, float *dBm,
                                        float *dCm, int lddbc, float *dz, int lddz, float *dA_log, float *dD,
                                        float *ddt_bias, const float *dy, const float *u, const float *dt,
                                        const float *A_log, const float *Bm, const float *Cm, int ldbc,
                                        const float *D, const float *z, int ldz, const float *dt_bias,
                                        const float *hs, int B, int T, int E, int S, void *scratch,
                                        size_t scratch_bytes) {
    (void)be, (void)scratch_bytes;
    int nc = (T + CAD_SCAN_CHUNK - 1) / CAD_SCAN_CHUNK;
    double *part = scratch;
#pragma omp parallel for num_threads(cpu_nthreads()) schedule(static)
    for (int b = 0; b < B; b++) {
        double *pA = part + (size_t)b * E * (S + 2), *pD = pA + (size_t)E * S, *pbias = pD + E;
        for (int t = 0; t < T; t++)
            for (int s = 0; s < S; s++)
                dBm[((size_t)b * T + t) * lddbc + s] = 0.0f, dCm[((size_t)b * T + t) * lddbc + s] = 0.0f;
        for (int e = 0; e < E; e++) {
            float A[32], g_next[32] = {0}, hbuf[(CAD_SCAN_CHUNK + 1) * 32];
            double dA[32] = {0}, dDe = 0.0, dbe = 0.0;
            for (int s = 0; s < S; s++) A[s] = -expf(A_log[(size_t)e * S + s]);
            for (int c = nc - 1; c >= 0; c--) {
                int t0 = c * CAD_SCAN_CHUNK, t1 = t0 + CAD_SCAN_CHUNK < T ? t0 + CAD_SCAN_CHUNK : T;
                /* hbuf row 0: the state entering the chunk; row i + 1: the state after t0 + i */
                memcpy(hbuf, hs + (((size_t)b * nc + c) * E + e) * S, sizeof(float) * (size_t)S);
                for (int t = t0; t < t1; t++) {
                    size_t n = (size_t)b * T + t;
                    float delta = softplus_f(dt[n * E + e] + dt_bias[e]), ut = u[n * E + e];
                    const float *hp = hbuf + (size_t)(t - t0) * S;
                    float *hn = hbuf + (size_t)(t - t0 + 1) * S;
                    for (int s = 0; s < S; s++) hn[s] = expf(delta * A[s]) * hp[s] + delta * Bm[n * ldbc + s] * ut;
                }
                for (int t = t1 - 1; t >= t0; t--) {
                    size_t n = (size_t)b * T + t;
                    float pre = dt[n * E + e] + dt_bias[e], delta = softplus_f(pre), ut = u[n * E + e];
                    const float *hp = hbuf + (size_t)(t - t0) * S, *ht = hp + S;
                    float zt = z[n * ldz + e], sz = 1.0f / (1.0f + expf(-zt)), gate = zt * sz;
                    float y0 = D[e] * ut;
                    for (int s = 0; s < S; s++) y0 += Cm[n * ldbc + s] * ht[s];
                    float dyt = dy[n * E + e], dy0 = dyt * gate;
                    dz[n * lddz + e] = dyt * y0 * sz * (1.0f + zt * (1.0f - sz));
                    float ddelta = 0.0f, dut = D[e] * dy0;
                    for (int s = 0; s < S; s++) {
                        float a = expf(delta * A[s]), bs = Bm[n * ldbc + s];
                        float g = Cm[n * ldbc + s] * dy0 + g_next[s]; /* dL/dh_t */
                        dCm[n * lddbc + s] += dy0 * ht[s];
                        dBm[n * lddbc + s] += g * delta * ut;
                        ddelta += g * (A[s] * a * hp[s] + bs * ut);
                        dut += g * delta * bs;
                        dA[s] += (double)g * delta * a * hp[s];
                        g_next[s] = a * g;
                    }
                    du[n * E + e] = dut;
                    dDe += (double)dy0 * ut;
                    float dpre = ddelta / (1.0f + expf(-pre)); /* softplus' = sigmoid */
                    if (pre > 20.0f) dpre = ddelta;
                    ddt[n * E + e] = dpre;
                    dbe += dpre;
                }
            }
            for (int s = 0; s < S; s++) pA[(size_t)e * S + s] = dA[s] * A[s]; /* dA/dA_log = A */
            pD[e] = dDe, pbias[e] = dbe;
        }
    }
    for (int e = 0; e < E; e++) {
        for (int s = 0; s < S; s++) {
            double acc = 0.0;
            for (int b = 0; b < B; b++) acc += part[(size_t)b * E * (S + 2) + (size_t)e * S + s];
            dA_log[(size_t)e * S + s] += (float)acc;
        }
        double aD = 0.0, ab = 0.0;
        for (int b = 0; b < B; b++) {
            aD += part[(size_t)b * E * (S + 2) + (size_t)E * S + e];
            ab += part[(size_t)b * E * (S + 2) + (size_t)E * S + E + e];
        }
        dD[e] += (float)aD, ddt_bias[e] += (float)ab;
    }
}

static const cad_backend cpu_backend = {
    .name = "cpu",
    .ctx = NULL,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .copy = cpu_copy,
    .memset_zero = cpu_memset_zero,
    .sync = cpu_sync,
    .set_threads = cpu_set_threads,
    .set_matmul_precision = cpu_set_matmul_precision,
    .matmul = cpu_matmul,
    .matmul_batched = cpu_matmul_batched,
    .gram_batched = cpu_gram_batched,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .qk_norm_rope_forward = cpu_qk_norm_rope_forward,
    .qk_norm_rope_backward = cpu_qk_norm_rope_backward,
    .attention_scratch_bytes = cpu_attention_scratch_bytes,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .xsa_forward = cpu_xsa_forward,
    .xsa_backward = cpu_xsa_backward,
    .head_gate_forward = cpu_head_gate_forward,
    .head_gate_backward = cpu_head_gate_backward,
    .relu2_forward = cpu_relu2_forward,
    .relu2_backward = cpu_relu2_backward,
    .resid_mix_forward = cpu_resid_mix_forward,
    .resid_mix_backward = cpu_resid_mix_backward,
    .scale_add_forward = cpu_scale_add_forward,
    .scale_add_backward = cpu_scale_add_backward,
    .softcap_xent_forward = cpu_softcap_xent_forward,
    .softcap_xent_backward = cpu_softcap_xent_backward,
    .distill_kl = cpu_distill_kl,
    .axpby = cpu_axpby,
    .scale = cpu_scale,
    .sumsq = cpu_sumsq,
    .adam_update = cpu_adam_update,
    .fake_quant_rows = cpu_fake_quant_rows,
    .normalize_batched = cpu_normalize_batched,
    .moe_combine_forward = cpu_moe_combine_forward,
    .moe_combine_backward = cpu_moe_combine_backward,
    .causal_conv1d_forward = cpu_causal_conv1d_forward,
    .causal_conv1d_backward = cpu_causal_conv1d_backward,
    .selective_scan_scratch_bytes = cpu_selective_scan_scratch_bytes,
    .selective_scan_forward = cpu_selective_scan_forward,
    .selective_scan_backward = cpu_selective_scan_backward,
};

const cad_backend *cad_backend_cpu(void) {
    static int blas_single;
    if (!blas_single) {
        /* this file parallelises around sgemm itself (see the header comment) */
        openblas_set_num_threads(1);
        blas_single = 1;
    }
    return &cpu_backend;
}
