/*
 * test_util.h — the file and process helpers that several tests/unit/test_*.c need, kept in
 * one place so each test does not grow its own copy: scratch paths under check_tmpdir(),
 * writing and reading whole files, sending stdout or stderr to a file around a call, and
 * (only when the test includes db.h and <sqlite3.h> before this header) opening a scratch
 * results DB and reading one number out of it with SQL; (only after safetensors.h) a named
 * tensor of a loaded fixture; (only after model.h and export.h) a model's int8 artifact round
 * trip.
 *
 * Header-only like check.h (each test is its own executable). A helper that cannot do its
 * job (cannot create a file the test needs) exits 2, which tests/run.sh reports as a broken
 * test rather than letting later checks fail for an unrelated reason.
 *
 * Not here: assertions (check.h), fixtures or tolerances of one area (they stay with the test).
 */
#ifndef CADDIE_TEST_UTIL_H
#define CADDIE_TEST_UTIL_H

#include "check.h"
#include "db/db_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "<check_tmpdir()>/<name>". Eight rotating buffers, so a few paths can be alive at once. */
static inline const char *check_tmp_path(const char *name) {
    static char buf[8][8200];
    static int k;
    k = (k + 1) & 7;
    snprintf(buf[k], sizeof buf[k], "%s/%s", check_tmpdir(), name);
    return buf[k];
}

/* "<check_tmpdir()>/<n>-<name>" with n never used before in this executable: a path no
 * earlier call of the test has written (for loaders that must not see a previous file). */
static inline const char *check_tmp_fresh(const char *name) {
    static int n;
    char unique[4096];
    snprintf(unique, sizeof unique, "%d-%s", n++, name);
    return check_tmp_path(unique);
}

/* Write n bytes to path (created or truncated); returns path. */
static inline const char *check_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (fwrite(data, 1, n, f) != n || fclose(f) != 0) { perror(path); exit(2); }
    return path;
}

/* Write a text to path (created or truncated); returns path. */
static inline const char *check_write_file(const char *path, const char *text) {
    return check_write_bytes(path, text, strlen(text));
}

/* The whole file as a malloc'd NUL-terminated buffer (its size in *len when len is not
 * NULL); NULL when it cannot be read. */
static inline char *check_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!b || got != (size_t)n) {
        free(b);
        return NULL;
    }
    b[got] = 0;
    if (len) *len = got;
    return b;
}

/* Send this process's stdout (fd 1) to path ("/dev/null" to silence it) until
 * check_stdout_restore(returned fd). */
static inline int check_stdout_redirect(const char *path) {
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0) { perror(path); exit(2); }
    dup2(fd, 1);
    close(fd);
    return saved;
}

static inline void check_stdout_restore(int saved) {
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
}

/* The same for stderr (fd 2), e.g. to read a command's usage error. */
static inline int check_stderr_redirect(const char *path) {
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0) { perror(path); exit(2); }
    dup2(fd, 2);
    close(fd);
    return saved;
}

static inline void check_stderr_restore(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

#if defined(CADDIE_DB_H) && defined(SQLITE_VERSION)
/* Open (creating and migrating) the results DB at path; NULL, with the reason printed, when
 * that fails so the test's own checks on the handle fail. */
static inline cad_db *check_db_open(const char *path) {
    cad_db *db = NULL;
    cad_err e;
    if (cad_db_open(path, 0, &db, &e) != CAD_OK) {
        printf("open %s: %s\n", path, e.msg);
        return NULL;
    }
    return db;
}

/* First column of the first row of sql as a double: NAN when it is NULL, there is no row,
 * or the SQL does not prepare (the reason is printed). */
static inline double check_sql_double(cad_db *db, const char *sql) {
    sqlite3_stmt *st;
    double v = NAN;
    if (sqlite3_prepare_v2(cad_db_sqlite(db), sql, -1, &st, NULL) != SQLITE_OK) {
        printf("prepare failed: %s: %s\n", sql, sqlite3_errmsg(cad_db_sqlite(db)));
        return NAN;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}
#endif

#if defined(CADDIE_SAFETENSORS_H)
/* The tensor called name in a loaded safetensors fixture. A missing one ends the test
 * executable (exit 1): the fixture is stale, and every later check would read nothing. */
static inline const cad_named_tensor *check_tensor_get(const cad_safetensors_file *f,
                                                       const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    fprintf(stdout, "fixture tensor '%s' missing\n", name);
    exit(1);
}
#endif

#if defined(CADDIE_MODEL_H) && defined(CADDIE_EXPORT_H)
/* Write every parameter of m as train_gpt.py's artifact (8-bit rows, zlib) to
 * check_tmp_path(name) and decode it again. Returns the decoded floats laid out as
 * m->param_mem (n_param_floats; the caller frees), with *ts_out (the caller frees) naming the
 * decoded tensors so a test can check each one's scheme and error, and *st the export's
 * figures. A failed export or import ends the test executable (exit 1): every later check
 * would compare against nothing. */
static inline float *check_int8_roundtrip(const cad_model *m, const char *name,
                                          cad_named_tensor **ts_out, cad_int8_stats *st) {
    float *dec = calloc(m->n_param_floats, sizeof(float));
    cad_named_tensor *ts = calloc((size_t)m->n_params, sizeof *ts);
    if (!dec || !ts) exit(2);
    for (int i = 0; i < m->n_params; i++) {
        const cad_param *p = &m->params[i];
        ts[i] = (cad_named_tensor){p->name, p->ndim, {p->shape[0], p->shape[1]}, (size_t)p->numel, p->data};
    }
    cad_quant_opts qo = {CAD_COMPRESS_ZLIB, 8, 8, 0, 0.0, 0.0, NULL, {0, 0, 0}};
    cad_err e = {0};
    const char *art = check_tmp_path(name);
    if (cad_int8_export(art, ts, m->n_params, &qo, st, &e) != CAD_OK) {
        fprintf(stdout, "int8 export of %s failed: %s\n", art, e.msg);
        exit(1);
    }
    for (int i = 0; i < m->n_params; i++) ts[i].data = dec + (m->params[i].data - m->param_mem);
    if (cad_int8_import(art, ts, m->n_params, &e) != CAD_OK) {
        fprintf(stdout, "int8 import of %s failed: %s\n", art, e.msg);
        exit(1);
    }
    *ts_out = ts;
    return dec;
}
#endif

#endif
