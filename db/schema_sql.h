/*
 * schema_sql.h — the SQL migrations of schema/NNNN_name.sql, compiled into the binary.
 *
 * The Makefile generates build/gen/schema_sql.c from schema/NNNN_name.sql (sorted), so
 * caddie needs no schema files at run time. db/db.c applies them in order; the number
 * in each file name becomes PRAGMA user_version after that file is applied.
 * Not here: the SQL itself (schema/), applying it (db/db.c).
 */
#ifndef CADDIE_SCHEMA_SQL_H
#define CADDIE_SCHEMA_SQL_H

typedef struct cad_schema_migration {
    const char *name; /* file name, e.g. "0001_init.sql" (NULL ends the table) */
    const char *sql;  /* its text */
} cad_schema_migration;

extern const cad_schema_migration cad_schema_migrations[];

#endif
