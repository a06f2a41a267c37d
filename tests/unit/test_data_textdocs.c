/*
 * test_data_textdocs.c — the input document reader of data prepare / tokenizer train: the
 * JSON string decoder (escapes, \uXXXX, surrogate pairs, errors), JSONL lines with other
 * fields, the plain-text blank-line rule, error messages naming file:line, and Python's
 * str.strip() used by the tokenizer trainer feed.
 */
#include "test_util.h"
#include "engine/textdocs.h"
#include "engine/tokenizer.h"

static int decode(const char *lit, char **out, size_t *len, const char **why) {
    size_t cap = 0, used = 0;
    *out = NULL;
    *len = 0;
    return cad_json_string_decode(lit, strlen(lit), out, len, &cap, &used, why);
}

static void test_json_string_decode(void) {
    char *out;
    size_t len;
    const char *why;
    CHECK_EQ_INT(decode("\"plain\"", &out, &len, &why), 0);
    CHECK(len == 5 && memcmp(out, "plain", 5) == 0);
    free(out);
    CHECK_EQ_INT(decode("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\"", &out, &len, &why), 0);
    CHECK(len == 13 && memcmp(out, "a\"b\\c/d\b\f\n\r\te", 13) == 0);
    free(out);
    /* \u escapes: 1, 2 and 3 byte UTF-8, NUL, and a surrogate pair (U+1F600) */
    CHECK_EQ_INT(decode("\"\\u0041\\u00e9\\u20AC\\u0000\\ud83d\\ude00\"", &out, &len, &why), 0);
    CHECK(len == 1 + 2 + 3 + 1 + 4 &&
          memcmp(out, "A\xc3\xa9\xe2\x82\xac\0\xf0\x9f\x98\x80", len) == 0);
    free(out);
    /* raw UTF-8 passes through */
    CHECK_EQ_INT(decode("\"caf\xc3\xa9 \xe6\x97\xa5\"", &out, &len, &why), 0);
    CHECK(len == 9);
    free(out);
    /* errors */
    static const char *const bad[][2] = {
        {"\"unterminated", "unterminated"},
        {"\"bad \\x escape\"", "invalid escape"},
        {"\"\\u12g4\"", "4 hex digits"},
        {"\"\\ud83d alone\"", "high surrogate"},
        {"\"\\ude00\"", "lone low surrogate"},
        {"\"tab\there\"", "control character"},
        {"no quote", "expected"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        int rc = decode(bad[i][0], &out, &len, &why);
        CHECK_MSG(rc == -1 && why && strstr(why, bad[i][1]), "case %zu: rc %d why '%s'", i, rc,
                  why ? why : "(null)");
        free(out);
    }
}

static void test_jsonl_reader(void) {
    const char *p = check_write_file(check_tmp_path("a.jsonl"),
        "{\"id\": 1, \"text\": \"first\\nline\", \"meta\": {\"x\": [1, 2.5e3, true, null, \"}\"]}}\n"
        "\n"
        "  {\"te\\u0078t\": \"escaped key\", \"lang\": \"en\"}  \n"
        "{\"text\": \"dup\", \"text\": \"last wins\"}\n"
        "{\"text\": \"\"}\n"
        "{\"text\": \"no newline at end\"}");
    const char *inputs[] = {p};
    cad_docs d;
    cad_err e;
    CHECK_EQ_INT(cad_docs_open(&d, inputs, 1, &e), CAD_OK);
    const char *want[] = {"first\nline", "escaped key", "last wins", "", "no newline at end"};
    const char *t;
    size_t n;
    for (int i = 0; i < 5; i++) {
        int r = cad_docs_next(&d, &t, &n, &e);
        CHECK_MSG(r == 1, "doc %d: r=%d %s", i, r, e.msg);
        if (r == 1) CHECK_STR(t, want[i]);
        if (r == 1) CHECK_EQ_INT(n, strlen(want[i]));
    }
    CHECK_EQ_INT(cad_docs_next(&d, &t, &n, &e), 0);
    CHECK_EQ_INT(cad_docs_next(&d, &t, &n, &e), 0);
    cad_docs_close(&d);
}

static void expect_doc_error(const char *name, const char *content, const char *want) {
    const char *p = check_write_file(check_tmp_path(name), content);
    const char *inputs[] = {p};
    cad_docs d;
    cad_err e;
    cad_err_clear(&e);
    CHECK_EQ_INT(cad_docs_open(&d, inputs, 1, &e), CAD_OK);
    const char *t;
    size_t n;
    int r;
    while ((r = cad_docs_next(&d, &t, &n, &e)) == 1) {}
    CHECK_EQ_INT(r, -CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, p) && strstr(e.msg, want), "message '%s' lacks '%s' or the path",
              e.msg, want);
    CHECK(strchr(e.msg, '\n') == NULL);
    cad_docs_close(&d);
}

static void test_jsonl_errors(void) {
    expect_doc_error("e1.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n", ":2: JSON object has no \"text\"");
    expect_doc_error("e2.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"x\"\n", ":2:13: invalid JSON: expected ',' or '}'");
    expect_doc_error("e3.jsonl", "{\"text\": 5}\n", ":1:10: invalid JSON: \"text\" is not a string");
    expect_doc_error("e4.jsonl", "[\"text\"]\n", ":1:1: invalid JSON: expected a JSON object");
    expect_doc_error("e5.jsonl", "{\"text\": \"a\"} x\n", "extra data");
    expect_doc_error("e6.jsonl", "{\"text\": \"bad \xff byte\"}\n", ":1:15: invalid UTF-8 byte 0xff");
    expect_doc_error("e7.jsonl", "{\"text\": \"\\ud800\"}\n", "surrogate");
    expect_doc_error("e8.txt", "fine\n\nbad \xc0\xaf overlong\n", ":3:5: invalid UTF-8 byte 0xc0");
}

static void test_plain_text_rule(void) {
    const char *p = check_write_file(check_tmp_path("b.txt"),
                              "\n\nFirst doc line one\r\nline two\n"
                              "   \t\n"
                              "\n"
                              "Second doc\n"
                              "\n"
                              "Third doc, no final newline");
    const char *q = check_write_file(check_tmp_path("c.txt"), "Fourth doc in another file\n\n\n");
    const char *inputs[] = {p, q};
    cad_docs d;
    cad_err e;
    CHECK_EQ_INT(cad_docs_open(&d, inputs, 2, &e), CAD_OK);
    const char *want[] = {"First doc line one\nline two", "Second doc",
                          "Third doc, no final newline", "Fourth doc in another file"};
    const char *t;
    size_t n;
    for (int i = 0; i < 4; i++) {
        int r = cad_docs_next(&d, &t, &n, &e);
        CHECK_MSG(r == 1, "doc %d: r=%d %s", i, r, e.msg);
        if (r == 1) CHECK_STR(t, want[i]);
    }
    CHECK_EQ_INT(cad_docs_next(&d, &t, &n, &e), 0);
    CHECK_EQ_INT(d.docs_returned, 4);
    cad_docs_close(&d);
    CHECK(cad_docs_total_bytes(inputs, 2) > 0);
    const char *missing[] = {p, "/nonexistent/input.txt"};
    CHECK_EQ_INT(cad_docs_open(&d, missing, 2, &e), CAD_EIO);
    CHECK(strstr(e.msg, "/nonexistent/input.txt") != NULL);
    cad_docs_close(&d);
}

static void check_strip(const char *in, const char *want) {
    size_t a, n;
    cad_text_py_strip(in, strlen(in), &a, &n);
    CHECK_MSG(n == strlen(want) && memcmp(in + a, want, n) == 0, "strip('%s') = '%.*s'", in,
              (int)n, in + a);
}

static void test_py_strip(void) {
    check_strip("  abc \n", "abc");
    check_strip("\xc2\xa0\xe3\x80\x80x y\xe2\x80\xa8\x1f", "x y"); /* NBSP, ideographic sp, LS, US */
    check_strip("\xe2\x80\x8bzw\xe2\x80\x8b", "\xe2\x80\x8bzw\xe2\x80\x8b"); /* ZWSP is not space */
    check_strip(" \t\r\n\v\f", "");
    check_strip("", "");
    check_strip("\xc3\xa9", "\xc3\xa9");
}

int main(void) {
    RUN(test_json_string_decode);
    RUN(test_jsonl_reader);
    RUN(test_jsonl_errors);
    RUN(test_plain_text_rule);
    RUN(test_py_strip);
    return check_report();
}
