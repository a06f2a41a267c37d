/*
 * fsutil.h — the few file-system helpers every part of caddie needs: create a directory
 * path, read a whole file, open an input that must be a regular file. One implementation
 * each (engine/, sweep/ and reports/ share them), so error messages and edge cases (path too
 * long, a file where a directory should be, a short read, a FIFO or device given as an input
 * that would block or never end) are handled once.
 * Not here: atomic writes (each writer knows its own format and when to fsync).
 */
#ifndef CADDIE_FSUTIL_H
#define CADDIE_FSUTIL_H

#include "engine/status.h"

#include <stddef.h>

/* mkdir -p: create path and its missing parents (mode 0755). An existing directory is fine;
 * an existing non-directory is CAD_EIO "<path>: not a directory". */
int cad_mkdir_p(const char *path, cad_err *e);

/* Read the whole file into a malloc'd, NUL-terminated buffer (*len excludes the NUL; len may
 * be NULL). On failure *buf is NULL and e names the path and the system error. */
int cad_read_file(const char *path, char **buf, size_t *len, cad_err *e);

/* Open path read-only for an input that must be a regular file (shard, checkpoint,
 * safetensors, YAML, text corpus). A FIFO, device, socket or directory is refused with
 * CAD_EIO "<path>: not a regular file (<kind>)" without blocking: the open itself is
 * non-blocking (a FIFO with no writer would otherwise hang in open), and the flag is
 * cleared again before the descriptor is handed back. what names the input in "cannot open
 * <what>: <reason>" (NULL: just "cannot open"). *fd is -1 on failure. */
int cad_open_regular(const char *path, const char *what, int *fd, cad_err *e);

/* cad_read_file for a regular file of at most max_bytes (text inputs: a size cap means a
 * wrong path to a huge file fails at once instead of exhausting memory). Longer files are
 * CAD_EIO "<path>: <size> bytes, more than the <max_bytes>-byte limit". */
int cad_read_regular_file(const char *path, const char *what, size_t max_bytes, char **buf,
                          size_t *len, cad_err *e);

#endif
