/*
 * fsutil.c — mkdir -p and whole-file reads (see fsutil.h).
 */
#include "engine/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
