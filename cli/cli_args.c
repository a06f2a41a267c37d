/*
 * cli_args.c — parsing the numeric values of command-line options, the one way every
 * command does it: the whole string must be a number (no trailing text, no overflow) inside
 * the range the command allows, so "--threads 4x" or "--poll nan" is a usage error rather
 * than a silently truncated value.
 * Not here: option tables or messages (each command words its own usage error).
 */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

int cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_int(const char *s, int lo, int hi, int *out) {
    long v;
    if (cli_parse_long(s, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
