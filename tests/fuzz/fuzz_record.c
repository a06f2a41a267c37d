/*
 * fuzz_record.c — libFuzzer harness for record import (cad_import_record, db/import.c): the
 * submission JSON (read with SQLite's JSON1: name, val_bpb, seed, seed_results.<seed>), the
 * README (first heading, the first "val_bpb" number) and the logs of a Parameter Golf record
 * folder. The input is a folder packed into one file (fuzz_common.h, FUZZ_RECORD_SEP); each
 * input is unpacked into a fresh folder and imported into a fresh in-memory DB with a fresh
 * runs dir, so no input depends on the ones before it.
 * Checks beyond the sanitizers: every report names one outcome (a result, an error with a
 * message, or a note on the claim); an imported log has its run row and a byte-for-byte
 * log.txt; a skipped or failed log leaves no run dir; a successful import reports each log
 * once.
 * Not here: the log parser's own invariants (fuzz_logparse.c), links and FIFOs in a record
 * (t0502-import-hostile).
 */
#include "db/import.h"
#include "tests/fuzz/fuzz_common.h"

#include <dirent.h>

typedef struct {
    const char *runs;       /* the runs dir */
    cad_db *db;
    const size_t *log_size; /* size of each log file written, by part index (0: absent) */
    int n_logs_reported;
    int n_skipped;          /* logs without training output: not imported */
    int n_imported;
} ctx;

static void check_text(const char *s, size_t cap, const char *what) {
    if (strnlen(s, cap) == cap) FUZZ_FAIL("%s not terminated", what);
}

static int part_of(const char *rel) {
    for (int i = FUZZ_RECORD_FIRST_LOG; i < FUZZ_RECORD_NFILES; i++)
        if (strcmp(rel, fuzz_record_file(i)) == 0) return i;
    return -1;
}

static void on_log(void *vc, const cad_import_record_log *l) {
    ctx *c = vc;
    if (!l->record || !l->record[0]) FUZZ_FAIL("report without the record's name");
    int kinds = (l->res != NULL) + (l->err != NULL) + (l->note != NULL);
    if (kinds != 1) FUZZ_FAIL("report on '%s' has %d outcomes, not 1", l->log ? l->log : "?", kinds);
    if (l->note) {
        if (!l->note[0]) FUZZ_FAIL("empty note on the record");
        return;
    }
    int part = l->log ? part_of(l->log) : -1;
    if (part < 0 || !c->log_size[part]) FUZZ_FAIL("report on a log not written: '%s'", l->log ? l->log : "(null)");
    c->n_logs_reported++;
    if (l->err) {
        fuzz_check_err(l->err->code ? l->err->code : CAD_ERR, l->err, l->log);
        return;
    }
    const cad_import_result *r = l->res;
    check_text(r->run_id, sizeof r->run_id, "run_id");
    check_text(r->note, sizeof r->note, "note");
    check_text(r->claimed_val_bpb, sizeof r->claimed_val_bpb, "claimed_val_bpb");
    check_text(r->score_line, sizeof r->score_line, "score_line");
    if (r->skipped) {
        if (r->run_id[0]) FUZZ_FAIL("%s: skipped, yet it has run id '%s'", l->log, r->run_id);
        c->n_skipped++;
        return;
    }
    if (!r->run_id[0]) FUZZ_FAIL("%s: imported without a run id", l->log);
    char p[PATH_MAX * 2 + 16];
    snprintf(p, sizeof p, "%s/imported/%s/log.txt", c->runs, r->run_id);
    struct stat st;
    if (stat(p, &st) != 0) FUZZ_FAIL("%s: imported, yet %s is missing", l->log, p);
    if ((size_t)st.st_size != c->log_size[part])
        FUZZ_FAIL("%s: log.txt has %lld bytes, the log %zu", l->log, (long long)st.st_size, c->log_size[part]);
    if (r->has_score != (r->status == CAD_RUN_DONE)) FUZZ_FAIL("%s: status does not follow the score", l->log);
    cad_err e;
    cad_err_clear(&e);
    cad_run run;
    if (cad_db_get_run(c->db, r->run_id, &run, &e) != CAD_OK)
        FUZZ_FAIL("%s: imported run '%s' not in the DB: %s", l->log, r->run_id, e.msg);
    cad_run_free(&run);
    c->n_imported++;
}

/* Run dirs under <runs>/imported/: one per imported log, none for a skipped one. */
static int count_run_dirs(const char *runs) {
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/imported", runs);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char rec[PATH_MAX + 16], runs[PATH_MAX + 16], p[PATH_MAX * 2 + 64];
    snprintf(rec, sizeof rec, "%s/rec", fuzz_dir());
    snprintf(runs, sizeof runs, "%s/runs", fuzz_dir());
    fuzz_rm_tree(rec);
    fuzz_rm_tree(runs);
    snprintf(p, sizeof p, "%s/logs", rec);
    if (mkdir(rec, 0700) != 0 || mkdir(p, 0700) != 0) FUZZ_FAIL("cannot make %s", p);
    /* unpack: part i runs to the next separator (or the end) */
    size_t log_size[FUZZ_RECORD_NFILES] = {0}, off = 0, seplen = strlen(FUZZ_RECORD_SEP);
    int n_logs = 0;
    for (int i = 0; i < FUZZ_RECORD_NFILES && off <= size; i++) {
        const uint8_t *end = memmem(data + off, size - off, FUZZ_RECORD_SEP, seplen);
        size_t n = end ? (size_t)(end - (data + off)) : size - off;
        if (n) {
            snprintf(p, sizeof p, "%s/%s", rec, fuzz_record_file(i));
            fuzz_write_file(p, data + off, n);
            if (i >= FUZZ_RECORD_FIRST_LOG) log_size[i] = n, n_logs++;
        }
        if (!end) break;
        off += n + seplen;
    }
    cad_err e;
    cad_err_clear(&e);
    cad_db *db;
    if (cad_db_open(":memory:", 0, &db, &e) != CAD_OK) FUZZ_FAIL("in-memory DB: %s", e.msg);
    cad_import_opts o = {.runs_dir = runs, .replace = 0};
    ctx c = {runs, db, log_size, 0, 0, 0};
    int rc = cad_import_record(db, &o, rec, on_log, &c, &e);
    fuzz_check_err(rc, &e, "cad_import_record");
    if (rc == CAD_OK && c.n_logs_reported != n_logs)
        FUZZ_FAIL("%d logs in the record, %d reported", n_logs, c.n_logs_reported);
    if (rc != CAD_OK && c.n_logs_reported != 0 && n_logs == 0)
        FUZZ_FAIL("no logs, yet %d reported", c.n_logs_reported);
    int dirs = count_run_dirs(runs);
    if (dirs != c.n_imported) FUZZ_FAIL("%d logs imported, %d run dirs left", c.n_imported, dirs);
    cad_db_close(db);
    return 0;
}
