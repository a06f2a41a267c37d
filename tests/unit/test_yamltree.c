/* test_yamltree.c — YAML tree loading: structure, marks, duplicates, aliases, conversions. */
#include "check.h"
#include "engine/yamltree.h"

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

int main(void) {
    RUN(test_nested_structure_and_marks);
    RUN(test_duplicate_key_is_an_error_at_second_key);
    RUN(test_syntax_error_has_position);
    RUN(test_aliases_are_copied);
    RUN(test_scalar_conversions);
    RUN(test_empty_and_multi_document);
    RUN(test_missing_file);
    return check_report();
}
