/*
 * test_engine_gram.c — the CPU backend's batched slots (matmul_batched, gram_batched) against
 * the plain matmul slot on the same data: every item of a batch, both transposes, beta 0 and
 * not, batch sizes that do and do not divide by the thread count (whole items per thread vs the
 * split left-over items), and the Gram result exactly symmetric. Then the batched Muon step
 * (shape groups) against the single-matrix Newton–Schulz.
 *
 * Not here: the op-by-op comparison with the CUDA backend (backend_check.c, run by
 * test_kernels_emu), the Newton–Schulz parity with PyTorch (test_engine_optim).
 */
#include "engine/backend.h"
#include "engine/optim.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 42;

static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* max |a-b| relative to max |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return s > 0 ? m / s : m;
}

/* gram_batched == matmul(op(A), op(A)^T) per item (both triangles), C exactly symmetric. */
static void check_gram(int trans_a, int M, int K, float alpha, float beta, int batch) {
    const cad_backend *be = cad_backend_cpu();
    int lda = trans_a ? M : K;
    size_t sa = (size_t)M * K, sc = (size_t)M * M;
    float *A = rand_buf(sa * batch), *C = malloc(sc * batch * sizeof *C), *R = malloc(sc * sizeof *R);
    float *C0 = malloc(sc * batch * sizeof *C0);
    for (int b = 0; b < batch; b++) /* a symmetric start for beta != 0 */
        for (int i = 0; i < M; i++)
            for (int j = 0; j <= i; j++) C0[b * sc + (size_t)i * M + j] = C0[b * sc + (size_t)j * M + i] = frand();
    memcpy(C, C0, sc * batch * sizeof *C);
    be->gram_batched(be, trans_a, M, K, alpha, A, lda, (long long)sa, beta, C, M, (long long)sc, batch);
    double worst = 0;
    int asym = 0;
    for (int b = 0; b < batch; b++) {
        memcpy(R, C0 + b * sc, sc * sizeof *R);
        be->matmul(be, trans_a, !trans_a, M, M, K, alpha, A + b * sa, lda, A + b * sa, lda, beta, R, M);
        double d = rel_diff(C + b * sc, R, sc);
        if (d > worst) worst = d;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < i; j++) asym += C[b * sc + (size_t)i * M + j] != C[b * sc + (size_t)j * M + i];
    }
    /* fp32 sums of K products in a different order (syrk vs gemm kernels): a few ulp of the
     * largest entry, measured below 1e-6 */
    CHECK_MSG(worst < 1e-5, "gram trans_a=%d M=%d K=%d batch=%d: max rel diff %.3g", trans_a, M, K, batch, worst);
    CHECK_MSG(asym == 0, "gram trans_a=%d M=%d K=%d batch=%d: %d asymmetric pairs", trans_a, M, K, batch, asym);
    free(A), free(C), free(R), free(C0);
}

static void check_matmul_batched(int ta, int tb, int M, int N, int K, float beta, int batch) {
    const cad_backend *be = cad_backend_cpu();
    int lda = ta ? M : K, ldb = tb ? K : N;
    size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
    float *A = rand_buf(sa * batch), *B = rand_buf(sb * batch), *C = rand_buf(sc * batch);
    float *R = malloc(sc * batch * sizeof *R);
    memcpy(R, C, sc * batch * sizeof *R);
    be->matmul_batched(be, ta, tb, M, N, K, 0.75f, A, lda, (long long)sa, B, ldb, (long long)sb, beta, C,
                       N, (long long)sc, batch);
    for (int b = 0; b < batch; b++)
        be->matmul(be, ta, tb, M, N, K, 0.75f, A + b * sa, lda, B + b * sb, ldb, beta, R + b * sc, N);
    double d = rel_diff(C, R, sc * batch);
    CHECK_MSG(d < 1e-5, "matmul_batched ta=%d tb=%d %dx%dx%d batch=%d: max rel diff %.3g", ta, tb, M, N, K,
              batch, d);
    free(A), free(B), free(C), free(R);
}

static void test_gram_batched(void) {
    check_gram(0, 7, 5, 1.0f, 0.0f, 1);
    check_gram(1, 9, 4, 0.5f, 1.0f, 3);
    check_gram(0, 1, 1, 2.0f, -1.0f, 2);
}

static void test_gram_batched_threaded(void) {
    const cad_backend *be = cad_backend_cpu();
    be->set_threads(be, 2); /* even and odd batches: whole items per thread and split ones */
    for (int batch = 1; batch <= 3; batch++) {
        check_gram(0, 128, 200, 1.0f, 0.0f, batch);
        check_gram(1, 96, 300, 1.0f, 0.0f, batch);
        check_gram(0, 100, 100, 2.0315f, -4.775f, batch);
    }
}

static void test_matmul_batched(void) {
    const cad_backend *be = cad_backend_cpu();
    be->set_threads(be, 2);
    for (int batch = 1; batch <= 3; batch++) {
        check_matmul_batched(0, 0, 128, 256, 128, 3.4445f, batch);
        check_matmul_batched(0, 0, 256, 96, 96, 0.0f, batch);
        check_matmul_batched(1, 1, 37, 45, 29, 1.0f, batch);
    }
}

/* The Muon step batches same-shape params; it must equal NS applied to each param alone. */
static void test_muon_groups_match_single(void) {
    const cad_backend *be = cad_backend_cpu();
    be->set_threads(be, 2);
    int shapes[5][2] = {{64, 96}, {96, 64}, {64, 96}, {32, 96}, {64, 96}};
    cad_optim_param ps[5];
    memset(ps, 0, sizeof ps);
    float *data[5], *grad[5], *expect[5];
    const double lr = 0.02, mom = 0.95;
    for (int i = 0; i < 5; i++) {
        int r = shapes[i][0], c = shapes[i][1];
        size_t n = (size_t)r * c;
        data[i] = rand_buf(n), grad[i] = rand_buf(n), expect[i] = malloc(n * sizeof(float));
        ps[i] = (cad_optim_param){.name = "w", .kind = CAD_OPT_MUON, .rows = r, .cols = c, .numel = n,
                                  .base_lr = lr, .data = data[i], .grad = grad[i]};
        /* expected: fresh momentum buffer, so buf = g, u = g + mom*g; p -= lr*sqrt(max(1,r/c)) NS(u) */
        float *u = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float));
        float *scratch = malloc(cad_muon_ns_scratch_floats(r, c) * sizeof(float));
        for (size_t k = 0; k < n; k++) u[k] = grad[i][k] + (float)mom * grad[i][k];
        cad_muon_newton_schulz(be, o, u, r, c, 5, scratch);
        float s = (float)sqrt(r > c ? (double)r / c : 1.0);
        for (size_t k = 0; k < n; k++) expect[i][k] = data[i][k] - (float)lr * (s * o[k]);
        free(u), free(o), free(scratch);
    }
    cad_optim o;
    cad_err e = {0};
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.0, 0, CAD_NS_QUINTIC};
    CHECK(cad_optim_init(&o, be, &hp, 5, ps, &e) == CAD_OK);
    CHECK_EQ_INT(o.n_groups, 3);
    cad_optim_step(&o, 1.0, mom);
    for (int i = 0; i < 5; i++) {
        double d = rel_diff(data[i], expect[i], (size_t)shapes[i][0] * shapes[i][1]);
        CHECK_MSG(d < 1e-6, "param %d (%dx%d): batched step differs from single NS by %.3g", i, shapes[i][0],
                  shapes[i][1], d);
        free(data[i]), free(grad[i]), free(expect[i]);
    }
    cad_optim_free(&o);
}

int main(void) {
    RUN(test_gram_batched);
    RUN(test_gram_batched_threaded);
    RUN(test_matmul_batched);
    RUN(test_muon_groups_match_single);
    return check_report();
}
