/*
 * fsutil.h — the few file-system helpers every part of caddie needs: create a directory
 * path, read a whole file. One implementation each (engine/, sweep/ and reports/ share
 * them), so error messages and edge cases (path too long, a file where a directory should
 * be, a short read) are handled once.
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

#endif
