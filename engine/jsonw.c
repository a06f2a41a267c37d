/*
 * jsonw.c — JSON string/number writing (see jsonw.h). Not a parser.
 */
#include "engine/jsonw.h"

#include <math.h>

void cad_json_write_string(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

void cad_json_write_number(FILE *f, double v) {
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    /* %.17g of a finite double is a valid JSON number in the C locale ("-0", "1e+308",
     * "4.9406564584124654e-324"); caddie never changes LC_NUMERIC. */
    fprintf(f, "%.17g", v);
}
