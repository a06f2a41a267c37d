/*
 * gemm_bf16.c — bf16-operand, fp32-accumulate GEMM for one thread (see gemm_bf16.h).
 *
 * Layout follows the GotoBLAS/BLIS scheme: C is cut into NC-wide column blocks and K into KC
 * slices; for each (column block, K slice) a KC x NC slab of op(B) is packed once and reused
 * by every MC-row block of op(A), whose packed copy stays in L2 while the micro-kernel sweeps
 * it against each NR-wide micro-panel of B (in L1). Packing is where fp32 becomes bf16, so
 * each operand element is rounded once per use of its slab, not once per product.
 *
 * Packed format: vdpbf16ps multiplies PAIRS of bf16 along K and adds both products into one
 * fp32 lane, so both packs store a 32-bit word per (row or column, k pair):
 *   A micro-panel [MR][KC/2] words: (op(A)[i][2p] low half, op(A)[i][2p+1] high half); row r
 *     at a fixed stride of KC/2 words, so the kernel's 12 broadcasts are one pointer plus
 *     constant offsets, and packing a row-major A (the forward pass's x) is a straight
 *     convert-and-store of each row
 *   B micro-panel [kp][NR] words: (op(B)[2p][j] low half, op(B)[2p+1][j] high half)
 * An odd K is padded with a zero element; rows/columns past the edge are zero-padded in the
 * packs and masked when C is stored.
 *
 * The AVX-512 functions carry target attributes so the file builds with the project's plain
 * flags (and under ASan); they run only when the CPU reports avx512bf16.
 *
 * Not here: threading (the caller's), fp32 products, anything model specific.
 */
#include "engine/gemm_bf16.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86_BF16_PATH 1
#endif

/* Micro-tile 12 x 32: 24 zmm accumulators + 2 B vectors + 1 broadcast fit the 32 registers,
 * and 24 independent vdpbf16ps chains cover its latency on Zen 4 and Intel alike. */
enum { MR = 12, NR = 32 };
/* KC: a B micro-panel (KC/2 x NR words = 32 KiB) streams through L1; MC x KC of A (96 KiB)
 * sits in L2; the KC x NC B slab (1 MiB) in L2/L3. KC = 512 covers the whole K of most of the
 * model's products in one slice, so C is written once instead of read-modified per slice
 * (measured: 8192x512x512 from 142 to 178 GFLOP/s on one Zen 4 core against KC = 256). */
enum { KC = 512, MC = 96, NC = 1024 };
enum { KP = KC / 2, A_WORDS = MC * KP, B_WORDS = NC * KP };

/* ---- scalar conversion ------------------------------------------------------------------- */

uint16_t cad_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN, quiet */
    u += 0x7fffu + ((u >> 16) & 1u);                                             /* nearest even */
    return (uint16_t)(u >> 16);
}

float cad_bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static inline uint32_t pair_word(float lo, float hi) {
    return (uint32_t)cad_bf16_from_float(lo) | ((uint32_t)cad_bf16_from_float(hi) << 16);
}

/* ---- per-thread pack buffers --------------------------------------------------------------- */

/* Allocated on a thread's first call and kept: a train step calls this thousands of times and
 * must not allocate. Freed at exit so leak checkers see nothing. */
static _Thread_local uint32_t *tls_pack;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t **pool;
static int pool_n, pool_cap;

static void free_pool(void) {
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < pool_n; i++) free(pool[i]);
    free(pool);
    pool = NULL, pool_n = pool_cap = 0;
    pthread_mutex_unlock(&pool_lock);
}

static uint32_t *pack_buffers(void) {
    if (tls_pack) return tls_pack;
    uint32_t *p = aligned_alloc(64, sizeof(uint32_t) * (A_WORDS + B_WORDS));
    if (!p) return NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_n == pool_cap) {
        int cap = pool_cap ? 2 * pool_cap : 16;
        uint32_t **np = realloc(pool, sizeof *np * (size_t)cap);
        if (!np) {
            pthread_mutex_unlock(&pool_lock);
            free(p);
            return NULL;
        }
        if (!pool) atexit(free_pool);
        pool = np, pool_cap = cap;
    }
    pool[pool_n++] = p;
    pthread_mutex_unlock(&pool_lock);
    return tls_pack = p;
}

/* ---- portable packs and kernel ------------------------------------------------------------- */

/* op(A)[i][k] and op(B)[k][j] of the row-major operands */
#define OPA(i, k) (trans_a ? A[(size_t)(k) * lda + (i)] : A[(size_t)(i) * lda + (k)])
#define OPB(k, j) (trans_b ? B[(size_t)(j) * ldb + (k)] : B[(size_t)(k) * ldb + (j)])

static void pack_a_portable(int trans_a, const float *A, int lda, int i0, int mc, int k0, int kc,
                            uint32_t *Ap) {
    int kp = (kc + 1) / 2;
    for (int ib = 0; ib < mc; ib += MR, Ap += (size_t)MR * KP)
        for (int p = 0; p < kp; p++)
            for (int r = 0; r < MR; r++) {
                int i = ib + r, k = 2 * p;
                float lo = i < mc ? OPA(i0 + i, k0 + k) : 0.0f;
                float hi = i < mc && k + 1 < kc ? OPA(i0 + i, k0 + k + 1) : 0.0f;
                Ap[(size_t)r * KP + p] = pair_word(lo, hi);
            }
}

static void pack_b_portable(int trans_b, const float *B, int ldb, int k0, int kc, int j0, int nc,
                            uint32_t *Bp) {
    int kp = (kc + 1) / 2;
    for (int jb = 0; jb < nc; jb += NR, Bp += (size_t)kp * NR)
        for (int p = 0; p < kp; p++)
            for (int c = 0; c < NR; c++) {
                int j = jb + c, k = 2 * p;
                float lo = j < nc ? OPB(k0 + k, j0 + j) : 0.0f;
                float hi = j < nc && k + 1 < kc ? OPB(k0 + k + 1, j0 + j) : 0.0f;
                Bp[(size_t)p * NR + c] = pair_word(lo, hi);
            }
}

/* beta_eff == 0: C is not read. */
static void kernel_portable(int kp, const uint32_t *a, const uint32_t *b, float *C, int ldc, int mr,
                            int nr, float alpha, float beta_eff) {
    float acc[MR][NR] = {{0}};
    for (int p = 0; p < kp; p++)
        for (int r = 0; r < MR; r++) {
            uint32_t w = a[(size_t)r * KP + p];
            float alo = cad_bf16_to_float((uint16_t)w), ahi = cad_bf16_to_float((uint16_t)(w >> 16));
            for (int c = 0; c < NR; c++) {
                uint32_t v = b[(size_t)p * NR + c];
                /* vdpbf16ps adds the odd product, then the even one */
                acc[r][c] += ahi * cad_bf16_to_float((uint16_t)(v >> 16));
                acc[r][c] += alo * cad_bf16_to_float((uint16_t)v);
            }
        }
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nr; c++) {
            float *y = C + (size_t)r * ldc + c;
            *y = beta_eff == 0.0f ? alpha * acc[r][c] : alpha * acc[r][c] + beta_eff * *y;
        }
}

/* ---- AVX-512 BF16 packs and kernel --------------------------------------------------------- */

#ifdef HAVE_X86_BF16_PATH
#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* bf16 bits of 16 floats, round to nearest even, in the HIGH half of each 32-bit lane (the
 * same rule as cad_bf16_from_float, so both paths pack identical bits). */
TARGET_BF16 static inline __m512i rne_high(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}

/* Words from two rows that hold the even and the odd k for n consecutive outputs (n <= 16;
 * lanes past n are zero). odd NULL: the odd k is past K (zero). */
TARGET_BF16 static inline __m512i words_from_rows_v(const float *even, const float *odd, int n) {
    __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    __m512i lo = _mm512_srli_epi32(rne_high(_mm512_maskz_loadu_ps(m, even)), 16);
    __m512i hi = odd ? rne_high(_mm512_maskz_loadu_ps(m, odd)) : _mm512_setzero_si512();
    return _mm512_or_si512(lo, hi);
}

TARGET_BF16 static inline void words_from_rows(const float *even, const float *odd, int n, uint32_t *out) {
    __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    _mm512_mask_storeu_epi32(out, m, words_from_rows_v(even, odd, n));
}

/* In-register transpose of a 16 x 16 block of 32-bit words: r[j][c] -> r[c][j]. Three rounds
 * (32-bit and 64-bit unpacks within 128-bit lanes, then two rounds of lane shuffles). */
TARGET_BF16 static inline void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* u[4i + c] lane L = column 4L + c, rows 4i..4i+3 */
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xee);
        __m512i w0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), w1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xee);
        r[c] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
        r[8 + c] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
    }
}

/* Words from a row holding k contiguous: n floats (n <= 16) -> 8 words into w[] (the first
 * (n+1)/2 meaningful, the rest zero). */
TARGET_BF16 static inline void words_from_adjacent(const float *x, int n, uint32_t *w) {
    __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    __m512i h = _mm512_srli_epi32(rne_high(_mm512_maskz_loadu_ps(m, x)), 16);
    _mm256_storeu_si256((__m256i *)w, _mm512_cvtepi32_epi16(h)); /* 16 x u16 = 8 words, in order */
}

TARGET_BF16 static void pack_a_avx(int trans_a, const float *A, int lda, int i0, int mc, int k0, int kc,
                                   uint32_t *Ap) {
    int kp = (kc + 1) / 2;
    if (!trans_a) { /* op(A)[i][k] = A[i][k]: each row holds its k pairs side by side */
        for (int ib = 0; ib < mc; ib += MR, Ap += (size_t)MR * KP) {
            int rows = mc - ib < MR ? mc - ib : MR;
            for (int r = 0; r < MR; r++) {
                uint32_t *out = Ap + (size_t)r * KP;
                if (r >= rows) {
                    memset(out, 0, sizeof(uint32_t) * (size_t)kp);
                    continue;
                }
                const float *x = A + (size_t)(i0 + ib + r) * lda + k0;
                int k = 0;
                for (; k + 16 <= kc; k += 16) words_from_adjacent(x + k, 16, out + k / 2);
                if (k < kc) {
                    uint32_t w[8];
                    words_from_adjacent(x + k, kc - k, w);
                    memcpy(out + k / 2, w, sizeof(uint32_t) * (size_t)((kc - k + 1) / 2));
                }
            }
        }
        return;
    }
    /* op(A)[i][k] = A[k][i]: rows of A are k, contiguous along i. Words for 16 k pairs x 16 rows
     * i are built along i (a row pair of A each), transposed in registers, and stored as 16
     * contiguous words per row: no scattered single-word stores. */
    for (int p0 = 0; p0 < kp; p0 += 16) {
        int np = kp - p0 < 16 ? kp - p0 : 16;
        __mmask16 pm = (__mmask16)(np >= 16 ? 0xffff : (1u << np) - 1);
        for (int c0 = 0; c0 < mc; c0 += 16) {
            int ni = mc - c0 < 16 ? mc - c0 : 16;
            __m512i r[16];
            for (int q = 0; q < 16; q++) {
                if (q >= np) {
                    r[q] = _mm512_setzero_si512();
                    continue;
                }
                const float *e = A + (size_t)(k0 + 2 * (p0 + q)) * lda + i0 + c0;
                r[q] = words_from_rows_v(e, 2 * (p0 + q) + 1 < kc ? e + lda : NULL, ni);
            }
            transpose16(r);
            for (int c = 0; c < ni; c++) {
                int i = c0 + c;
                _mm512_mask_storeu_epi32(Ap + (size_t)(i / MR) * MR * KP + (size_t)(i % MR) * KP + p0, pm, r[c]);
            }
        }
    }
    for (int i = mc; i % MR; i++) /* rows past the edge of the last micro-panel */
        memset(Ap + (size_t)(i / MR) * MR * KP + (size_t)(i % MR) * KP, 0, sizeof(uint32_t) * (size_t)kp);
}

TARGET_BF16 static void pack_b_avx(int trans_b, const float *B, int ldb, int k0, int kc, int j0, int nc,
                                   uint32_t *Bp) {
    int kp = (kc + 1) / 2;
    for (int jb = 0; jb < nc; jb += NR, Bp += (size_t)kp * NR) {
        int cols = nc - jb < NR ? nc - jb : NR;
        if (!trans_b) { /* op(B)[k][j] = B[k][j]: rows are k, contiguous along j */
            for (int p = 0; p < kp; p++) {
                const float *e = B + (size_t)(k0 + 2 * p) * ldb + j0 + jb;
                const float *o = 2 * p + 1 < kc ? e + ldb : NULL;
                uint32_t *out = Bp + (size_t)p * NR;
                words_from_rows(e, o, cols < 16 ? cols : 16, out);
                if (cols > 16) words_from_rows(e + 16, o ? o + 16 : NULL, cols - 16, out + 16);
                for (int c = cols > 16 ? cols : 16; c < NR; c++) out[c] = 0;
                if (cols < 16)
                    for (int c = cols; c < 16; c++) out[c] = 0;
            }
        } else { /* op(B)[k][j] = B[j][k]: each column j of op(B) is a row of B, k side by side */
            for (int c = 0; c < NR; c++) {
                if (c >= cols) {
                    for (int p = 0; p < kp; p++) Bp[(size_t)p * NR + c] = 0;
                    continue;
                }
                const float *x = B + (size_t)(j0 + jb + c) * ldb + k0;
                for (int k = 0; k < kc; k += 16) {
                    uint32_t w[8];
                    int n = kc - k < 16 ? kc - k : 16;
                    words_from_adjacent(x + k, n, w);
                    for (int q = 0; q < (n + 1) / 2; q++) Bp[(size_t)(k / 2 + q) * NR + c] = w[q];
                }
            }
        }
    }
}

TARGET_BF16 static void kernel_avx(int kp, const uint32_t *a, const uint32_t *b, float *C, int ldc, int mr,
                                   int nr, float alpha, float beta_eff) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b + (size_t)p * NR);
        __m512bh b1 = (__m512bh)_mm512_load_si512(b + (size_t)p * NR + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[(size_t)r * KP + p]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
        }
    }
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta_eff);
    for (int r = 0; r < mr; r++) {
        float *y = C + (size_t)r * ldc;
        __m512 v0 = _mm512_mul_ps(va, acc[r][0]), v1 = _mm512_mul_ps(va, acc[r][1]);
        if (beta_eff != 0.0f) {
            v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, y), v0);
            v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, y + 16), v1);
        }
        _mm512_mask_storeu_ps(y, m0, v0);
        _mm512_mask_storeu_ps(y + 16, m1, v1);
    }
}
#endif

/* ---- kernel selection ---------------------------------------------------------------------- */

typedef void (*pack_a_fn)(int, const float *, int, int, int, int, int, uint32_t *);
typedef void (*pack_b_fn)(int, const float *, int, int, int, int, int, uint32_t *);
typedef void (*kernel_fn)(int, const uint32_t *, const uint32_t *, float *, int, int, int, float, float);

typedef struct gemm_impl {
    pack_a_fn pack_a;
    pack_b_fn pack_b;
    kernel_fn kernel;
    const char *name;
} gemm_impl;

static const gemm_impl impl_portable = {pack_a_portable, pack_b_portable, kernel_portable, "portable"};
#ifdef HAVE_X86_BF16_PATH
static const gemm_impl impl_avx = {pack_a_avx, pack_b_avx, kernel_avx, "avx512bf16"};
#endif

/* The kernel set in use, swapped as one pointer: GEMMs running on other threads see either the
 * old set or the new one, never a mix (NULL until the first GEMM or select picks one). */
static _Atomic(const gemm_impl *) impl_cur;

static const gemm_impl *impl_auto(void) {
#ifdef HAVE_X86_BF16_PATH
    if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return &impl_avx;
#endif
    return &impl_portable;
}

const char *cad_gemm_bf16_select(int which) {
    const gemm_impl *k = which == CAD_GEMM_BF16_PORTABLE ? &impl_portable : impl_auto();
    atomic_store(&impl_cur, k);
    return k->name;
}

/* ---- driver -------------------------------------------------------------------------------- */

void cad_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* op(A) op(B) is zero: C = beta C (beta 0: C not read) */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float *y = C + (size_t)i * ldc + j;
                *y = beta == 0.0f ? 0.0f : beta * *y;
            }
        return;
    }
    const gemm_impl *impl = atomic_load(&impl_cur);
    if (!impl) { /* first use: every thread computes the same answer, any store wins */
        impl = impl_auto();
        atomic_store(&impl_cur, impl);
    }
    uint32_t *Ap = pack_buffers(), *Bp = Ap ? Ap + A_WORDS : NULL;
    if (!Ap) { /* no 584 KiB for this thread's packs: the fp32 product is the safe answer */
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC, kp = (kc + 1) / 2;
            float beta_eff = pc == 0 ? beta : 1.0f;
            impl->pack_b(trans_b, B, ldb, pc, kc, jc, nc, Bp);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                impl->pack_a(trans_a, A, lda, ic, mc, pc, kc, Ap);
                for (int jr = 0; jr < nc; jr += NR)
                    for (int ir = 0; ir < mc; ir += MR)
                        impl->kernel(kp, Ap + (size_t)(ir / MR) * MR * KP, Bp + (size_t)(jr / NR) * kp * NR,
                                    C + (size_t)(ic + ir) * ldc + jc + jr, ldc, mc - ir < MR ? mc - ir : MR,
                                    nc - jr < NR ? nc - jr : NR, alpha, beta_eff);
            }
        }
    }
}
