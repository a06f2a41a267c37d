/* test_fsutil.c — mkdir -p and whole-file reads, including their error messages. */
#include "test_util.h"
#include "engine/fsutil.h"

#include <sys/stat.h>

static void test_mkdir_p_creates_parents_and_is_idempotent(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/a/b//c", check_tmpdir());
    cad_err e;
    CHECK_EQ_INT(cad_mkdir_p(path, &e), CAD_OK);
    CHECK_EQ_INT(cad_mkdir_p(path, &e), CAD_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

static void test_mkdir_p_over_a_file_names_it(void) {
    char file[4096], path[4200];
    snprintf(file, sizeof file, "%s/plain", check_tmpdir());
    check_write_file(file, "x");
    snprintf(path, sizeof path, "%s/sub", file);
    cad_err e;
    CHECK_EQ_INT(cad_mkdir_p(file, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, "not a directory") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(cad_mkdir_p(path, &e), CAD_EIO);
}

static void test_read_file_whole_and_missing(void) {
    char file[4096];
    snprintf(file, sizeof file, "%s/big", check_tmpdir());
    FILE *f = fopen(file, "w");
    for (int i = 0; i < 100000; i++) fprintf(f, "%d\n", i % 10);  /* > the first 64 KiB buffer */
    fclose(f);
    char *buf;
    size_t len;
    cad_err e;
    CHECK_EQ_INT(cad_read_file(file, &buf, &len, &e), CAD_OK);
    CHECK_EQ_INT(len, 200000);
    CHECK(buf && buf[len] == 0 && buf[len - 2] == '9');
    free(buf);
    CHECK_EQ_INT(cad_read_file("/nonexistent/f", &buf, &len, &e), CAD_EIO);
    CHECK(buf == NULL);
    CHECK_MSG(strstr(e.msg, "/nonexistent/f: cannot open") != NULL, "msg: %s", e.msg);
}

int main(void) {
    RUN(test_mkdir_p_creates_parents_and_is_idempotent);
    RUN(test_mkdir_p_over_a_file_names_it);
    RUN(test_read_file_whole_and_missing);
    return check_report();
}
