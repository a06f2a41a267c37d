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

#endif
