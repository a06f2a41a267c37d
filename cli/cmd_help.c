/*
 * cmd_help.c — `caddie help [COMMAND]` (the list of commands, or one command's usage text as
 * its file declares it) and `caddie version` (version, git commit, compiler, backends).
 * Not here: the usage layout (cli/cli_opts.c), the list of commands (cli/commands.c).
 */
#include "cli/cli.h"
#include "engine/buildinfo.h"

#include <stdio.h>

/* neither command has options: the empty tables still make an option a usage error */
static const cli_opt no_opts[] = {CLI_OPT_END};

static int cmd_help(int argc, char **argv) {
    cli_parser p;
    cli_parser_init(&p, &cmd_help_def, NULL, argc, argv);
    int id;
    while ((id = cli_next_opt(&p)) >= 0) {}
    if (id == CLI_OPTS_BAD) return 2;
    if (argc - p.ind > 1) return cli_usage_error("help", "expected at most one command name");
    if (argc - p.ind == 1) {
        const cli_command *c = cli_find(argv[p.ind]);
        if (!c) return cli_usage_error("help", "'%s' is not a caddie command", argv[p.ind]);
        cli_print_help(stdout, c);
        return 0;
    }
    printf("usage: caddie <command> [args]\n\n"
           "caddie runs Parameter Golf experiments: a C/CUDA training engine, YAML sweeps,\n"
           "an overnight runner, and a SQLite results database you query with plain SQL.\n\n"
           "commands:\n");
    for (const cli_command *const *c = cli_commands; *c; c++)
        printf("  %-18s %s\n", (*c)->name, (*c)->summary);
    printf("\n'caddie help <command>' shows its usage.\n");
    return 0;
}

const cli_command cmd_help_def = {
    .name = "help",
    .fn = cmd_help,
    .summary = "show the commands, or the usage of one command",
    .synopsis = (const char *const[]){"[COMMAND]", NULL},
    .opts = no_opts,
};

static int cmd_version(int argc, char **argv) {
    cli_parser p;
    cli_parser_init(&p, &cmd_version_def, NULL, argc, argv);
    int id;
    while ((id = cli_next_opt(&p)) >= 0) {}
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind < argc) return cli_usage_error("version", "takes no arguments");
    printf("caddie %s\n", CADDIE_VERSION);
    printf("commit:   %s%s\n", cad_build_commit, cad_build_dirty ? " (dirty)" : "");
    printf("compiler: %s\n", cad_build_compiler);
    printf("backends: %s\n", cad_build_backends);
    return 0;
}

const cli_command cmd_version_def = {
    .name = "version",
    .fn = cmd_version,
    .summary = "print version, git commit, compiler and compiled-in backends",
    .synopsis = (const char *const[]){"", NULL},
    .opts = no_opts,
};
