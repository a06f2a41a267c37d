/*
 * tail.c — incremental line reader over a growing file (see tail.h). Reads with pread from
 * a remembered offset; detects truncation/replacement by size and inode. Not a parser.
 */
#include "runner/tail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cad_tail_init(cad_tail_file *t, const char *path) {
    memset(t, 0, sizeof *t);
    t->path = strdup(path);
    return t->path ? 0 : -1;
}

void cad_tail_free(cad_tail_file *t) {
    free(t->path);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

static int buf_reserve(cad_tail_file *t, size_t need) {
    if (need <= t->cap) return 0;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < need) cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) return -1;
    t->buf = b;
    t->cap = cap;
    return 0;
}

/* Hand out complete lines from the buffer. Returns lines handed out, or -1 if fn stopped.
 * Bytes before t->scanned were searched already; an overlong partial line keeps only its
 * first CAD_TAIL_LINE_MAX bytes, so the buffer never holds more than that plus one read. */
static long deliver(cad_tail_file *t, cad_tail_line_fn fn, void *ctx) {
    long lines = 0;
    size_t start = 0;
    int stop = 0;
    while (!stop) {
        size_t from = start + (start == 0 ? t->scanned : 0);
        char *nl = t->len > from ? memchr(t->buf + from, '\n', t->len - from) : NULL;
        if (!nl) break;
        size_t end = (size_t)(nl - t->buf);
        size_t n = end - start;
        if (start == 0 && t->overlong) n = CAD_TAIL_LINE_MAX; /* its start is all that was kept */
        t->buf[start + n] = 0;
        t->overlong = 0;
        t->scanned = 0;
        lines++;
        if (fn(ctx, t->buf + start, n) != 0) stop = 1;
        start = end + 1;
    }
    if (start > 0) {
        memmove(t->buf, t->buf + start, t->len - start);
        t->len -= start;
        t->scanned = 0;
    }
    if (stop) return -1;
    /* what is left has no newline: remember that, and cut an overlong line */
    if (t->len > CAD_TAIL_LINE_MAX) {
        t->len = CAD_TAIL_LINE_MAX;
        t->overlong = 1;
    }
    t->scanned = t->len;
    return lines;
}

long cad_tail_read(cad_tail_file *t, cad_tail_line_fn fn, void *ctx, size_t max_bytes,
                   int *restarted) {
    if (restarted) *restarted = 0;
    long total = deliver(t, fn, ctx); /* lines left over from a stopped call */
    if (total < 0) return -1;
    struct stat st;
    if (stat(t->path, &st) != 0) return total;
    if (t->opened && (st.st_ino != t->ino || st.st_dev != t->dev || st.st_size < t->offset)) {
        t->offset = 0;
        t->len = 0;
        t->scanned = 0;
        t->overlong = 0;
        if (restarted) *restarted = 1;
    }
    t->opened = 1;
    t->ino = st.st_ino;
    t->dev = st.st_dev;
    if (st.st_size == t->offset) return total;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return total;
    size_t budget = max_bytes ? max_bytes : (size_t)-1;
    while (budget > 0) {
        size_t want = budget < 65536 ? budget : 65536;
        if (buf_reserve(t, t->len + want + 1) != 0) break;
        ssize_t n = pread(fd, t->buf + t->len, want, (off_t)t->offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        t->len += (size_t)n;
        t->offset += n;
        budget -= (size_t)n;
        long got = deliver(t, fn, ctx);
        if (got < 0) {
            close(fd);
            return -1;
        }
        total += got;
    }
    close(fd);
    return total;
}

int cad_tail_flush_partial(cad_tail_file *t, cad_tail_line_fn fn, void *ctx) {
    if (t->len == 0 || memchr(t->buf + t->scanned, '\n', t->len - t->scanned)) return 0;
    if (buf_reserve(t, t->len + 1) != 0) return 0;
    t->buf[t->len] = 0;
    fn(ctx, t->buf, t->len);
    t->len = 0;
    t->scanned = 0;
    t->overlong = 0;
    return 1;
}

char *cad_tail_last_lines(const char *path, int n, size_t max_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return strdup("");
    }
    size_t want = (size_t)st.st_size < max_bytes ? (size_t)st.st_size : max_bytes;
    char *b = malloc(want + 1);
    if (!b) {
        close(fd);
        return NULL;
    }
    ssize_t got = pread(fd, b, want, (off_t)(st.st_size - (off_t)want));
    close(fd);
    size_t len = got > 0 ? (size_t)got : 0;
    while (len > 0 && b[len - 1] == '\n') len--; /* trailing newlines are not lines */
    b[len] = 0;
    size_t start = len;
    int seen = 0;
    while (start > 0) {
        if (b[start - 1] == '\n' && ++seen == n) break;
        start--;
    }
    memmove(b, b + start, len - start + 1);
    return b;
}
