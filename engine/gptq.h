/*
 * gptq.h — full GPTQ (Frantar et al. 2022; the records' PR #535/#1019, techniques.md §6) of one
 * block matrix into the artifact's per-row format (export.h): the per-row scales are the ones
 * the export would choose anyway (quantile clip, clip search or SDClip), and GPTQ only changes
 * which integer code each weight gets, so the container and its reader are unchanged.
 *
 * W is [rows, cols] = [out, in] (y = x W^T) and H = sum over calibration tokens of x x^T, the
 * [cols, cols] Gram matrix of the layer's input. GPTQ minimises ||(W - Q) X^T||^2 column by
 * column: dead columns (H_jj = 0) get H_jj = 1 and W_:j = 0; optionally act-order (columns by
 * descending H_jj); H += damp * mean(diag H) * I; U = upper Cholesky factor of H^-1; then in
 * blocks of `block` columns: quantise column j, err = (w_j - q_j) / U_jj, subtract err * U_j,k
 * from every later column k of the block, and after the block subtract Err * U_block,rest from
 * the remaining columns. Everything in double.
 *
 * Not here: collecting H (model.c's calibration, train.c's batches), the container (export.c).
 */
#ifndef CADDIE_GPTQ_H
#define CADDIE_GPTQ_H

#include "engine/status.h"

#include <stdint.h>

#define CAD_GPTQ_BLOCK 128 /* the records' block size */

typedef struct cad_gptq_opts {
    double damp;   /* fraction of mean(diag H) added to the diagonal (records: 0.01) */
    int act_order; /* quantise columns in descending diag(H) order */
    int block;     /* columns per lazy-update block (CAD_GPTQ_BLOCK) */
} cad_gptq_opts;

/* The column sweep with fixed per-row dequantisation steps: W (double [rows, cols], row-major)
 * is consumed as the working copy (it ends as GPTQ's error-fed weights, in the original column
 * order), H (double [cols, cols], symmetric) is not modified, step[r] > 0 is row r's scale as the
 * artifact decodes it, codes are clamp(round_half_even(w / step), -qmax, qmax) into q [rows,
 * cols]. CAD_ENUMERIC when the damped H is not positive definite; CAD_ENOMEM. */
int cad_gptq_sweep(double *W, int rows, int cols, const double *H, const float *step, int qmax,
                   const cad_gptq_opts *o, int8_t *q, cad_err *e);

#endif
