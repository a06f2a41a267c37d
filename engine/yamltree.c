/*
 * yamltree.c — libyaml event stream -> yt_node tree with 1-based line:col marks.
 *
 * Event-driven on purpose: libyaml's document API loses nothing we need, but building our
 * own tree lets us reject duplicate keys at the second key's position and keep every
 * node's mark for "file:line:col" messages. Aliases are resolved by deep copy (sweep files
 * are small), under a budget: the whole tree, copies included, holds at most YT_MAX_NODES
 * nodes and YT_MAX_DEPTH levels, so nine aliases of nine aliases ("billion laughs") fail
 * with a message instead of eating gigabytes. Duplicate keys are found with a hash set per
 * mapping (linear, not quadratic, in the number of keys). Only the first document of a
 * stream is read; a second one is an error, since a stray "---" usually means a pasted file.
 * Not here: any meaning of keys or type rules beyond scalar conversion helpers.
 */
#include "engine/yamltree.h"

#include "engine/fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef struct anchor {
    char *name;
    yt_node *node;
} anchor;

/* Far above any real config or sweep (hundreds of nodes), far below what hurts: ~100 bytes
 * a node. A file is read whole, so it is capped too. */
#define YT_MAX_NODES 2000000
#define YT_MAX_DEPTH 64
#define YT_MAX_FILE_BYTES (64u << 20)
/* Longest number text the scalar converters take (underscores removed): longer is refused,
 * never truncated (a truncated "0000...5xyz" read as 0 and hid the junk). */
#define YT_MAX_NUMBER_CHARS 128
#define YT_STR_(x) #x
#define YT_STR(x) YT_STR_(x)

typedef struct builder {
    yaml_parser_t parser;
    const char *name;
    cad_err *e;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    int depth;
    size_t nodes; /* nodes made so far, alias copies included (budget YT_MAX_NODES) */
} builder;

static void node_free(yt_node *n) {
    if (!n) return;
    free(n->value);
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == YT_SEQ) node_free(n->items[i]);
        if (n->kind == YT_MAP) {
            node_free(n->keys[i]);
            node_free(n->vals[i]);
        }
    }
    free(n->items);
    free(n->keys);
    free(n->vals);
    free(n);
}

static int fail_at(builder *b, int line, int col, const char *msg, const char *extra);

static yt_node *node_new(builder *b, yt_kind kind, const yaml_mark_t *m) {
    yt_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    b->nodes++;
    n->kind = kind;
    n->line = (int)m->line + 1; /* libyaml marks are 0-based */
    n->col = (int)m->column + 1;
    return n;
}

/* Deep copy of s placed at nesting depth `depth`, counted against the node budget. On
 * failure returns CAD_ENOMEM or CAD_EFORMAT (budget/depth, reported at the alias's mark by
 * the caller through *why) with nothing left allocated. */
static int node_copy(builder *b, const yt_node *s, int depth, yt_node **out, const char **why) {
    *out = NULL;
    if (depth > YT_MAX_DEPTH) {
        *why = "nesting deeper than " YT_STR(YT_MAX_DEPTH) " levels after alias expansion";
        return CAD_EFORMAT;
    }
    if (b->nodes >= YT_MAX_NODES) {
        *why = "alias expansion exceeds " YT_STR(YT_MAX_NODES) " nodes";
        return CAD_EFORMAT;
    }
    yt_node *n = calloc(1, sizeof *n);
    if (!n) return CAD_ENOMEM;
    b->nodes++;
    *n = *s;
    n->n = 0;
    n->items = n->keys = n->vals = NULL;
    n->value = s->value ? strdup(s->value) : NULL;
    if (s->value && !n->value) goto oom;
    if (s->n) {
        if (s->kind == YT_SEQ) {
            if (!(n->items = calloc(s->n, sizeof *n->items))) goto oom;
        } else {
            n->keys = calloc(s->n, sizeof *n->keys);
            n->vals = calloc(s->n, sizeof *n->vals);
            if (!n->keys || !n->vals) goto oom;
        }
        for (size_t i = 0; i < s->n; i++) {
            int rc;
            if (s->kind == YT_SEQ) {
                rc = node_copy(b, s->items[i], depth + 1, &n->items[i], why);
            } else {
                rc = node_copy(b, s->keys[i], depth + 1, &n->keys[i], why);
                if (!rc) rc = node_copy(b, s->vals[i], depth + 1, &n->vals[i], why);
            }
            /* n->n counts the filled slots, so node_free frees exactly those (a map's last
             * slot may hold a key without its value: freeing NULL is fine) */
            n->n = i + 1;
            if (rc) {
                node_free(n);
                return rc;
            }
        }
    }
    *out = n;
    return CAD_OK;
oom:
    node_free(n);
    return CAD_ENOMEM;
}

static int push_ptr(yt_node ***arr, size_t n, yt_node *v) {
    /* grow by doubling; capacity is implied by n (powers of two) */
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 4;
        yt_node **na = realloc(*arr, cap * sizeof *na);
        if (!na) return -1;
        *arr = na;
    }
    (*arr)[n] = v;
    return 0;
}

/* Open-addressing hash set of a mapping's keys (indices into keys[]), so each new key is
 * checked against the earlier ones in O(1) expected time. */
typedef struct keyset {
    size_t *slot; /* index + 1; 0 = empty */
    size_t cap;   /* power of two, kept at least twice the number of keys */
} keyset;

static size_t key_hash(const char *s) {
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The index of an equal key already in the set, or -1 after inserting key as index idx.
 * -2: out of memory. */
static long keyset_add(keyset *ks, yt_node **keys, size_t idx, const char *key) {
    if (2 * (idx + 1) > ks->cap) {
        size_t ncap = ks->cap ? ks->cap * 2 : 16;
        size_t *ns = calloc(ncap, sizeof *ns);
        if (!ns) return -2;
        for (size_t i = 0; i < ks->cap; i++) {
            if (!ks->slot[i]) continue;
            size_t j = key_hash(keys[ks->slot[i] - 1]->value) & (ncap - 1);
            while (ns[j]) j = (j + 1) & (ncap - 1);
            ns[j] = ks->slot[i];
        }
        free(ks->slot);
        ks->slot = ns;
        ks->cap = ncap;
    }
    size_t j = key_hash(key) & (ks->cap - 1);
    for (; ks->slot[j]; j = (j + 1) & (ks->cap - 1))
        if (strcmp(keys[ks->slot[j] - 1]->value, key) == 0) return (long)(ks->slot[j] - 1);
    ks->slot[j] = idx + 1;
    return -1;
}

static int fail_at(builder *b, int line, int col, const char *msg, const char *extra) {
    return cad_fail(b->e, CAD_EFORMAT, "%s:%d:%d: %s%s%s", b->name, line, col, msg,
                    extra ? " " : "", extra ? extra : "");
}

static int remember_anchor(builder *b, const yaml_char_t *name, yt_node *n) {
    if (!name) return CAD_OK;
    if (b->n_anchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 8;
        anchor *na = realloc(b->anchors, cap * sizeof *na);
        if (!na) return cad_fail(b->e, CAD_ENOMEM, "%s: out of memory", b->name);
        b->anchors = na;
        b->cap_anchors = cap;
    }
    if (!(b->anchors[b->n_anchors].name = strdup((const char *)name)))
        return cad_fail(b->e, CAD_ENOMEM, "%s: out of memory", b->name);
    b->anchors[b->n_anchors].node = n;
    b->n_anchors++;
    return CAD_OK;
}

static int next_event(builder *b, yaml_event_t *ev) {
    if (!yaml_parser_parse(&b->parser, ev)) {
        const char *prob = b->parser.problem ? b->parser.problem : "syntax error";
        yaml_mark_t m = b->parser.problem_mark;
        if (b->parser.context)
            return cad_fail(b->e, CAD_EFORMAT, "%s:%d:%d: %s %s", b->name, (int)m.line + 1,
                            (int)m.column + 1, prob, b->parser.context);
        return fail_at(b, (int)m.line + 1, (int)m.column + 1, prob, NULL);
    }
    return CAD_OK;
}

static int oom(builder *b) { return cad_fail(b->e, CAD_ENOMEM, "%s: out of memory", b->name); }

/* Build the node that starts with event ev (already parsed). */
static int build_node(builder *b, yaml_event_t *ev, yt_node **out) {
    int rc = CAD_OK;
    yt_node *n = NULL;
    keyset ks = {0};
    const int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (++b->depth > YT_MAX_DEPTH) {
        rc = fail_at(b, line, col, "nesting deeper than " YT_STR(YT_MAX_DEPTH) " levels", NULL);
        goto done;
    }
    if (ev->type != YAML_ALIAS_EVENT && b->nodes >= YT_MAX_NODES) {
        rc = fail_at(b, line, col, "more than " YT_STR(YT_MAX_NODES) " nodes in the document", NULL);
        goto done;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        size_t i = b->n_anchors;
        while (i-- > 0 && strcmp(b->anchors[i].name, name) != 0) {}
        if (i == (size_t)-1) {
            rc = fail_at(b, line, col, "unknown alias", name);
            break;
        }
        const char *why = NULL;
        rc = node_copy(b, b->anchors[i].node, b->depth, &n, &why);
        if (rc == CAD_ENOMEM) rc = oom(b);
        else if (rc) rc = fail_at(b, line, col, why, NULL);
        if (!rc) {
            n->line = line;
            n->col = col;
        }
        break;
    }
    case YAML_SCALAR_EVENT:
        n = node_new(b, YT_SCALAR, &ev->start_mark);
        if (!n || !(n->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length))) {
            rc = oom(b);
            break;
        }
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
        rc = remember_anchor(b, ev->data.scalar.anchor, n);
        break;
    case YAML_SEQUENCE_START_EVENT:
        n = node_new(b, YT_SEQ, &ev->start_mark);
        rc = n ? remember_anchor(b, ev->data.sequence_start.anchor, n) : oom(b);
        for (;;) {
            if (rc) break;
            yaml_event_t child;
            if ((rc = next_event(b, &child))) break;
            if (child.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&child);
                break;
            }
            yt_node *item = NULL;
            rc = build_node(b, &child, &item);
            yaml_event_delete(&child);
            if (!rc && push_ptr(&n->items, n->n, item)) rc = oom(b);
            if (!rc) n->n++;
            else node_free(item);
        }
        break;
    case YAML_MAPPING_START_EVENT:
        n = node_new(b, YT_MAP, &ev->start_mark);
        rc = n ? remember_anchor(b, ev->data.mapping_start.anchor, n) : oom(b);
        for (;;) {
            if (rc) break;
            yaml_event_t kev, vev;
            if ((rc = next_event(b, &kev))) break;
            if (kev.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&kev);
                break;
            }
            yt_node *key = NULL, *val = NULL;
            rc = build_node(b, &kev, &key);
            yaml_event_delete(&kev);
            if (!rc && key->kind != YT_SCALAR)
                rc = fail_at(b, key->line, key->col, "mapping keys must be plain scalars", NULL);
            if (!rc) {
                long prev = keyset_add(&ks, n->keys, n->n, key->value);
                if (prev == -2) rc = oom(b);
                else if (prev >= 0) {
                    char first[64];
                    snprintf(first, sizeof first, "(first at line %d)", n->keys[prev]->line);
                    char what[300];
                    snprintf(what, sizeof what, "duplicate key '%.200s'", key->value);
                    rc = fail_at(b, key->line, key->col, what, first);
                }
            }
            if (!rc) rc = next_event(b, &vev);
            if (!rc) {
                rc = build_node(b, &vev, &val);
                yaml_event_delete(&vev);
            }
            /* both arrays grow together (same n), so a failed second push leaves the first
             * with a spare slot only */
            if (!rc && (push_ptr(&n->keys, n->n, key) || push_ptr(&n->vals, n->n, val))) rc = oom(b);
            if (!rc) n->n++;
            else {
                node_free(key);
                node_free(val);
            }
        }
        break;
    default:
        rc = fail_at(b, line, col, "unexpected YAML event", NULL);
    }
done:
    free(ks.slot);
    b->depth--;
    if (rc) {
        node_free(n);
        n = NULL;
    }
    *out = n;
    return rc;
}

int yt_load_string(const char *name, const char *text, size_t len, yt_doc **out, cad_err *e) {
    *out = NULL;
    yt_doc *d = calloc(1, sizeof *d);
    if (!d) return cad_fail(e, CAD_ENOMEM, "%s: out of memory", name);
    d->path = strdup(name);
    d->text = len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (!d->path || !d->text) {
        yt_doc_free(d);
        return cad_fail(e, CAD_ENOMEM, "%s: out of memory", name);
    }
    memcpy(d->text, text, len);
    d->text[len] = 0;
    d->text_len = len;

    builder b = {.name = name, .e = e};
    yaml_parser_initialize(&b.parser);
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)d->text, len);
    int rc = CAD_OK, docs = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(&b, &ev))) break;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            rc = fail_at(&b, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "more than one YAML document in the file", NULL);
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
            t == YAML_MAPPING_START_EVENT || t == YAML_ALIAS_EVENT) {
            rc = build_node(&b, &ev, &d->root);
            yaml_event_delete(&ev);
            if (rc) break;
            continue;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&b.parser);
    for (size_t i = 0; i < b.n_anchors; i++) free(b.anchors[i].name);
    free(b.anchors);
    /* An empty scalar document ("" or only comments) is an empty document. */
    if (!rc && d->root && d->root->kind == YT_SCALAR && d->root->value[0] == 0 && !d->root->quoted) {
        node_free(d->root);
        d->root = NULL;
    }
    if (rc) {
        yt_doc_free(d);
        return rc;
    }
    *out = d;
    return CAD_OK;
}

int yt_load_file(const char *path, yt_doc **out, cad_err *e) {
    *out = NULL;
    char *buf;
    size_t len;
    /* a regular file only (a FIFO would block, /dev/zero never ends), and of sane size */
    int rc = cad_read_regular_file(path, NULL, YT_MAX_FILE_BYTES, &buf, &len, e);
    if (rc) return rc;
    rc = yt_load_string(path, buf, len, out, e);
    free(buf);
    return rc;
}

void yt_doc_free(yt_doc *d) {
    if (!d) return;
    node_free(d->root);
    free(d->path);
    free(d->text);
    free(d);
}

const yt_node *yt_map_get(const yt_node *m, const char *key) {
    if (!m || m->kind != YT_MAP) return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->value, key) == 0) return m->vals[i];
    return NULL;
}

int yt_fail(cad_err *e, int code, const yt_doc *d, const yt_node *n, const char *fmt, ...) {
    char msg[CAD_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *path = d && d->path ? d->path : "<yaml>";
    if (n) return cad_fail(e, code, "%s:%d:%d: %s", path, n->line, n->col, msg);
    return cad_fail(e, code, "%s: %s", path, msg);
}

static const char *kind_name(yt_kind k) {
    return k == YT_SCALAR ? "a scalar" : k == YT_SEQ ? "a list" : "a mapping";
}

/* Copy a number's text without "_" digit separators into buf (cap YT_MAX_NUMBER_CHARS + 1);
 * -1 when it does not fit: refused, not cut (a cut could drop junk or digits). */
static int number_text(const char *s, char *buf, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '_') continue;
        if (j + 1 >= cap) return -1;
        buf[j++] = s[i];
    }
    buf[j] = 0;
    return 0;
}

int yt_scalar_long(const yt_doc *d, const yt_node *n, long *out, cad_err *e) {
    if (!n || n->kind != YT_SCALAR)
        return yt_fail(e, CAD_EFORMAT, d, n, "integer expected, found %s",
                       n ? kind_name(n->kind) : "nothing");
    const char *s = n->value;
    char *end;
    /* Accept 524_288 and 5e5-style integers written by people, reject 1.5 */
    char buf[YT_MAX_NUMBER_CHARS + 1];
    if (number_text(s, buf, sizeof buf))
        return yt_fail(e, CAD_EFORMAT, d, n, "integer expected, found %zu characters", strlen(s));
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (*end == 'e' || *end == 'E' || *end == '.') {
        char *dend;
        double dv = strtod(buf, &dend);
        if (*dend == 0 && fabs(dv) < 9e18 && dv == (double)(long)dv) {
            *out = (long)dv;
            return CAD_OK;
        }
    }
    if (errno == ERANGE)
        return yt_fail(e, CAD_EFORMAT, d, n, "integer out of range, found '%s'", s);
    if (errno || end == buf || *end)
        return yt_fail(e, CAD_EFORMAT, d, n, "integer expected, found '%s'", s);
    *out = v;
    return CAD_OK;
}

int yt_scalar_double(const yt_doc *d, const yt_node *n, double *out, cad_err *e) {
    if (!n || n->kind != YT_SCALAR)
        return yt_fail(e, CAD_EFORMAT, d, n, "number expected, found %s",
                       n ? kind_name(n->kind) : "nothing");
    char buf[YT_MAX_NUMBER_CHARS + 1];
    if (number_text(n->value, buf, sizeof buf))
        return yt_fail(e, CAD_EFORMAT, d, n, "number expected, found %zu characters", strlen(n->value));
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno || end == buf || *end || !isfinite(v))
        return yt_fail(e, CAD_EFORMAT, d, n, "number expected, found '%s'", n->value);
    *out = v;
    return CAD_OK;
}

int yt_scalar_bool(const yt_doc *d, const yt_node *n, int *out, cad_err *e) {
    if (!n || n->kind != YT_SCALAR)
        return yt_fail(e, CAD_EFORMAT, d, n, "true or false expected, found %s",
                       n ? kind_name(n->kind) : "nothing");
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(n->value, yes[i]) == 0) { *out = 1; return CAD_OK; }
        if (strcasecmp(n->value, no[i]) == 0) { *out = 0; return CAD_OK; }
    }
    return yt_fail(e, CAD_EFORMAT, d, n, "true or false expected, found '%s'", n->value);
}
