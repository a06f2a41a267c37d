/*
 * commands.c — the list of caddie's commands, in the order `caddie help` shows them, and the
 * lookup by name. Each entry is the cli_command a command's own file exports (its summary,
 * usage text and option tables live there, beside its code).
 * To add a command: write cli/cmd_<x>.c with its `const cli_command cmd_<x>_def`, declare it
 * in cli/cli.h, add it below.
 * Not here: any command's options, texts or logic; main() (cli/main.c).
 */
#include "cli/cli.h"

#include <string.h>

const cli_command *const cli_commands[] = {
    &cmd_help_def,
    &cmd_version_def,
    &cmd_data_def,
    &cmd_tokenizer_def,
    &cmd_train_def,
    &cmd_eval_def,
    &cmd_launch_def,
    &cmd_sweep_def,
    &cmd_run_def,
    &cmd_status_def,
    &cmd_ls_def,
    &cmd_show_def,
    &cmd_logs_def,
    &cmd_cancel_def,
    &cmd_retry_def,
    &cmd_db_def,
    &cmd_import_run_def,
    &cmd_import_log_def,
    &cmd_import_record_def,
    &cmd_report_def,
    &cmd_top_def,
    &cmd_compare_def,
    &cmd_seeds_needed_def,
    &cmd_export_submission_def,
    &cmd_gpu_def,
    &cmd_bench_def,
    &cmd_budget_def,
    NULL,
};

const cli_command *cli_find(const char *name) {
    for (const cli_command *const *c = cli_commands; *c; c++)
        if (strcmp((*c)->name, name) == 0) return *c;
    return NULL;
}
