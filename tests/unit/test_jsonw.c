/* test_jsonw.c — the JSON writer escapes strings and non-finite numbers correctly. */
#include "check.h"
#include "engine/jsonw.h"

static char *written(void (*fn)(FILE *, const void *), const void *arg) {
    static char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    fn(f, arg);
    fclose(f);
    return buf;
}
static void w_str(FILE *f, const void *s) { cad_json_write_string(f, s); }
static void w_num(FILE *f, const void *v) { cad_json_write_number(f, *(const double *)v); }

static void test_string_escapes(void) {
    CHECK_STR(written(w_str, "a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    CHECK_STR(written(w_str, "; rm -rf ~"), "\"; rm -rf ~\"");
    CHECK_STR(written(w_str, "\xe2\x96\x81x"), "\"\xe2\x96\x81x\"");
    CHECK_STR(written(w_str, NULL), "null");
}

static void test_numbers_round_trip_and_nan_is_null(void) {
    double v = 1.2244, nan = NAN, inf = INFINITY;
    CHECK(strtod(written(w_num, &v), NULL) == v);
    CHECK_STR(written(w_num, &nan), "null");
    CHECK_STR(written(w_num, &inf), "null");
}

/* The JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number_ok(const char *s) {
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (*s >= '0' && *s <= '9') s++;
    else return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == 0;
}

/* Every double, non-finite ones of either sign included, comes out as JSON: null or a number
 * token that reads back to the same value. */
static void test_every_double_is_valid_json(void) {
    volatile double big = 1e308;
    double vals[] = {0.0, -0.0, 1.0, -1.5, 1e308, -1e308, 5e-324, 2.2250738585072014e-308, 1e21, 123456789012345678.0,
                     NAN, -NAN, INFINITY, -INFINITY, big * 10, -big * 10, (double)big * 10 - (double)big * 10};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        const char *out = written(w_num, &vals[i]);
        if (!isfinite(vals[i])) {
            CHECK_MSG(strcmp(out, "null") == 0, "value %zu wrote '%s'", i, out);
            continue;
        }
        CHECK_MSG(json_number_ok(out), "value %zu wrote '%s': not a JSON number", i, out);
        CHECK_MSG(strtod(out, NULL) == vals[i], "value %zu wrote '%s'", i, out);
    }
}

int main(void) {
    RUN(test_string_escapes);
    RUN(test_numbers_round_trip_and_nan_is_null);
    RUN(test_every_double_is_valid_json);
    return check_report();
}
