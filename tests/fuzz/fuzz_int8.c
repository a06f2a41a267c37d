/*
 * fuzz_int8.c — libFuzzer harness for the artifact decoder: cad_int8_import (zlib or zstd, then
 * the CADQINT8 container, dequantized into a toy model's tensors from fuzz_common.h).
 * The first input byte picks what the rest is, so mutations reach the container parser and not
 * only the decompressors' checksums:
 *   0 (mod 3): the file's bytes as they are (decompressor detection, corrupt streams);
 *   1: a raw container, compressed here with zlib before the loader reads it;
 *   2: a raw container, compressed here with zstd.
 * Not here: the exporter (round trips in tests/unit), the quantization math.
 */
#include "engine/export.h"
#include "tests/fuzz/fuzz_common.h"

#include <zlib.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int mode = data[0] % 3;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    uint8_t *packed = NULL;
    const char *path;
    if (mode == 0) {
        path = fuzz_write_input("model.int8.ptz", body, n);
    } else if (mode == 1) {
        uLongf cap = compressBound((uLong)n);
        packed = malloc(cap);
        if (!packed || compress2(packed, &cap, body, (uLong)n, 1) != Z_OK) FUZZ_FAIL("zlib compress failed");
        path = fuzz_write_input("model.int8.ptz", packed, cap);
    } else {
        size_t cap = ZSTD_compressBound(n);
        packed = malloc(cap ? cap : 1);
        size_t got = packed ? ZSTD_compress(packed, cap, body, n, 1) : 0;
        if (!packed || ZSTD_isError(got)) FUZZ_FAIL("zstd compress failed");
        path = fuzz_write_input("model.int8.ptz", packed, got);
    }
    free(packed);
    cad_named_tensor ts[FUZZ_N_TENSORS];
    fuzz_tensors(ts);
    cad_err e;
    cad_err_clear(&e);
    fuzz_check_err(cad_int8_import(path, ts, FUZZ_N_TENSORS, &e), &e, "cad_int8_import");
    return 0;
}
