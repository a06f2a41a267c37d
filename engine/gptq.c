/*
 * gptq.c — GPTQ's column sweep (see gptq.h): host-side double precision, plain loops for the
 * Cholesky factorisations (O(cols^3), at most a few hundred MFLOP per matrix of the challenge's
 * sizes) and one cblas_dgemm per block for the lazy update of the remaining columns.
 * Not here: Hessian collection, scale choice, the container.
 */
#include "engine/gptq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* In-place lower Cholesky factor of the symmetric positive definite A [n, n] (row-major; the
 * upper triangle is zeroed). 0 on success, -1 when a pivot is not positive. */
static int cholesky_lower(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * n + k] * A[(size_t)j * n + k];
        if (!(d > 0)) return -1;
        double l = sqrt(d);
        A[(size_t)j * n + j] = l;
        for (int i = j + 1; i < n; i++) {
            double s = A[(size_t)i * n + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * n + k] * A[(size_t)j * n + k];
            A[(size_t)i * n + j] = s / l;
        }
        for (int i = 0; i < j; i++) A[(size_t)i * n + j] = 0.0;
    }
    return 0;
}

/* A (lower Cholesky factor L of H) -> H^-1 = L^-T L^-1, full symmetric, in place via work [n, n]:
 * torch.cholesky_inverse. */
static void cholesky_inverse(double *A, double *work, int n) {
    /* work = L^-1 (lower), column by column of the identity by forward substitution */
    memset(work, 0, (size_t)n * n * sizeof *work);
    for (int c = 0; c < n; c++) {
        for (int i = c; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (int k = c; k < i; k++) s -= A[(size_t)i * n + k] * work[(size_t)k * n + c];
            work[(size_t)i * n + c] = s / A[(size_t)i * n + i];
        }
    }
    /* A = work^T work */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, work, n, work, n, 0.0, A, n);
}

static int8_t code_of(double w, float step, int qmax) {
    double r = nearbyint(w / step); /* half to even, like torch.round */
    if (r > qmax) r = qmax;
    if (r < -qmax) r = -qmax;
    return (int8_t)r;
}

int cad_gptq_sweep(double *W, int rows, int cols, const double *H, const float *step, int qmax,
                   const cad_gptq_opts *o, int8_t *q, cad_err *e) {
    size_t nn = (size_t)cols * cols;
    int block = o->block > 0 ? o->block : CAD_GPTQ_BLOCK;
    double *Hw = malloc(nn * sizeof *Hw), *work = malloc(nn * sizeof *work);
    double *Wp = malloc((size_t)rows * cols * sizeof *Wp), *err = malloc((size_t)rows * block * sizeof *err);
    int *perm = malloc((size_t)cols * sizeof *perm);
    int8_t *qp = malloc((size_t)rows * cols);
    int rc = CAD_OK;
    if (!Hw || !work || !Wp || !err || !perm || !qp) {
        rc = cad_fail(e, CAD_ENOMEM, "gptq: out of memory for a %dx%d matrix", rows, cols);
        goto done;
    }
    /* dead columns: no calibration signal, so the weight cannot matter; H_jj = 1 keeps H definite */
    memcpy(Hw, H, nn * sizeof *Hw);
    for (int j = 0; j < cols; j++)
        if (Hw[(size_t)j * cols + j] == 0) {
            Hw[(size_t)j * cols + j] = 1.0;
            for (int r = 0; r < rows; r++) W[(size_t)r * cols + j] = 0.0;
        }
    for (int j = 0; j < cols; j++) perm[j] = j;
    if (o->act_order) { /* descending diag(H), stable for ties (torch.argsort is not: ties are rare) */
        for (int a = 1; a < cols; a++) {
            int p = perm[a], b = a;
            double d = Hw[(size_t)p * cols + p];
            while (b > 0 && Hw[(size_t)perm[b - 1] * cols + perm[b - 1]] < d) perm[b] = perm[b - 1], b--;
            perm[b] = p;
        }
    }
    /* permuted copies: work = H[perm][:, perm], Wp = W[:, perm] */
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++) work[(size_t)i * cols + j] = Hw[(size_t)perm[i] * cols + perm[j]];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) Wp[(size_t)r * cols + j] = W[(size_t)r * cols + perm[j]];
    double mean_diag = 0;
    for (int j = 0; j < cols; j++) mean_diag += work[(size_t)j * cols + j];
    mean_diag /= cols;
    for (int j = 0; j < cols; j++) work[(size_t)j * cols + j] += o->damp * mean_diag;
    /* U = upper Cholesky factor of H^-1 = transpose of the lower one; kept in Hw (row-major) */
    if (cholesky_lower(work, cols)) {
        rc = cad_fail(e, CAD_ENUMERIC, "gptq: the damped Hessian (%dx%d, gptq_damp %g) is not positive definite",
                      cols, cols, o->damp);
        goto done;
    }
    cholesky_inverse(work, Hw, cols);
    if (cholesky_lower(work, cols)) {
        rc = cad_fail(e, CAD_ENUMERIC, "gptq: the inverse Hessian (%dx%d) is not positive definite", cols, cols);
        goto done;
    }
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++) Hw[(size_t)i * cols + j] = j >= i ? work[(size_t)j * cols + i] : 0.0;
    const double *U = Hw;
    for (int i1 = 0; i1 < cols; i1 += block) {
        int i2 = i1 + block < cols ? i1 + block : cols, count = i2 - i1;
        for (int i = i1; i < i2; i++) {
            double d = U[(size_t)i * cols + i];
            for (int r = 0; r < rows; r++) {
                double *wr = Wp + (size_t)r * cols;
                int8_t c = code_of(wr[i], step[r], qmax);
                qp[(size_t)r * cols + i] = c;
                double ev = (wr[i] - (double)c * step[r]) / d;
                err[(size_t)r * block + (i - i1)] = ev;
                for (int k = i; k < i2; k++) wr[k] -= ev * U[(size_t)i * cols + k];
            }
        }
        /* lazy batch update of the columns after the block: W[:, i2:] -= Err U[i1:i2, i2:] */
        if (i2 < cols)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols - i2, count, -1.0, err, block,
                        U + (size_t)i1 * cols + i2, cols, 1.0, Wp + i2, cols);
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            q[(size_t)r * cols + perm[j]] = qp[(size_t)r * cols + j];
            W[(size_t)r * cols + perm[j]] = Wp[(size_t)r * cols + j];
        }
done:
    free(Hw), free(work), free(Wp), free(err), free(perm), free(qp);
    return rc;
}
