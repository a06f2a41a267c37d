/*
 * queue.c — a sweep's expanded plan against the database: dedup by config hash, the duration
 * estimate from past runs, and queueing (sweep row, run rows, run directories) in one
 * transaction.
 *
 * Not here: expanding the YAML into runs (sweep/plan.c), running them (runner/).
 */
#include "db/queue.h"

#include "db/deps.h"
#include "engine/fsutil.h"
#include "engine/prepcache.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- against the DB -------------------------------------------------------------------------- */

/* The prepare items: no job when the entry is complete (whatever built it), the existing
 * job when one is queued or running, that job again when it failed/was cancelled/interrupted
 * or is done but its entry was deleted since, else a new job. --force never rebuilds an
 * entry: the key says what is in it. */
static int check_prep(cad_db *db, cad_plan *p, const cad_sweep_spec *s, cad_err *e) {
    for (int i = 0; i < p->n_prep; i++) {
        cad_plan_prep *q = &p->prep[i];
        if (cad_prepcache_complete(s->prepare.tok[q->tok].dir)) {
            q->action = CAD_PLAN_SKIP_DONE;
            continue;
        }
        int ex = cad_db_run_exists(db, q->run_id, e);
        if (ex < 0) return CAD_EDB;
        q->action = CAD_PLAN_QUEUE;
        if (!ex) continue;
        cad_run old;
        int rc = cad_db_get_run(db, q->run_id, &old, e);
        if (rc) return rc;
        q->action = old.status == CAD_RUN_QUEUED || old.status == CAD_RUN_RUNNING ? CAD_PLAN_SKIP_PENDING
                                                                                  : CAD_PLAN_REQUEUE;
        cad_run_free(&old);
    }
    return CAD_OK;
}

int cad_queue_check(cad_db *db, const cad_sweep_spec *s, cad_plan *p, int force, cad_err *e) {
    int rc = check_prep(db, p, s, e);
    for (int i = 0; i < p->n && !rc; i++) {
        cad_plan_run *r = &p->runs[i];
        if (r->action == CAD_PLAN_SKIP_DUP) continue;
        int nd;
        char other[CAD_RUN_ID_MAX], pend[CAD_RUN_ID_MAX];
        if ((rc = cad_db_find_done_by_hash(db, r->config_hash, &nd, other, sizeof other, e))) break;
        if ((rc = cad_db_find_pending_by_hash(db, r->config_hash, pend, sizeof pend, e))) break;
        r->action = CAD_PLAN_QUEUE;
        r->other_run_id[0] = 0;
        if (!force && nd > 0) {
            r->action = CAD_PLAN_SKIP_DONE;
            snprintf(r->other_run_id, sizeof r->other_run_id, "%s", other);
            continue;
        }
        if (!force && pend[0]) {
            r->action = CAD_PLAN_SKIP_PENDING;
            snprintf(r->other_run_id, sizeof r->other_run_id, "%s", pend);
            continue;
        }
        int ex = cad_db_run_exists(db, r->run_id, e);
        if (ex < 0) {
            rc = CAD_EDB;
            break;
        }
        if (!ex) continue;
        cad_run old;
        if ((rc = cad_db_get_run(db, r->run_id, &old, e))) break;
        int retryable = old.status == CAD_RUN_FAILED || old.status == CAD_RUN_CANCELLED ||
                        old.status == CAD_RUN_INTERRUPTED;
        int same = old.config_hash && strcmp(old.config_hash, r->config_hash) == 0;
        cad_run_free(&old);
        if (retryable && same && !force) {
            r->action = CAD_PLAN_REQUEUE;
            continue;
        }
        /* a forced repeat (or a hash-prefix collision): the next free "-rN" id */
        char base[101], id[CAD_RUN_ID_MAX];
        snprintf(base, sizeof base, "%.100s", r->run_id);
        for (int k = 2;; k++) {
            snprintf(id, sizeof id, "%s-r%d", base, k);
            int taken = cad_db_run_exists(db, id, e);
            if (taken < 0) {
                rc = CAD_EDB;
                break;
            }
            for (int j = 0; j < p->n && !taken; j++) taken = j != i && strcmp(p->runs[j].run_id, id) == 0;
            if (!taken) break;
        }
        if (!rc) rc = cad_plan_rename_run(s, p, i, id, e);
    }
    cad_plan_count_actions(p);
    return rc;
}

/* ---- estimate -------------------------------------------------------------------------------- */

int cad_queue_estimate(cad_db *db, const cad_sweep_spec *s, cad_plan *p, int n_devices, cad_err *e) {
    if (n_devices < 1) return cad_fail(e, CAD_EUSAGE, "--devices must be at least 1");
    if (s->devices > n_devices)
        return cad_fail(e, CAD_ECONFIG,
                        "%s: each run needs %d devices but only %d are available (--devices)",
                        s->path, s->devices, n_devices);
    p->est_devices = n_devices;
    p->est_run_s = s->timeout_s;
    p->est_history_n = 0;
    p->est_source = "timeout";
    if (db) {
        double mean = 0;
        int n = 0;
        int rc = cad_db_mean_duration(db, s->name, NULL, s->devices, &mean, &n, e);
        if (rc) return rc;
        if (n > 0) {
            p->est_run_s = mean, p->est_history_n = n, p->est_source = "this sweep";
        } else {
            const char *eng = s->engine == CAD_ENGINE_CADDIE ? "caddie" : "command";
            if ((rc = cad_db_mean_duration(db, NULL, eng, s->devices, &mean, &n, e))) return rc;
            if (n > 0)
                p->est_run_s = mean, p->est_history_n = n,
                p->est_source = s->engine == CAD_ENGINE_CADDIE ? "engine caddie" : "engine command";
        }
    }
    /* Greedy list scheduling in queue order: each run takes the d earliest-free devices. */
    double *free_at = calloc((size_t)n_devices, sizeof *free_at);
    if (!free_at) return cad_fail(e, CAD_ENOMEM, "out of memory");
    double makespan = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->runs[i].action != CAD_PLAN_QUEUE && p->runs[i].action != CAD_PLAN_REQUEUE) continue;
        /* sort ascending so the first d are the earliest free */
        for (int a = 1; a < n_devices; a++)
            for (int b = a; b > 0 && free_at[b] < free_at[b - 1]; b--) {
                double t = free_at[b];
                free_at[b] = free_at[b - 1];
                free_at[b - 1] = t;
            }
        double start = free_at[s->devices - 1];
        double end = start + p->est_run_s;
        for (int d = 0; d < s->devices; d++) free_at[d] = end;
        if (end > makespan) makespan = end;
    }
    free(free_at);
    p->est_total_s = makespan;
    return CAD_OK;
}

/* ---- queueing ---------------------------------------------------------------------------- */

static int write_text_file(const char *path, const char *text, cad_err *e) {
    size_t len = strlen(path) + 8;
    char *tmp = malloc(len);
    if (!tmp) return cad_fail(e, CAD_ENOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp", path);
    int rc = CAD_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) rc = cad_fail(e, CAD_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    else {
        fputs(text, f);
        if (fclose(f) != 0) rc = cad_fail(e, CAD_EIO, "%s: write failed", tmp);
        else if (rename(tmp, path) != 0)
            rc = cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno));
    }
    free(tmp);
    return rc;
}

static void remove_run_dir(const char *dir) {
    static const char *const files[] = {"config.yaml", "run.json", "config.yaml.tmp", NULL};
    char path[PATH_MAX + 32];
    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/run.json.%ld.tmp", dir, (long)getpid());
    unlink(path);
    rmdir(dir);
}

/* Insert (or requeue) the prepare jobs runs of this add will wait for. */
static int add_prep(cad_db *db, const cad_sweep_spec *s, cad_plan *p, int64_t sweep_id, const char *reason,
                    int *created, cad_err *e) {
    int rc = CAD_OK;
    for (int i = 0; i < p->n_prep && !rc; i++) {
        cad_plan_prep *q = &p->prep[i];
        if (!q->used) continue;
        if (q->action == CAD_PLAN_REQUEUE) {
            char why[PATH_MAX + 64];
            snprintf(why, sizeof why, "re-queued by sweep add %s (the cache entry is missing)", s->path);
            rc = cad_db_requeue(db, q->run_id, 1, why, e);
            continue;
        }
        if (q->action != CAD_PLAN_QUEUE) continue;
        struct stat sb;
        if (stat(q->run_dir, &sb) != 0) created[i] = 1;
        if ((rc = cad_mkdir_p(q->run_dir, e))) break;
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/config.yaml", q->run_dir);
        if ((rc = write_text_file(path, q->config_yaml, e))) break;
        cad_run_new nr = {
            .run_id = q->run_id,
            .sweep_id = sweep_id,
            .name = q->name,
            .engine = "prepare",
            .config = q->config_json,
            .config_hash = s->prepare.tok[q->tok].key,
            .group_hash = s->prepare.tok[q->tok].key,
            .status = CAD_RUN_QUEUED,
            .priority = s->priority,
            .devices_requested = 1,
            .retries = s->retries,
            .timeout_s = s->prepare.timeout_s,
            .launch = q->launch_json,
            .engine_version = cad_plan_caddie_engine_version(),
            .git_dirty = -1,
            .run_dir = q->run_dir,
            .reason = reason,
        };
        if ((rc = cad_db_insert_run(db, &nr, e))) break;
        rc = cad_db_write_run_json(db, q->run_id, e);
    }
    return rc;
}

int cad_queue_add(cad_db *db, const cad_sweep_spec *s, cad_plan *p, cad_err *e) {
    int rc = cad_mkdir_p(p->runs_dir, e);
    if (rc) return rc;
    int *created = calloc((size_t)p->n + 1, sizeof *created);
    int *prep_created = calloc((size_t)p->n_prep + 1, sizeof *prep_created);
    if (!prep_created || !created) {
        free(created), free(prep_created);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    if ((rc = cad_db_begin(db, e))) {
        free(created), free(prep_created);
        return rc;
    }
    int64_t sweep_id = -1;
    rc = cad_db_sweep_upsert(db, s->name, s->description, s->doc->text, s->spec_hash, &sweep_id, e);
    char reason[PATH_MAX + 64];
    snprintf(reason, sizeof reason, "queued by sweep add %s", s->path);
    if (!rc) rc = add_prep(db, s, p, sweep_id, reason, prep_created, e);
    for (int i = 0; i < p->n && !rc; i++) {
        cad_plan_run *r = &p->runs[i];
        /* a run whose entry is not complete waits for the entry's job */
        const cad_plan_prep *dep = r->prep >= 0 && p->prep[r->prep].action != CAD_PLAN_SKIP_DONE ? &p->prep[r->prep] : NULL;
        if (r->action == CAD_PLAN_REQUEUE) {
            char why[PATH_MAX + 64];
            snprintf(why, sizeof why, "re-queued by sweep add %s", s->path);
            rc = cad_db_requeue(db, r->run_id, 1, why, e);
            if (!rc && dep) rc = cad_db_add_dep(db, r->run_id, dep->run_id, e);
            continue;
        }
        if (r->action != CAD_PLAN_QUEUE) continue;
        char path[PATH_MAX + 32];
        struct stat sb;
        snprintf(path, sizeof path, "%s/run.json", r->run_dir);
        if (stat(path, &sb) == 0) {
            rc = cad_fail(e, CAD_ERR,
                          "%s already exists but the database has no run '%s' (was the database "
                          "deleted?): run 'caddie db rebuild' first",
                          path, r->run_id);
            break;
        }
        if (stat(r->run_dir, &sb) != 0) created[i] = 1;
        if ((rc = cad_mkdir_p(r->run_dir, e))) break;
        snprintf(path, sizeof path, "%s/config.yaml", r->run_dir);
        if ((rc = write_text_file(path, r->config_yaml, e))) break;
        created[i] = created[i] ? 1 : 2;
        cad_run_new nr = {
            .run_id = r->run_id,
            .sweep_id = sweep_id,
            .name = r->name,
            .engine = s->engine == CAD_ENGINE_CADDIE ? "caddie" : "command",
            .config = r->config_json,
            .config_hash = r->config_hash,
            .group_hash = r->group_hash,
            .has_seed = r->has_seed,
            .seed = r->seed,
            .status = CAD_RUN_QUEUED,
            .priority = s->priority,
            .devices_requested = s->devices,
            .retries = s->retries,
            .timeout_s = s->timeout_s,
            .launch = r->launch_json,
            .engine_version = p->engine_version,
            .git_commit = NULL,
            .git_dirty = -1,
            .run_dir = r->run_dir,
            .queued_at = NULL,
            .reason = reason,
        };
        if ((rc = cad_db_insert_run(db, &nr, e))) break;
        if (dep && (rc = cad_db_add_dep(db, r->run_id, dep->run_id, e))) break;
        rc = cad_db_write_run_json(db, r->run_id, e);
    }
    if (!rc) rc = cad_db_commit(db, e);
    else cad_db_rollback(db);
    if (rc)
        for (int i = 0; i < p->n; i++) {
            if (created[i] == 1) remove_run_dir(p->runs[i].run_dir);
            else if (created[i] == 2) {
                char path[PATH_MAX + 32];
                snprintf(path, sizeof path, "%s/config.yaml", p->runs[i].run_dir);
                unlink(path);
                snprintf(path, sizeof path, "%s/run.json", p->runs[i].run_dir);
                unlink(path);
            }
        }
    for (int i = 0; rc && i < p->n_prep; i++)
        if (prep_created[i]) {
            char path[PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/config.yaml", p->prep[i].run_dir);
            unlink(path);
            remove_run_dir(p->prep[i].run_dir);
        }
    free(prep_created);
    free(created);
    return rc;
}
