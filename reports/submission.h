/*
 * submission.h — the parts of a Parameter Golf record folder that come from the loaded
 * results: each seed's training log copied under the name the records use, the first run's
 * config.yaml, the budget checks submission.json states, and README.md with the per-seed
 * table.
 *
 * Logs are copied first: a record without its logs is not a record, so a missing log fails
 * the export before anything else is written.
 * Not here: choosing the group (cad_report_select in reports/report.h); submission.json
 * itself, written by cli/cmd_report.c with engine/jsonw.h (reports/ includes only db/ and
 * engine/status.h); the author's default and the date, which the command line supplies.
 */
#ifndef CADDIE_REPORTS_SUBMISSION_H
#define CADDIE_REPORTS_SUBMISSION_H

#include "engine/status.h"
#include "reports/report.h"

/* What submission.json's "compliance" block says, over every run of the group. */
typedef struct cad_submission_compliance {
    int train_under_600s;
    int artifact_under_16mb;
    int eval_under_600s;   /* a run without an eval time counts as under */
    int three_seeds;
} cad_submission_compliance;
void cad_submission_check(const cad_report_data *d, const cad_report_group *g, cad_submission_compliance *out);

/* The name a run's log gets in the folder: "train_seed<N>.log", or "train_<index+1>.log" for a
 * run without a seed. */
#define CAD_SUBMISSION_LOG_NAME_MAX 64
void cad_submission_log_name(const cad_report_run *r, int index, char *buf, size_t n);

/* Create out_dir when missing and copy into it every run's <run_dir>/log.txt (under
 * cad_submission_log_name) and the first run's config.yaml when it has one. */
int cad_submission_copy_logs(const cad_report_data *d, const cad_report_group *g, const char *out_dir, cad_err *e);

/* Create (truncate) path for writing a file of the folder, never through a symlink: a link
 * planted in --out (README.md -> ~/.bashrc) would otherwise have the export overwrite its
 * target. NULL with e set (naming the path and what to do) on failure. */
FILE *cad_submission_create(const char *path, cad_err *e);

/* README.md: title, the mean (and std over seeds), bytes, config and the per-seed table whose
 * Log column names each run's copied log. */
int cad_submission_write_readme(const char *path, const cad_report_data *d, const cad_report_group *g,
                                const char *name, cad_err *e);

#endif
