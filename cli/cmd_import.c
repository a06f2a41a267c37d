/*
 * cmd_import.c — `caddie import-log` and `caddie import-record`: their usage texts and option
 * tables, and the table of what each log became (stdout: run_id, status, val_bpb,
 * claimed_val_bpb, score_line, sweep) with a summary and the failures on stderr.
 *
 * The import itself (log -> run directory -> DB, record folders, claims) is db/import.h.
 * Not here: any import logic, parsing (db/logparse.c), SQL (db/).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/import.h"

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

/* A log's note as "caddie CMD: FILE:LINE: ..." (a line number leads a note about a line). */
static void print_note(const char *cmd, const char *a, const char *b, const char *note) {
    long line;
    int k = 0;
    if (sscanf(note, "line %ld: %n", &line, &k) == 1 && k > 0)
        fprintf(stderr, "caddie %s: %s%s:%ld: %s\n", cmd, a, b, line, note + k);
    else fprintf(stderr, "caddie %s: %s%s: %s\n", cmd, a, b, note);
}

/* ---- import-log ---------------------------------------------------------------------- */

enum import_log_opt { IL_SWEEP, IL_DB, IL_RUNS_DIR, IL_REPLACE };
static const cli_opt import_log_opts[] = {
    {IL_SWEEP, "sweep", 0, "NAME", "put the runs in this sweep (created when new)"},
    CLI_OPT_DB(IL_DB),
    {IL_RUNS_DIR, "runs-dir", 0, "DIR", "where run directories go (default $CADDIE_RUNS or ./runs)"},
    {IL_REPLACE, "replace", 0, NULL, "re-import a run that is already in the DB"},
    CLI_OPT_END,
};

static int cmd_import_log(int argc, char **argv) {
    const char *sweep = NULL, *dbpath = NULL;
    cad_import_opts o = {cad_import_default_runs_dir(), 0};
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_import_log_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum import_log_opt)id) {
        case IL_SWEEP: sweep = p.arg; break;
        case IL_DB: dbpath = p.arg; break;
        case IL_RUNS_DIR: o.runs_dir = p.arg; break;
        case IL_REPLACE: o.replace = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind >= argc) return cli_usage_error("import-log", "expected at least one log FILE");
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
    for (int i = p.ind; i < argc; i++) {
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
        if (!e.code && res.note[0]) print_note("import-log", argv[i], "", res.note);
    }
    cad_db_close(db);
    fprintf(stderr, "caddie import-log: %d imported, %d failed\n", imported, failures);
    return failures ? 1 : 0;
}

const cli_command cmd_import_log_def = {
    .name = "import-log",
    .fn = cmd_import_log,
    .summary = "import train_gpt.py-style training logs as runs (curves, score, params)",
    .synopsis = (const char *const[]){"FILE... [--sweep NAME] [--db FILE] [--runs-dir DIR] [--replace]", NULL},
    .description =
        "Parses each log (any train_gpt.py dialect: printed source skipped, step lines, size\n"
        "lines, final evaluation lines), writes a run directory DIR/imported/<run_id>/ (log.txt,\n"
        "metrics.jsonl, result.json, config.yaml with the printed hyperparameters) and ingests\n"
        "it. run_id is <sweep or parent folder>-<file name>. The score is the lowest val_bpb of\n"
        "the final evaluations of the quantized model (see db/logparse.c). Prints one line\n"
        "per run: run_id, status, val_bpb, claimed_val_bpb, score line, sweep.\n",
    .opts = import_log_opts,
};

/* ---- import-record ------------------------------------------------------------------- */

typedef struct record_tally {
    int imported, failures;
} record_tally;

static void record_log(void *ctx, const cad_import_record_log *l) {
    record_tally *t = ctx;
    if (l->note) {
        fprintf(stderr, "caddie import-record: %s/%s: %s\n", l->record, l->log, l->note);
        return;
    }
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
    if (l->res && l->res->note[0]) {
        char where[1024];
        snprintf(where, sizeof where, "%s/", l->record);
        print_note("import-record", where, l->log, l->res->note);
    }
}

enum import_record_opt { IR_DB, IR_RUNS_DIR, IR_REPLACE };
static const cli_opt import_record_opts[] = {
    CLI_OPT_DB(IR_DB),
    {IR_RUNS_DIR, "runs-dir", 0, "DIR", "where run directories go (default $CADDIE_RUNS or ./runs)"},
    {IR_REPLACE, "replace", 0, NULL, "re-import runs that are already in the DB"},
    CLI_OPT_END,
};

static int cmd_import_record(int argc, char **argv) {
    const char *dbpath = NULL;
    cad_import_opts o = {cad_import_default_runs_dir(), 0};
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_import_record_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum import_record_opt)id) {
        case IR_DB: dbpath = p.arg; break;
        case IR_RUNS_DIR: o.runs_dir = p.arg; break;
        case IR_REPLACE: o.replace = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind >= argc) return cli_usage_error("import-record", "expected at least one record DIR");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db;
    if (cad_db_open(cad_db_path(dbpath), 0, &db, &e))
        return cli_fail("import-record", "%s", e.msg);
    record_tally t = {0, 0};
    print_header();
    for (int i = p.ind; i < argc; i++) {
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

const cli_command cmd_import_record_def = {
    .name = "import-record",
    .fn = cmd_import_record,
    .summary = "import Parameter Golf record folders (README, submission.json, logs)",
    .synopsis = (const char *const[]){"DIR... [--db FILE] [--runs-dir DIR] [--replace]", NULL},
    .description =
        "Each record folder becomes a sweep named after the folder, with one run per log file\n"
        "(*.log, *.txt; files without training output are skipped). The submission's claimed\n"
        "val_bpb for a log (seed_results.<seed>, or val_bpb of a single-log record) is kept as\n"
        "the param claimed_val_bpb next to the parsed results.val_bpb; seed logs of one\n"
        "configuration share a group (sweep_groups: mean and std over seeds).\n",
    .opts = import_record_opts,
};
