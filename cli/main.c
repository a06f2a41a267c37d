/*
 * main.c — the `caddie` entry point: finds the command argv[1] names and runs it (the only
 * place that exits). `caddie`, `caddie -h|--help` and `caddie X -h|--help` print help;
 * `caddie --version` is `caddie version`.
 * Not here: the list of commands (cli/commands.c), any command (cli/cmd_*.c).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const cli_command *help = &cmd_help_def;
    if (argc < 2) {
        char *none[] = {"help", NULL};
        cli_run(help, 1, none);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        char *none[] = {"help", NULL};
        return cli_run(help, 1, none);
    }
    if (strcmp(name, "--version") == 0) {
        char *none[] = {"version", NULL};
        return cli_run(&cmd_version_def, 1, none);
    }
    const cli_command *c = cli_find(name);
    if (!c) {
        fprintf(stderr, "caddie: '%s' is not a caddie command. See 'caddie help'.\n", name);
        return 2;
    }
    if (cli_wants_help(argc - 1, argv + 1)) {
        cli_print_help(stdout, c);
        return 0;
    }
    return cli_run(c, argc - 1, argv + 1);
}
