/*
 * deps.h — prerequisites between runs (table run_deps): a queued run starts only once every
 * run it needs is done. A sweep's `prepare:` section makes its training runs need the
 * prepare runs that build their tokenizer and shards (db/queue.c); the runner asks which
 * queued runs must still wait and which can never start because a prerequisite failed.
 *
 * Not here: the decision what to do about a failed prerequisite (runner/runner.c fails the
 * dependants), the prepare runs themselves (engine/prepcache.h).
 */
#ifndef CADDIE_DEPS_H
#define CADDIE_DEPS_H

#include "db/db.h"

/* run_id needs `needs` (both must exist); adding it twice is a no-op. */
int cad_db_add_dep(cad_db *db, const char *run_id, const char *needs, cad_err *e);

/* One unmet prerequisite of a queued run. */
typedef struct cad_dep_wait {
    char run_id[CAD_RUN_ID_MAX]; /* the queued run */
    char needs[CAD_RUN_ID_MAX];  /* what it waits for */
    cad_run_status needs_status; /* anything but done */
    char *needs_error;           /* the prerequisite's runs.error: its first line (the reason)
                                  * and the last line of its log, or NULL */
} cad_dep_wait;

/* Every (queued run, prerequisite not done) pair, ordered by run_id. Free with
 * cad_dep_wait_free. */
int cad_db_list_dep_waits(cad_db *db, cad_dep_wait **out, int *n, cad_err *e);
void cad_dep_wait_free(cad_dep_wait *w, int n);

/* The prerequisites of one run, in order, as "id (status)" joined by ", " into buf ("" when
 * none): for `caddie show`. */
int cad_db_deps_text(cad_db *db, const char *run_id, char *buf, size_t cap, cad_err *e);

#endif
