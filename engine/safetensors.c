/*
 * safetensors.c — the .safetensors reader/writer (see safetensors.h). The header is JSON; the
 * engine has no JSON library (sweep/ and reports/ read JSON through SQLite), so this file has
 * a small parser for exactly the header's grammar (objects, arrays, strings, integers).
 * Not here: model loading policy (train.c decides strictness and names).
 */
#include "engine/fsutil.h"
#include "engine/safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- half precision --------------------------------------------------------------------- */

uint16_t cad_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0)); /* inf / nan */
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {
        /* subnormal half (or zero): shift the implicit-1 mantissa right, round to nearest even */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into the exponent: ok */
    return (uint16_t)(sign | h);
}

float cad_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else {
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        x = sign | 0x7f800000u | (man << 13);
    } else {
        x = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

float cad_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- writing ------------------------------------------------------------------------------- */

static void json_name(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

int cad_safetensors_write(const char *path, const cad_named_tensor *ts, int n, cad_err *e) {
    /* header into memory first: its length prefixes the file */
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *hf = open_memstream(&hdr, &hlen);
    if (!hf) return cad_fail(e, CAD_ENOMEM, "%s: cannot build header", path);
    fputs("{\"__metadata__\":{\"format\":\"pt\",\"writer\":\"caddie\"}", hf);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        fputc(',', hf);
        json_name(hf, ts[i].name);
        fputs(":{\"dtype\":\"F32\",\"shape\":[", hf);
        for (int d = 0; d < ts[i].ndim; d++) fprintf(hf, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
        fprintf(hf, "],\"data_offsets\":[%zu,%zu]}", off, off + ts[i].numel * 4);
        off += ts[i].numel * 4;
    }
    fputc('}', hf);
    /* pad with spaces to a multiple of 8 so the data is aligned (as the reference writer does) */
    fflush(hf);
    while ((hlen + 8) % 8) { fputc(' ', hf); fflush(hf); }
    fclose(hf);

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(hdr);
        return cad_fail(e, CAD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    uint64_t n64 = hlen;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n64 >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, hlen, f);
    free(hdr);
    for (int i = 0; i < n; i++) fwrite(ts[i].data, sizeof(float), ts[i].numel, f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        unlink(tmp);
        return cad_fail(e, CAD_EIO, "%s: write failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path)) {
        unlink(tmp);
        return cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno));
    }
    return CAD_OK;
}

/* ---- a JSON parser for the header ------------------------------------------------------------ */

typedef struct jp {
    const char *s, *end, *start, *path;
    cad_err *e;
} jp;

static int jp_fail(jp *p, const char *what) {
    /* byte offset in the file: the header starts after the 8-byte length */
    return cad_fail(p->e, CAD_EFORMAT, "%s: safetensors header: %s at byte %ld", p->path, what,
                    (long)(p->s - p->start) + 8);
}

static void jp_ws(jp *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\n' || *p->s == '\r' || *p->s == '\t')) p->s++;
}

static int jp_expect(jp *p, char c) {
    jp_ws(p);
    if (p->s >= p->end || *p->s != c) {
        char m[32];
        snprintf(m, sizeof m, "'%c' expected", c);
        return jp_fail(p, m);
    }
    p->s++;
    return CAD_OK;
}

static int jp_peek(jp *p) {
    jp_ws(p);
    return p->s < p->end ? (unsigned char)*p->s : -1;
}

/* Parse a string into a malloc'd UTF-8 buffer. */
static int jp_string(jp *p, char **out) {
    if (jp_expect(p, '"')) return CAD_EFORMAT;
    size_t cap = 32, n = 0;
    char *b = malloc(cap);
    if (!b) return cad_fail(p->e, CAD_ENOMEM, "out of memory");
    while (p->s < p->end && *p->s != '"') {
        unsigned cp = (unsigned char)*p->s++;
        if (cp == '\\') {
            if (p->s >= p->end) break;
            char c = *p->s++;
            switch (c) {
            case 'n': cp = '\n'; break;
            case 't': cp = '\t'; break;
            case 'r': cp = '\r'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'u': {
                if (p->end - p->s < 4 || !isxdigit((unsigned char)p->s[0]) || !isxdigit((unsigned char)p->s[1]) ||
                    !isxdigit((unsigned char)p->s[2]) || !isxdigit((unsigned char)p->s[3])) {
                    free(b);
                    return jp_fail(p, "bad \\u escape");
                }
                char hex[5] = {p->s[0], p->s[1], p->s[2], p->s[3], 0};
                cp = (unsigned)strtoul(hex, NULL, 16);
                p->s += 4;
                break;
            }
            default: cp = (unsigned char)c;
            }
        }
        /* A NUL (raw or \\u0000) would cut the C string: tensor 'a\\u0000b' would load as 'a'. */
        if (cp == 0) { free(b); return jp_fail(p, "NUL character in a string"); }
        if (n + 5 >= cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) { free(b); return cad_fail(p->e, CAD_ENOMEM, "out of memory"); }
            b = nb;
        }
        if (cp < 0x80) b[n++] = (char)cp;
        else if (cp < 0x800) { b[n++] = (char)(0xc0 | (cp >> 6)); b[n++] = (char)(0x80 | (cp & 0x3f)); }
        else { b[n++] = (char)(0xe0 | (cp >> 12)); b[n++] = (char)(0x80 | ((cp >> 6) & 0x3f)); b[n++] = (char)(0x80 | (cp & 0x3f)); }
    }
    if (p->s >= p->end) { free(b); return jp_fail(p, "unterminated string"); }
    p->s++;
    b[n] = 0;
    *out = b;
    return CAD_OK;
}

static int jp_int(jp *p, int64_t *out) {
    jp_ws(p);
    char *endp;
    errno = 0;
    long long v = strtoll(p->s, &endp, 10);
    if (endp == p->s || errno || endp > p->end) return jp_fail(p, "integer expected");
    p->s = endp;
    *out = v;
    return CAD_OK;
}

/* Skip any JSON value (for unknown fields and __metadata__). */
static int jp_skip(jp *p, int depth) {
    if (depth > 32) return jp_fail(p, "nesting too deep");
    int c = jp_peek(p);
    if (c == '"') {
        char *s;
        if (jp_string(p, &s)) return CAD_EFORMAT;
        free(s);
        return CAD_OK;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->s++;
        if (jp_peek(p) == close) { p->s++; return CAD_OK; }
        for (;;) {
            if (c == '{') {
                char *k;
                if (jp_string(p, &k)) return CAD_EFORMAT;
                free(k);
                if (jp_expect(p, ':')) return CAD_EFORMAT;
            }
            if (jp_skip(p, depth + 1)) return CAD_EFORMAT;
            int d = jp_peek(p);
            if (d == ',') { p->s++; continue; }
            if (d == close) { p->s++; return CAD_OK; }
            return jp_fail(p, "',' or closing bracket expected");
        }
    }
    while (p->s < p->end && strchr("+-.0123456789eEtruefalsn", *p->s)) p->s++;
    return CAD_OK;
}

typedef struct st_entry {
    char *name;
    int dtype; /* 0 F32, 1 F16, 2 BF16, -1 other */
    char dtype_name[16];
    int ndim;
    int64_t shape[CAD_TENSOR_MAX_DIMS];
    int64_t begin, end;
} st_entry;

static int jp_entry(jp *p, st_entry *t) {
    if (jp_expect(p, '{')) return CAD_EFORMAT;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (jp_peek(p) == '}') { p->s++; goto check; }
    for (;;) {
        char *k;
        if (jp_string(p, &k)) return CAD_EFORMAT;
        if (jp_expect(p, ':')) { free(k); return CAD_EFORMAT; }
        if (strcmp(k, "dtype") == 0) {
            char *v;
            free(k);
            if (jp_string(p, &v)) return CAD_EFORMAT;
            snprintf(t->dtype_name, sizeof t->dtype_name, "%s", v);
            t->dtype = strcmp(v, "F32") == 0 ? 0 : strcmp(v, "F16") == 0 ? 1 : strcmp(v, "BF16") == 0 ? 2 : -1;
            free(v);
            have_dtype = 1;
        } else if (strcmp(k, "shape") == 0) {
            free(k);
            if (jp_expect(p, '[')) return CAD_EFORMAT;
            t->ndim = 0;
            if (jp_peek(p) == ']') p->s++;
            else
                for (;;) {
                    int64_t v;
                    if (jp_int(p, &v)) return CAD_EFORMAT;
                    if (t->ndim >= CAD_TENSOR_MAX_DIMS || v < 0) return jp_fail(p, "unsupported shape");
                    t->shape[t->ndim++] = v;
                    int d = jp_peek(p);
                    if (d == ',') { p->s++; continue; }
                    if (jp_expect(p, ']')) return CAD_EFORMAT;
                    break;
                }
            have_shape = 1;
        } else if (strcmp(k, "data_offsets") == 0) {
            free(k);
            if (jp_expect(p, '[') || jp_int(p, &t->begin) || jp_expect(p, ',') || jp_int(p, &t->end) ||
                jp_expect(p, ']'))
                return CAD_EFORMAT;
            have_off = 1;
        } else {
            free(k);
            if (jp_skip(p, 1)) return CAD_EFORMAT;
        }
        int d = jp_peek(p);
        if (d == ',') { p->s++; continue; }
        if (jp_expect(p, '}')) return CAD_EFORMAT;
        break;
    }
check:
    if (!have_dtype || !have_shape || !have_off)
        return cad_fail(p->e, CAD_EFORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets",
                        p->path, t->name);
    return CAD_OK;
}

/* The whole file, NUL-terminated (the NUL stops strtoll at the very end of a malformed header).
 * A regular file only: a FIFO would block, /dev/zero would fill memory. No size cap beyond
 * memory: weight files are as large as the model. */
static int read_whole(const char *path, unsigned char **buf, size_t *len, cad_err *e) {
    char *raw;
    int rc = cad_read_regular_file(path, NULL, SIZE_MAX - 1, &raw, len, e);
    *buf = (unsigned char *)raw;
    return rc;
}

static void entries_free(st_entry *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

static void shape_str(char *b, size_t cap, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(b, cap, "[");
    for (int d = 0; d < ndim && o < cap; d++) o += (size_t)snprintf(b + o, cap - o, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (o < cap) snprintf(b + o, cap - o, "]");
}

/* Parse the file's header into entries; *data points at the byte buffer start. */
static int parse_file(const char *path, unsigned char *buf, size_t len, st_entry **out, int *n_out,
                      const unsigned char **data, size_t *data_len, cad_err *e) {
    if (len < 8) return cad_fail(e, CAD_EFORMAT, "%s: %zu bytes, too short for a safetensors file", path, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > len - 8)
        return cad_fail(e, CAD_EFORMAT, "%s: header length %llu exceeds the file (%zu bytes)", path,
                        (unsigned long long)hlen, len);
    jp p = {(const char *)buf + 8, (const char *)buf + 8 + hlen, (const char *)buf + 8, path, e};
    int cap = 16, n = 0;
    st_entry *t = calloc((size_t)cap, sizeof *t);
    if (!t) return cad_fail(e, CAD_ENOMEM, "out of memory");
    if (jp_expect(&p, '{')) goto bad;
    if (jp_peek(&p) != '}')
        for (;;) {
            char *k;
            if (jp_string(&p, &k)) goto bad;
            if (jp_expect(&p, ':')) { free(k); goto bad; }
            if (strcmp(k, "__metadata__") == 0) {
                free(k);
                if (jp_skip(&p, 1)) goto bad;
            } else {
                if (n == cap) {
                    cap *= 2;
                    st_entry *nt = realloc(t, (size_t)cap * sizeof *t);
                    if (!nt) { free(k); cad_fail(e, CAD_ENOMEM, "out of memory"); goto bad; }
                    t = nt;
                }
                memset(&t[n], 0, sizeof t[n]);
                t[n].name = k;
                n++;
                if (jp_entry(&p, &t[n - 1])) goto bad;
            }
            int d = jp_peek(&p);
            if (d == ',') { p.s++; continue; }
            if (jp_expect(&p, '}')) goto bad;
            break;
        }
    else
        p.s++;
    /* The format pads the header with spaces (0x20) only; anything else inside the declared
     * length is not part of a valid file (a second object, a truncated edit, garbage). */
    while (p.s < p.end && *p.s == ' ') p.s++;
    if (p.s < p.end) {
        jp_fail(&p, "unexpected bytes after the header's JSON object");
        goto bad;
    }
    *data = buf + 8 + hlen;
    *data_len = len - 8 - hlen;
    for (int i = 0; i < n; i++) {
        size_t esz = t[i].dtype == 0 ? 4 : 2;
        if (t[i].dtype < 0) {
            cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': dtype %s not supported (F32, F16, BF16)", path,
                     t[i].name, t[i].dtype_name);
            goto bad;
        }
        /* Overflow-checked: a shape like [2^62, 2] would wrap numel*esz to a small number that
         * matches tiny offsets, and the fp32 copy (numel*4 bytes) would overrun the heap. With
         * numel*4 representable, the offsets check below catches every other misfit. */
        size_t numel = 1;
        int too_big = 0;
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] == 0) numel = 0;
        for (int d = 0; d < t[i].ndim && numel; d++) {
            size_t dim = (size_t)t[i].shape[d];
            if (numel > SIZE_MAX / 4 / dim) { too_big = 1; break; }
            numel *= dim;
        }
        if (too_big) {
            char sh[96];
            shape_str(sh, sizeof sh, t[i].ndim, t[i].shape);
            cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': shape %s has more elements than memory can address",
                     path, t[i].name, sh);
            goto bad;
        }
        if (t[i].begin < 0 || t[i].end < t[i].begin || (size_t)t[i].end > *data_len ||
            (size_t)(t[i].end - t[i].begin) != numel * esz) {
            cad_fail(e, CAD_EFORMAT,
                     "%s: tensor '%s': data_offsets [%lld,%lld] do not fit %zu elements of %s in %zu "
                     "data bytes", path, t[i].name, (long long)t[i].begin, (long long)t[i].end, numel,
                     t[i].dtype_name, *data_len);
            goto bad;
        }
    }
    *out = t;
    *n_out = n;
    return CAD_OK;
bad:
    entries_free(t, n);
    return e ? (e->code ? e->code : CAD_EFORMAT) : CAD_EFORMAT;
}

static void convert(const st_entry *t, const unsigned char *data, float *dst, size_t numel) {
    const unsigned char *src = data + t->begin;
    if (t->dtype == 0) {
        memcpy(dst, src, numel * 4);
        return;
    }
    for (size_t i = 0; i < numel; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
        dst[i] = t->dtype == 1 ? cad_f16_to_f32(h) : cad_bf16_to_f32(h);
    }
}

/* Read and parse path: *buf holds the file (free it after the entries), *t its nt entries
 * (entries_free), *data the start of the tensor bytes. On failure nothing stays allocated. */
static int load_file(const char *path, unsigned char **buf, st_entry **t, int *nt,
                     const unsigned char **data, cad_err *e) {
    size_t len, data_len;
    int rc = read_whole(path, buf, &len, e);
    if (rc) return rc;
    rc = parse_file(path, *buf, len, t, nt, data, &data_len, e);
    if (rc) free(*buf);
    return rc;
}


int cad_safetensors_read_into(const char *path, cad_named_tensor *ts, int n, int strict, cad_err *e) {
    unsigned char *buf;
    const unsigned char *data;
    st_entry *t;
    int nt, rc = load_file(path, &buf, &t, &nt, &data, e);
    if (rc) return rc;
    for (int i = 0; i < n && !rc; i++) {
        int j = 0;
        while (j < nt && strcmp(t[j].name, ts[i].name) != 0) j++;
        if (j == nt) { rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s' missing", path, ts[i].name); break; }
        int same = t[j].ndim == ts[i].ndim;
        for (int d = 0; same && d < ts[i].ndim; d++) same = t[j].shape[d] == ts[i].shape[d];
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, t[j].ndim, t[j].shape);
            shape_str(b, sizeof b, ts[i].ndim, ts[i].shape);
            rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", path, ts[i].name, a, b);
            break;
        }
        convert(&t[j], data, ts[i].data, ts[i].numel);
    }
    for (int j = 0; j < nt && !rc && strict; j++) {
        int i = 0;
        while (i < n && strcmp(t[j].name, ts[i].name) != 0) i++;
        if (i == n) rc = cad_fail(e, CAD_EFORMAT, "%s: unexpected tensor '%s' (not a parameter of this model)", path, t[j].name);
    }
    entries_free(t, nt);
    free(buf);
    return rc;
}

int cad_safetensors_load(const char *path, cad_safetensors_file *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    const unsigned char *data;
    st_entry *t;
    int nt, rc = load_file(path, &buf, &t, &nt, &data, e);
    if (rc) return rc;
    out->tensors = calloc((size_t)(nt ? nt : 1), sizeof *out->tensors);
    if (!out->tensors) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int i = 0; i < nt && !rc; i++) {
        cad_named_tensor *d = &out->tensors[i];
        d->name = t[i].name;
        t[i].name = NULL;
        d->ndim = t[i].ndim;
        d->numel = 1;
        for (int k = 0; k < d->ndim; k++) d->shape[k] = t[i].shape[k], d->numel *= (size_t)t[i].shape[k];
        d->data = malloc(d->numel ? d->numel * 4 : 4);
        out->n = i + 1;
        if (!d->data) { rc = cad_fail(e, CAD_ENOMEM, "out of memory"); break; }
        convert(&t[i], data, d->data, d->numel);
    }
    entries_free(t, nt);
    free(buf);
    if (rc) cad_safetensors_file_free(out);
    return rc;
}

void cad_safetensors_file_free(cad_safetensors_file *f) {
    for (int i = 0; i < f->n; i++) {
        free((char *)f->tensors[i].name);
        free(f->tensors[i].data);
    }
    free(f->tensors);
    memset(f, 0, sizeof *f);
}
