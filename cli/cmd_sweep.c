/*
 * cmd_sweep.c — `caddie sweep plan FILE` (what would be queued, what is already done, how
 * long it takes) and `caddie sweep add FILE` (queue it): usage text, option tables, printing.
 * Not here: the logic (spec.c validates, plan.c expands/dedups/queues), running (runner.c).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/greedy.h"
#include "db/queue.h"
#include "sweep/plan.h"
#include "sweep/spec.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void format_duration(double s, char *buf, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

static const char *runs_dir_default(const char *opt) {
    if (opt && *opt) return opt;
    const char *env = getenv("CADDIE_RUNS");
    return env && *env ? env : "runs";
}

static void print_plan(const cad_sweep_spec *s, const cad_plan *p, int have_db) {
    printf("sweep %s (%s): %d run%s, engine %s (%s), %d device%s per run\n", s->name, s->path, p->n,
           p->n == 1 ? "" : "s", s->engine == CAD_ENGINE_CADDIE ? "caddie" : "command",
           p->engine_version, s->devices, s->devices == 1 ? "" : "s");
    printf("%-9s %-28s %s\n", "ACTION", "RUN_ID", "NAME");
    for (int i = 0; i < p->n; i++) {
        const cad_plan_run *r = &p->runs[i];
        printf("%-9s %-28s %s", cad_plan_action_name(r->action), r->run_id, r->name);
        if (r->other_run_id[0] && r->action != CAD_PLAN_QUEUE && strcmp(r->other_run_id, r->run_id) != 0)
            printf("  (= %s)", r->other_run_id);
        putchar('\n');
    }
    for (int i = 0; i < p->n_prep; i++) {
        const cad_plan_prep *q = &p->prep[i];
        const char *what = q->action == CAD_PLAN_SKIP_DONE    ? "cached"
                           : q->action == CAD_PLAN_SKIP_PENDING ? "pending"
                           : q->action == CAD_PLAN_REQUEUE      ? "requeue"
                                                                : "build";
        printf("%-9s %-28s %s -> %s%s\n", what, q->run_id, q->name, s->prepare.tok[q->tok].dir,
               q->used ? "" : " (no run uses it)");
    }
    int q = p->n_action[CAD_PLAN_QUEUE] + p->n_action[CAD_PLAN_REQUEUE];
    printf("%d to queue", q);
    if (p->n_action[CAD_PLAN_REQUEUE]) printf(" (%d of them failed/cancelled before)", p->n_action[CAD_PLAN_REQUEUE]);
    printf(", %d already done (skipped; --force runs them again), %d already queued or running",
           p->n_action[CAD_PLAN_SKIP_DONE], p->n_action[CAD_PLAN_SKIP_PENDING]);
    if (p->n_action[CAD_PLAN_SKIP_DUP]) printf(", %d duplicate configs in this sweep", p->n_action[CAD_PLAN_SKIP_DUP]);
    printf("%s\n", have_db ? "" : " (no database yet: nothing is done)");
    char per[32], tot[32];
    format_duration(p->est_run_s, per, sizeof per);
    format_duration(p->est_total_s, tot, sizeof tot);
    if (p->est_history_n)
        printf("estimate: %s on %d device%s (%d runs x ~%s, mean of %d finished run%s of %s)\n", tot,
               p->est_devices, p->est_devices == 1 ? "" : "s", q, per, p->est_history_n,
               p->est_history_n == 1 ? "" : "s", p->est_source);
    else
        printf("estimate: at most %s on %d device%s (%d runs x the %s timeout; no finished runs "
               "to learn from yet)\n",
               tot, p->est_devices, p->est_devices == 1 ? "" : "s", q, per);
}

/* plan and add share everything but --devices (an estimate only plan prints), so one enum
 * names the options of both tables */
enum sweep_opt { SW_DEVICES, SW_FORCE, SW_DB, SW_RUNS_DIR };
#define SWEEP_OPT_FORCE {SW_FORCE, "force", 0, NULL, "queue runs whose config is already done or queued (new -rN ids)"}
#define SWEEP_OPT_RUNS_DIR {SW_RUNS_DIR, "runs-dir", 0, "DIR", "where run directories go (default $CADDIE_RUNS or ./runs)"}
static const cli_opt plan_opts[] = {
    {SW_DEVICES, "devices", 0, "N", "devices to estimate for (default: a run's devices)"},
    SWEEP_OPT_FORCE,
    CLI_OPT_DB(SW_DB),
    SWEEP_OPT_RUNS_DIR,
    CLI_OPT_END,
};
static const cli_opt add_opts[] = {SWEEP_OPT_FORCE, CLI_OPT_DB(SW_DB), SWEEP_OPT_RUNS_DIR, CLI_OPT_END};

static int sweep_plan(int argc, char **argv);
static int sweep_add(int argc, char **argv);
static const cli_subcommand sweep_plan_sub = {
    .name = "plan",
    .fn = sweep_plan,
    .synopsis = (const char *const[]){"FILE [--devices N] [--force] [--db FILE] [--runs-dir DIR]", NULL},
    .description = "plan: prints each run (queue | requeue | done | pending | duplicate), the counts and an\n"
                   "estimated duration on N devices (mean of finished runs of the sweep, else the timeout).\n",
    .opts = plan_opts,
};
static const cli_subcommand sweep_add_sub = {
    .name = "add",
    .fn = sweep_add,
    .synopsis = (const char *const[]){"FILE [--force] [--db FILE] [--runs-dir DIR]", NULL},
    .description = "add: writes runs/<run_id>/config.yaml + run.json and queues the runs; start them with\n"
                   "'caddie run'.\n",
    .opts = add_opts,
};

/* An absolute form of path (relative to the current directory); malloc'd. */
static char *absolute(const char *path) {
    if (path[0] == '/') return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *a = malloc(n);
    if (a) snprintf(a, n, "%s/%s", cwd, path);
    return a;
}

/* kind: greedy. plan: the current round (round 1 before `sweep add`) as a plan; add: record
 * the greedy sweep and queue round 1 (the runner queues the next rounds). */
static int greedy_plan_or_add(const cad_sweep_spec *g, const char *file, const char *db_opt, const char *runs_dir,
                              int devices, int add) {
    const char *cmd = add ? "sweep add" : "sweep plan";
    cad_err e;
    cad_err_clear(&e);
    const char *path = cad_db_path(db_opt);
    struct stat sb;
    cad_db *db = NULL;
    int rc = CAD_OK;
    if ((add || stat(path, &sb) == 0) && (rc = cad_db_open(path, 0, &db, &e))) {
        fprintf(stderr, "caddie %s: %s\n", cmd, e.msg);
        return 1;
    }
    cad_greedy_info gi = {0};
    if (db) rc = cad_greedy_info_get(db, g, &gi, &e);
    char *spec_abs = absolute(file), *runs_abs = absolute(runs_dir), *cwd = absolute(".");
    if (!rc && (!spec_abs || !runs_abs || !cwd)) rc = cad_fail(&e, CAD_EIO, "cannot resolve the current directory");
    if (!rc && add && gi.found) {
        printf("greedy %s: already added (round %d, %s%s%s); the runner queues its rounds\n", g->name, gi.round,
               gi.done ? "done: " : "running", gi.done ? gi.result : "", "");
    } else if (!rc && add) {
        int already = 0, queued = 0;
        rc = cad_greedy_add(db, g, spec_abs, cwd, runs_abs, &already, &queued, &e);
        if (!rc) {
            printf("greedy %s: %d candidates, up to %d rounds; round 1 (sweep %s.r1): queued %d run%s\n", g->name,
                   g->greedy.n_cands, g->greedy.max_rounds, g->name, queued, queued == 1 ? "" : "s");
            fprintf(stderr, "start them with: caddie run%s%s (it queues each next round when one ends)\n",
                    db_opt ? " --db " : "", db_opt ? db_opt : "");
        }
    } else if (!rc) {
        int round = gi.found ? gi.round : 1;
        cad_sweep_spec *rs = NULL;
        cad_plan p;
        cad_plan_opts po = {runs_dir, NULL};
        printf("greedy %s: %d candidates, metric %s, margin %g, up to %d rounds; %s\n", g->name, g->greedy.n_cands,
               g->greedy.metric, g->greedy.margin, g->greedy.max_rounds,
               !gi.found ? "not added yet (round 1 below)" : gi.done ? "done" : "running (its current round below)");
        if (gi.found && gi.done) printf("result: %s\n", gi.result);
        rc = cad_greedy_plan_round(db, g, round, gi.accepted, gi.n_accepted, &po, &rs, &p, &e);
        if (!rc) rc = cad_queue_estimate(db, rs, &p, devices, &e);
        if (!rc) print_plan(rs, &p, db != NULL);
        if (rs) {
            cad_plan_free(&p);
            cad_sweep_spec_free(rs);
        }
    }
    if (rc) fprintf(stderr, "caddie %s: %s\n", cmd, e.msg);
    free(spec_abs), free(runs_abs), free(cwd);
    cad_greedy_info_free(&gi);
    cad_db_close(db);
    return rc ? (rc == CAD_EUSAGE ? 2 : 1) : 0;
}

static int sweep_plan_or_add(int argc, char **argv, int add) {
    const char *cmd = add ? "sweep add" : "sweep plan";
    int devices = 0, force = 0, id;
    const char *db_opt = NULL, *runs_opt = NULL;
    cli_parser op;
    cli_parser_init(&op, &cmd_sweep_def, add ? &sweep_add_sub : &sweep_plan_sub, argc, argv);
    while ((id = cli_next_opt(&op)) >= 0) {
        switch ((enum sweep_opt)id) {
        case SW_DEVICES:
            if (cli_parse_int(op.arg, 1, 4096, &devices) != 0)
                return cli_usage_error(cmd, "--devices wants a positive integer, got '%s'", op.arg);
            break;
        case SW_FORCE: force = 1; break;
        case SW_DB: db_opt = op.arg; break;
        case SW_RUNS_DIR: runs_opt = op.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (op.ind != argc - 1) return cli_usage_error(cmd, "expected one sweep FILE");
    const char *file = argv[op.ind];
    cad_err e;
    cad_err_clear(&e);
    cad_sweep_spec *s = NULL;
    if (cad_sweep_spec_load(file, &s, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (devices == 0 || add) devices = devices < s->devices ? s->devices : devices;
    if (s->kind == CAD_SWEEP_KIND_GREEDY) {
        int grc = greedy_plan_or_add(s, file, db_opt, runs_dir_default(runs_opt), devices, add);
        cad_sweep_spec_free(s);
        return grc;
    }
    cad_plan_opts po = {runs_dir_default(runs_opt), NULL};
    cad_plan p;
    int rc = cad_plan_expand(s, &po, &p, &e);
    if (rc) {
        fprintf(stderr, "%s\n", e.msg);
        cad_sweep_spec_free(s);
        return 1;
    }
    const char *path = cad_db_path(db_opt);
    struct stat sb;
    int have_db = add || stat(path, &sb) == 0;
    cad_db *db = NULL;
    if (have_db) rc = cad_db_open(path, 0, &db, &e);
    if (!rc && db) rc = cad_queue_check(db, s, &p, force, &e);
    if (!rc) rc = cad_queue_estimate(db, s, &p, devices, &e);
    if (!rc && !add) print_plan(s, &p, have_db);
    if (!rc && add) {
        rc = cad_queue_add(db, s, &p, &e);
        if (!rc) {
            int q = p.n_action[CAD_PLAN_QUEUE] + p.n_action[CAD_PLAN_REQUEUE];
            printf("sweep %s: queued %d run%s", s->name, q, q == 1 ? "" : "s");
            if (p.n_action[CAD_PLAN_REQUEUE]) printf(" (%d re-queued)", p.n_action[CAD_PLAN_REQUEUE]);
            printf("; skipped %d done, %d already queued or running, %d duplicates\n",
                   p.n_action[CAD_PLAN_SKIP_DONE], p.n_action[CAD_PLAN_SKIP_PENDING],
                   p.n_action[CAD_PLAN_SKIP_DUP]);
            for (int i = 0; i < p.n_prep; i++)
                if (p.prep[i].used && (p.prep[i].action == CAD_PLAN_QUEUE || p.prep[i].action == CAD_PLAN_REQUEUE))
                    printf("  %s  %s (runs wait for it)\n", p.prep[i].run_id, p.prep[i].name);
                else if (p.prep[i].used)
                    printf("  %s  %s: %s\n", p.prep[i].run_id, p.prep[i].name,
                           p.prep[i].action == CAD_PLAN_SKIP_DONE ? "cached, nothing to build"
                                                                  : "already queued or running");
            for (int i = 0; i < p.n; i++)
                if (p.runs[i].action == CAD_PLAN_QUEUE || p.runs[i].action == CAD_PLAN_REQUEUE)
                    printf("  %s  %s\n", p.runs[i].run_id, p.runs[i].name);
            if (q) fprintf(stderr, "start them with: caddie run%s%s\n", db_opt ? " --db " : "", db_opt ? db_opt : "");
        }
    }
    if (rc) fprintf(stderr, "caddie %s: %s\n", cmd, e.msg);
    cad_db_close(db);
    cad_plan_free(&p);
    cad_sweep_spec_free(s);
    return rc ? (rc == CAD_EUSAGE ? 2 : 1) : 0;
}

static int sweep_plan(int argc, char **argv) {
    return sweep_plan_or_add(argc, argv, 0);
}

static int sweep_add(int argc, char **argv) {
    return sweep_plan_or_add(argc, argv, 1);
}

const cli_command cmd_sweep_def = {
    .name = "sweep",
    .summary = "validate a sweep YAML and show its runs (plan), or queue them (add)",
    .description =
        "Validates the whole file first (errors are file:line:col: message). Expands grid x zip x\n"
        "seeds into runs with resolved configs; a run whose config hash (+ engine version) is\n"
        "already done is skipped, one already queued or running too.\n",
    .subs = (const cli_subcommand *const[]){&sweep_plan_sub, &sweep_add_sub, NULL},
};
