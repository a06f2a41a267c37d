/* test_yamltree.c — YAML tree loading: structure, marks, duplicates, aliases, conversions. */
#include "check.h"
#include "engine/yamltree.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static yt_doc *load(const char *text, cad_err *e) {
    yt_doc *d = NULL;
    cad_err_clear(e);
    yt_load_string("t.yaml", text, strlen(text), &d, e);
    return d;
}

static void test_nested_structure_and_marks(void) {
    cad_err e;
    yt_doc *d = load("name: qk\ngrid:\n  qk_gain_init: [1.5, 5.25]\n  bundle:\n    - {a: 1, b: 'x'}\n", &e);
    CHECK_MSG(d != NULL, "load failed: %s", e.msg);
    if (!d) return;
    CHECK(d->root->kind == YT_MAP);
    const yt_node *grid = yt_map_get(d->root, "grid");
    CHECK(grid && grid->kind == YT_MAP && grid->line == 3 && grid->col == 3);
    const yt_node *qk = yt_map_get(grid, "qk_gain_init");
    CHECK(qk && qk->kind == YT_SEQ && qk->n == 2);
    double v = 0;
    CHECK_EQ_INT(yt_scalar_double(d, qk->items[1], &v, &e), CAD_OK);
    CHECK_NEAR(v, 5.25, 0, 0);
    CHECK_EQ_INT(qk->items[1]->line, 3);
    CHECK_EQ_INT(qk->items[1]->col, 23);
    const yt_node *b = yt_map_get(yt_map_get(grid, "bundle")->items[0], "b");
    CHECK(b && b->quoted && strcmp(b->value, "x") == 0);
    yt_doc_free(d);
}

static void test_duplicate_key_is_an_error_at_second_key(void) {
    cad_err e;
    yt_doc *d = load("a: 1\nb: 2\na: 3\n", &e);
    CHECK(d == NULL);
    CHECK_EQ_INT(e.code, CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "t.yaml:3:1: duplicate key 'a' (first at line 1)") != NULL, "msg: %s", e.msg);
}

static void test_syntax_error_has_position(void) {
    cad_err e;
    yt_doc *d = load("a: [1, 2\nb: 3\n", &e);
    CHECK(d == NULL);
    CHECK_MSG(strncmp(e.msg, "t.yaml:", 7) == 0 && strchr(e.msg + 7, ':'), "msg: %s", e.msg);
}

static void test_aliases_are_copied(void) {
    cad_err e;
    yt_doc *d = load("base: &b {x: 1}\nother: *b\n", &e);
    CHECK_MSG(d != NULL, "%s", e.msg);
    if (!d) return;
    const yt_node *o = yt_map_get(d->root, "other");
    CHECK(o && o->kind == YT_MAP && strcmp(yt_map_get(o, "x")->value, "1") == 0);
    CHECK_EQ_INT(o->line, 2);
    yt_doc_free(d);
}

static void test_scalar_conversions(void) {
    cad_err e;
    yt_doc *d = load("i: 524_288\nf: 1e-3\nbad: 1.5\nt: yes\nl: [1]\n", &e);
    if (!d) { CHECK_MSG(0, "%s", e.msg); return; }
    long l;
    double f;
    int t;
    CHECK_EQ_INT(yt_scalar_long(d, yt_map_get(d->root, "i"), &l, &e), CAD_OK);
    CHECK_EQ_INT(l, 524288);
    CHECK_EQ_INT(yt_scalar_double(d, yt_map_get(d->root, "f"), &f, &e), CAD_OK);
    CHECK_NEAR(f, 1e-3, 0, 1e-15);
    CHECK_EQ_INT(yt_scalar_long(d, yt_map_get(d->root, "bad"), &l, &e), CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "t.yaml:3:6: integer expected, found '1.5'") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(yt_scalar_bool(d, yt_map_get(d->root, "t"), &t, &e), CAD_OK);
    CHECK_EQ_INT(t, 1);
    CHECK_EQ_INT(yt_scalar_long(d, yt_map_get(d->root, "l"), &l, &e), CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "found a list") != NULL, "msg: %s", e.msg);
    yt_doc_free(d);
}

static void test_empty_and_multi_document(void) {
    cad_err e;
    yt_doc *d = load("# only a comment\n", &e);
    CHECK(d != NULL && d->root == NULL);
    yt_doc_free(d);
    d = load("a: 1\n---\nb: 2\n", &e);
    CHECK(d == NULL);
    CHECK_MSG(strstr(e.msg, "more than one YAML document") != NULL, "msg: %s", e.msg);
}

static void test_missing_file(void) {
    cad_err e;
    yt_doc *d = NULL;
    CHECK_EQ_INT(yt_load_file("/nonexistent/x.yaml", &d, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, "/nonexistent/x.yaml: cannot open") != NULL, "msg: %s", e.msg);
}

/* "Billion laughs": 9 levels of 9 aliases each would expand to 9^9 nodes (3 GB, then a
 * crash on an unchecked allocation). The node budget stops it with the alias's position. */
static void test_alias_bomb_is_refused(void) {
    char text[2048];
    size_t o = (size_t)snprintf(text, sizeof text, "a0: &a0 [lol]\n");
    for (int l = 1; l <= 9; l++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "a%d: &a%d [", l, l);
        for (int k = 0; k < 9; k++) o += (size_t)snprintf(text + o, sizeof text - o, "%s*a%d", k ? ", " : "", l - 1);
        o += (size_t)snprintf(text + o, sizeof text - o, "]\n");
    }
    cad_err e;
    yt_doc *d = load(text, &e);
    CHECK(d == NULL);
    CHECK_EQ_INT(e.code, CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "alias expansion exceeds 2000000 nodes") && strncmp(e.msg, "t.yaml:", 7) == 0,
              "msg: %s", e.msg);
    yt_doc_free(d);
    /* a few levels of the same pattern are fine and fully copied */
    d = load("a: &a [x, y]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n", &e);
    CHECK_MSG(d != NULL, "%s", e.msg);
    if (d) {
        const yt_node *c = yt_map_get(d->root, "c");
        CHECK(c && c->n == 2 && c->items[1]->n == 3 && c->items[1]->items[2]->n == 2 &&
              strcmp(c->items[1]->items[2]->items[1]->value, "y") == 0);
    }
    yt_doc_free(d);
}

/* Aliases nest copies inside copies: the tree's depth stays bounded (the recursive free and
 * copy must not run away), and the message says why. */
static void test_alias_nesting_depth_is_bounded(void) {
    char text[4096];
    size_t o = 0;
    const char *prev = "x";
    for (int l = 0; l < 3; l++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "l%d: &l%d ", l, l);
        for (int k = 0; k < 30; k++) o += (size_t)snprintf(text + o, sizeof text - o, "[");
        o += (size_t)snprintf(text + o, sizeof text - o, "%s", prev);
        for (int k = 0; k < 30; k++) o += (size_t)snprintf(text + o, sizeof text - o, "]");
        o += (size_t)snprintf(text + o, sizeof text - o, "\n");
        prev = l == 0 ? "*l0" : "*l1";
    }
    cad_err e;
    yt_doc *d = load(text, &e);
    CHECK(d == NULL);
    CHECK_MSG(strstr(e.msg, "t.yaml:3:") && strstr(e.msg, "nesting deeper than 64 levels after alias expansion"),
              "msg: %s", e.msg);
    yt_doc_free(d);
}

/* 200k distinct keys in one mapping (each key used to be compared with every earlier one);
 * and a duplicate among them is still found, at its own line with the first one's line. */
static void test_many_keys_and_a_late_duplicate(void) {
    enum { N = 200000 };
    size_t cap = (size_t)N * 24 + 64, o = 0;
    char *text = malloc(cap);
    for (int i = 0; i < N; i++) o += (size_t)snprintf(text + o, cap - o, "key_%d: %d\n", i, i);
    cad_err e;
    yt_doc *d = load(text, &e);
    CHECK_MSG(d != NULL, "%s", e.msg);
    if (d) {
        CHECK_EQ_INT(d->root->n, N);
        CHECK_STR(yt_map_get(d->root, "key_199999")->value, "199999");
        CHECK_EQ_INT(d->root->keys[N - 1]->line, N);
    }
    yt_doc_free(d);
    o += (size_t)snprintf(text + o, cap - o, "key_123456: again\n");
    d = load(text, &e);
    CHECK(d == NULL);
    CHECK_MSG(strstr(e.msg, "t.yaml:200001:1: duplicate key 'key_123456' (first at line 123457)") != NULL,
              "msg: %s", e.msg);
    free(text);
}

/* Numbers longer than the converter's limit are refused, never cut: "0000...0005xyz" (128
 * zeros) used to be truncated to its zeros and read as 0, junk and all. */
static void test_long_numbers_are_refused_not_truncated(void) {
    char text[1024];
    size_t o = (size_t)snprintf(text, sizeof text, "f: ");
    for (int i = 0; i < 128; i++) text[o++] = '0';
    o += (size_t)snprintf(text + o, sizeof text - o, "5xyz\ni: ");
    for (int i = 0; i < 130; i++) text[o++] = '0';
    o += (size_t)snprintf(text + o, sizeof text - o, "7\nj: 1_000_000_000_000_000_000_000\nk: 12abc\n");
    cad_err e;
    yt_doc *d = load(text, &e);
    if (!d) { CHECK_MSG(0, "%s", e.msg); return; }
    double f = -1;
    long l = -1;
    CHECK_EQ_INT(yt_scalar_double(d, yt_map_get(d->root, "f"), &f, &e), CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "t.yaml:1:4: number expected") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(yt_scalar_long(d, yt_map_get(d->root, "i"), &l, &e), CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "t.yaml:2:4: integer expected, found 131 characters") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(yt_scalar_long(d, yt_map_get(d->root, "j"), &l, &e), CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "integer out of range") != NULL, "msg: %s", e.msg);
    CHECK_EQ_INT(yt_scalar_double(d, yt_map_get(d->root, "k"), &f, &e), CAD_EFORMAT);
    CHECK(f == -1 && l == -1);
    yt_doc_free(d);
}

/* A FIFO (no writer: read blocks forever) or /dev/zero (never ends) as a YAML file — e.g. a
 * sweep's `base:` — is refused at once; alarm() turns a hang into a failure. */
static void test_fifo_and_device_refused(void) {
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/cfg.yaml", check_tmpdir());
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(10);
    cad_err e;
    yt_doc *d = NULL;
    CHECK_EQ_INT(yt_load_file(fifo, &d, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, fifo) && strstr(e.msg, "not a regular file"), "msg: %s", e.msg);
    CHECK_EQ_INT(yt_load_file("/dev/zero", &d, &e), CAD_EIO);
    CHECK_MSG(strstr(e.msg, "/dev/zero: not a regular file") != NULL, "msg: %s", e.msg);
    CHECK(d == NULL);
    alarm(0);
    unlink(fifo);
}

int main(void) {
    RUN(test_nested_structure_and_marks);
    RUN(test_duplicate_key_is_an_error_at_second_key);
    RUN(test_syntax_error_has_position);
    RUN(test_aliases_are_copied);
    RUN(test_scalar_conversions);
    RUN(test_empty_and_multi_document);
    RUN(test_missing_file);
    RUN(test_alias_bomb_is_refused);
    RUN(test_alias_nesting_depth_is_bounded);
    RUN(test_many_keys_and_a_late_duplicate);
    RUN(test_long_numbers_are_refused_not_truncated);
    RUN(test_fifo_and_device_refused);
    return check_report();
}
