/*
 * test_data_shard.c — shard files: write/read round trip, the exact header bytes, every
 * corruption case (one-line error naming the file with expected vs actual), sorted globs.
 */
#include "test_util.h"
#include "engine/shard.h"

#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* a valid shard image of n tokens (i*7 % 1000) into a malloc'd buffer */
static unsigned char *shard_image(long n, size_t *len) {
    *len = 1024 + 2 * (size_t)n;
    unsigned char *b = calloc(1, *len);
    int32_t h[3] = {20240520, 1, (int32_t)n};
    memcpy(b, h, sizeof h);
    for (long i = 0; i < n; i++) {
        uint16_t t = (uint16_t)(i * 7 % 1000);
        memcpy(b + 1024 + 2 * i, &t, 2);
    }
    return b;
}

static int one_line(const char *s) { return strchr(s, '\n') == NULL; }

static void test_round_trip(void) {
    uint16_t toks[5000];
    for (int i = 0; i < 5000; i++) toks[i] = (uint16_t)(i * 31 % 65536);
    const char *p = check_tmp_path("rt.bin");
    cad_err e;
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_shard_write(p, toks, 5000, &e), CAD_OK);
    struct stat st;
    CHECK(stat(p, &st) == 0 && st.st_size == 1024 + 2 * 5000);
    /* header bytes exactly as np.zeros(256,'<i4') with [0..2] set */
    unsigned char hdr[1024];
    FILE *f = fopen(p, "rb");
    CHECK(f && fread(hdr, 1, 1024, f) == 1024);
    if (f) fclose(f);
    int32_t h[256];
    memcpy(h, hdr, sizeof h);
    CHECK_EQ_INT(h[0], 20240520);
    CHECK_EQ_INT(h[1], 1);
    CHECK_EQ_INT(h[2], 5000);
    int zeros = 1;
    for (int i = 3; i < 256; i++) zeros &= h[i] == 0;
    CHECK(zeros);
    cad_shard s;
    CHECK_EQ_INT(cad_shard_open(&s, p, 65536, &e), CAD_OK);
    CHECK_EQ_INT(s.n_tokens, 5000);
    CHECK(memcmp(s.tokens, toks, sizeof toks) == 0);
    CHECK_STR(s.path, p);
    cad_shard_close(&s);
    long n = -1;
    CHECK_EQ_INT(cad_shard_read_header(p, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 5000);
    /* no temporary left behind */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
}

static void test_empty_shard(void) {
    const char *p = check_tmp_path("empty.bin");
    cad_err e;
    CHECK_EQ_INT(cad_shard_write(p, NULL, 0, &e), CAD_OK);
    cad_shard s;
    CHECK_EQ_INT(cad_shard_open(&s, p, 1024, &e), CAD_OK);
    CHECK_EQ_INT(s.n_tokens, 0);
    cad_shard_close(&s);
}

/* open must fail with code, the message on one line, naming the file and containing want */
static void expect_open_fail(const char *p, int vocab, int code, const char *want1,
                             const char *want2) {
    cad_shard s;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_shard_open(&s, p, vocab, &e);
    CHECK_EQ_INT(rc, code);
    CHECK_MSG(strstr(e.msg, p) != NULL, "message '%s' does not name %s", e.msg, p);
    CHECK_MSG(strstr(e.msg, want1) != NULL, "message '%s' lacks '%s'", e.msg, want1);
    if (want2) CHECK_MSG(strstr(e.msg, want2) != NULL, "message '%s' lacks '%s'", e.msg, want2);
    CHECK(one_line(e.msg));
    CHECK(s.map == NULL && s.tokens == NULL && s.path == NULL);
}

static void test_bad_magic(void) {
    size_t n;
    unsigned char *b = shard_image(10, &n);
    int32_t m = 12345;
    memcpy(b, &m, 4);
    const char *p = check_tmp_path("magic.bin");
    check_write_bytes(p, b, n);
    expect_open_fail(p, 0, CAD_EFORMAT, "magic 12345", "expected 20240520");
    free(b);
}

static void test_bad_version(void) {
    size_t n;
    unsigned char *b = shard_image(10, &n);
    int32_t v = 2;
    memcpy(b + 4, &v, 4);
    const char *p = check_tmp_path("version.bin");
    check_write_bytes(p, b, n);
    expect_open_fail(p, 0, CAD_EFORMAT, "version 2", "expected 1");
    free(b);
}

static void test_count_size_mismatch(void) {
    size_t n;
    unsigned char *b = shard_image(10, &n);
    int32_t c = 11; /* header claims one token more than the file holds */
    memcpy(b + 8, &c, 4);
    const char *p = check_tmp_path("count.bin");
    check_write_bytes(p, b, n);
    expect_open_fail(p, 0, CAD_EFORMAT, "11 tokens = 1046 bytes", "file is 1044 bytes");
    /* trailing garbage: file longer than the header says */
    c = 9;
    memcpy(b + 8, &c, 4);
    check_write_bytes(p, b, n);
    expect_open_fail(p, 0, CAD_EFORMAT, "9 tokens = 1042 bytes", "file is 1044 bytes");
    /* a negative count */
    c = -5;
    memcpy(b + 8, &c, 4);
    check_write_bytes(p, b, n);
    expect_open_fail(p, 0, CAD_EFORMAT, "negative token count -5", NULL);
    free(b);
}

static void test_truncated(void) {
    size_t n;
    unsigned char *b = shard_image(100, &n);
    const char *p = check_tmp_path("trunc.bin");
    check_write_bytes(p, b, 1024 + 150); /* cut inside the tokens */
    expect_open_fail(p, 0, CAD_EFORMAT, "100 tokens = 1224 bytes", "file is 1174 bytes");
    check_write_bytes(p, b, 500); /* cut inside the header */
    expect_open_fail(p, 0, CAD_EFORMAT, "truncated shard header", "500 bytes");
    check_write_bytes(p, b, 0); /* empty file */
    expect_open_fail(p, 0, CAD_EFORMAT, "truncated shard header", "0 bytes");
    free(b);
    long cnt;
    cad_err e;
    check_write_bytes(p, "xx", 2);
    CHECK_EQ_INT(cad_shard_read_header(p, &cnt, &e), CAD_EFORMAT);
    CHECK(strstr(e.msg, p) != NULL);
}

static void test_id_out_of_vocab(void) {
    size_t n;
    unsigned char *b = shard_image(50, &n); /* ids up to 343 */
    uint16_t big = 1024;
    memcpy(b + 1024 + 2 * 17, &big, 2);
    const char *p = check_tmp_path("vocab.bin");
    check_write_bytes(p, b, n);
    expect_open_fail(p, 1024, CAD_EFORMAT, "token 17 has id 1024", ">= vocab size 1024");
    cad_shard s;
    cad_err e;
    CHECK_EQ_INT(cad_shard_open(&s, p, 0, &e), CAD_OK); /* vocab 0 = no check */
    cad_shard_close(&s);
    CHECK_EQ_INT(cad_shard_open(&s, p, 1025, &e), CAD_OK);
    cad_shard_close(&s);
    free(b);
}

static void test_missing_and_dir(void) {
    expect_open_fail(check_tmp_path("nope.bin"), 0, CAD_EIO, "cannot open shard", "No such file");
    expect_open_fail(check_tmpdir(), 0, CAD_EIO, "not a regular file", NULL);
}

/* A FIFO with no writer blocked open() forever; /dev/zero is a device, not a shard. Both are
 * refused at once (alarm turns a hang into a failure), for the header read too. */
static void test_fifo_and_device_refused(void) {
    const char *fifo = check_tmp_path("fifo.bin");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(10);
    expect_open_fail(fifo, 0, CAD_EIO, "not a regular file", "FIFO");
    expect_open_fail("/dev/zero", 0, CAD_EIO, "not a regular file", "device");
    long n;
    cad_err e;
    CHECK_EQ_INT(cad_shard_read_header(fifo, &n, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, fifo) && strstr(e.msg, "not a regular file"), "msg: %s", e.msg);
    alarm(0);
    unlink(fifo);
}

static void test_glob_sorted_and_empty(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/g", check_tmpdir());
    mkdir(dir, 0755);
    /* created in an order different from the sorted one; "B" < "a" in byte order */
    const char *names[] = {"fineweb_train_000010.bin", "fineweb_train_000002.bin",
                           "fineweb_train_a.bin", "fineweb_train_B.bin"};
    cad_err e;
    for (int i = 0; i < 4; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        uint16_t t = 1;
        CHECK_EQ_INT(cad_shard_write(p, &t, 1, &e), CAD_OK);
    }
    char pat[4300];
    snprintf(pat, sizeof pat, "%s/fineweb_train_*.bin", dir);
    char **paths;
    int n;
    CHECK_EQ_INT(cad_shard_glob(pat, &paths, &n, &e), CAD_OK);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        const char *want[] = {"fineweb_train_000002.bin", "fineweb_train_000010.bin",
                              "fineweb_train_B.bin", "fineweb_train_a.bin"};
        for (int i = 0; i < 4; i++) CHECK_STR(strrchr(paths[i], '/') + 1, want[i]);
    }
    cad_shard_glob_free(paths, n);
    snprintf(pat, sizeof pat, "%s/fineweb_val_*.bin", dir);
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_shard_glob(pat, &paths, &n, &e), CAD_EIO);
    CHECK(strstr(e.msg, pat) != NULL && strstr(e.msg, "no files match") != NULL);
    CHECK(one_line(e.msg));
    CHECK(paths == NULL && n == 0);
}

static void test_write_errors(void) {
    cad_err e;
    uint16_t t = 5;
    const char *p = check_tmp_path("no/such/dir/x.bin");
    CHECK_EQ_INT(cad_shard_write(p, &t, 1, &e), CAD_EIO);
    CHECK(strstr(e.msg, p) != NULL);
    CHECK_EQ_INT(cad_shard_write(check_tmp_path("neg.bin"), &t, -1, &e), CAD_ECONFIG);
    char name[64];
    CHECK_EQ_INT(cad_shard_name(name, sizeof name, "d", "val", 7), 0);
    CHECK_STR(name, "d/fineweb_val_000007.bin");
    CHECK_EQ_INT(cad_shard_name(name, 8, "d", "val", 7), -1);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_empty_shard);
    RUN(test_bad_magic);
    RUN(test_bad_version);
    RUN(test_count_size_mismatch);
    RUN(test_truncated);
    RUN(test_id_out_of_vocab);
    RUN(test_missing_and_dir);
    RUN(test_fifo_and_device_refused);
    RUN(test_glob_sorted_and_empty);
    RUN(test_write_errors);
    return check_report();
}
