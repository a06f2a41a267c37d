/*
 * status.h — the error convention every library function in caddie follows.
 *
 * Library code (engine/, sweep/, reports/) never exits and never prints errors itself:
 * a function that can fail returns an int status (CAD_OK == 0 on success) and, on
 * failure, fills a caller-owned cad_err with one line naming the place (file:line:col,
 * config key, tensor name, shard path) and what was expected vs what was found.
 * Only main() turns a status into an exit code and prints the message.
 *
 * Not here: CUDA error handling (kernels/cuda_check.h aborts with the failing statement,
 * since a CUDA error is a bug or broken hardware, not bad user input).
 */
#ifndef CADDIE_STATUS_H
#define CADDIE_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cad_status {
    CAD_OK = 0,
    CAD_ERR = 1,      /* generic failure */
    CAD_EUSAGE = 2,   /* bad command line: main maps this to exit code 2 */
    CAD_EIO = 3,      /* file system: open/read/write/full disk */
    CAD_EFORMAT = 4,  /* malformed input file (shard, YAML, safetensors, log) */
    CAD_ECONFIG = 5,  /* invalid configuration value or combination */
    CAD_ENOMEM = 6,   /* allocation failed */
    CAD_ENUMERIC = 7, /* NaN/Inf or other numerical failure */
    CAD_EDB = 8,      /* SQLite error */
    CAD_ECHILD = 9,   /* a child process failed */
};

#define CAD_ERRMSG_MAX 2048

typedef struct cad_err {
    int code;                  /* last status set, CAD_OK if none */
    char msg[CAD_ERRMSG_MAX];  /* one line, no trailing newline */
} cad_err;

/* Record an error in e (may be NULL) and return code, so callers can write
 *     if (bad) return cad_fail(e, CAD_EFORMAT, "%s: bad magic %d (expected %d)", ...);  */
int cad_fail(cad_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cad_vfail(cad_err *e, int code, const char *fmt, va_list ap);

/* Prefix an existing message with more context: "while loading 'x': <old msg>". */
int cad_wrap(cad_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear e to CAD_OK with an empty message. */
void cad_err_clear(cad_err *e);

/* Map a status to a process exit code: 0 ok, 2 usage, 1 everything else. */
int cad_exit_code(int status);

/* Invariant checks for bugs (never for user input): print file:line and abort. */
#define CAD_ASSERT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) cad_assert_fail(#cond, __FILE__, __LINE__);                          \
    } while (0)
void cad_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif
