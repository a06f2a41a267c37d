/*
 * test_sha256.c — engine/sha256.c against the FIPS 180-4 / NIST example digests, one-shot and
 * fed in uneven pieces, so both the whole-block path (SHA-NI where the CPU has it, the portable
 * rounds elsewhere) and the partial-block buffering are checked.
 * Not here: the artifact rows that store these digests (test_db_ingest).
 */
#include "engine/sha256.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *hex_of(const void *data, size_t n) {
    static char hex[65];
    cad_sha256_hex(data, n, hex);
    return hex;
}

static void test_nist_vectors(void) {
    CHECK_STR(hex_of("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_STR(hex_of("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK_STR(hex_of(two, strlen(two)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                       "klmnopqrlmnopqrsmnopqrstnopqrstu";
    CHECK_STR(hex_of(four, strlen(four)), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    char *a = malloc(1000000);
    CHECK(a != NULL);
    if (!a) return;
    memset(a, 'a', 1000000);
    CHECK_STR(hex_of(a, 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* the same million bytes in pieces of 1, 63, 64, 65, 127, ... bytes */
    cad_sha256 s;
    cad_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        cad_sha256_update(&s, a + off, n);
        off += n;
        step = step * 7 % 257 + 1;
    }
    uint8_t d[32];
    cad_sha256_final(&s, d);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

int main(void) {
    RUN(test_nist_vectors);
    return check_report();
}
