/*
 * fuzz_shard.c — libFuzzer harness for the token shard reader: cad_shard_open (mmap + header,
 * size and token-id validation) with and without the vocabulary check, and
 * cad_shard_read_header, on arbitrary bytes. A shard that opens is read to its last token, its
 * ids must be below the vocabulary it was checked against, and the header-only reader must
 * agree on the token count (both read the same header).
 * Not here: streams over several shards (engine/stream.c), the writer.
 */
#include "engine/shard.h"
#include "tests/fuzz/fuzz_common.h"

#define VOCAB 1024

static void open_and_check(const char *path, int vocab) {
    cad_shard s;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_shard_open(&s, path, vocab, &e);
    fuzz_check_err(rc, &e, "cad_shard_open");
    if (rc != CAD_OK) return;
    for (long i = 0; i < s.n_tokens; i++)
        if (vocab > 0 && s.tokens[i] >= vocab) FUZZ_FAIL("token %ld = %u passed the vocab %d check", i, s.tokens[i], vocab);
    long n = -1;
    cad_err_clear(&e);
    if (cad_shard_read_header(path, &n, &e) != CAD_OK || n != s.n_tokens)
        FUZZ_FAIL("shard opened with %ld tokens but read_header says %ld (%s)", s.n_tokens, n, e.msg);
    cad_shard_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("fineweb_val_000000.bin", data, size);
    open_and_check(path, VOCAB);
    open_and_check(path, 0);
    long n;
    cad_err e;
    cad_err_clear(&e);
    fuzz_check_err(cad_shard_read_header(path, &n, &e), &e, "cad_shard_read_header");
    return 0;
}
