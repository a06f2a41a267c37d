/*
 * cli.h — the command table behind `caddie <command> [args]` (git style).
 *
 * Each command is `int cmd_<name>(int argc, char **argv)` with argv[0] == "<name>",
 * implemented in the subsystem that owns it (cli/cmd_*.c, cli/cmd_*.c, ...) and
 * listed once in the table in cli/main.c. A command returns the process exit code:
 * 0 ok, 1 failure, 2 usage error. Data goes to stdout, diagnostics to stderr, as
 * "caddie <command>: <message>". `caddie help X` and `caddie X --help` print the usage
 * text from the table; commands parse their options with getopt_long.
 * Not here: any command's logic.
 */
#ifndef CADDIE_CLI_H
#define CADDIE_CLI_H

typedef int (*cli_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;    /* "data", "train", "sweep", ... */
    cli_fn fn;
    const char *summary; /* one line for `caddie help` */
    const char *usage;   /* full usage text for `caddie help <name>` (ends with \n) */
} cli_command;

/* The table (defined in cli/main.c) and a lookup by name. */
extern const cli_command cli_commands[];
const cli_command *cli_find(const char *name);

/* Print "caddie <cmd>: <msg>" + usage hint to stderr and return 2 (usage error). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "caddie <cmd>: <msg>" to stderr and return 1 (failure). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the usage text of a command to stdout. */
void cli_print_usage(const cli_command *c);
/* True when argv has -h/--help anywhere before a "--". */
int cli_wants_help(int argc, char **argv);

/* Option values (cli/cli_args.c): 0 and *out set when all of s is a base-10 integer / a
 * finite number in [lo, hi]; -1 (nothing set) otherwise, for the command's usage error. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_int(const char *s, int lo, int hi, int *out);
int cli_parse_double(const char *s, double lo, double hi, double *out);

/* ---- commands (one line each; keep sorted by subsystem) ----------------------------- */
int cmd_help(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_gpu(int argc, char **argv);       /* cli/cmd_gpu.c */
int cmd_bench(int argc, char **argv);     /* cli/cmd_bench.c */
int cmd_data(int argc, char **argv);      /* cli/cmd_data.c */
int cmd_tokenizer(int argc, char **argv); /* cli/cmd_data.c */
int cmd_train(int argc, char **argv);     /* cli/cmd_train.c */
int cmd_eval(int argc, char **argv);      /* cli/cmd_train.c */
int cmd_report(int argc, char **argv);            /* cli/cmd_report.c */
int cmd_top(int argc, char **argv);               /* cli/cmd_report.c */
int cmd_compare(int argc, char **argv);           /* cli/cmd_report.c */
int cmd_seeds_needed(int argc, char **argv);      /* cli/cmd_report.c */
int cmd_export_submission(int argc, char **argv); /* cli/cmd_report.c */
int cmd_sweep(int argc, char **argv);      /* cli/cmd_sweep.c */
int cmd_db(int argc, char **argv);         /* cli/cmd_db.c */
int cmd_import_run(int argc, char **argv); /* cli/cmd_db.c */
int cmd_run(int argc, char **argv);    /* cli/cmd_runs.c */
int cmd_status(int argc, char **argv); /* cli/cmd_runs.c */
int cmd_ls(int argc, char **argv);     /* cli/cmd_runs.c */
int cmd_show(int argc, char **argv);   /* cli/cmd_runs.c */
int cmd_logs(int argc, char **argv);   /* cli/cmd_runs.c */
int cmd_cancel(int argc, char **argv); /* cli/cmd_runs.c */
int cmd_retry(int argc, char **argv);  /* cli/cmd_runs.c */
int cmd_import_log(int argc, char **argv);    /* cli/cmd_import.c */
int cmd_import_record(int argc, char **argv); /* cli/cmd_import.c */

#endif
