/*
 * sha256.h — SHA-256 (FIPS 180-4), the one implementation in caddie: config hashes of
 * sweep runs, spec hashes, artifact checksums.
 * Not here: any other digest, HMAC, or anything security-sensitive beyond content hashing.
 */
#ifndef CADDIE_SHA256_H
#define CADDIE_SHA256_H

#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cad_sha256 {
    uint32_t h[8];
    uint64_t len;        /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} cad_sha256;

void cad_sha256_init(cad_sha256 *s);
void cad_sha256_update(cad_sha256 *s, const void *data, size_t n);
void cad_sha256_final(cad_sha256 *s, uint8_t out[32]);
/* Lower-case hex of the digest of data (hex needs 65 bytes). */
void cad_sha256_hex(const void *data, size_t n, char hex[65]);
/* Hex digest of a file's content; *bytes (may be NULL) gets its size. */
int cad_sha256_file_hex(const char *path, char hex[65], int64_t *bytes, cad_err *e);

#endif
