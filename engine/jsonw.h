/*
 * jsonw.h — the one JSON string escaper caddie writes with (journal lines, result.json,
 * submission.json, resolved configs as JSON). Writing JSON is fprintf plus this escaper;
 * reading JSON is done by SQLite's JSON1 in sweep/ and reports/, so there is no parser here.
 */
#ifndef CADDIE_JSONW_H
#define CADDIE_JSONW_H
#include <stdio.h>
/* Write s as a JSON string literal (with quotes), escaping ", \ and control characters.
 * Bytes >= 0x80 are copied as-is (input is UTF-8). NULL writes null. */
void cad_json_write_string(FILE *f, const char *s);
/* Write a double as JSON: finite values with %.17g (round-trips), NaN/Inf (either sign) as
 * null — JSON has no Inf/NaN, and a bare "inf" would make the whole line unreadable. Every
 * number caddie writes into JSON goes through here; null is what the readers expect for
 * "no value" (db/ingest: a diverged loss, a missing time), so no call site fails instead. */
void cad_json_write_number(FILE *f, double v);
#endif
