/*
 * deps.c — the run_deps table: recording prerequisites and listing the unmet ones (contract
 * in deps.h). File-scope SQL prepared once per connection, values bound.
 * Not here: what the runner does with the list (runner/runner.c), queueing (queue.c).
 */
#include "db/deps.h"

#include "db/db_internal.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

static const char add_dep_sql[] = "INSERT OR IGNORE INTO run_deps(run_id, needs) VALUES (?1, ?2)";

static const char waits_sql[] =
    "SELECT d.run_id, d.needs, n.status, n.error FROM run_deps d "
    "JOIN runs r ON r.run_id = d.run_id JOIN runs n ON n.run_id = d.needs "
    "WHERE r.status = 'queued' AND n.status <> 'done' ORDER BY d.run_id, d.needs";

static const char deps_of_sql[] =
    "SELECT d.needs, n.status FROM run_deps d JOIN runs n ON n.run_id = d.needs "
    "WHERE d.run_id = ?1 ORDER BY d.needs";

int cad_db_add_dep(cad_db *db, const char *run_id, const char *needs, cad_err *e) {
    sqlite3_stmt *s = cad_db_stmt(db, add_dep_sql, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, needs, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) return cad_db_fail(db, e, "recording a prerequisite");
    return CAD_OK;
}

/* A failure's first line (the reason: "exit code 1") and, when the error goes on with the
 * log's last lines, the last non-empty one: for a build that is the message saying why. */
static char *summary_of(const char *err) {
    size_t first = strcspn(err, "\n");
    const char *end = err + strlen(err);
    while (end > err + first && (end[-1] == '\n' || end[-1] == ' ')) end--;
    const char *last = end;
    while (last > err + first && last[-1] != '\n') last--;
    if (last <= err + first || strncmp(last, "---", 3) == 0) return strndup(err, first);
    size_t n = first + (size_t)(end - last) + 3;
    char *t = malloc(n);
    if (t) snprintf(t, n, "%.*s: %.*s", (int)first, err, (int)(end - last), last);
    return t;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col) {
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

int cad_db_list_dep_waits(cad_db *db, cad_dep_wait **out, int *n, cad_err *e) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = cad_db_stmt(db, waits_sql, e);
    if (!s) return CAD_EDB;
    int cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            cad_dep_wait *nw = realloc(*out, (size_t)cap * sizeof *nw);
            if (!nw) {
                cad_dep_wait_free(*out, *n);
                *out = NULL, *n = 0;
                return cad_fail(e, CAD_ENOMEM, "out of memory");
            }
            *out = nw;
        }
        cad_dep_wait *w = &(*out)[(*n)++];
        memset(w, 0, sizeof *w);
        copy_col(w->run_id, sizeof w->run_id, s, 0);
        copy_col(w->needs, sizeof w->needs, s, 1);
        const unsigned char *st = sqlite3_column_text(s, 2);
        if (!st || cad_run_status_parse((const char *)st, &w->needs_status) != CAD_OK)
            w->needs_status = CAD_RUN_QUEUED;
        const unsigned char *err = sqlite3_column_text(s, 3);
        if (err) w->needs_error = summary_of((const char *)err);
    }
    if (rc != SQLITE_DONE) {
        cad_dep_wait_free(*out, *n);
        *out = NULL, *n = 0;
        return cad_db_fail(db, e, "listing prerequisites");
    }
    return CAD_OK;
}

void cad_dep_wait_free(cad_dep_wait *w, int n) {
    for (int i = 0; w && i < n; i++) free(w[i].needs_error);
    free(w);
}

int cad_db_deps_text(cad_db *db, const char *run_id, char *buf, size_t cap, cad_err *e) {
    buf[0] = 0;
    sqlite3_stmt *s = cad_db_stmt(db, deps_of_sql, e);
    if (!s) return CAD_EDB;
    sqlite3_bind_text(s, 1, run_id, -1, SQLITE_STATIC);
    size_t o = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s (%s)", o ? ", " : "", sqlite3_column_text(s, 0),
                              sqlite3_column_text(s, 1));
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return cad_db_fail(db, e, "listing prerequisites");
    return CAD_OK;
}
