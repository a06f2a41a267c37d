/*
 * textdocs.h — read documents from the text inputs of `data prepare` / `tokenizer train`.
 *
 * Two formats, chosen per file by its name:
 *   *.jsonl  one JSON object per line; the document is its "text" string field (decoded
 *            here: all JSON escapes incl. \uXXXX and surrogate pairs). Blank lines are
 *            skipped; a line without a string "text" field is an error naming file:line.
 *   other    plain UTF-8 text; documents are separated by one or more blank lines (a line
 *            that is empty or only whitespace). A document's text is its lines joined with
 *            "\n", without the final newline.
 * Documents are returned exactly as found (no normalisation), in file order.
 * Not here: tokenization, shard writing. This is the one JSON decoder caddie writes itself
 * (sweep/ and reports/ read JSON through SQLite's JSON1).
 */
#ifndef CADDIE_TEXTDOCS_H
#define CADDIE_TEXTDOCS_H

#include "engine/status.h"

#include <stdio.h>
#include <stddef.h>

typedef struct cad_docs {
    const char *const *inputs; /* borrowed list of file names */
    int n_inputs;
    int file_idx;              /* file being read */
    FILE *f;
    long line_no;              /* 1-based line of the last line read in the current file */
    int jsonl;                 /* current file is JSONL */
    char *line;                /* getline buffer */
    size_t line_cap;
    char *doc;                 /* the current document (NUL-terminated, may contain NULs) */
    size_t doc_len, doc_cap;
    char *key;                 /* scratch for decoded JSON keys */
    size_t key_len, key_cap;
    long bytes_read;           /* bytes consumed from all inputs so far (for progress) */
    long docs_returned;
} cad_docs;

int cad_docs_open(cad_docs *d, const char *const *inputs, int n_inputs, cad_err *e);
/* Next document: returns 1 and sets *text and *len (valid until the next call; the text is
 * NUL-terminated but may contain NULs), 0 after the last document of the last input, or a
 * negative status (-CAD_EFORMAT, -CAD_EIO, ...) with e filled. */
int cad_docs_next(cad_docs *d, const char **text, size_t *len, cad_err *e);
void cad_docs_close(cad_docs *d);

/* Total size in bytes of all inputs (for a progress bar); -1 when unknown. */
long cad_docs_total_bytes(const char *const *inputs, int n_inputs);

/* Decode the JSON string literal starting at s[0] == '"' (s has n bytes). Appends the UTF-8
 * result to *out (realloc'd; *out_len and *out_cap updated) and sets *consumed to the number of
 * input bytes including both quotes. Returns 0, or -1 with a reason in *why on bad input
 * (unterminated, bad escape, lone surrogate, raw control character). */
int cad_json_string_decode(const char *s, size_t n, char **out, size_t *out_len, size_t *out_cap,
                           size_t *consumed, const char **why);

#endif
