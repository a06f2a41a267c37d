/*
 * tail.h — follow a file that another process appends to, one complete line at a time.
 *
 * The runner follows each running run's metrics.jsonl or log.txt. A tail hands out only
 * complete lines (ending in '\n'): a partial last line stays buffered until its newline
 * arrives, so a half-flushed JSON object or log line is never parsed. When the file is
 * replaced or truncated (an engine restarted from scratch rewrites it) the tail starts
 * again at offset 0 and says so, so the caller can drop what it derived from the old file.
 * Work and memory stay bounded whatever the file holds: each byte is looked at once for its
 * newline, and a line longer than CAD_TAIL_LINE_MAX is handed out cut to its first
 * CAD_TAIL_LINE_MAX bytes (the rest is skipped up to its newline), so an engine printing one
 * 200 MB line, or 300 MB of '\r', costs linear time and 1 MB of buffer.
 * Not here: what the lines mean (db/logparse.h, db/ingest.h).
 */
#ifndef CADDIE_TAIL_H
#define CADDIE_TAIL_H

#include <stddef.h>
#include <sys/types.h>

typedef struct cad_tail_file {
    char *path;
    long long offset;   /* bytes consumed (complete lines handed out + buffered partial) */
    dev_t dev;
    ino_t ino;
    int opened;         /* 1 once the file was seen */
    char *buf;          /* partial last line */
    size_t len, cap;
    size_t scanned;     /* bytes of buf already known to hold no '\n' */
    int overlong;       /* the partial line passed CAD_TAIL_LINE_MAX: buf holds its start */
} cad_tail_file;

#define CAD_TAIL_LINE_MAX (1u << 20) /* longest line handed out whole */

/* Prepare a tail of path (the file need not exist yet). Copies path. */
int cad_tail_init(cad_tail_file *t, const char *path);
void cad_tail_free(cad_tail_file *t);

/* Called for each complete line (without '\n', NUL-terminated, may contain '\r'). A
 * non-zero return stops the read; that line counts as consumed. */
typedef int (*cad_tail_line_fn)(void *ctx, const char *line, size_t len);

/* Read what was appended since the last call and call fn for each complete line, at most
 * max_bytes (0 = no limit) per call so one busy file cannot stall the runner.
 * *restarted is set to 1 when the file was truncated or replaced since the last call
 * (reading started again at offset 0). Returns the number of lines handed out, or -1 when
 * fn asked to stop. A missing file is 0 lines. */
long cad_tail_read(cad_tail_file *t, cad_tail_line_fn fn, void *ctx, size_t max_bytes,
                   int *restarted);

/* Hand out a buffered partial last line as if it were complete (the writer has exited and
 * will never finish it). Returns 1 if there was one. */
int cad_tail_flush_partial(cad_tail_file *t, cad_tail_line_fn fn, void *ctx);

/* The last n lines of a file (for failure reasons): a malloc'ed string, at most max_bytes,
 * "" when the file is missing. Caller frees. */
char *cad_tail_last_lines(const char *path, int n, size_t max_bytes);

#endif
