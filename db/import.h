/*
 * import.h — existing train_gpt.py-style training logs, and Parameter Golf record folders,
 * into the database (`caddie import-log`, `caddie import-record`).
 *
 * One ingestion path (architecture.md): an imported log first becomes a run directory,
 * <runs_dir>/imported/<run_id>/ with
 *   log.txt        the log, copied byte for byte
 *   metrics.jsonl  the curves the parser found (db/logparse.h)
 *   result.json    the parsed final numbers (only when the log has a final score)
 *   config.yaml    the hyperparameters the log printed, plus provenance keys
 *                  (source_log, and for records: record, claimed_val_bpb, claim_source, ...)
 * and then goes into the DB like any other run: a runs row (engine "log", status done, or
 * failed when the log has curves but no final evaluation), then cad_ingest_run_dir for
 * metrics/result/artifacts, then run.json so `caddie db rebuild` restores it. A record
 * folder (README.md + submission*.json + logs) becomes a sweep named after the folder with
 * one run per log; logs differing only by seed share a group_hash, so `sweep_groups` gives
 * mean ± std over seeds. The submission's claimed val_bpb for a log (seed_results.<seed>,
 * or the top-level val_bpb of a single-log record) is kept as the param claimed_val_bpb,
 * next to the parsed results.val_bpb.
 *
 * Library code: nothing is printed; each log's outcome comes back in a cad_import_result
 * (import-log) or through a callback (import-record), for cli/cmd_import.c to print.
 * Not here: parsing (db/logparse.h), ingestion of a run dir (db/ingest.h), live runs of the
 * command engine (the runner), option parsing and printing (cli/cmd_import.c).
 */
#ifndef CADDIE_IMPORT_H
#define CADDIE_IMPORT_H

#include "db/db.h"

#include <stdint.h>

typedef struct cad_import_opts {
    const char *runs_dir;  /* parent of imported/ (created when missing) */
    int replace;           /* 1: re-import a run id that exists; 0: that is an error */
} cad_import_opts;

/* $CADDIE_RUNS or "runs", the runs_dir of every command that writes run directories. */
const char *cad_import_default_runs_dir(void);

#define CAD_IMPORT_TEXT_MAX 64 /* claimed_val_bpb and score_line texts */
#define CAD_IMPORT_NOTE_MAX 512 /* a note on one log or record */

/* Size caps of a record's text inputs, read whole: a record's submission JSON and README
 * are a few kB; a bigger one fails the record at once instead of filling memory. Logs have
 * no cap: they are streamed (copied and parsed a chunk at a time, never held whole). */
#define CAD_IMPORT_SUBMISSION_MAX ((size_t)1 << 20) /* 1 MiB */
#define CAD_IMPORT_README_MAX ((size_t)1 << 20)     /* 1 MiB */

/* What became of one log. */
typedef struct cad_import_result {
    int skipped;                     /* 1: no training output (no step or final evaluation
                                      * lines): nothing was imported */
    char run_id[CAD_RUN_ID_MAX];
    cad_run_status status;           /* CAD_RUN_DONE, or CAD_RUN_FAILED without a score */
    int has_score;
    double val_bpb;                  /* the parsed score (has_score) */
    char claimed_val_bpb[CAD_IMPORT_TEXT_MAX]; /* the log's own claim, else the record's; "" none */
    char score_line[CAD_IMPORT_TEXT_MAX];      /* the kind of line that gave the score */
    const char *sweep;               /* the sweep name (borrowed) or NULL */
    /* What the import could not take as it is, "" when nothing: a line that looks like a
     * score but was not understood ("line 12: not understood: eval bpb 1.27 (and 3 more
     * such lines)"), and a claim that differs from the parsed score ("claimed 1.3000
     * (submission.json $.val_bpb) differs from the parsed 1.25000000: both kept").
     * Also set for a skipped log. */
    char note[CAD_IMPORT_NOTE_MAX];
} cad_import_result;

/* The id of the sweep called name, creating it (with description) when new. An existing
 * sweep is left as it is: importing logs into a sweep queued from a YAML file must not
 * blank its spec. */
int cad_import_sweep(cad_db *db, const char *name, const char *description, int64_t *id,
                     cad_err *e);

/* Import one log file (a regular file: a FIFO or device is refused without blocking; it
 * is streamed, never held whole). Its run id and group are "<sweep or parent dir>-<file stem>" (that
 * keeps the many train.log apart); sweep/sweep_id (NULL/-1: none) come from
 * cad_import_sweep. *out says what happened (out->skipped: not a training log). */
int cad_import_log(cad_db *db, const cad_import_opts *o, const char *log_path,
                   const char *sweep, int64_t sweep_id, cad_import_result *out, cad_err *e);

/* One log of a record: its path inside the record, and either its result (err NULL) or
 * why it failed (res NULL); or (res and err NULL) a note on the whole record, with log
 * naming where the claim came from: the record's one claim (a submission's top-level
 * val_bpb beside several logs, or the README's) matched none of the parsed scores, and
 * the note says whether it is their mean or differs from every one (both are kept). */
typedef struct cad_import_record_log {
    const char *record;              /* the record's name (its folder's base name) */
    const char *log;                 /* path of the log relative to the record folder */
    const cad_import_result *res;
    const cad_err *err;
    const char *note;                /* the record's note (res and err NULL) */
} cad_import_record_log;
typedef void (*cad_import_record_fn)(void *ctx, const cad_import_record_log *l);

/* Import a record folder: its logs (*.log, *.txt under it, 4 levels deep, sorted), each
 * reported through fn, into a sweep named after the folder, described by the submission's
 * name or the README's first heading. Symbolic links are followed only while they stay
 * inside the folder; each one that leaves it is reported through fn as a failed entry (not
 * followed). Each folder is entered once and each distinct file (device, inode) imported
 * once, so link loops and duplicate links add nothing. Fails (nothing reported) when dir is
 * not a readable folder, holds no log, its submission JSON or README is not a regular file
 * within the caps above (or links out of the folder), or the sweep cannot be made; a
 * failing log is reported and the others still go in. */
int cad_import_record(cad_db *db, const cad_import_opts *o, const char *dir,
                      cad_import_record_fn fn, void *ctx, cad_err *e);

#endif
