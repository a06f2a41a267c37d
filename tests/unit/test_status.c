/* test_status.c — the cad_err convention: messages, wrapping, exit-code mapping. */
#include "check.h"
#include "engine/status.h"

static void test_fail_sets_code_and_message(void) {
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_fail(&e, CAD_EFORMAT, "%s: bad magic %d (expected %d)", "x.bin", 7, 20240520);
    CHECK_EQ_INT(rc, CAD_EFORMAT);
    CHECK_EQ_INT(e.code, CAD_EFORMAT);
    CHECK_STR(e.msg, "x.bin: bad magic 7 (expected 20240520)");
}

static void test_wrap_prefixes_context(void) {
    cad_err e;
    cad_fail(&e, CAD_EIO, "short read");
    int rc = cad_wrap(&e, "loading '%s'", "w.safetensors");
    CHECK_EQ_INT(rc, CAD_EIO);
    CHECK_STR(e.msg, "loading 'w.safetensors': short read");
}

static void test_exit_codes(void) {
    CHECK_EQ_INT(cad_exit_code(CAD_OK), 0);
    CHECK_EQ_INT(cad_exit_code(CAD_EUSAGE), 2);
    CHECK_EQ_INT(cad_exit_code(CAD_EDB), 1);
    CHECK_EQ_INT(cad_fail(NULL, CAD_EIO, "no sink"), CAD_EIO);
}

int main(void) {
    RUN(test_fail_sets_code_and_message);
    RUN(test_wrap_prefixes_context);
    RUN(test_exit_codes);
    return check_report();
}
