/*
 * cli_opts.c — the option-table facility (cli/cli.h): from each command's one table of
 * options it builds the getopt_long parser the command runs and the options block of the
 * usage text help prints; it also runs a command (choosing its subcommand) and words the
 * usage errors every command shares.
 *
 * Why one table: a hand-written usage string beside a separate `struct option` array drifts
 * (an option parsed but undocumented, or documented but not parsed); here both are derived.
 * Not here: the list of commands (cli/commands.c), any command's options or texts (each
 * cli/cmd_*.c), numeric option values (cli/cli_args.c).
 */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's val for the long form of table entry i: above every short option letter, so
 * the two forms are told apart, and the entry (hence its id) is found again from it. */
#define LONG_VAL_BASE 0x1000
/* The options block's help text starts at least at column 2 + this + 2 (22, as the hand-made
 * texts had it); a longer option name moves the whole block right rather than break a line. */
#define SPEC_MIN_WIDTH 18
#define SPEC_MAX 128

static int opt_is_end(const cli_opt *o) {
    return !o->name && !o->short_name;
}

static int opt_count(const cli_opt *opts) {
    int n = 0;
    while (opts && !opt_is_end(&opts[n])) n++;
    return n;
}

/* ---- parsing ------------------------------------------------------------------------------- */

void cli_parser_init(cli_parser *p, const cli_command *c, const cli_subcommand *sub, int argc,
                     char **argv) {
    memset(p, 0, sizeof *p);
    p->cmd = c->name;
    p->sub = sub ? sub->name : NULL;
    p->opts = sub ? sub->opts : c->opts;
    p->argc = argc;
    p->argv = argv;
    int n = opt_count(p->opts);
    if (n > CLI_MAX_OPTS) {
        /* a table the parser cannot hold is a programming error the unit test catches */
        fprintf(stderr, "caddie %s: %d options, more than CLI_MAX_OPTS (%d)\n", c->name, n,
                CLI_MAX_OPTS);
        abort();
    }
    /* leading ':' makes a missing value ':' rather than '?', so the message can say which */
    size_t k = 0;
    p->shorts[k++] = ':';
    int nl = 0;
    for (int i = 0; i < n; i++) {
        const cli_opt *o = &p->opts[i];
        if (o->short_name) {
            p->shorts[k++] = o->short_name;
            if (o->arg) p->shorts[k++] = ':';
        }
        if (o->name)
            p->lo[nl++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
                                          LONG_VAL_BASE + i};
    }
    p->shorts[k] = 0;
    p->lo[nl] = (struct option){0, 0, 0, 0};
    /* optind 0 restarts glibc's getopt completely (a previous parse may have stopped inside a
     * cluster of short options); opterr 0: the messages are ours */
    optind = 0;
    opterr = 0;
}

/* Print a usage error about the option parsing just refused; returns CLI_OPTS_BAD. */
static int parse_error(const cli_parser *p, const char *fmt, const char *what) {
    char msg[SPEC_MAX + 64];
    snprintf(msg, sizeof msg, fmt, what);
    if (p->sub) cli_usage_error(p->cmd, "%s: %s", p->sub, msg);
    else cli_usage_error(p->cmd, "%s", msg);
    return CLI_OPTS_BAD;
}

int cli_next_opt(cli_parser *p) {
    int c = getopt_long(p->argc, p->argv, p->shorts, p->lo, NULL);
    char what[SPEC_MAX];
    if (c == -1) {
        p->ind = optind;
        p->arg = NULL;
        return CLI_OPTS_DONE;
    }
    if (c == '?' || c == ':') {
        if (optopt >= LONG_VAL_BASE) {
            snprintf(what, sizeof what, "--%s", p->opts[optopt - LONG_VAL_BASE].name);
            return parse_error(p, c == ':' ? "option '%s' needs a value" : "option '%s' takes no value",
                               what);
        }
        if (optopt) {
            snprintf(what, sizeof what, "-%c", optopt);
            return parse_error(p, c == ':' ? "option '%s' needs a value" : "unknown option '%s'", what);
        }
        /* an unknown (or ambiguous) long option: getopt has stepped past it; name it without
         * any "=value" */
        const char *a = p->argv[optind - 1];
        snprintf(what, sizeof what, "%.*s", (int)strcspn(a, "="), a);
        return parse_error(p, "unknown option '%s'", what);
    }
    const cli_opt *o = NULL;
    if (c >= LONG_VAL_BASE) {
        o = &p->opts[c - LONG_VAL_BASE];
    } else {
        for (const cli_opt *q = p->opts; !opt_is_end(q); q++)
            if (q->short_name == c) o = q;
    }
    p->arg = o->arg ? optarg : NULL;
    return o->id;
}

/* ---- running a command --------------------------------------------------------------------- */

int cli_run(const cli_command *c, int argc, char **argv) {
    if (!c->subs) return c->fn(argc, argv);
    char names[256];
    size_t k = 0;
    int n = 0;
    while (c->subs[n]) n++;
    names[0] = 0;
    for (int i = 0; i < n && k < sizeof names; i++)
        k += (size_t)snprintf(names + k, sizeof names - k, "%s%s",
                              i == 0 ? "" : i == n - 1 ? " or " : ", ", c->subs[i]->name);
    if (argc < 2) return cli_usage_error(c->name, "missing subcommand (expected %s)", names);
    for (int i = 0; i < n; i++)
        if (strcmp(argv[1], c->subs[i]->name) == 0) return c->subs[i]->fn(argc - 1, argv + 1);
    return cli_usage_error(c->name, "unknown subcommand '%s' (expected %s)", argv[1], names);
}

/* ---- usage text ---------------------------------------------------------------------------- */

/* "-f, --follow", "--db FILE", "-n N": how an option is written in the options block. */
static void opt_spec(const cli_opt *o, char *buf, size_t cap) {
    if (o->short_name && o->name)
        snprintf(buf, cap, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    else if (o->short_name)
        snprintf(buf, cap, "-%c%s%s", o->short_name, o->arg ? " " : "", o->arg ? o->arg : "");
    else
        snprintf(buf, cap, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

static int spec_width(const cli_opt *opts, int w) {
    char spec[SPEC_MAX];
    for (const cli_opt *o = opts; o && !opt_is_end(o); o++) {
        opt_spec(o, spec, sizeof spec);
        if ((int)strlen(spec) > w) w = (int)strlen(spec);
    }
    return w;
}

static void print_opts(FILE *f, const cli_opt *opts, int width) {
    char spec[SPEC_MAX];
    for (const cli_opt *o = opts; o && !opt_is_end(o); o++) {
        opt_spec(o, spec, sizeof spec);
        fprintf(f, "  %-*s  ", width, spec);
        for (const char *h = o->help; *h; h++) {
            fputc(*h, f);
            if (*h == '\n' && h[1]) fprintf(f, "%*s", width + 4, "");
        }
        fputc('\n', f);
    }
}

/* One usage form: "caddie <name> <form>", a '\n' in the form continuing under its start. */
static void print_form(FILE *f, const char *lead, const char *name, const char *form) {
    int col = fprintf(f, "%scaddie %s", lead, name);
    if (!form[0]) {
        fputc('\n', f);
        return;
    }
    col += fprintf(f, " ");
    for (const char *s = form; *s; s++) {
        fputc(*s, f);
        if (*s == '\n') fprintf(f, "%*s", col, "");
    }
    fputc('\n', f);
}

static void print_forms(FILE *f, const char *name, const char *const *forms, int *first) {
    static const char *const none[] = {"", NULL};
    for (const char *const *s = forms ? forms : none; *s; s++) {
        print_form(f, *first ? "usage: " : "       ", name, *s);
        *first = 0;
    }
}

/* A block after the synopsis: a blank line, the text, the options. */
static void print_block(FILE *f, const char *text, const cli_opt *opts, int width) {
    if (!(text && text[0]) && opt_count(opts) == 0) return;
    fputc('\n', f);
    if (text) fputs(text, f);
    print_opts(f, opts, width);
}

void cli_print_usage(FILE *f, const cli_command *c) {
    int first = 1, width = spec_width(c->opts, SPEC_MIN_WIDTH);
    char name[SPEC_MAX];
    if (!c->subs) {
        print_forms(f, c->name, c->synopsis, &first);
        print_block(f, c->description, c->opts, width);
        return;
    }
    for (const cli_subcommand *const *s = c->subs; *s; s++) {
        snprintf(name, sizeof name, "%s %s", c->name, (*s)->name);
        print_forms(f, name, (*s)->synopsis, &first);
        width = spec_width((*s)->opts, width);
    }
    print_block(f, c->description, NULL, width);
    for (const cli_subcommand *const *s = c->subs; *s; s++)
        print_block(f, (*s)->description, (*s)->opts, width);
}

void cli_print_help(FILE *f, const cli_command *c) {
    fprintf(f, "caddie %s — %s\n\n", c->name, c->summary);
    cli_print_usage(f, c);
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    }
    return 0;
}

/* ---- messages ------------------------------------------------------------------------------ */

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "caddie %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    /* help takes the command, not "sweep plan": point at the command's page */
    fprintf(stderr, "\n(see 'caddie help %.*s')\n", (int)strcspn(cmd, " "), cmd);
    return 2;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "caddie %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}
