/*
 * tokenizer_train.c — `caddie tokenizer train` feeding: reads documents from the input
 * files and cleans them exactly like the exporter's _iter_sentencepiece_text
 * (text.replace("\x00", " ").strip(), empty texts skipped) before handing them to the
 * trainer in tokenizer_shim.cc. Not here: the trainer options (the shim), file formats
 * (textdocs.c).
 */
#include "engine/textdocs.h"
#include "engine/tokenizer.h"

#include <stdint.h>
#include <string.h>

/* Python's str.isspace() for one code point: bidi class WS/B/S or category Zs. */
static int py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decode the code point at s (valid UTF-8 assumed, textdocs checked it); returns its length. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (len > n) len = n;
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (size_t i = 1; i < len; i++) v = v << 6 | (s[i] & 0x3Fu);
    *cp = v;
    return len;
}

void cad_text_py_strip(const char *s, size_t n, size_t *start, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0;
    while (a < n) {
        uint32_t cp;
        size_t k = utf8_decode(u + a, n - a, &cp);
        if (!py_isspace(cp)) break;
        a += k;
    }
    size_t b = n;
    while (b > a) {
        /* step back to the start of the previous code point */
        size_t p = b - 1;
        while (p > a && (u[p] & 0xC0) == 0x80) p--;
        uint32_t cp;
        utf8_decode(u + p, b - p, &cp);
        if (!py_isspace(cp)) break;
        b = p;
    }
    *start = a;
    *len = b - a;
}

typedef struct train_feed {
    cad_docs docs;
} train_feed;

static int train_feed_next(void *ctx, const char **text, size_t *len, cad_err *e) {
    train_feed *f = ctx;
    for (;;) {
        const char *t;
        size_t n;
        int r = cad_docs_next(&f->docs, &t, &n, e);
        if (r <= 0) return r;
        /* the doc buffer is ours until the next call: replace NULs in place */
        char *w = (char *)t;
        for (size_t i = 0; i < n; i++)
            if (w[i] == 0) w[i] = ' ';
        size_t a, m;
        cad_text_py_strip(t, n, &a, &m);
        if (m == 0) continue;
        *text = t + a;
        *len = m;
        return 1;
    }
}

int cad_tokenizer_train(const char *const *inputs, int n_inputs, int vocab_size,
                        const char *out_prefix, int verbose, cad_err *e) {
    if (vocab_size < 260 || vocab_size > 65536)
        return cad_fail(e, CAD_ECONFIG,
                        "vocab size %d out of range [260, 65536] (4 special ids + 256 byte "
                        "pieces; shards store uint16 ids)",
                        vocab_size);
    train_feed f;
    int rc = cad_docs_open(&f.docs, inputs, n_inputs, e);
    if (rc != CAD_OK) return rc;
    rc = cad_tokenizer_train_iter(train_feed_next, &f, vocab_size, out_prefix, verbose, e);
    cad_docs_close(&f.docs);
    return rc;
}
