/*
 * submission.c — the record folder's logs, config, budget checks and README.md (see
 * reports/submission.h). Files are written whole and every close of a written file is
 * checked, since a full disk must not leave a half README that looks finished.
 * Not here: submission.json (cli/cmd_report.c), picking the group (report.c).
 */
#include "reports/submission.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes copied per read: large enough that a 100 MB log is a few thousand calls. */
#define COPY_CHUNK_BYTES 65536
/* "15,992,694" and far larger byte counts with separators. */
#define BYTES_TEXT_MAX 48

/* Close a file this code wrote: a write error seen earlier (ferror) or on the final flush
 * (fclose) both fail. */
static int close_written(FILE *f, const char *path, cad_err *e) {
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    return bad ? cad_fail(e, CAD_EIO, "%s: write failed", path) : CAD_OK;
}

FILE *cad_submission_create(const char *path, cad_err *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == ELOOP)
            cad_fail(e, CAD_EIO,
                     "%s: is a symbolic link; export-submission writes only plain files of its "
                     "own in --out: remove the link or choose another --out", path);
        else cad_fail(e, CAD_EIO, "%s: cannot write: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        cad_fail(e, CAD_EIO, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

static int copy_file(const char *from, const char *to, cad_err *e) {
    FILE *in = fopen(from, "rb");
    if (!in) return cad_fail(e, CAD_EIO, "%s: cannot read: %s", from, strerror(errno));
    FILE *out = cad_submission_create(to, e);
    if (!out) {
        fclose(in);
        return e->code;
    }
    char buf[COPY_CHUNK_BYTES];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) break;
    int bad = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0) bad = 1;
    return bad ? cad_fail(e, CAD_EIO, "copying %s to %s failed", from, to) : CAD_OK;
}

void cad_submission_check(const cad_report_data *d, const cad_report_group *g, cad_submission_compliance *out) {
    out->train_under_600s = out->eval_under_600s = out->artifact_under_16mb = 1;
    for (int i = 0; i < g->n_runs; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        out->train_under_600s &= r->train_ms <= CAD_STATS_BUDGET_MS;
        out->eval_under_600s &= !isfinite(r->eval_ms) || r->eval_ms <= CAD_STATS_BUDGET_MS;
        out->artifact_under_16mb &= r->artifact_bytes <= CAD_STATS_BUDGET_BYTES;
    }
    out->three_seeds = g->n_runs >= 3;
}

void cad_submission_log_name(const cad_report_run *r, int index, char *buf, size_t n) {
    if (r->has_seed) snprintf(buf, n, "train_seed%lld.log", r->seed);
    else snprintf(buf, n, "train_%d.log", index + 1);
}

int cad_submission_copy_logs(const cad_report_data *d, const cad_report_group *g, const char *out_dir, cad_err *e) {
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return cad_fail(e, CAD_EIO, "%s: cannot create directory: %s", out_dir, strerror(errno));
    for (int i = 0; i < g->n_runs; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        char from[PATH_MAX], to[PATH_MAX], base[CAD_SUBMISSION_LOG_NAME_MAX];
        cad_submission_log_name(r, i, base, sizeof base);
        if (!r->run_dir || !*r->run_dir)
            return cad_fail(e, CAD_ERR, "run '%s' has no run directory recorded, so no log to export", r->run_id);
        snprintf(from, sizeof from, "%s/log.txt", r->run_dir);
        snprintf(to, sizeof to, "%s/%s", out_dir, base);
        if (copy_file(from, to, e)) return cad_wrap(e, "run '%s'", r->run_id);
        if (i == 0) {
            snprintf(from, sizeof from, "%s/config.yaml", r->run_dir);
            snprintf(to, sizeof to, "%s/config.yaml", out_dir);
            if (access(from, R_OK) == 0 && copy_file(from, to, e)) return e->code;
        }
    }
    return CAD_OK;
}

int cad_submission_write_readme(const char *path, const cad_report_data *d, const cad_report_group *g,
                                const char *name, cad_err *e) {
    FILE *f = cad_submission_create(path, e);
    if (!f) return e->code;
    char bytes[BYTES_TEXT_MAX];
    cad_report_fmt_bytes(bytes, sizeof bytes, g->max_artifact_bytes);
    fprintf(f, "# %s\n\n**val_bpb = %.4f**", name, g->bpb.mean);
    if (g->n_runs > 1) fprintf(f, " (%d-seed mean, std %.4f)", g->n_runs, g->bpb.std);
    fprintf(f, " | **%s bytes** (max over seeds)\n\n", bytes);
    fprintf(f, "Config: `%s` (sweep `%s`, group `%s`).\n\n", g->label, g->sweep, g->group_hash);
    fputs("| Seed | val_loss (nats) | val_bpb | Pre-quant val_bpb | Artifact bytes | Train s | Eval s | Log |\n"
          "|-----:|-------------:|--------:|------------------:|---------------:|--------:|-------:|-----|\n", f);
    for (int i = 0; i < g->n_runs; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        char b[BYTES_TEXT_MAX], log[CAD_SUBMISSION_LOG_NAME_MAX];
        cad_report_fmt_bytes(b, sizeof b, r->artifact_bytes);
        cad_submission_log_name(r, i, log, sizeof log);
        if (r->has_seed) fprintf(f, "| %lld ", r->seed);
        else fputs("| - ", f);
        fprintf(f, "| %.5f | %.5f | %.5f | %s | %.1f | %.1f | %s |\n", r->val_loss, r->val_bpb, r->prequant_val_bpb, b,
                r->train_ms / 1000, r->eval_ms / 1000, log);
    }
    fprintf(f, "| **Mean** | **%.5f** | **%.5f** | | | | | |\n", g->loss.mean, g->bpb.mean);
    if (g->n_runs > 1) fprintf(f, "| **Std** | %.5f | %.5f | | | | | |\n", g->loss.std, g->bpb.std);
    fputs("\nval_bpb is the score after int8 quantization and compression (the challenge's final line);\n"
          "std is the sample standard deviation over seeds. Exported by `caddie export-submission`.\n", f);
    return close_written(f, path, e);
}

