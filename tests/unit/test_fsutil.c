/* test_fsutil.c — mkdir -p and whole-file reads, including their error messages. */
#include "test_util.h"
#include "engine/fsutil.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A FIFO with no writer blocks a plain open() forever and /dev/zero never ends: both are
 * refused at once, naming the path. alarm() turns a regression (a hang) into a failure. */
static void test_regular_file_refuses_fifo_and_device(void) {
    const char *fifo = check_tmp_path("fifo");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(10);
    int fd;
    cad_err e;
    CHECK_EQ_INT(cad_open_regular(fifo, NULL, &fd, &e), CAD_EIO);
    CHECK(fd == -1);
    CHECK_MSG(strstr(e.msg, fifo) && strstr(e.msg, "not a regular file (a FIFO)"), "msg: %s", e.msg);
    char *buf = (char *)1;
    size_t len;
    CHECK_EQ_INT(cad_read_regular_file(fifo, NULL, 1 << 20, &buf, &len, &e), CAD_EIO);
    CHECK(buf == NULL);
    CHECK_MSG(strstr(e.msg, "not a regular file") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(cad_read_regular_file("/dev/zero", NULL, 1 << 20, &buf, &len, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, "/dev/zero: not a regular file (a character device)") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(cad_open_regular(check_tmpdir(), NULL, &fd, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, "not a regular file (a directory)") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(cad_open_regular("/nonexistent/f", "shard", &fd, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, "/nonexistent/f: cannot open shard: ") != NULL, "msg: %s", e.msg);
    alarm(0);
    unlink(fifo);
}

static void test_regular_file_reads_whole_and_blocking(void) {
    const char *file = check_tmp_path("regular");
    check_write_file(file, "abc\n");
    int fd;
    cad_err e;
    CHECK_EQ_INT(cad_open_regular(file, NULL, &fd, &e), CAD_OK);
    CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
    if (fd >= 0) close(fd);
    char *buf;
    size_t len;
    CHECK_EQ_INT(cad_read_regular_file(file, NULL, 4, &buf, &len, &e), CAD_OK); /* exactly the cap */
    CHECK_EQ_INT(len, 4);
    CHECK_STR(buf, "abc\n");
    free(buf);
    CHECK_EQ_INT(cad_read_regular_file(file, NULL, 3, &buf, &len, &e), CAD_EIO);
    CHECK(buf == NULL);
    CHECK_MSG(strstr(e.msg, file) && strstr(e.msg, "4 bytes, more than the 3-byte limit"), "msg: %s", e.msg);
    check_write_file(file, "");
    CHECK_EQ_INT(cad_read_regular_file(file, NULL, 3, &buf, &len, &e), CAD_OK);
    CHECK(buf && len == 0 && buf[0] == 0);
    free(buf);
}

int main(void) {
    RUN(test_mkdir_p_creates_parents_and_is_idempotent);
    RUN(test_mkdir_p_over_a_file_names_it);
    RUN(test_read_file_whole_and_missing);
    RUN(test_regular_file_refuses_fifo_and_device);
    RUN(test_regular_file_reads_whole_and_blocking);
    return check_report();
}
