/*
 * yamltree.h — load a YAML file into a small tree with line:col marks (libyaml underneath).
 *
 * Both readers of YAML in caddie use this: the engine's run config (engine/config.c) and
 * the sweep spec (sweep/spec.c). They need the same things: nested maps/sequences/scalars,
 * the 1-based line:col of every node for "file:line:col: message" errors, and duplicate
 * keys rejected. Anchors/aliases are resolved by copying, within a budget (2,000,000 nodes and
 * 64 levels for the whole tree, copies included: an alias bomb is an error, not an OOM);
 * tags are ignored.
 * Not here: any meaning of keys (validation belongs to the reader).
 */
#ifndef CADDIE_YAMLTREE_H
#define CADDIE_YAMLTREE_H

#include "engine/status.h"

#include <stddef.h>

typedef enum { YT_SCALAR, YT_SEQ, YT_MAP } yt_kind;

typedef struct yt_node yt_node;
struct yt_node {
    yt_kind kind;
    int line, col;       /* 1-based position of the node's start in the file */
    char *value;         /* YT_SCALAR: text as written (no type conversion) */
    int quoted;          /* YT_SCALAR: 1 if it was single/double quoted (a string for sure) */
    size_t n;            /* YT_SEQ: items; YT_MAP: pairs */
    yt_node **items;     /* YT_SEQ: n items */
    yt_node **keys;      /* YT_MAP: n scalar keys (line/col of the key) */
    yt_node **vals;      /* YT_MAP: n values */
};

typedef struct yt_doc {
    char *path;          /* as given, for messages */
    char *text;          /* the whole file (e.g. to store a sweep's spec text verbatim) */
    size_t text_len;
    yt_node *root;       /* NULL for an empty document */
} yt_doc;

/* Parse a file. On a syntax error, duplicate key or exceeded budget returns CAD_EFORMAT with
 * "path:line:col: message". The file must be a regular file of at most 64 MiB (a FIFO or
 * device is CAD_EIO "path: not a regular file (...)", without blocking). On success *out must
 * be freed with yt_doc_free. */
int yt_load_file(const char *path, yt_doc **out, cad_err *e);
/* Same for text in memory; name is used in messages. */
int yt_load_string(const char *name, const char *text, size_t len, yt_doc **out, cad_err *e);
void yt_doc_free(yt_doc *d);

/* Map lookup: the value for key, or NULL (also NULL if m is not a map). */
const yt_node *yt_map_get(const yt_node *m, const char *key);

/* Scalar conversions; return CAD_OK or CAD_EFORMAT with "path:line:col: <what> expected". */
int yt_scalar_long(const yt_doc *d, const yt_node *n, long *out, cad_err *e);
int yt_scalar_double(const yt_doc *d, const yt_node *n, double *out, cad_err *e);
int yt_scalar_bool(const yt_doc *d, const yt_node *n, int *out, cad_err *e);  /* true/false/yes/no/1/0 */

/* Format "path:line:col: " + message into e and return code. */
int yt_fail(cad_err *e, int code, const yt_doc *d, const yt_node *n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
