/*
 * engines.c — engine kinds, {key} template expansion and launch recipe -> exec description
 * (see engines.h). Not here: spawning (runner/proc.c) or deciding when (runner/runner.c).
 */
#include "runner/engines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int cad_engine_parse(const char *name, cad_engine_kind *out, cad_err *e) {
    if (name && strcmp(name, "caddie") == 0) *out = CAD_ENGINE_CADDIE;
    else if (name && strcmp(name, "command") == 0) *out = CAD_ENGINE_COMMAND;
    else if (name && strcmp(name, "prepare") == 0) *out = CAD_ENGINE_PREPARE;
    else
        return cad_fail(e, CAD_ECONFIG, "unknown engine '%s' (expected caddie, command or prepare)",
                        name ? name : "(null)");
    return CAD_OK;
}

/* ---- environment ----------------------------------------------------------------------- */

typedef struct envlist {
    char **v;
    int n, cap;
    int oom;
} envlist;

/* Set NAME=value (entry is "NAME=value", copied), replacing an existing NAME. */
static void env_put(envlist *l, const char *entry) {
    if (l->oom) return;
    const char *eq = strchr(entry, '=');
    size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);
    char *copy = strdup(entry);
    if (!copy) {
        l->oom = 1;
        return;
    }
    for (int i = 0; i < l->n; i++)
        if (strncmp(l->v[i], entry, klen) == 0 && l->v[i][klen] == '=') {
            free(l->v[i]);
            l->v[i] = copy;
            return;
        }
    if (l->n + 2 > l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) {
            free(copy);
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = copy;
    l->v[l->n] = NULL;
}

static void env_putf(envlist *l, const char *name, const char *value) {
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    if (!s) {
        l->oom = 1;
        return;
    }
    snprintf(s, n, "%s=%s", name, value);
    env_put(l, s);
    free(s);
}

static int env_has(const cad_launch *l, const char *name) {
    size_t k = strlen(name);
    for (int i = 0; i < l->nenv; i++)
        if (strncmp(l->env[i], name, k) == 0 && l->env[i][k] == '=') return 1;
    return 0;
}

static void strv_free(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

int cad_engine_self_exe(char *buf, size_t cap, cad_err *e) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0) return cad_fail(e, CAD_EIO, "readlink /proc/self/exe: %s", strerror(errno));
    buf[n] = 0;
    return CAD_OK;
}

int cad_engine_exec_build(const char *engine, const cad_launch *l, const cad_engine_slot *s,
                          const char *self_exe, cad_engine_exec *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    int rc = cad_engine_parse(engine, &out->kind, e);
    if (rc) return rc;
    if (l->argc < 1 || !l->argv || !l->argv[0] || !l->argv[0][0])
        return cad_fail(e, CAD_ECONFIG, "run %s: launch recipe has an empty argv", s->run_id);
    out->argv = calloc((size_t)l->argc + 1, sizeof *out->argv);
    if (!out->argv) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int i = 0; i < l->argc; i++) {
        const char *a = (i == 0 && strcmp(l->argv[0], "caddie") == 0) ? self_exe : l->argv[i];
        out->argv[i] = strdup(a);
        if (!out->argv[i]) {
            cad_engine_exec_free(out);
            return cad_fail(e, CAD_ENOMEM, "out of memory");
        }
    }
    envlist env = {0};
    if (!s->env_additions_only)
        for (char **p = environ; p && *p; p++) env_put(&env, *p);
    for (int i = 0; i < l->nenv; i++) env_put(&env, l->env[i]);
    char num[32];
    int ndev = 0;
    if (s->executor_devices > 0) {
        ndev = s->executor_devices;
    } else if (s->devices) {
        env_putf(&env, "CUDA_VISIBLE_DEVICES", s->devices);
        ndev = s->devices[0] ? 1 : 0;
        for (const char *c = s->devices; *c; c++) ndev += *c == ',';
    } else {
        env_putf(&env, "CUDA_VISIBLE_DEVICES", ""); /* a CPU slot never grabs a GPU */
        if (s->cpu_threads > 0 && !env_has(l, "OMP_NUM_THREADS")) {
            snprintf(num, sizeof num, "%d", s->cpu_threads);
            env_putf(&env, "OMP_NUM_THREADS", num);
        }
        /* a `devices: N` run holds N CPU slots (launch starts a rank on each): it is told N,
         * as it would be on N GPUs */
        ndev = s->cpu_devices > 0 ? s->cpu_devices : 1;
    }
    snprintf(num, sizeof num, "%d", ndev);
    env_putf(&env, "CADDIE_DEVICES", num);
    env_putf(&env, "CADDIE_RUN_ID", s->run_id);
    env_putf(&env, "CADDIE_RUN_DIR", s->run_dir);
    snprintf(num, sizeof num, "%d", s->attempt);
    env_putf(&env, "CADDIE_ATTEMPT", num);
    out->envp = env.v;
    if (env.oom || !env.v) {
        cad_engine_exec_free(out);
        return cad_fail(e, CAD_ENOMEM, "out of memory building the environment");
    }
    if (l->cwd && l->cwd[0]) out->cwd = strdup(l->cwd);
    size_t n = strlen(s->run_dir) + 16;
    out->capture_path = malloc(n);
    if (!out->capture_path || (l->cwd && l->cwd[0] && !out->cwd)) {
        cad_engine_exec_free(out);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    snprintf(out->capture_path, n, "%s/%s", s->run_dir,
             out->kind == CAD_ENGINE_COMMAND || out->kind == CAD_ENGINE_PREPARE ? "log.txt" : "console.txt");
    out->parse_log = out->kind == CAD_ENGINE_COMMAND;
    return CAD_OK;
}

void cad_engine_exec_free(cad_engine_exec *x) {
    strv_free(x->argv);
    strv_free(x->envp);
    free(x->cwd);
    free(x->capture_path);
    memset(x, 0, sizeof *x);
}
