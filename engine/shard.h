/*
 * shard.h — the challenge's token shard files (fineweb_{train,val}_NNNNNN.bin): read by
 * mmap with full validation, write atomically, and list a glob in sorted order.
 *
 * Layout (parameter-golf.md §1, train_gpt.py load_data_shard): a 1024-byte header of 256
 * little-endian int32 (magic 20240520, version 1, token count, 253 zeros) followed by the
 * tokens as little-endian uint16; the file size must be exactly 1024 + 2*count.
 * Every malformed file is a one-line cad_err naming the path and expected vs actual value.
 * Not here: streaming/batching over several shards (stream.h), tokenization (tokenizer.h).
 */
#ifndef CADDIE_SHARD_H
#define CADDIE_SHARD_H

#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

#define CAD_SHARD_MAGIC 20240520
#define CAD_SHARD_VERSION 1
#define CAD_SHARD_HEADER_BYTES 1024
/* The exporter's shard size (SHARD_SIZE = 10**8 tokens). */
#define CAD_SHARD_DEFAULT_TOKENS 100000000L
/* The writer refuses len(toks) >= 2**31 (the count is an int32). */
#define CAD_SHARD_MAX_TOKENS 2147483647L

typedef struct cad_shard {
    char *path;             /* owned copy of the path (for error messages) */
    const uint16_t *tokens; /* points into the mapping, n_tokens entries */
    long n_tokens;
    void *map;              /* mmap base (NULL for an empty mapping) */
    size_t map_len;
} cad_shard;

/* mmap PATH and validate header, size and (when vocab_size > 0) that every id < vocab_size.
 * On failure *s is left zeroed (nothing to close). */
int cad_shard_open(cad_shard *s, const char *path, int vocab_size /*0 = no id check*/, cad_err *e);
void cad_shard_close(cad_shard *s);

/* Write n tokens as a shard at PATH: written to "PATH.tmp.<pid>", fsync'd, then renamed, so a
 * crash never leaves a half-written file under a valid shard name. */
int cad_shard_write(const char *path, const uint16_t *tokens, long n, cad_err *e);

/* Only read and check the header + file size (no mmap, no id scan): fills *n_tokens. */
int cad_shard_read_header(const char *path, long *n_tokens, cad_err *e);

/* Expand a glob pattern into a sorted (strcmp, like Python's sorted()) list of paths.
 * No match is an error naming the pattern. Free with cad_shard_glob_free. */
int cad_shard_glob(const char *pattern, char ***paths, int *n, cad_err *e);
void cad_shard_glob_free(char **paths, int n);

/* The official shard file name "DIR/fineweb_<split>_<idx:06d>.bin" into buf. */
int cad_shard_name(char *buf, size_t cap, const char *dir, const char *split, int idx);

#endif
