/*
 * shard.c — read (mmap + validate), write (atomic) and glob challenge token shards.
 * See shard.h for the layout. Not here: multi-shard streams (stream.c).
 */
#include "engine/shard.h"

#include "engine/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The format is little-endian; caddie only targets little-endian hosts (x86-64, aarch64),
 * so tokens are used in place from the mapping. Refuse to build anywhere else rather than
 * silently misread shards. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "caddie reads shards in place and needs a little-endian host"
#endif

static int32_t read_le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* Validate a header against the actual file size; shared by open and read_header. */
static int header_check(const char *path, const unsigned char *hdr, size_t hdr_len,
                        long long file_size, long *n_tokens, cad_err *e) {
    if (hdr_len < CAD_SHARD_HEADER_BYTES)
        return cad_fail(e, CAD_EFORMAT,
                        "%s: truncated shard header: file is %lld bytes (expected at least %d)",
                        path, file_size, CAD_SHARD_HEADER_BYTES);
    int32_t magic = read_le32(hdr), version = read_le32(hdr + 4), count = read_le32(hdr + 8);
    if (magic != CAD_SHARD_MAGIC)
        return cad_fail(e, CAD_EFORMAT, "%s: bad shard magic %d (expected %d)", path, magic,
                        CAD_SHARD_MAGIC);
    if (version != CAD_SHARD_VERSION)
        return cad_fail(e, CAD_EFORMAT, "%s: unsupported shard version %d (expected %d)", path,
                        version, CAD_SHARD_VERSION);
    if (count < 0)
        return cad_fail(e, CAD_EFORMAT, "%s: negative token count %d in shard header", path,
                        count);
    long long want = CAD_SHARD_HEADER_BYTES + 2LL * count;
    if (file_size != want)
        return cad_fail(e, CAD_EFORMAT,
                        "%s: shard size mismatch: header says %d tokens = %lld bytes, file is "
                        "%lld bytes",
                        path, count, want, file_size);
    *n_tokens = count;
    return CAD_OK;
}

/* Open path read-only and stat it; it must be a regular file (a FIFO would block in open,
 * a device or directory would mislead the size check): cad_open_regular refuses the rest
 * without blocking. On failure nothing is left open. */
static int shard_open_file(const char *path, int *fd_out, struct stat *st, cad_err *e) {
    int fd, rc = cad_open_regular(path, "shard", &fd, e);
    if (rc) return rc;
    if (fstat(fd, st) != 0) {
        int err = errno;
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: cannot stat shard: %s", path, strerror(err));
    }
    *fd_out = fd;
    return CAD_OK;
}

int cad_shard_read_header(const char *path, long *n_tokens, cad_err *e) {
    int fd;
    struct stat st;
    int rc = shard_open_file(path, &fd, &st, e);
    if (rc) return rc;
    unsigned char hdr[CAD_SHARD_HEADER_BYTES];
    size_t got = 0;
    while (got < sizeof hdr) {
        ssize_t r = read(fd, hdr + got, sizeof hdr - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            return cad_fail(e, CAD_EIO, "%s: read error: %s", path, strerror(err));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    return header_check(path, hdr, got, (long long)st.st_size, n_tokens, e);
}

int cad_shard_open(cad_shard *s, const char *path, int vocab_size, cad_err *e) {
    memset(s, 0, sizeof *s);
    int fd;
    struct stat st;
    int rc = shard_open_file(path, &fd, &st, e);
    if (rc) return rc;
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return cad_fail(e, CAD_EIO, "%s: mmap of %zu bytes failed: %s", path, len,
                            strerror(err));
        }
    }
    close(fd);
    long n = 0;
    rc = header_check(path, map, len, (long long)st.st_size, &n, e);
    if (rc != CAD_OK) {
        if (map) munmap(map, len);
        return rc;
    }
    const uint16_t *tok = (const uint16_t *)((const unsigned char *)map + CAD_SHARD_HEADER_BYTES);
    if (vocab_size > 0) {
        /* One pass at open so a bad id is reported with its position, never an out-of-range
         * embedding lookup later. ~0.1 s per 10^8 tokens. */
        for (long i = 0; i < n; i++) {
            if (tok[i] >= vocab_size) {
                int bad = tok[i];
                munmap(map, len);
                return cad_fail(e, CAD_EFORMAT,
                                "%s: token %ld has id %d >= vocab size %d (wrong tokenizer or "
                                "vocab_size?)",
                                path, i, bad, vocab_size);
            }
        }
    }
    s->path = strdup(path);
    if (!s->path) {
        munmap(map, len);
        return cad_fail(e, CAD_ENOMEM, "%s: out of memory", path);
    }
    if (n > 0) madvise(map, len, MADV_SEQUENTIAL);
    s->map = map;
    s->map_len = len;
    s->tokens = tok;
    s->n_tokens = n;
    return CAD_OK;
}

void cad_shard_close(cad_shard *s) {
    if (!s) return;
    if (s->map) munmap(s->map, s->map_len);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cad_shard_write(const char *path, const uint16_t *tokens, long n, cad_err *e) {
    if (n < 0 || n > CAD_SHARD_MAX_TOKENS)
        return cad_fail(e, CAD_ECONFIG, "%s: token count %ld out of range [0, %ld]", path, n,
                        CAD_SHARD_MAX_TOKENS);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return cad_fail(e, CAD_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        return cad_fail(e, CAD_EIO, "%s: cannot create: %s", path, strerror(err));
    }
    unsigned char hdr[CAD_SHARD_HEADER_BYTES] = {0};
    int32_t fields[3] = {CAD_SHARD_MAGIC, CAD_SHARD_VERSION, (int32_t)n};
    memcpy(hdr, fields, sizeof fields);
    int bad = write_all(fd, hdr, sizeof hdr) || write_all(fd, tokens, (size_t)n * 2) ||
              fsync(fd) != 0;
    int err = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        free(tmp);
        return cad_fail(e, CAD_EIO, "%s: write failed: %s", path, strerror(err));
    }
    free(tmp);
    return CAD_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cad_shard_glob(const char *pattern, char ***paths, int *n, cad_err *e) {
    *paths = NULL;
    *n = 0;
    glob_t g;
    /* GLOB_NOSORT + strcmp: Python's sorted() order, independent of the locale's collation. */
    int rc = glob(pattern, GLOB_NOSORT, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return cad_fail(e, CAD_EIO, "%s: no files match this shard pattern", pattern);
    }
    if (rc != 0) return cad_fail(e, CAD_EIO, "%s: glob failed (code %d)", pattern, rc);
    char **out = calloc(g.gl_pathc, sizeof *out);
    if (!out) {
        globfree(&g);
        return cad_fail(e, CAD_ENOMEM, "%s: out of memory", pattern);
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        out[i] = strdup(g.gl_pathv[i]);
        if (!out[i]) {
            cad_shard_glob_free(out, (int)i);
            globfree(&g);
            return cad_fail(e, CAD_ENOMEM, "%s: out of memory", pattern);
        }
    }
    qsort(out, g.gl_pathc, sizeof *out, cmp_str);
    *n = (int)g.gl_pathc;
    *paths = out;
    globfree(&g);
    return CAD_OK;
}

void cad_shard_glob_free(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int cad_shard_name(char *buf, size_t cap, const char *dir, const char *split, int idx) {
    int w = snprintf(buf, cap, "%s/fineweb_%s_%06d.bin", dir, split, idx);
    return (w < 0 || (size_t)w >= cap) ? -1 : 0;
}
