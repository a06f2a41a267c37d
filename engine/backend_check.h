/*
 * backend_check.h — op-by-op comparison of a backend under test with the CPU reference, in the
 * manner of ggml's test-backend-ops: every slot of engine/backend.h on several shapes (odd
 * sizes, GQA, strided views, in-place aliasing), identical seeded inputs on both backends, and
 * for each output tensor
 *   - NMSE = sum (dut - ref)^2 / sum ref^2 <= max_nmse (fp32: 1e-7 is ggml's default; genuine
 *     rounding differences between fp32 implementations land near 1e-12..1e-10),
 *   - NaN/Inf agreement element by element (same class and sign),
 *   - guard values around every output allocation unchanged (out-of-bounds writes), and the
 *     untouched columns of strided outputs compared like the rest.
 * Used by tests/unit/test_kernels_emu.c (CUDA kernels through the CPU emulation layer) and by
 * `caddie gpu selftest` (the real CUDA backend on a GPU).
 *
 * Not here: finite-difference checks of the reference itself (tests/unit/test_engine_*),
 * timing, anything backend-specific.
 */
#ifndef CADDIE_BACKEND_CHECK_H
#define CADDIE_BACKEND_CHECK_H

#include "engine/backend.h"

#include <stdint.h>

typedef struct cad_opcheck_result {
    const char *op;     /* backend.h slot name, e.g. "rmsnorm_forward" */
    const char *tensor; /* which output: "out", "rstd", "dwte", ... */
    char shape[112];    /* "N=37 C=70 alias" */
    double nmse;        /* normalised mean squared error (0 when both are all zero) */
    double max_abs;     /* max |dut - ref| over finite pairs */
    long nonfinite_mismatch; /* elements where NaN/Inf class differs */
    long guard_hits;         /* guard floats changed around the DUT output */
    int pass;
} cad_opcheck_result;

typedef void (*cad_opcheck_report_fn)(const cad_opcheck_result *r, void *ud);

typedef struct cad_opcheck_opts {
    uint64_t seed;   /* input data seed */
    double max_nmse; /* 0 means 1e-7 */
    int large;       /* also run model-sized shapes (GPU selftest; too slow for emulation) */
} cad_opcheck_opts;

/* Run every op on ref and dut, call fn for each compared output (may be NULL), and return the
 * number of failed comparisons. Allocation failure on either backend counts as a failure and
 * is reported with op "alloc". Both backends must be usable from this thread. */
int cad_backend_opcheck(const cad_backend *ref, const cad_backend *dut, const cad_opcheck_opts *o,
                        cad_opcheck_report_fn fn, void *ud);

/* ---- which kernels the dense products launch (GPU selftest) ----------------------------------
 * One line per (precision, slot, shape): the device kernels the slot launched, by name (CUPTI
 * callbacks on the launch APIs). A TF32 kernel ("tf32" in its name) is a failure in either
 * precision: fp32 promises exact fp32 products and bf16 promises bf16 operands, and TF32 is
 * neither (the 2026-12-04 H200 run: bf16 mode ran sm90_xmma_gemm_f32f32_tf32f32_f32_*). */
typedef struct cad_gemm_pick {
    const char *precision; /* "fp32", "bf16" */
    const char *slot;      /* "matmul", "matmul_batched", "gram_batched", "attention_forward", ... */
    char shape[96];
    char kernels[1024];    /* the distinct kernel names launched, "; "-separated */
    int n_kernels;
    int tf32;              /* a kernel name contains "tf32" */
    int pass;
} cad_gemm_pick;
typedef void (*cad_gemm_pick_fn)(const cad_gemm_pick *p, void *ud);

/* 1 when a kernel name names a TF32 kernel (contains "tf32", any case). */
int cad_gemm_kernel_is_tf32(const char *name);

#ifdef __cplusplus
extern "C" {
#endif
/* The report on the CUDA backend `cuda` (kernels/backend_cuda.cu; CADDIE_CUDA builds only). Leaves
 * the backend in fp32. *n_failed counts failing lines; CAD_ERR when CUPTI cannot be loaded or
 * subscribed (another profiler attached), with the reason. */
int cad_cuda_gemm_report(const cad_backend *cuda, cad_gemm_pick_fn fn, void *ud, int *n_failed, cad_err *e);
#ifdef __cplusplus
}
#endif

#endif
