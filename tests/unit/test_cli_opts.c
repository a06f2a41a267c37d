/*
 * test_cli_opts.c — help and parsing cannot drift: for every command and subcommand of
 * cli_commands, each option of its table is in the help text, named by its synopsis, and
 * accepted (long form, short form, with its value) both by the parser built from the table
 * and by the command itself; the synopsis names no option the table lacks; an unknown option
 * is a usage error (exit 2) that names it. Also the facility's own rules: well-formed tables,
 * values, missing values, flags given a value, operands around options.
 *
 * The commands are called in-process with an unknown option last, so each one stops at its
 * parser before doing any work.
 * Not here: what a command does with an option (its own CLI test), the list in `caddie help`
 * (tests/cli/t0001-help-version.sh), the manuals (t0003).
 */
#include "check.h"
#include "cli/cli.h"
#include "test_util.h"

#include <ctype.h>

#define UNKNOWN "--no-such-option"

/* Every table a command parses with: the command's own, or each subcommand's. */
typedef struct table_ref {
    const cli_command *cmd;
    const cli_subcommand *sub; /* NULL: the command's own table */
    const cli_opt *opts;
    const char *const *synopsis;
    char label[64]; /* "data prepare" */
} table_ref;

#define MAX_TABLES 64
static table_ref tables[MAX_TABLES];
static int n_tables;

static void collect_tables(void) {
    n_tables = 0;
    for (const cli_command *const *c = cli_commands; *c; c++) {
        if (!(*c)->subs) {
            table_ref *t = &tables[n_tables++];
            *t = (table_ref){*c, NULL, (*c)->opts, (*c)->synopsis, {0}};
            snprintf(t->label, sizeof t->label, "%s", (*c)->name);
            continue;
        }
        for (const cli_subcommand *const *s = (*c)->subs; *s && n_tables < MAX_TABLES; s++) {
            table_ref *t = &tables[n_tables++];
            *t = (table_ref){*c, *s, (*s)->opts, (*s)->synopsis, {0}};
            snprintf(t->label, sizeof t->label, "%s %s", (*c)->name, (*s)->name);
        }
    }
}

static int is_end(const cli_opt *o) {
    return !o->name && !o->short_name;
}

/* "--name" when the option has a long form, else "-x". */
static void opt_name(const cli_opt *o, char *buf, size_t n) {
    if (o->name) snprintf(buf, n, "--%s", o->name);
    else snprintf(buf, n, "-%c", o->short_name);
}

/* The options block line of o as the help must show it: "  -o, --out DIR  ". */
static void opt_line(const cli_opt *o, char *buf, size_t n) {
    char spec[128];
    if (o->short_name && o->name) snprintf(spec, sizeof spec, "-%c, --%s", o->short_name, o->name);
    else opt_name(o, spec, sizeof spec);
    snprintf(buf, n, "\n  %s%s%s  ", spec, o->arg ? " " : "", o->arg ? o->arg : "");
}

static char *help_text(const cli_command *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    cli_print_help(f, c);
    fclose(f);
    return buf;
}

/* Read back what a redirected stderr got. */
static char *read_err(const char *path) {
    char *s = check_slurp(path, NULL);
    return s ? s : strdup("");
}

/* ---- the tables themselves ----------------------------------------------------------------- */

static void test_every_command_declares_its_usage_and_options(void) {
    collect_tables();
    CHECK(n_tables >= 27 && n_tables < MAX_TABLES);
    int n_cmds = 0;
    for (const cli_command *const *c = cli_commands; *c; c++, n_cmds++) {
        const cli_command *d = *c;
        CHECK_MSG(d->name && d->summary && d->summary[0], "command %d: name and summary", n_cmds);
        CHECK_MSG(cli_find(d->name) == d, "%s: cli_find finds another entry", d->name);
        if (d->subs) {
            CHECK_MSG(!d->fn && !d->opts && !d->synopsis, "%s: subcommands own fn, options, synopsis", d->name);
            CHECK_MSG(d->subs[0] != NULL, "%s: empty subcommand list", d->name);
            for (const cli_subcommand *const *s = d->subs; *s; s++)
                CHECK_MSG((*s)->name && (*s)->fn && (*s)->opts && (*s)->synopsis && (*s)->synopsis[0],
                          "%s %s: name, function, option table and synopsis", d->name, (*s)->name);
        } else {
            CHECK_MSG(d->fn && d->opts && d->synopsis && d->synopsis[0], "%s: function, option table, synopsis",
                      d->name);
        }
    }
    CHECK(n_cmds >= 24);
    /* the commands the issue names, each with its subcommands */
    static const char *const want[] = {"help", "version", "data", "tokenizer", "train", "eval", "gpu", "sweep",
                                       "run", "status", "ls", "show", "logs", "cancel", "retry", "db",
                                       "import-run", "import-log", "import-record", "report", "top", "compare",
                                       "seeds-needed", "export-submission"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) CHECK_MSG(cli_find(want[i]), "no command %s", want[i]);
}

static void test_tables_are_well_formed(void) {
    collect_tables();
    for (int t = 0; t < n_tables; t++) {
        const cli_opt *opts = tables[t].opts;
        int n = 0;
        for (; !is_end(&opts[n]); n++) {
            const cli_opt *o = &opts[n];
            CHECK_MSG(o->id >= 0, "%s: option %d has id %d", tables[t].label, n, o->id);
            CHECK_MSG(o->help && o->help[0] && o->help[strlen(o->help) - 1] != '\n', "%s: option %d: help text",
                      tables[t].label, n);
            CHECK_MSG(!o->arg || (o->arg[0] && !strchr(o->arg, ' ')), "%s: option %d: argument name", tables[t].label,
                      n);
            /* -h/--help belong to main (`caddie X --help`), never to a table */
            CHECK_MSG(o->short_name != 'h' && !(o->name && !strcmp(o->name, "help")), "%s: -h/--help in the table",
                      tables[t].label);
            if (o->short_name) CHECK_MSG(isalnum((unsigned char)o->short_name), "%s: short name", tables[t].label);
            if (o->name) {
                for (const char *s = o->name; *s; s++)
                    CHECK_MSG(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-',
                              "%s: long name '%s'", tables[t].label, o->name);
                CHECK_MSG(isalpha((unsigned char)o->name[0]) && o->name[1], "%s: long name '%s'", tables[t].label,
                          o->name);
            }
            for (int j = 0; j < n; j++) {
                CHECK_MSG(opts[j].id != o->id, "%s: two options with id %d", tables[t].label, o->id);
                CHECK_MSG(!o->name || !opts[j].name || strcmp(opts[j].name, o->name), "%s: --%s twice",
                          tables[t].label, o->name);
                CHECK_MSG(!o->short_name || opts[j].short_name != o->short_name, "%s: -%c twice", tables[t].label,
                          o->short_name);
            }
        }
        CHECK_MSG(n <= CLI_MAX_OPTS, "%s: %d options, more than CLI_MAX_OPTS", tables[t].label, n);
    }
}

/* ---- help -------------------------------------------------------------------------------------- */

static void test_help_shows_every_option_of_every_table(void) {
    collect_tables();
    int n_opts = 0;
    for (int t = 0; t < n_tables; t++) {
        char *help = help_text(tables[t].cmd);
        if (!help) {
            CHECK_MSG(0, "%s: no help text", tables[t].label);
            continue;
        }
        char want[256];
        snprintf(want, sizeof want, "\nusage: caddie %s", tables[t].label);
        char want2[256];
        snprintf(want2, sizeof want2, "\n       caddie %s", tables[t].label);
        CHECK_MSG(strstr(help, want) || strstr(help, want2), "%s: no usage line in\n%s", tables[t].label, help);
        for (const cli_opt *o = tables[t].opts; !is_end(o); o++, n_opts++) {
            opt_line(o, want, sizeof want);
            /* the line, with the help text (its first line) after it: an option of two
             * subcommands (data prepare|stats --tokenizer) has a line in each block */
            size_t first = strcspn(o->help, "\n");
            int found_line = 0, found_text = 0;
            for (const char *at = strstr(help, want); at && !found_text; at = strstr(at + 1, want)) {
                const char *text = at + strlen(want);
                while (*text == ' ') text++;
                found_line = 1;
                found_text = !strncmp(text, o->help, first) && (text[first] == '\n' || !text[first]);
            }
            CHECK_MSG(found_line, "%s: help has no line '%s' in\n%s", tables[t].label, want + 1, help);
            CHECK_MSG(found_text, "%s: %s: its help text is not on its line", tables[t].label, want + 1);
        }
        free(help);
    }
    CHECK(n_opts >= 60);
}

/* The options a synopsis names: "--name" tokens, and "-x" tokens. */
static int synopsis_options(const char *const *forms, char names[][64], int cap) {
    int n = 0;
    for (const char *const *f = forms; *f; f++) {
        for (const char *s = *f; *s; s++) {
            if (*s != '-' || (s > *f && (isalnum((unsigned char)s[-1]) || s[-1] == '-'))) continue;
            size_t len = 1;
            while (isalnum((unsigned char)s[len]) || s[len] == '-') len++;
            if (len >= 2 && n < cap) snprintf(names[n++], 64, "%.*s", (int)len, s);
            s += len - 1;
        }
    }
    return n;
}

static void test_synopsis_names_exactly_the_table(void) {
    collect_tables();
    for (int t = 0; t < n_tables; t++) {
        char names[64][64];
        int n = synopsis_options(tables[t].synopsis, names, 64);
        /* every option the synopsis names is in the table */
        for (int i = 0; i < n; i++) {
            int found = 0;
            for (const cli_opt *o = tables[t].opts; !is_end(o) && !found; o++) {
                char s[8];
                snprintf(s, sizeof s, "-%c", o->short_name);
                found = (names[i][1] == '-' && o->name && !strcmp(names[i] + 2, o->name)) ||
                        (names[i][1] != '-' && o->short_name && !strcmp(names[i], s));
            }
            CHECK_MSG(found, "%s: the synopsis names %s, which its option table lacks", tables[t].label, names[i]);
        }
        /* every option of the table is named by the synopsis */
        for (const cli_opt *o = tables[t].opts; !is_end(o); o++) {
            char want[64];
            opt_name(o, want, sizeof want);
            int found = 0;
            for (int i = 0; i < n && !found; i++) found = !strcmp(names[i], want);
            CHECK_MSG(found, "%s: option %s is not in the synopsis", tables[t].label, want);
        }
    }
}

/* ---- parsing: the parser built from each table --------------------------------------------- */

/* Parse argv with table t's parser; returns the first id (or CLI_OPTS_*), *arg its value,
 * *next what the following call returned, *ind the first operand. */
static int parse_once(const table_ref *t, int argc, char **argv, const char **arg, int *next, int *ind) {
    cli_parser p;
    cli_parser_init(&p, t->cmd, t->sub, argc, argv);
    int id = cli_next_opt(&p);
    *arg = p.arg;
    *next = id >= 0 ? cli_next_opt(&p) : id;
    *ind = p.ind;
    return id;
}

static void test_table_parser_accepts_every_option(void) {
    collect_tables();
    for (int t = 0; t < n_tables; t++) {
        for (const cli_opt *o = tables[t].opts; !is_end(o); o++) {
            char lng[80], lng_eq[96], shrt[4], shrt_glued[16];
            snprintf(lng, sizeof lng, "--%s", o->name ? o->name : "");
            snprintf(lng_eq, sizeof lng_eq, "--%s=VALUE", o->name ? o->name : "");
            snprintf(shrt, sizeof shrt, "-%c", o->short_name);
            snprintf(shrt_glued, sizeof shrt_glued, "-%cVALUE", o->short_name);
            /* each way of writing it: "--x VALUE", "--x=VALUE", "-x VALUE", "-xVALUE" (flags: "--x", "-x"),
             * with an operand before and after it (GNU permutation) */
            char *forms[4][2] = {{lng, "VALUE"}, {lng_eq, NULL}, {shrt, "VALUE"}, {shrt_glued, NULL}};
            for (int k = 0; k < 4; k++) {
                if ((k < 2 && !o->name) || (k >= 2 && !o->short_name)) continue;
                if (!o->arg && (k == 1 || k == 3)) continue;
                char *argv[6];
                int argc = 0;
                argv[argc++] = tables[t].sub ? (char *)tables[t].sub->name : (char *)tables[t].cmd->name;
                argv[argc++] = "op1";
                argv[argc++] = forms[k][0];
                if (o->arg && forms[k][1]) argv[argc++] = forms[k][1];
                argv[argc++] = "op2";
                argv[argc] = NULL;
                const char *arg;
                int next, ind;
                int id = parse_once(&tables[t], argc, argv, &arg, &next, &ind);
                CHECK_MSG(id == o->id, "%s: '%s' parsed as %d, expected id %d", tables[t].label, forms[k][0], id, o->id);
                if (o->arg) CHECK_MSG(arg && !strcmp(arg, "VALUE"), "%s: %s: value '%s'", tables[t].label, forms[k][0],
                                      arg ? arg : "(null)");
                else CHECK_MSG(!arg, "%s: flag %s has a value", tables[t].label, forms[k][0]);
                CHECK_MSG(next == CLI_OPTS_DONE, "%s: %s: then %d", tables[t].label, forms[k][0], next);
                CHECK_MSG(ind == argc - 2 && !strcmp(argv[ind], "op1") && !strcmp(argv[ind + 1], "op2"),
                          "%s: %s: operands not left at the end", tables[t].label, forms[k][0]);
            }
        }
    }
}

static void test_table_parser_refuses_what_the_table_lacks(void) {
    collect_tables();
    const char *err = check_tmp_path("cli_opts.err");
    for (int t = 0; t < n_tables; t++) {
        const char *name = tables[t].sub ? tables[t].sub->name : tables[t].cmd->name;
        const char *arg;
        int next, ind;
        /* an unknown long option, with and without a value glued on */
        char *argv1[] = {(char *)name, UNKNOWN "=3", NULL};
        int saved = check_stderr_redirect(err);
        int id = parse_once(&tables[t], 2, argv1, &arg, &next, &ind);
        check_stderr_restore(saved);
        char *msg = read_err(err);
        CHECK_MSG(id == CLI_OPTS_BAD, "%s: %s accepted", tables[t].label, UNKNOWN);
        CHECK_MSG(strstr(msg, "unknown option '" UNKNOWN "'") && strstr(msg, tables[t].cmd->name),
                  "%s: message '%s'", tables[t].label, msg);
        free(msg);
        /* every short letter the table does not use */
        for (char c = 'a'; c <= 'z'; c++) {
            int used = 0;
            for (const cli_opt *o = tables[t].opts; !is_end(o); o++) used |= o->short_name == c;
            if (used) continue;
            char s[3] = {'-', c, 0};
            char *argv2[] = {(char *)name, s, NULL};
            saved = check_stderr_redirect(err);
            id = parse_once(&tables[t], 2, argv2, &arg, &next, &ind);
            check_stderr_restore(saved);
            msg = read_err(err);
            char want[32];
            snprintf(want, sizeof want, "unknown option '-%c'", c);
            CHECK_MSG(id == CLI_OPTS_BAD && strstr(msg, want), "%s: -%c: %d, '%s'", tables[t].label, c, id, msg);
            free(msg);
        }
        for (const cli_opt *o = tables[t].opts; !is_end(o); o++) {
            char opt[80], want[128];
            opt_name(o, opt, sizeof opt);
            if (o->arg) {
                /* a value-taking option at the very end has no value */
                char *argv3[] = {(char *)name, opt, NULL};
                saved = check_stderr_redirect(err);
                id = parse_once(&tables[t], 2, argv3, &arg, &next, &ind);
                check_stderr_restore(saved);
                msg = read_err(err);
                snprintf(want, sizeof want, "option '%s' needs a value", opt);
                CHECK_MSG(id == CLI_OPTS_BAD && strstr(msg, want), "%s: %s: %d, '%s'", tables[t].label, opt, id, msg);
                free(msg);
            } else if (o->name) {
                /* a flag takes no value */
                char eq[96];
                snprintf(eq, sizeof eq, "%s=1", opt);
                char *argv4[] = {(char *)name, eq, NULL};
                saved = check_stderr_redirect(err);
                id = parse_once(&tables[t], 2, argv4, &arg, &next, &ind);
                check_stderr_restore(saved);
                msg = read_err(err);
                snprintf(want, sizeof want, "option '%s' takes no value", opt);
                CHECK_MSG(id == CLI_OPTS_BAD && strstr(msg, want), "%s: %s: %d, '%s'", tables[t].label, eq, id, msg);
                free(msg);
            }
        }
        /* after "--" nothing is an option */
        char *argv5[] = {(char *)name, "--", UNKNOWN, NULL};
        id = parse_once(&tables[t], 3, argv5, &arg, &next, &ind);
        CHECK_MSG(id == CLI_OPTS_DONE && ind == 2, "%s: '--' does not end the options", tables[t].label);
    }
}

/* ---- the commands themselves ------------------------------------------------------------------- */

/* Run the command of table t as `caddie <label> args... --no-such-option`: exit code, stderr. */
static int run_command(const table_ref *t, int nargs, char **args, char **err_text) {
    char *argv[8];
    int argc = 0;
    argv[argc++] = (char *)t->cmd->name;
    if (t->sub) argv[argc++] = (char *)t->sub->name;
    for (int i = 0; i < nargs; i++) argv[argc++] = args[i];
    argv[argc++] = UNKNOWN;
    argv[argc] = NULL;
    const char *err = check_tmp_path("cli_cmd.err"), *out = check_tmp_path("cli_cmd.out");
    int saved_err = check_stderr_redirect(err), saved_out = check_stdout_redirect(out);
    int rc = cli_run(t->cmd, argc, argv);
    check_stdout_restore(saved_out);
    check_stderr_restore(saved_err);
    *err_text = read_err(err);
    return rc;
}

static void test_every_command_refuses_an_unknown_option(void) {
    collect_tables();
    for (int t = 0; t < n_tables; t++) {
        char *msg;
        int rc = run_command(&tables[t], 0, NULL, &msg);
        CHECK_MSG(rc == 2 && strstr(msg, "unknown option '" UNKNOWN "'"), "caddie %s " UNKNOWN ": exit %d, '%s'",
                  tables[t].label, rc, msg);
        free(msg);
    }
}

/* Each option of the table, given to the command itself (value "1", valid for every numeric
 * option), is taken: the command goes on to the unknown option after it and names that one,
 * or ends early without an error (train --keys prints the key table). A command parsing with
 * another table than the one its help shows fails here. */
static void test_every_command_accepts_every_option_of_its_table(void) {
    collect_tables();
    for (int t = 0; t < n_tables; t++) {
        for (const cli_opt *o = tables[t].opts; !is_end(o); o++) {
            for (int form = 0; form < 2; form++) {
                char opt[80];
                if (form == 0 && !o->name) continue;
                if (form == 1 && !o->short_name) continue;
                if (form == 0) snprintf(opt, sizeof opt, "--%s", o->name);
                else snprintf(opt, sizeof opt, "-%c", o->short_name);
                char *args[2] = {opt, "1"};
                char *msg;
                int rc = run_command(&tables[t], o->arg ? 2 : 1, args, &msg);
                char refused[128];
                snprintf(refused, sizeof refused, "option '%s'", opt);
                CHECK_MSG(!strstr(msg, refused), "caddie %s %s: refused: '%s'", tables[t].label, opt, msg);
                CHECK_MSG((rc == 2 && strstr(msg, "unknown option '" UNKNOWN "'")) || (rc == 0 && !msg[0]),
                          "caddie %s %s%s " UNKNOWN ": exit %d, '%s'", tables[t].label, opt, o->arg ? " 1" : "", rc,
                          msg);
                free(msg);
            }
        }
    }
}

int main(void) {
    RUN(test_every_command_declares_its_usage_and_options);
    RUN(test_tables_are_well_formed);
    RUN(test_help_shows_every_option_of_every_table);
    RUN(test_synopsis_names_exactly_the_table);
    RUN(test_table_parser_accepts_every_option);
    RUN(test_table_parser_refuses_what_the_table_lacks);
    RUN(test_every_command_refuses_an_unknown_option);
    RUN(test_every_command_accepts_every_option_of_its_table);
    return check_report();
}
