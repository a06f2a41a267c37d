/*
 * cli.h — the commands behind `caddie <command> [args]` (git style), and the one option-table
 * facility every command parses and documents its options with.
 *
 * Each command file (cli/cmd_*.c) exports a `const cli_command cmd_<name>_def`: its name,
 * one-line summary, synopsis lines, free-text description and ONE table of options (per
 * subcommand, for `data prepare|stats` and the like). From that table cli/cli_opts.c derives
 * both the getopt_long parsing (cli_parser) and the options block of the usage text that
 * `caddie help X` and `caddie X --help` print, so an option cannot be parsed without being
 * documented, or documented without being parsed. Option ids are an enum per table and each
 * command switches over its enum without a default, so -Wswitch (-Werror) refuses a table
 * option the command does not handle. cli/commands.c lists the commands.
 *
 * A command returns the process exit code: 0 ok, 1 failure, 2 usage error. Data goes to
 * stdout, diagnostics to stderr, as "caddie <command>: <message>".
 * Not here: any command's logic.
 */
#ifndef CADDIE_CLI_H
#define CADDIE_CLI_H

#include <getopt.h>
#include <stdio.h>

typedef int (*cli_fn)(int argc, char **argv);

/* One option. A table is an array of these ended by CLI_OPT_END. */
typedef struct cli_opt {
    int id;            /* what cli_next_opt returns for it (the table's enum value, >= 0) */
    const char *name;  /* long name without "--" ("db"); NULL: short form only */
    char short_name;   /* 'f' for -f; 0: long form only */
    const char *arg;   /* the value's name in the usage ("FILE", "N"); NULL: a flag */
    const char *help;  /* help text; each '\n' starts a continuation line */
} cli_opt;
#define CLI_OPT_END {-1, 0, 0, 0, 0}
/* --db FILE: the same words in every command that opens the results database */
#define CLI_OPT_DB(id) {(id), "db", 0, "FILE", "results database (default $CADDIE_DB or ./caddie.db)"}

/* A subcommand (`data prepare`): argv[0] of its function is its name. */
typedef struct cli_subcommand {
    const char *name;
    cli_fn fn;
    const char *const *synopsis; /* usage forms after "caddie <cmd> <sub> ", NULL-ended; a
                                  * '\n' inside a form wraps it under its first argument */
    const char *description;     /* text before its options (ends with \n); NULL: none */
    const cli_opt *opts;         /* its options */
} cli_subcommand;

typedef struct cli_command {
    const char *name;    /* "data", "train", "sweep", ... */
    cli_fn fn;           /* argv[0] == name; NULL when the command has subcommands */
    const char *summary; /* one line for `caddie help` */
    const char *const *synopsis; /* usage forms after "caddie <name> " (as for a subcommand);
                                  * NULL for a command with subcommands */
    const char *description;     /* text after the synopsis (ends with \n); NULL: none */
    const cli_opt *opts;         /* its options; NULL for a command with subcommands */
    const cli_subcommand *const *subs; /* NULL-ended; NULL: no subcommands */
} cli_command;

/* The commands in `caddie help` order (cli/commands.c), NULL-ended, and a lookup by name. */
extern const cli_command *const cli_commands[];
const cli_command *cli_find(const char *name);

/* Run a command: its function, or for one with subcommands the subcommand argv[1] names
 * (a missing or unknown one is a usage error). */
int cli_run(const cli_command *c, int argc, char **argv);

/* ---- option parsing --------------------------------------------------------------------- */

#define CLI_MAX_OPTS 32  /* options in one table (tests/unit/test_cli_opts.c checks them all) */
#define CLI_OPTS_DONE (-1) /* cli_next_opt: no more options; operands are argv[p->ind..] */
#define CLI_OPTS_BAD (-2)  /* cli_next_opt: a usage error, already printed: exit 2 */

typedef struct cli_parser {
    const char *cmd;     /* command name, for messages */
    const char *sub;     /* subcommand name, or NULL */
    const cli_opt *opts; /* the table */
    int argc;
    char **argv;
    char *arg;           /* value of the option cli_next_opt just returned (NULL for a flag):
                          * an argv string, so it lives as long as argv */
    int ind;             /* after CLI_OPTS_DONE: index of the first operand */
    struct option lo[CLI_MAX_OPTS + 1];
    char shorts[2 + 2 * CLI_MAX_OPTS + 1];
} cli_parser;

/* Parse argv (argv[0]: the command or subcommand name) with the options of c, or of its
 * subcommand sub (NULL for a command without subcommands). Operands may come before, between
 * and after options (GNU getopt permutes them to the end); "--" ends the options. */
void cli_parser_init(cli_parser *p, const cli_command *c, const cli_subcommand *sub, int argc,
                     char **argv);
/* The id of the next option (its value in p->arg), CLI_OPTS_DONE, or CLI_OPTS_BAD after
 * printing "unknown option '-x'" / "option '--x' needs a value" as a usage error. */
int cli_next_opt(cli_parser *p);

/* ---- usage and messages ----------------------------------------------------------------- */

/* The usage text of a command: synopsis, description, each option table as a block. */
void cli_print_usage(FILE *f, const cli_command *c);
/* What `caddie help X` and `caddie X --help` print: "caddie X — summary", then the usage. */
void cli_print_help(FILE *f, const cli_command *c);
/* True when argv has -h/--help anywhere before a "--". */
int cli_wants_help(int argc, char **argv);
/* Print "caddie <cmd>: <msg>" + a pointer to `caddie help <command>` on stderr; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "caddie <cmd>: <msg>" to stderr and return 1 (failure). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option values (cli/cli_args.c): 0 and *out set when all of s is a base-10 integer / a
 * finite number in [lo, hi]; -1 (nothing set) otherwise, for the command's usage error. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_int(const char *s, int lo, int hi, int *out);
int cli_parse_double(const char *s, double lo, double hi, double *out);

/* ---- the commands (each defined in the file named) -------------------------------------- */
extern const cli_command cmd_help_def, cmd_version_def;                 /* cli/cmd_help.c */
extern const cli_command cmd_data_def, cmd_tokenizer_def;               /* cli/cmd_data.c */
extern const cli_command cmd_train_def, cmd_eval_def;                   /* cli/cmd_train.c */
extern const cli_command cmd_launch_def;                                /* cli/cmd_launch.c */
extern const cli_command cmd_gpu_def;                                   /* cli/cmd_gpu.c */
extern const cli_command cmd_bench_def;                                 /* cli/cmd_bench.c */
extern const cli_command cmd_budget_def;                                /* cli/cmd_budget.c */
extern const cli_command cmd_sweep_def;                                 /* cli/cmd_sweep.c */
extern const cli_command cmd_run_def, cmd_status_def, cmd_ls_def, cmd_show_def, cmd_logs_def,
    cmd_cancel_def, cmd_retry_def;                                      /* cli/cmd_runs.c */
extern const cli_command cmd_db_def, cmd_import_run_def;                /* cli/cmd_db.c */
extern const cli_command cmd_import_log_def, cmd_import_record_def;     /* cli/cmd_import.c */
extern const cli_command cmd_report_def, cmd_top_def, cmd_compare_def, cmd_seeds_needed_def,
    cmd_export_submission_def;                                          /* cli/cmd_report.c */

#endif
