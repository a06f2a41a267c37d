/*
 * fuzz_checkpoint.c — libFuzzer harness for the checkpoint reader: cad_checkpoint_load with the
 * CPU backend into a toy model's parameter and optimizer-state buffers (the `want` meta of
 * fuzz_common.h; inputs must match its shape fields to reach the data and checksum), on
 * arbitrary bytes.
 * Not here: the writer, resuming a run (tests/cli t0202).
 */
#include "engine/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Backend buffers live for the process (the CPU backend is a never-freed singleton too);
     * their sizes are the want meta's, which a loaded checkpoint must equal. */
    static const cad_backend *be;
    static float *params, *state;
    static cad_checkpoint_meta want;
    if (!be) {
        be = cad_backend_cpu();
        want = fuzz_ckpt_want();
        params = be->alloc(be, (size_t)want.n_param_floats * sizeof(float));
        state = be->alloc(be, (size_t)want.n_state_floats * sizeof(float));
        if (!params || !state) FUZZ_FAIL("backend alloc failed");
    }
    const char *path = fuzz_write_input("checkpoint.bin", data, size);
    cad_checkpoint_meta got;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_checkpoint_load(path, &want, &got, be, params, state, &e);
    fuzz_check_err(rc, &e, "cad_checkpoint_load");
    if (rc == CAD_OK && (got.n_param_floats != want.n_param_floats || got.n_state_floats != want.n_state_floats))
        FUZZ_FAIL("loaded a checkpoint whose sizes differ from want");
    return 0;
}
