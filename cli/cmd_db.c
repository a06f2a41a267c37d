/*
 * cmd_db.c — `caddie db migrate`, `caddie db rebuild` (the DB from the run directories) and
 * `caddie import-run DIR...` (a run directory into the DB).
 * Not here: the SQL (schema/), the ingestion logic (ingest.c).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/ingest.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int db_migrate(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'b'}, {0, 0, 0, 0}};
    const char *db_opt = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'b') db_opt = optarg;
        else return cli_usage_error("db", "unknown option");
    }
    if (optind != argc) return cli_usage_error("db", "migrate takes no arguments");
    const char *path = cad_db_path(db_opt);
    cad_err e;
    cad_err_clear(&e);
    cad_db *db = NULL;
    int from = 0, to = 0;
    int rc = cad_db_open(path, CAD_DB_NO_MIGRATE, &db, &e);
    if (!rc) rc = cad_db_migrate(db, &from, &to, &e);
    cad_db_close(db);
    if (rc) return cli_fail("db", "%s", e.msg);
    if (from == to) printf("%s: schema version %d (up to date)\n", path, to);
    else printf("%s: schema version %d -> %d\n", path, from, to);
    return 0;
}

static void say_skipped(void *ctx, const char *run_dir, const char *why) {
    (void)ctx;
    fprintf(stderr, "caddie db: rebuild: skipped %s: %s\n", run_dir, why);
}

static int db_rebuild(int argc, char **argv) {
    static const struct option opts[] = {
        {"db", required_argument, 0, 'b'}, {"runs-dir", required_argument, 0, 'r'}, {0, 0, 0, 0}};
    const char *db_opt = NULL, *runs = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'b') db_opt = optarg;
        else if (c == 'r') runs = optarg;
        else return cli_usage_error("db", "unknown option");
    }
    if (optind != argc) return cli_usage_error("db", "rebuild takes no arguments (use --runs-dir)");
    if (!runs) {
        const char *env = getenv("CADDIE_RUNS");
        runs = env && *env ? env : "runs";
    }
    const char *path = cad_db_path(db_opt);
    cad_err e;
    cad_err_clear(&e);
    cad_db *db = NULL;
    int n = 0, skipped = 0;
    int rc = cad_db_open(path, 0, &db, &e);
    if (!rc) rc = cad_ingest_rebuild(db, runs, &n, &skipped, say_skipped, NULL, &e);
    cad_db_close(db);
    if (rc) return cli_fail("db", "rebuild: %s", e.msg);
    printf("%s: rebuilt from %s: %d run%s", path, runs, n, n == 1 ? "" : "s");
    if (skipped) printf(", %d run dir%s skipped (see above)", skipped, skipped == 1 ? "" : "s");
    printf("\n");
    return skipped ? 1 : 0; /* the rest is in; the exit status says something was left out */
}

int cmd_db(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("db", "expected a subcommand: migrate or rebuild");
    if (strcmp(argv[1], "migrate") == 0) return db_migrate(argc - 1, argv + 1);
    if (strcmp(argv[1], "rebuild") == 0) return db_rebuild(argc - 1, argv + 1);
    return cli_usage_error("db", "unknown subcommand '%s' (expected migrate or rebuild)", argv[1]);
}

int cmd_import_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"db", required_argument, 0, 'b'}, {"no-replace", no_argument, 0, 'k'}, {0, 0, 0, 0}};
    const char *db_opt = NULL;
    int keep = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'b') db_opt = optarg;
        else if (c == 'k') keep = 1;
        else return cli_usage_error("import-run", "unknown option");
    }
    if (optind >= argc) return cli_usage_error("import-run", "expected at least one run DIR");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db = NULL;
    if (cad_db_open(cad_db_path(db_opt), 0, &db, &e)) return cli_fail("import-run", "%s", e.msg);
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        char id[CAD_RUN_ID_MAX];
        if (cad_ingest_import(db, argv[i], !keep, id, sizeof id, &e)) {
            cli_fail("import-run", "%s", e.msg);
            failed = 1;
            continue;
        }
        cad_run r;
        if (cad_db_get_run(db, id, &r, &e) == CAD_OK) {
            printf("%s  %s  %s\n", id, cad_run_status_name(r.status), r.run_dir ? r.run_dir : "");
            cad_run_free(&r);
        }
    }
    cad_db_close(db);
    return failed;
}
