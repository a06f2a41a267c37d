/*
 * test_data_stream.c — the train stream and loader against train_gpt.py: spans for world
 * 1, 2, 8 with grad_accum 8/world over a small shard set that wraps and crosses shard ends
 * (fixture from tests/scripts/gen_tokenizer_fixtures.py), the val trim, tell/seek, errors.
 */
#include "check.h"
#include "engine/shard.h"
#include "engine/stream.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static const char *train_pattern(void) {
    return check_src_path("tests/fixtures/data/loader/fineweb_train_*.bin");
}

static void test_loader_matches_train_gpt(void) {
    FILE *f = fopen(check_src_path("tests/fixtures/data/loader_expect.txt"), "r");
    CHECK_MSG(f != NULL, "missing fixture loader_expect.txt");
    if (!f) return;
    enum { GLOBAL = 512, SEQ = 16 };
    cad_train_loader L[8];
    int open_world = 0, lines = 0;
    char line[256];
    int32_t x[GLOBAL], y[GLOBAL];
    cad_err e;
    while (fgets(line, sizeof line, f)) {
        int world, accum, step, rank;
        unsigned long long want;
        if (sscanf(line, "%d %d %d %d %llx", &world, &accum, &step, &rank, &want) != 5) continue;
        if (world != open_world) {
            for (int r = 0; r < open_world; r++) cad_train_loader_close(&L[r]);
            for (int r = 0; r < world; r++)
                CHECK_EQ_INT(cad_train_loader_open(&L[r], train_pattern(), 1024, r, world, &e),
                             CAD_OK);
            open_world = world;
        }
        long local = cad_train_loader_local_tokens(GLOBAL, SEQ, world, accum);
        CHECK_EQ_INT(local, GLOBAL / (world * accum));
        int rc = cad_train_loader_next(&L[rank], GLOBAL, SEQ, accum, x, y, &e);
        CHECK_EQ_INT(rc, CAD_OK);
        if (rc != CAD_OK) break;
        uint64_t h = fnv1a64(FNV_INIT, x, (size_t)local * 4);
        h = fnv1a64(h, y, (size_t)local * 4);
        CHECK_MSG(h == want, "world %d step %d rank %d: fnv %016llx, train_gpt.py %016llx", world,
                  step, rank, (unsigned long long)h, want);
        lines++;
    }
    for (int r = 0; r < open_world; r++) cad_train_loader_close(&L[r]);
    fclose(f);
    CHECK_EQ_INT(lines, 60 * (1 + 2 + 8));
}

static void test_val_trim_matches(void) {
    FILE *f = fopen(check_src_path("tests/fixtures/data/loader_expect.txt"), "r");
    if (!f) {
        CHECK_MSG(0, "missing fixture");
        return;
    }
    char line[256];
    int n_checked = 0;
    cad_err e;
    while (fgets(line, sizeof line, f)) {
        int L;
        long want_n;
        unsigned long long want_h;
        if (sscanf(line, "val %d %ld %llx", &L, &want_n, &want_h) != 3) continue;
        uint16_t *tok;
        long n;
        int rc = cad_val_tokens_load(
            check_src_path("tests/fixtures/data/loader/fineweb_val_*.bin"), L, 1024, &tok, &n, &e);
        CHECK_EQ_INT(rc, CAD_OK);
        CHECK_EQ_INT(n, want_n);
        if (rc == CAD_OK) CHECK(fnv1a64(FNV_INIT, tok, (size_t)n * 2) == want_h);
        free(tok);
        n_checked++;
    }
    fclose(f);
    CHECK_EQ_INT(n_checked, 3);
    /* too short: 550 tokens cannot make one window of 550 targets */
    uint16_t *tok;
    long n;
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_val_tokens_load(check_src_path("tests/fixtures/data/loader/fineweb_val_*.bin"),
                                     550, 1024, &tok, &n, &e),
                 CAD_EFORMAT);
    CHECK(strstr(e.msg, "too short") && strstr(e.msg, "550 tokens"));
    CHECK(tok == NULL);
    CHECK_EQ_INT(cad_val_tokens_load(check_src_path("tests/fixtures/data/loader/nothing_*.bin"), 16,
                                     1024, &tok, &n, &e),
                 CAD_EIO);
    CHECK(strstr(e.msg, "nothing_*.bin") != NULL);
}

static void test_take_wraps_contiguously(void) {
    /* shard sizes 1000, 777, 1500: taking the whole cycle twice returns it twice */
    cad_token_stream s;
    cad_err e;
    CHECK_EQ_INT(cad_token_stream_open(&s, train_pattern(), 1024, &e), CAD_OK);
    enum { CYCLE = 1000 + 777 + 1500 };
    static uint16_t a[2 * CYCLE + 5];
    CHECK_EQ_INT(cad_token_stream_take(&s, 2 * CYCLE + 5, a, &e), CAD_OK);
    CHECK(memcmp(a, a + CYCLE, (CYCLE + 5) * sizeof a[0]) == 0);
    cad_shard sh;
    CHECK_EQ_INT(cad_shard_open(&sh, s.paths[1], 0, &e), CAD_OK);
    CHECK(memcmp(a + 1000, sh.tokens, 777 * 2) == 0);
    cad_shard_close(&sh);
    cad_stream_pos p = cad_token_stream_tell(&s);
    CHECK_EQ_INT(p.file_idx, 0);
    CHECK_EQ_INT(p.pos, 5);
    cad_token_stream_close(&s);
}

static void test_tell_seek(void) {
    cad_token_stream s;
    cad_err e;
    CHECK_EQ_INT(cad_token_stream_open(&s, train_pattern(), 1024, &e), CAD_OK);
    uint16_t a[3000], b[3000];
    CHECK_EQ_INT(cad_token_stream_take(&s, 1000, a, &e), CAD_OK); /* drains shard 0 exactly */
    cad_stream_pos p = cad_token_stream_tell(&s);
    CHECK_EQ_INT(p.file_idx, 0);
    CHECK_EQ_INT(p.pos, 1000); /* like TokenStream: the advance happens on the next take */
    CHECK_EQ_INT(cad_token_stream_take(&s, 3000, a, &e), CAD_OK);
    CHECK_EQ_INT(cad_token_stream_seek(&s, p, &e), CAD_OK);
    CHECK_EQ_INT(cad_token_stream_take(&s, 3000, b, &e), CAD_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    cad_stream_pos bad = {7, 0};
    CHECK_EQ_INT(cad_token_stream_seek(&s, bad, &e), CAD_ECONFIG);
    bad.file_idx = 1;
    bad.pos = 778;
    CHECK_EQ_INT(cad_token_stream_seek(&s, bad, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "fineweb_train_000001.bin") && strstr(e.msg, "778"));
    cad_token_stream_close(&s);
}

/* curriculum: length: a crafted shard in windows of 10 tokens; each window hands out its
 * documents (from a BOS, or the window start) shortest first, ties in stream order, then the
 * next window; the stream wraps to window 0. tell/seek mid-window resumes the same order, and
 * window 0 (off) is the raw stream. */
static void test_length_curriculum(void) {
    static const uint16_t raw[22] = {1, 5, 5, 5, 1, 6, 1, 7, 7, 9, /* window 0: docs of 4, 2, 4 */
                                     1, 8, 8, 1, 4, 1, 3, 3, 3, 3, /* window 1: 3, 2, 5 */
                                     2, 2};                        /* window 2: a tail of 2 */
    static const uint16_t want[25] = {1, 6, 1, 5, 5, 5, 1, 7, 7, 9, 1, 4, 1, 8, 8, 1, 3, 3, 3, 3, 2, 2, 1, 6, 1};
    char dir[4200], p[4300];
    snprintf(dir, sizeof dir, "%s/curr", check_tmpdir());
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/fineweb_train_000000.bin", dir);
    cad_err e;
    CHECK_EQ_INT(cad_shard_write(p, raw, 22, &e), CAD_OK);
    snprintf(p, sizeof p, "%s/fineweb_train_*.bin", dir);
    cad_token_stream s, t;
    CHECK_EQ_INT(cad_token_stream_open(&s, p, 16, &e), CAD_OK);
    CHECK_EQ_INT(cad_token_stream_set_curriculum(&s, 10, 1, &e), CAD_OK);
    uint16_t got[25], rest[12], again[12];
    for (int i = 0; i < 25; i += 7) /* chunks that cross the window ends */
        CHECK_EQ_INT(cad_token_stream_take(&s, i + 7 <= 25 ? 7 : 25 - i, got + i, &e), CAD_OK);
    CHECK(memcmp(got, want, sizeof want) == 0);
    CHECK_EQ_INT(cad_token_stream_seek(&s, (cad_stream_pos){0, 13}, &e), CAD_OK); /* mid-window 1 */
    CHECK_EQ_INT(cad_token_stream_take(&s, 12, rest, &e), CAD_OK);
    CHECK(memcmp(rest, want + 13, sizeof rest) == 0);
    CHECK_EQ_INT(cad_token_stream_open(&t, p, 16, &e), CAD_OK); /* a fresh reader resumed there */
    CHECK_EQ_INT(cad_token_stream_set_curriculum(&t, 10, 1, &e), CAD_OK);
    CHECK_EQ_INT(cad_token_stream_seek(&t, (cad_stream_pos){0, 13}, &e), CAD_OK);
    CHECK_EQ_INT(cad_token_stream_take(&t, 12, again, &e), CAD_OK);
    CHECK(memcmp(again, rest, sizeof rest) == 0);
    CHECK_EQ_INT(cad_token_stream_set_curriculum(&t, 0, 1, &e), CAD_OK); /* off: the raw stream */
    CHECK_EQ_INT(cad_token_stream_seek(&t, (cad_stream_pos){0, 0}, &e), CAD_OK);
    CHECK_EQ_INT(cad_token_stream_take(&t, 22, got, &e), CAD_OK);
    CHECK(memcmp(got, raw, sizeof raw) == 0);
    CHECK_EQ_INT(cad_token_stream_set_curriculum(&t, -1, 1, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "curriculum_window=-1") != NULL);
    cad_token_stream_close(&s);
    cad_token_stream_close(&t);
}

static void test_loader_errors(void) {
    cad_train_loader L;
    cad_err e;
    int32_t x[64], y[64];
    CHECK_EQ_INT(cad_train_loader_open(&L, train_pattern(), 1024, 2, 2, &e), CAD_ECONFIG);
    CHECK_EQ_INT(cad_train_loader_open(&L, train_pattern(), 1024, 0, 1, &e), CAD_OK);
    /* 100 / (1*1) = 100 tokens is not a multiple of seq_len 16 */
    CHECK_EQ_INT(cad_train_loader_next(&L, 100, 16, 1, x, y, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "multiple of train_seq_len 16") != NULL);
    CHECK_EQ_INT(cad_train_loader_next(&L, 64, 16, 1, x, y, &e), CAD_OK);
    for (int i = 0; i < 63; i++) CHECK(x[i + 1] == y[i]);
    cad_train_loader_close(&L);
    /* vocab check reaches the stream: ids go up to 1023 */
    cad_err_clear(&e);
    CHECK(cad_train_loader_open(&L, train_pattern(), 512, 0, 1, &e) == CAD_EFORMAT);
    CHECK(strstr(e.msg, "fineweb_train_000000.bin") && strstr(e.msg, ">= vocab size 512"));
    CHECK_EQ_INT(cad_train_loader_open(&L, "/nonexistent/fineweb_train_*.bin", 1024, 0, 1, &e),
                 CAD_EIO);
    CHECK(strstr(e.msg, "/nonexistent/fineweb_train_*.bin") != NULL);
}

static void test_all_empty_shards(void) {
    char p[4200];
    cad_err e;
    snprintf(p, sizeof p, "%s/fineweb_train_000000.bin", check_tmpdir());
    CHECK_EQ_INT(cad_shard_write(p, NULL, 0, &e), CAD_OK);
    snprintf(p, sizeof p, "%s/fineweb_train_*.bin", check_tmpdir());
    cad_token_stream s;
    CHECK_EQ_INT(cad_token_stream_open(&s, p, 0, &e), CAD_OK);
    uint16_t t;
    CHECK_EQ_INT(cad_token_stream_take(&s, 1, &t, &e), CAD_EFORMAT);
    CHECK(strstr(e.msg, "empty") != NULL);
    cad_token_stream_close(&s);
}

int main(void) {
    RUN(test_loader_matches_train_gpt);
    RUN(test_val_trim_matches);
    RUN(test_take_wraps_contiguously);
    RUN(test_tell_seek);
    RUN(test_length_curriculum);
    RUN(test_loader_errors);
    RUN(test_all_empty_shards);
    return check_report();
}
