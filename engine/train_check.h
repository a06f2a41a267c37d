/*
 * train_check.h — whole-model checks of a backend under test against a reference backend (or
 * against itself), the training-level part of `caddie gpu selftest` that the op-by-op check
 * (backend_check.h) cannot see: errors that are below an op's NMSE bound but compound over a
 * model and a run (the TF32-instead-of-bf16 products), and run-to-run nondeterminism.
 *
 *   cad_check_grads        one optimizer step's gradients of the same weights on the same batch:
 *                          the loss (relative) and every parameter's gradient: NMSE =
 *                          sum (dut-ref)^2 / max(sum ref^2, CAD_CHECK_GRAD_FLOOR * numel * mean
 *                          square of the whole reference gradient), the floor so a tiny gradient
 *                          that is a sum with heavy cancellation (q_gain at init: ~1e-6 against
 *                          ~1e-3 elsewhere) is judged against the gradient's scale, not its own
 *                          rounding noise (bf16: 2e-2 NMSE there, 1e-5 on the matrices); the weights
 *                          are the seeded init plus seeded noise, so no gradient is trivially 0
 *                          (zero-initialised projections would zero most of them)
 *   cad_check_train        `steps` optimizer steps from the same init on the same data on each
 *                          backend; the loss of every step within max_rel (relative)
 *   cad_check_determinism  two runs of `steps` steps on one backend: every step's loss and every
 *                          final weight bit-identical
 * Backend-agnostic (two cad_backend pointers): `make test` runs them CPU vs CPU and against a
 * deliberately perturbed backend (which must fail); the selftest runs CPU vs CUDA.
 * Each compared item is reported through fn (may be NULL); *n_failed counts failed items. The
 * return value is a status for setup errors only (a config that does not build, allocation).
 *
 * Not here: timing (bench.h), op-level shapes (backend_check.h), printing.
 */
#ifndef CADDIE_TRAIN_CHECK_H
#define CADDIE_TRAIN_CHECK_H

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/status.h"

#include <stdint.h>

#define CAD_CHECK_GRAD_FLOOR 1e-2

typedef struct cad_check_item {
    const char *check; /* "grads", "train", "determinism" */
    const char *precision; /* the config's matmul_precision */
    char what[128];    /* "loss", "blocks.0.attn.c_q.weight", "step 3 loss", "final weights" */
    double ref, dut;   /* loss values (grads: the gradient norms) */
    double err;        /* relative error, NMSE, or differing elements (determinism) */
    double limit;
    int pass;
} cad_check_item;

typedef void (*cad_check_report_fn)(const cad_check_item *it, void *ud);

int cad_check_grads(cad_config *c, const cad_backend *ref, const cad_backend *dut, uint64_t noise_seed,
                    double max_nmse, double max_loss_rel, cad_check_report_fn fn, void *ud, int *n_failed,
                    cad_err *e);
int cad_check_train(cad_config *c, const cad_backend *ref, const cad_backend *dut, long steps, double max_rel,
                    cad_check_report_fn fn, void *ud, int *n_failed, cad_err *e);
int cad_check_determinism(cad_config *c, const cad_backend *be, long steps, cad_check_report_fn fn, void *ud,
                          int *n_failed, cad_err *e);

/* The selftest's sequence, for each matmul precision (fp32, bf16): the gradient check (on the
 * baseline model 9x512, 8/4 heads, vocab of the config, T=1024, grad_B sequences, one micro-step
 * when grad_full_size; else on the config's own model), the training parity run of train_steps
 * steps on the config, and, when det_steps > 0, the determinism check of dut. Tolerances: the
 * gradient NMSE bound per precision, the loss relative bound for both loss comparisons. */
typedef struct cad_train_selftest_opts {
    const char *config; /* YAML file: data, tokenizer and the model of the training checks */
    int grad_full_size;
    long grad_B;
    long train_steps, det_steps;
    double grad_nmse_fp32, grad_nmse_bf16, loss_rel;
} cad_train_selftest_opts;

int cad_train_selftest(const cad_train_selftest_opts *o, const cad_backend *ref, const cad_backend *dut,
                       cad_check_report_fn fn, void *ud, int *n_failed, cad_err *e);

#endif
