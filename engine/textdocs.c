/*
 * textdocs.c — document reader for JSONL ("text" field) and blank-line separated plain
 * text, with the small JSON string decoder it needs. See textdocs.h for the rules.
 * Not here: tokenization or anything about shards.
 */
#include "engine/textdocs.h"

#include "engine/fsutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int buf_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *src, size_t n) {
    if (buf_reserve(buf, cap, *len + n + 1) != 0) return -1;
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

static size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *s, size_t n, uint32_t *v) {
    if (n < 4) return -1;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        r = r << 4 | (uint32_t)d;
    }
    *v = r;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (strict: no overlongs, no surrogates, <= U+10FFFF),
 * or 0 if invalid. This is what Python's utf-8 codec accepts when it reads the file. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return len;
}

/* Offset of the first invalid UTF-8 byte in s[0..n), or -1 when all valid. */
static long utf8_first_invalid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!k) return (long)i;
        i += k;
    }
    return -1;
}

int cad_json_string_decode(const char *s, size_t n, char **out, size_t *out_len, size_t *out_cap,
                           size_t *consumed, const char **why) {
    if (n == 0 || s[0] != '"') {
        *why = "expected '\"'";
        return -1;
    }
    size_t i = 1;
    while (i < n) {
        /* copy the run of plain bytes up to the next quote, backslash or control char */
        size_t j = i;
        while (j < n && s[j] != '"' && s[j] != '\\' && (unsigned char)s[j] >= 0x20) j++;
        if (j > i && buf_append(out, out_len, out_cap, s + i, j - i) != 0) {
            *why = "out of memory";
            return -1;
        }
        i = j;
        if (i >= n) break;
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            *consumed = i + 1;
            return 0;
        }
        if (c < 0x20) {
            *why = "raw control character in string";
            return -1;
        }
        /* backslash escape */
        if (i + 1 >= n) break;
        char esc = s[i + 1];
        char tmp[4];
        size_t tlen = 1;
        i += 2;
        switch (esc) {
        case '"': tmp[0] = '"'; break;
        case '\\': tmp[0] = '\\'; break;
        case '/': tmp[0] = '/'; break;
        case 'b': tmp[0] = '\b'; break;
        case 'f': tmp[0] = '\f'; break;
        case 'n': tmp[0] = '\n'; break;
        case 'r': tmp[0] = '\r'; break;
        case 't': tmp[0] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (hex4(s + i, n - i, &cp) != 0) {
                *why = "bad \\u escape (expected 4 hex digits)";
                return -1;
            }
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' &&
                    hex4(s + i + 2, n - i - 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    *why = "high surrogate \\u escape without a following low surrogate";
                    return -1;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                *why = "lone low surrogate \\u escape";
                return -1;
            }
            tlen = utf8_put(tmp, cp);
            break;
        }
        default: *why = "invalid escape character"; return -1;
        }
        if (buf_append(out, out_len, out_cap, tmp, tlen) != 0) {
            *why = "out of memory";
            return -1;
        }
    }
    *why = "unterminated string";
    return -1;
}

/* ---- a minimal JSON value skipper, to find "text" among any other fields ------------ */

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

static int skip_value(const char *s, size_t n, size_t *i, int depth, const char **why);

static int skip_string(const char *s, size_t n, size_t *i, const char **why) {
    char *tmp = NULL;
    size_t len = 0, cap = 0, used = 0;
    int rc = cad_json_string_decode(s + *i, n - *i, &tmp, &len, &cap, &used, why);
    free(tmp);
    if (rc == 0) *i += used;
    return rc;
}

static int skip_value(const char *s, size_t n, size_t *i, int depth, const char **why) {
    if (depth > 512) {
        *why = "nesting too deep";
        return -1;
    }
    *i = skip_ws(s, n, *i);
    if (*i >= n) {
        *why = "unexpected end of line";
        return -1;
    }
    char c = s[*i];
    if (c == '"') return skip_string(s, n, i, why);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        (*i)++;
        *i = skip_ws(s, n, *i);
        if (*i < n && s[*i] == close) {
            (*i)++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                *i = skip_ws(s, n, *i);
                if (*i >= n || s[*i] != '"') {
                    *why = "expected a string key";
                    return -1;
                }
                if (skip_string(s, n, i, why) != 0) return -1;
                *i = skip_ws(s, n, *i);
                if (*i >= n || s[*i] != ':') {
                    *why = "expected ':'";
                    return -1;
                }
                (*i)++;
            }
            if (skip_value(s, n, i, depth + 1, why) != 0) return -1;
            *i = skip_ws(s, n, *i);
            if (*i < n && s[*i] == ',') {
                (*i)++;
                continue;
            }
            if (*i < n && s[*i] == close) {
                (*i)++;
                return 0;
            }
            *why = c == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
            return -1;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t j = *i + (c == '-');
        size_t d0 = j;
        while (j < n && s[j] >= '0' && s[j] <= '9') j++;
        if (j == d0) {
            *why = "bad number";
            return -1;
        }
        if (j < n && s[j] == '.') {
            size_t f0 = ++j;
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            if (j == f0) {
                *why = "bad number";
                return -1;
            }
        }
        if (j < n && (s[j] == 'e' || s[j] == 'E')) {
            j++;
            if (j < n && (s[j] == '+' || s[j] == '-')) j++;
            size_t e0 = j;
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            if (j == e0) {
                *why = "bad number";
                return -1;
            }
        }
        *i = j;
        return 0;
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t m = strlen(lits[k]);
        if (n - *i >= m && memcmp(s + *i, lits[k], m) == 0) {
            *i += m;
            return 0;
        }
    }
    *why = "unexpected character";
    return -1;
}

/* Parse one JSONL line as an object and decode its "text" field into d->doc (the last one
 * wins for duplicate keys, as in Python's json.loads). */
static int jsonl_line_text(cad_docs *d, const char *s, size_t n, cad_err *e) {
    const char *why = NULL;
    const char *file = d->inputs[d->file_idx];
    size_t i = skip_ws(s, n, 0);
    int found = 0;
    if (i >= n || s[i] != '{') {
        why = "expected a JSON object";
        goto bad;
    }
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == '}') {
        i++;
    } else {
        for (;;) {
            i = skip_ws(s, n, i);
            if (i >= n || s[i] != '"') {
                why = "expected a string key";
                goto bad;
            }
            /* decode the key (it may be written with escapes, e.g. "te\u0078t") */
            size_t used = 0;
            d->key_len = 0;
            if (cad_json_string_decode(s + i, n - i, &d->key, &d->key_len, &d->key_cap, &used,
                                       &why) != 0)
                goto bad;
            i += used;
            int is_text = d->key_len == 4 && memcmp(d->key, "text", 4) == 0;
            i = skip_ws(s, n, i);
            if (i >= n || s[i] != ':') {
                why = "expected ':'";
                goto bad;
            }
            i = skip_ws(s, n, i + 1);
            if (is_text) {
                if (i >= n || s[i] != '"') {
                    why = "\"text\" is not a string";
                    goto bad;
                }
                d->doc_len = 0;
                if (cad_json_string_decode(s + i, n - i, &d->doc, &d->doc_len, &d->doc_cap,
                                           &used, &why) != 0)
                    goto bad;
                i += used;
                found = 1;
            } else if (skip_value(s, n, &i, 1, &why) != 0) {
                goto bad;
            }
            i = skip_ws(s, n, i);
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == '}') {
                i++;
                break;
            }
            why = "expected ',' or '}'";
            goto bad;
        }
    }
    i = skip_ws(s, n, i);
    if (i != n) {
        why = "extra data after the JSON object";
        goto bad;
    }
    if (!found)
        return -cad_fail(e, CAD_EFORMAT, "%s:%ld: JSON object has no \"text\" field", file,
                         d->line_no);
    /* an empty "text" appends nothing: still hand out a NUL-terminated buffer */
    if (buf_reserve(&d->doc, &d->doc_cap, d->doc_len + 1) != 0)
        return -cad_fail(e, CAD_ENOMEM, "%s: out of memory", file);
    d->doc[d->doc_len] = 0;
    return 0;
bad:
    return -cad_fail(e, CAD_EFORMAT, "%s:%ld:%zu: invalid JSON: %s", file, d->line_no, i + 1,
                     why ? why : "parse error");
}

long cad_docs_total_bytes(const char *const *inputs, int n_inputs) {
    long total = 0;
    for (int i = 0; i < n_inputs; i++) {
        struct stat st;
        if (stat(inputs[i], &st) != 0 || !S_ISREG(st.st_mode)) return -1;
        total += (long)st.st_size;
    }
    return total;
}

static int docs_open_file(cad_docs *d, cad_err *e) {
    const char *path = d->inputs[d->file_idx];
    int fd, rc = cad_open_regular(path, "input", &fd, e);
    if (rc) return -rc;
    d->f = fdopen(fd, "rb");
    if (!d->f) {
        int err = errno;
        close(fd);
        return -cad_fail(e, CAD_EIO, "%s: cannot open input: %s", path, strerror(err));
    }
    d->jsonl = ends_with(path, ".jsonl");
    d->line_no = 0;
    return 0;
}

int cad_docs_open(cad_docs *d, const char *const *inputs, int n_inputs, cad_err *e) {
    memset(d, 0, sizeof *d);
    d->inputs = inputs;
    d->n_inputs = n_inputs;
    if (n_inputs <= 0) return cad_fail(e, CAD_EUSAGE, "no input files given");
    /* Check every input can be opened now, so a typo in the last of many inputs fails
     * before hours of tokenizing. */
    for (int i = 0; i < n_inputs; i++) {
        /* regular files only: a FIFO would block here, a device would never end */
        int fd, rc = cad_open_regular(inputs[i], "input", &fd, e);
        if (rc) return rc;
        close(fd);
    }
    int rc = docs_open_file(d, e);
    return rc < 0 ? -rc : CAD_OK;
}

/* Read the next line into d->line without its "\n"; returns its length, or -1 at EOF. */
static long docs_getline(cad_docs *d, cad_err *e, int *err) {
    *err = 0;
    errno = 0;
    ssize_t r = getline(&d->line, &d->line_cap, d->f);
    if (r < 0) {
        if (ferror(d->f)) *err = -cad_fail(e, CAD_EIO, "%s: read error: %s",
                                           d->inputs[d->file_idx], strerror(errno));
        return -1;
    }
    d->line_no++;
    d->bytes_read += r;
    if (r > 0 && d->line[r - 1] == '\n') r--;
    return (long)r;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
            return 0;
    return 1;
}

int cad_docs_next(cad_docs *d, const char **text, size_t *len, cad_err *e) {
    for (;;) {
        if (!d->f) return 0;
        const char *path = d->inputs[d->file_idx];
        int err = 0;
        if (d->jsonl) {
            long n = docs_getline(d, e, &err);
            if (err) return err;
            if (n >= 0 && is_blank(d->line, (size_t)n)) continue;
            if (n >= 0) {
                long bad = utf8_first_invalid(d->line, (size_t)n);
                if (bad >= 0)
                    return -cad_fail(e, CAD_EFORMAT, "%s:%ld:%ld: invalid UTF-8 byte 0x%02x",
                                     path, d->line_no, bad + 1,
                                     (unsigned char)d->line[bad]);
                int rc = jsonl_line_text(d, d->line, (size_t)n, e);
                if (rc < 0) return rc;
                *text = d->doc;
                *len = d->doc_len;
                d->docs_returned++;
                return 1;
            }
        } else {
            /* plain text: skip blank lines, then gather lines up to the next blank line */
            d->doc_len = 0;
            int have = 0;
            long n;
            while ((n = docs_getline(d, e, &err)) >= 0) {
                size_t m = (size_t)n;
                if (m > 0 && d->line[m - 1] == '\r') m--;
                if (is_blank(d->line, m)) {
                    if (have) break;
                    continue;
                }
                long bad = utf8_first_invalid(d->line, m);
                if (bad >= 0)
                    return -cad_fail(e, CAD_EFORMAT, "%s:%ld:%ld: invalid UTF-8 byte 0x%02x",
                                     path, d->line_no, bad + 1,
                                     (unsigned char)d->line[bad]);
                if ((have && buf_append(&d->doc, &d->doc_len, &d->doc_cap, "\n", 1) != 0) ||
                    buf_append(&d->doc, &d->doc_len, &d->doc_cap, d->line, m) != 0)
                    return -cad_fail(e, CAD_ENOMEM, "%s: out of memory", path);
                have = 1;
            }
            if (err) return err;
            if (have) {
                *text = d->doc;
                *len = d->doc_len;
                d->docs_returned++;
                return 1;
            }
        }
        /* end of this file: go on with the next input */
        fclose(d->f);
        d->f = NULL;
        if (d->file_idx + 1 >= d->n_inputs) return 0;
        d->file_idx++;
        int rc = docs_open_file(d, e);
        if (rc < 0) return rc;
    }
}

void cad_docs_close(cad_docs *d) {
    if (!d) return;
    if (d->f) fclose(d->f);
    free(d->line);
    free(d->doc);
    free(d->key);
    memset(d, 0, sizeof *d);
}
