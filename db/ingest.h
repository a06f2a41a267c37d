/*
 * ingest.h — the ONE path from a run directory into the database (architecture.md: "the
 * run dir is the truth; the DB is an index").
 *
 * A run directory holds (see notes/common.md "Run directory"):
 *   run.json       written by `sweep add` and rewritten on every status change (db/db.h):
 *                  the runs row, its sweep (name, description, spec) and its events
 *   config.yaml    resolved config (flat key: value)
 *   metrics.jsonl  {"step":S,"name":"train_loss","value":X,"wall_ms":T} per line
 *   result.json    written atomically at a successful end
 *   artifacts      final_model.int8.ptz, weights.safetensors, checkpoint.bin, log.txt
 * The runner calls cad_ingest_run_dir repeatedly while a run is alive (curves appear live)
 * and once more at its end; `caddie import-run` and `caddie db rebuild` use cad_ingest_import.
 * Command-engine runs (train_gpt.py-style scripts) get the same files: the runner turns the
 * parsed stdout into metrics.jsonl lines with cad_ingest_write_metric and writes result.json
 * with cad_ingest_write_result, so rebuild treats both engines alike.
 *
 * Reading JSON goes through SQLite's JSON1 (no JSON library). Re-ingesting is idempotent:
 * metrics are INSERT OR REPLACE keyed (run_id, name, step).
 * Not here: parsing text logs (db/logparse.h), the runner's process handling.
 */
#ifndef CADDIE_INGEST_H
#define CADDIE_INGEST_H

#include "db/db.h"
#include "db/logparse.h"

#include <stdint.h>
#include <stdio.h>

/* Where an incremental ingestion of one run dir stands; zero it with
 * cad_ingest_state_init and keep it between calls for the same run. */
typedef struct cad_ingest_state {
    int64_t metrics_offset;  /* bytes of metrics.jsonl consumed (always at a line end) */
    int64_t metrics_rows;    /* metric rows inserted so far */
    int64_t metrics_lines;   /* complete lines consumed (error messages name line numbers) */
    int64_t bad_lines;       /* complete lines that were not a valid metric object */
    int result_done;         /* 1 once result.json was read (the run finished OK) */
    int artifacts_done;      /* 1 once artifacts were recorded (after result.json) */
} cad_ingest_state;

void cad_ingest_state_init(cad_ingest_state *s);

/* Ingest what is new in run_dir for run_id (which must exist in runs): metrics.jsonl from
 * s->metrics_offset up to the last complete line (a partial last line is left for the
 * next call), then result.json when present (results row + provenance) and the artifact
 * files (kind, path, bytes, sha256). Batched: one transaction per call unless the caller
 * holds one. Missing files are not errors (the run may not have written them yet). */
int cad_ingest_run_dir(cad_db *db, const char *run_id, const char *run_dir,
                       cad_ingest_state *s, cad_err *e);

/* Import a whole run dir as a run: restores the runs row, sweep and events from run.json
 * when present; otherwise builds the row from config.yaml (engine "caddie", run_id from
 * the config's run_id key or the directory name, status done when result.json exists,
 * else failed with error "no result.json"). Then ingests everything (cad_ingest_run_dir).
 * replace=1 deletes an existing run with the same id first (rebuild, re-import);
 * replace=0 fails with "run 'X' already exists". run_id_out (cap >= CAD_RUN_ID_MAX) gets
 * the run id. */
int cad_ingest_import(cad_db *db, const char *run_dir, int replace, char *run_id_out,
                      size_t cap, cad_err *e);

/* A run dir the rebuild skipped, and why (one line naming the file at fault). */
typedef void (*cad_ingest_skip_fn)(void *ctx, const char *run_dir, const char *why);

/* Re-create the DB content from every runs_dir/<x>/ holding run.json or config.yaml:
 * deletes all rows, then imports each directory (sorted by name), in ONE transaction. A run
 * dir that cannot be imported (invalid or truncated run.json, a value its column refuses)
 * is skipped: nothing of it is kept, on_skip (may be NULL) is told, *n_skipped counts it,
 * and the rest is imported. A failure of the database itself (full disk, damaged file) or
 * of listing runs_dir rolls everything back. *n_runs gets the number of runs imported. */
int cad_ingest_rebuild(cad_db *db, const char *runs_dir, int *n_runs, int *n_skipped,
                       cad_ingest_skip_fn on_skip, void *ctx, cad_err *e);

/* Write one metrics.jsonl line (with '\n') in the journal format; NaN value -> null.
 * 0, or -1 when the stream has failed (ferror; errno says why): a caller that must not
 * lose points checks this and its fflush/fclose. */
int cad_ingest_write_metric(FILE *f, const cad_metric *m);

/* The final numbers a train_gpt.py-style log states (its summary) as a result; what the log
 * did not say stays unknown. */
void cad_ingest_result_from_log(cad_result *r, const cad_log_summary *s);

/* Write result.json atomically (path.tmp + rename) in the engine's format. */
int cad_ingest_write_result(const char *path, const char *run_id, const cad_result *r,
                            cad_err *e);

#endif
