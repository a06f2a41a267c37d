/*
 * db_internal.h — what the db/ sources share about the connection behind a cad_db: the
 * SQLite handle and a per-connection cache of prepared statements for SQL text that lives in
 * the db/ source that owns the query (db/runs.c, db/import.c, db/ingest.c).
 *
 * For the sources of db/ only: every other layer reaches the database through the named, typed
 * functions of db/db.h, db/runs.h, db/ingest.h and db/import.h, so no SQL text and no
 * sqlite3 handle live outside db/.
 * Not here: the statements of db.c itself (its own enum-indexed cache), any public API.
 */
#ifndef CADDIE_DB_INTERNAL_H
#define CADDIE_DB_INTERNAL_H

#include "db/db.h"

#include <sqlite3.h>

/* The connection's SQLite handle. */
sqlite3 *cad_db_sqlite(cad_db *db);

/* The prepared statement for sql, reset and with its bindings cleared. sql must be a
 * string with static storage (a file-scope array): the cache is keyed by its address, so
 * each query is prepared once per connection and finalized by cad_db_close. NULL (e
 * filled, CAD_EDB) when SQLite refuses the text. */
sqlite3_stmt *cad_db_stmt(cad_db *db, const char *sql, cad_err *e);

/* e <- CAD_EDB "<db file>: <what>: <sqlite's message>"; returns CAD_EDB. */
int cad_db_fail(cad_db *db, cad_err *e, const char *what);

#endif
