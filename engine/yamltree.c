/*
 * yamltree.c — libyaml event stream -> yt_node tree with 1-based line:col marks.
 *
 * Event-driven on purpose: libyaml's document API loses nothing we need, but building our
 * own tree lets us reject duplicate keys at the second key's position and keep every
 * node's mark for "file:line:col" messages. Aliases are resolved by deep copy (sweep files
 * are small). Only the first document of a stream is read; a second one is an error, since
 * a stray "---" usually means a pasted file.
 * Not here: any meaning of keys or type rules beyond scalar conversion helpers.
 */
#include "engine/yamltree.h"

#include "engine/fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef struct anchor {
    char *name;
    yt_node *node;
} anchor;

typedef struct builder {
    yaml_parser_t parser;
    const char *name;
    cad_err *e;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    int depth;
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

static yt_node *node_new(yt_kind kind, const yaml_mark_t *m) {
    yt_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = (int)m->line + 1; /* libyaml marks are 0-based */
    n->col = (int)m->column + 1;
    return n;
}

static yt_node *node_copy(const yt_node *s) {
    yt_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    *n = *s;
    n->value = s->value ? strdup(s->value) : NULL;
    n->items = n->keys = n->vals = NULL;
    if (s->n) {
        if (s->kind == YT_SEQ) n->items = calloc(s->n, sizeof *n->items);
        else {
            n->keys = calloc(s->n, sizeof *n->keys);
            n->vals = calloc(s->n, sizeof *n->vals);
        }
        for (size_t i = 0; i < s->n; i++) {
            if (s->kind == YT_SEQ) n->items[i] = node_copy(s->items[i]);
            else {
                n->keys[i] = node_copy(s->keys[i]);
                n->vals[i] = node_copy(s->vals[i]);
            }
        }
    }
    return n;
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
    b->anchors[b->n_anchors].name = strdup((const char *)name);
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

/* Build the node that starts with event ev (already parsed). */
static int build_node(builder *b, yaml_event_t *ev, yt_node **out) {
    int rc = CAD_OK;
    yt_node *n = NULL;
    if (++b->depth > 64) {
        rc = fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                     "nesting deeper than 64 levels", NULL);
        goto done;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        for (size_t i = b->n_anchors; i-- > 0;)
            if (strcmp(b->anchors[i].name, name) == 0) {
                n = node_copy(b->anchors[i].node);
                n->line = (int)ev->start_mark.line + 1;
                n->col = (int)ev->start_mark.column + 1;
                break;
            }
        if (!n)
            rc = fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                         "unknown alias", name);
        break;
    }
    case YAML_SCALAR_EVENT:
        n = node_new(YT_SCALAR, &ev->start_mark);
        n->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
        rc = remember_anchor(b, ev->data.scalar.anchor, n);
        break;
    case YAML_SEQUENCE_START_EVENT:
        n = node_new(YT_SEQ, &ev->start_mark);
        rc = remember_anchor(b, ev->data.sequence_start.anchor, n);
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
            if (!rc && push_ptr(&n->items, n->n, item)) rc = cad_fail(b->e, CAD_ENOMEM, "oom");
            if (!rc) n->n++;
            else node_free(item);
        }
        break;
    case YAML_MAPPING_START_EVENT:
        n = node_new(YT_MAP, &ev->start_mark);
        rc = remember_anchor(b, ev->data.mapping_start.anchor, n);
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
            for (size_t i = 0; !rc && i < n->n; i++)
                if (strcmp(n->keys[i]->value, key->value) == 0) {
                    char prev[64];
                    snprintf(prev, sizeof prev, "(first at line %d)", n->keys[i]->line);
                    char what[300];
                    snprintf(what, sizeof what, "duplicate key '%.200s'", key->value);
                    rc = fail_at(b, key->line, key->col, what, prev);
                }
            if (!rc) rc = next_event(b, &vev);
            if (!rc) {
                rc = build_node(b, &vev, &val);
                yaml_event_delete(&vev);
            }
            if (!rc && (push_ptr(&n->keys, n->n, key) || push_ptr(&n->vals, n->n, val)))
                rc = cad_fail(b->e, CAD_ENOMEM, "oom");
            if (!rc) n->n++;
            else {
                node_free(key);
                node_free(val);
            }
        }
        break;
    default:
        rc = fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                     "unexpected YAML event", NULL);
    }
done:
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
    d->text = malloc(len + 1);
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
    int rc = cad_read_file(path, &buf, &len, e);
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

int yt_scalar_long(const yt_doc *d, const yt_node *n, long *out, cad_err *e) {
    if (!n || n->kind != YT_SCALAR)
        return yt_fail(e, CAD_EFORMAT, d, n, "integer expected, found %s",
                       n ? kind_name(n->kind) : "nothing");
    const char *s = n->value;
    char *end;
    errno = 0;
    /* Accept 524_288 and 5e5-style integers written by people, reject 1.5 */
    char buf[64];
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 1 < sizeof buf; i++)
        if (s[i] != '_') buf[j++] = s[i];
    buf[j] = 0;
    long v = strtol(buf, &end, 10);
    if (*end == 'e' || *end == 'E' || *end == '.') {
        char *dend;
        double dv = strtod(buf, &dend);
        if (*dend == 0 && fabs(dv) < 9e18 && dv == (double)(long)dv) {
            *out = (long)dv;
            return CAD_OK;
        }
    }
    if (errno || end == buf || *end)
        return yt_fail(e, CAD_EFORMAT, d, n, "integer expected, found '%s'", s);
    *out = v;
    return CAD_OK;
}

int yt_scalar_double(const yt_doc *d, const yt_node *n, double *out, cad_err *e) {
    if (!n || n->kind != YT_SCALAR)
        return yt_fail(e, CAD_EFORMAT, d, n, "number expected, found %s",
                       n ? kind_name(n->kind) : "nothing");
    char buf[128];
    size_t j = 0;
    for (size_t i = 0; n->value[i] && j + 1 < sizeof buf; i++)
        if (n->value[i] != '_') buf[j++] = n->value[i];
    buf[j] = 0;
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
