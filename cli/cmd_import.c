/*
 * cmd_import.c — `caddie import-log` and `caddie import-record`: their options, and the
 * table of what each log became (stdout: run_id, status, val_bpb, claimed_val_bpb,
 * score_line, sweep) with a summary and the failures on stderr.
 *
 * The import itself (log -> run directory -> DB, record folders, claims) is db/import.h.
 * Not here: any import logic, parsing (db/logparse.c), SQL (db/).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/import.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void print_header(void) {
    printf("run_id\tstatus\tval_bpb\tclaimed_val_bpb\tscore_line\tsweep\n");
}

static void print_row(const cad_import_result *r) {
    char bpb[32] = "-";
    if (r->has_score) snprintf(bpb, sizeof bpb, "%.8f", r->val_bpb);
    printf("%s\t%s\t%s\t%s\t%s\t%s\n", r->run_id, cad_run_status_name(r->status), bpb,
           r->claimed_val_bpb[0] ? r->claimed_val_bpb : "-",
           r->has_score ? r->score_line : "no final evaluation line", r->sweep ? r->sweep : "-");
}

/* ---- import-log ---------------------------------------------------------------------- */

int cmd_import_log(int argc, char **argv) {
    static const struct option opts[] = {{"sweep", required_argument, 0, 's'},
                                         {"db", required_argument, 0, 'd'},
                                         {"runs-dir", required_argument, 0, 'r'},
                                         {"replace", no_argument, 0, 'R'},
                                         {0, 0, 0, 0}};
    const char *sweep = NULL, *dbpath = NULL;
    cad_import_opts o = {cad_import_default_runs_dir(), 0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': sweep = optarg; break;
        case 'd': dbpath = optarg; break;
        case 'r': o.runs_dir = optarg; break;
        case 'R': o.replace = 1; break;
        default: return cli_usage_error("import-log", "unknown option");
        }
    }
    if (optind >= argc) return cli_usage_error("import-log", "expected at least one log FILE");
    if (sweep && !*sweep) return cli_usage_error("import-log", "--sweep needs a name");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db;
    if (cad_db_open(cad_db_path(dbpath), 0, &db, &e))
        return cli_fail("import-log", "%s", e.msg);
    int64_t sweep_id = -1;
    if (sweep && cad_import_sweep(db, sweep, "imported training logs", &sweep_id, &e)) {
        cad_db_close(db);
        return cli_fail("import-log", "%s", e.msg);
    }
    int failures = 0, imported = 0;
    print_header();
    for (int i = optind; i < argc; i++) {
        cad_import_result res;
        cad_err_clear(&e);
        if (cad_import_log(db, &o, argv[i], sweep, sweep_id, &res, &e)) {
            fprintf(stderr, "caddie import-log: %s\n", e.msg);
            failures++;
        } else if (res.skipped) {
            fprintf(stderr, "caddie import-log: %s: no training output recognised (no step or "
                            "final evaluation lines)\n", argv[i]);
            failures++;
        } else {
            print_row(&res);
            imported++;
        }
    }
    cad_db_close(db);
    fprintf(stderr, "caddie import-log: %d imported, %d failed\n", imported, failures);
    return failures ? 1 : 0;
}

/* ---- import-record ------------------------------------------------------------------- */

typedef struct record_tally {
    int imported, failures;
} record_tally;

static void record_log(void *ctx, const cad_import_record_log *l) {
    record_tally *t = ctx;
    if (l->err) {
        fprintf(stderr, "caddie import-record: %s\n", l->err->msg);
        t->failures++;
    } else if (l->res->skipped) {
        fprintf(stderr, "caddie import-record: %s/%s: skipped, no training output (no step or "
                        "final evaluation lines)\n", l->record, l->log);
    } else {
        print_row(l->res);
        t->imported++;
    }
}

int cmd_import_record(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                         {"runs-dir", required_argument, 0, 'r'},
                                         {"replace", no_argument, 0, 'R'},
                                         {0, 0, 0, 0}};
    const char *dbpath = NULL;
    cad_import_opts o = {cad_import_default_runs_dir(), 0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dbpath = optarg; break;
        case 'r': o.runs_dir = optarg; break;
        case 'R': o.replace = 1; break;
        default: return cli_usage_error("import-record", "unknown option");
        }
    }
    if (optind >= argc) return cli_usage_error("import-record", "expected at least one record DIR");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db;
    if (cad_db_open(cad_db_path(dbpath), 0, &db, &e))
        return cli_fail("import-record", "%s", e.msg);
    record_tally t = {0, 0};
    print_header();
    for (int i = optind; i < argc; i++) {
        cad_err_clear(&e);
        if (cad_import_record(db, &o, argv[i], record_log, &t, &e)) {
            fprintf(stderr, "caddie import-record: %s\n", e.msg);
            t.failures++;
        }
    }
    cad_db_close(db);
    fprintf(stderr, "caddie import-record: %d runs imported, %d failed\n", t.imported, t.failures);
    return t.failures ? 1 : 0;
}
