/*
 * fsutil.c — mkdir -p, whole-file reads and regular-file opens (see fsutil.h).
 */
#include "engine/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_one(const char *dir, cad_err *e) {
    if (mkdir(dir, 0755) == 0) return CAD_OK;
    if (errno != EEXIST)
        return cad_fail(e, CAD_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cad_fail(e, CAD_EIO, "%s: not a directory", dir);
    return CAD_OK;
}

int cad_mkdir_p(const char *path, cad_err *e) {
    size_t n = strlen(path);
    if (n == 0) return cad_fail(e, CAD_EIO, "empty directory path");
    char *tmp = malloc(n + 1);
    if (!tmp) return cad_fail(e, CAD_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, n + 1);
    int rc = CAD_OK;
    for (char *p = tmp + 1; *p && !rc; p++) {
        if (*p != '/' || p[-1] == '/') continue;
        *p = 0;
        rc = mkdir_one(tmp, e);
        *p = '/';
    }
    if (!rc) rc = mkdir_one(tmp, e);
    free(tmp);
    return rc;
}

int cad_read_file(const char *path, char **buf, size_t *len, cad_err *e) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            return cad_fail(e, CAD_ENOMEM, "%s: out of memory reading the file", path);
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) free(b);
            b = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return cad_fail(e, CAD_EIO, "%s: read error", path);
    }
    b[n] = 0;
    if (len) *len = n;
    *buf = b;
    return CAD_OK;
}

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a plain file";
}

int cad_open_regular(const char *path, const char *what, int *fd_out, cad_err *e) {
    *fd_out = -1;
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return cad_fail(e, CAD_EIO, "%s: cannot open%s%s: %s", path, what ? " " : "", what ? what : "",
                        strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int err = errno;
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: cannot clear O_NONBLOCK: %s", path, strerror(err));
    }
    *fd_out = fd;
    return CAD_OK;
}

int cad_read_regular_file(const char *path, const char *what, size_t max_bytes, char **buf,
                          size_t *len, cad_err *e) {
    *buf = NULL;
    int fd, rc = cad_open_regular(path, what, &fd, e);
    if (rc) return rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if ((uintmax_t)st.st_size > max_bytes || (uintmax_t)st.st_size >= SIZE_MAX) {
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: %jd bytes, more than the %zu-byte limit", path,
                        (intmax_t)st.st_size, max_bytes);
    }
    /* The size is a hint only (the file may grow or shrink while read): read until EOF but
     * never past max_bytes. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap);
    if (!b) {
        close(fd);
        return cad_fail(e, CAD_ENOMEM, "%s: out of memory for %zu bytes", path, cap);
    }
    for (;;) {
        if (n + 1 == cap) {
            if (cap - 1 >= max_bytes) {
                /* one probe byte past the limit tells "exactly max_bytes" from "more" */
                char probe;
                ssize_t r;
                do r = read(fd, &probe, 1);
                while (r < 0 && errno == EINTR);
                if (r == 0) break;
                free(b);
                close(fd);
                if (r < 0) return cad_fail(e, CAD_EIO, "%s: read error: %s", path, strerror(errno));
                return cad_fail(e, CAD_EIO, "%s: more than the %zu-byte limit", path, max_bytes);
            }
            size_t ncap = cap - 1 > max_bytes / 2 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                close(fd);
                return cad_fail(e, CAD_ENOMEM, "%s: out of memory reading the file", path);
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            free(b);
            close(fd);
            return cad_fail(e, CAD_EIO, "%s: read error: %s", path, strerror(err));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = 0;
    if (len) *len = n;
    *buf = b;
    return CAD_OK;
}
