/*
 * status.c — cad_err helpers (see status.h for the convention).
 */
#include "engine/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cad_vfail(cad_err *e, int code, const char *fmt, va_list ap) {
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

int cad_fail(cad_err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cad_vfail(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int cad_wrap(cad_err *e, const char *fmt, ...) {
    if (!e) return CAD_ERR;
    char old[CAD_ERRMSG_MAX];
    memcpy(old, e->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* append ": <old>" by hand, truncating, so gcc's format-truncation check stays quiet */
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof e->msg ? sizeof e->msg - 1 : (size_t)n;
    const char *parts[2] = {": ", old};
    for (int p = 0; p < 2; p++)
        for (const char *c = parts[p]; *c && len + 1 < sizeof e->msg; c++) e->msg[len++] = *c;
    e->msg[len] = 0;
    return e->code ? e->code : CAD_ERR;
}

void cad_err_clear(cad_err *e) {
    if (!e) return;
    e->code = CAD_OK;
    e->msg[0] = 0;
}

int cad_exit_code(int status) {
    if (status == CAD_OK) return 0;
    if (status == CAD_EUSAGE) return 2;
    return 1;
}

void cad_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "caddie: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
