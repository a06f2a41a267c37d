/*
 * check.h — the tiny unit-test harness every tests/unit/test_*.c uses.
 *
 * A test file defines static void test_xxx(void) functions and a main() that calls
 * RUN(test_xxx) for each, then returns check_report(). Each RUN prints one line:
 *     ok <name>
 *     FAIL <file>:<line>: <name>: <what>      (first failing check of that test)
 *     skip <name>: <reason>                  (test called SKIP(...))
 * and check_report() prints "# passed N failed M skipped K" which tests/run.sh sums up.
 * Checks inside a test keep going after a failure (so one run shows every mismatch) but
 * the test counts once. Header-only on purpose: each test is its own executable.
 *
 * Not here: fixtures, tolerances per tensor (those live with the test that needs them), and
 * the scratch-file / stdout / DB helpers several tests share (test_util.h).
 */
#ifndef CADDIE_CHECK_H
#define CADDIE_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_n_pass, check_n_fail, check_n_skip;
static int check_cur_failed, check_cur_skipped;
static const char *check_cur_name;

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, check_cur_name);      \
            fprintf(stdout, __VA_ARGS__);                                                 \
            fputc('\n', stdout);                                                          \
            fflush(stdout);                                                               \
            check_cur_failed++;                                                           \
        }                                                                                 \
    } while (0)

#define CHECK(cond) CHECK_MSG(cond, "expected %s", #cond)

#define CHECK_EQ_INT(a, b)                                                                \
    do {                                                                                  \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                   \
        CHECK_MSG(check_a_ == check_b_, "%s == %lld, expected %s == %lld", #a, check_a_,  \
                  #b, check_b_);                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                   \
    do {                                                                                  \
        const char *check_a_ = (a), *check_b_ = (b);                                      \
        CHECK_MSG(check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0,                \
                  "%s is \"%s\", expected \"%s\"", #a, check_a_ ? check_a_ : "(null)",    \
                  check_b_ ? check_b_ : "(null)");                                        \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                      \
    do {                                                                                  \
        double check_a_ = (double)(a), check_b_ = (double)(b);                            \
        CHECK_MSG(fabs(check_a_ - check_b_) <= (atol) + (rtol)*fabs(check_b_),            \
                  "%s = %.9g, expected %.9g (atol %g rtol %g)", #a, check_a_, check_b_,   \
                  (double)(atol), (double)(rtol));                                        \
    } while (0)

/* Call inside a test to mark it skipped (e.g. needs a GPU); return right after. */
#define SKIP(...)                                                                         \
    do {                                                                                  \
        fprintf(stdout, "skip %s: ", check_cur_name);                                     \
        fprintf(stdout, __VA_ARGS__);                                                     \
        fputc('\n', stdout);                                                              \
        check_cur_skipped = 1;                                                            \
    } while (0)

#define RUN(fn)                                                                           \
    do {                                                                                  \
        check_cur_name = #fn;                                                             \
        check_cur_failed = 0;                                                             \
        check_cur_skipped = 0;                                                            \
        fn();                                                                             \
        if (check_cur_failed) check_n_fail++;                                             \
        else if (check_cur_skipped) check_n_skip++;                                       \
        else {                                                                            \
            check_n_pass++;                                                               \
            fprintf(stdout, "ok %s\n", #fn);                                              \
        }                                                                                 \
        fflush(stdout);                                                                   \
    } while (0)

static inline int check_report(void) {
    fprintf(stdout, "# passed %d failed %d skipped %d\n", check_n_pass, check_n_fail,
            check_n_skip);
    return check_n_fail ? 1 : 0;
}

/* Path of a test fixture: tests read from CADDIE_SRC (repo root, set by tests/run.sh). */
static inline const char *check_src_path(const char *rel) {
    static char buf[4][4096];
    static int k;
    const char *root = getenv("CADDIE_SRC");
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root ? root : ".", rel);
    return buf[k];
}

/* A fresh scratch directory for this test executable (under CADDIE_TMP). */
static inline const char *check_tmpdir(void) {
    static char dir[4096];
    if (!dir[0]) {
        const char *base = getenv("CADDIE_TMP");
        snprintf(dir, sizeof dir, "%s/unitXXXXXX", base ? base : "/tmp");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

#endif
