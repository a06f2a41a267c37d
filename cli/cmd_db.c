/*
 * cmd_db.c — `caddie db migrate`, `caddie db rebuild` (the DB from the run directories) and
 * `caddie import-run DIR...` (a run directory into the DB): their usage texts, option tables
 * and printing.
 * Not here: the SQL (schema/), the ingestion logic (ingest.c).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum migrate_opt { MIG_DB };
static const cli_opt migrate_opts[] = {CLI_OPT_DB(MIG_DB), CLI_OPT_END};
static int db_migrate(int argc, char **argv);
static const cli_subcommand db_migrate_sub = {
    .name = "migrate",
    .fn = db_migrate,
    .synopsis = (const char *const[]){"[--db FILE]", NULL},
    .description = "migrate: apply the schema migrations compiled into caddie (also done on every open).\n",
    .opts = migrate_opts,
};

static int db_migrate(int argc, char **argv) {
    const char *db_opt = NULL;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_db_def, &db_migrate_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum migrate_opt)id) {
        case MIG_DB: db_opt = p.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind != argc) return cli_usage_error("db", "migrate takes no arguments");
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

enum rebuild_opt { REB_RUNS_DIR, REB_DB };
static const cli_opt rebuild_opts[] = {
    {REB_RUNS_DIR, "runs-dir", 0, "DIR", "run directories to import (default $CADDIE_RUNS or ./runs)"},
    CLI_OPT_DB(REB_DB),
    CLI_OPT_END,
};
static int db_rebuild(int argc, char **argv);
static const cli_subcommand db_rebuild_sub = {
    .name = "rebuild",
    .fn = db_rebuild,
    .synopsis = (const char *const[]){"[--runs-dir DIR] [--db FILE]", NULL},
    .description =
        "rebuild: empty the database and import every DIR/*/ holding run.json or config.yaml\n"
        "(runs, sweeps, events, metrics, results, artifacts). A run directory that cannot be\n"
        "imported (bad run.json, truncated files) is skipped with a line naming it, and the\n"
        "exit status is 1; a failure of the database itself rolls back everything. The run\n"
        "directories are the truth: a deleted database loses nothing. Stop 'caddie run' first.\n",
    .opts = rebuild_opts,
};

static int db_rebuild(int argc, char **argv) {
    const char *db_opt = NULL, *runs = NULL;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_db_def, &db_rebuild_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum rebuild_opt)id) {
        case REB_DB: db_opt = p.arg; break;
        case REB_RUNS_DIR: runs = p.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind != argc) return cli_usage_error("db", "rebuild takes no arguments (use --runs-dir)");
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

const cli_command cmd_db_def = {
    .name = "db",
    .summary = "migrate the results database, or rebuild it from the run directories",
    .subs = (const cli_subcommand *const[]){&db_migrate_sub, &db_rebuild_sub, NULL},
};

/* ---- import-run ---------------------------------------------------------------------- */

enum import_run_opt { IMP_NO_REPLACE, IMP_DB };
static const cli_opt import_run_opts[] = {
    {IMP_NO_REPLACE, "no-replace", 0, NULL, "fail when the run is already in the DB (default: replace it)"},
    CLI_OPT_DB(IMP_DB),
    CLI_OPT_END,
};

static int cmd_import_run(int argc, char **argv) {
    const char *db_opt = NULL;
    int keep = 0, id;
    cli_parser p;
    cli_parser_init(&p, &cmd_import_run_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum import_run_opt)id) {
        case IMP_DB: db_opt = p.arg; break;
        case IMP_NO_REPLACE: keep = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind >= argc) return cli_usage_error("import-run", "expected at least one run DIR");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db = NULL;
    if (cad_db_open(cad_db_path(db_opt), 0, &db, &e)) return cli_fail("import-run", "%s", e.msg);
    int failed = 0;
    for (int i = p.ind; i < argc; i++) {
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

const cli_command cmd_import_run_def = {
    .name = "import-run",
    .fn = cmd_import_run,
    .summary = "import run directories (e.g. of a standalone caddie train) into the DB",
    .synopsis = (const char *const[]){"DIR... [--no-replace] [--db FILE]", NULL},
    .description =
        "Imports each run directory: run.json when present (a queued/run sweep run), else\n"
        "config.yaml (a standalone 'caddie train'; done when result.json exists, else failed),\n"
        "then metrics.jsonl, result.json and the artifact files. Prints run id, status, dir.\n",
    .opts = import_run_opts,
};
