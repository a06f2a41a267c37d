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

int main(void) {
    RUN(test_string_escapes);
    RUN(test_numbers_round_trip_and_nan_is_null);
    return check_report();
}
