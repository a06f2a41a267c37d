/*
 * fuzz_safetensors.c — libFuzzer harness for the .safetensors reader: cad_safetensors_load
 * (whole file into memory, F32/F16/BF16 to fp32) and cad_safetensors_read_into a toy model's
 * tensors (fuzz_common.h), lenient and strict, on arbitrary bytes. A loaded file's tensors
 * must have names and numel equal to the product of their shape, and every float is read.
 * Not here: the writer (tested by round trips in tests/unit).
 */
#include "engine/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("weights.safetensors", data, size);
    cad_safetensors_file f;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_safetensors_load(path, &f, &e);
    fuzz_check_err(rc, &e, "cad_safetensors_load");
    if (rc == CAD_OK) {
        volatile float sink = 0;
        for (int i = 0; i < f.n; i++) {
            const cad_named_tensor *t = &f.tensors[i];
            if (!t->name) FUZZ_FAIL("tensor %d has no name", i);
            if (t->ndim < 0 || t->ndim > CAD_TENSOR_MAX_DIMS) FUZZ_FAIL("tensor '%s': ndim %d", t->name, t->ndim);
            size_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
            if (numel != t->numel) FUZZ_FAIL("tensor '%s': numel %zu, shape says %zu", t->name, t->numel, numel);
            for (size_t j = 0; j < t->numel; j++) sink += t->data[j];
        }
        (void)sink;
        cad_safetensors_file_free(&f);
    }
    cad_named_tensor ts[FUZZ_N_TENSORS];
    for (int strict = 0; strict < 2; strict++) {
        fuzz_tensors(ts);
        cad_err_clear(&e);
        fuzz_check_err(cad_safetensors_read_into(path, ts, FUZZ_N_TENSORS, strict, &e), &e,
                       "cad_safetensors_read_into");
    }
    return 0;
}
