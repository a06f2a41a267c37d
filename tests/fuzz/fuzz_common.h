/*
 * fuzz_common.h — what every harness in tests/fuzz/ shares: the private temp directory per
 * process and the one file in it the input is written to (most caddie loaders take a path,
 * not a buffer), the check that a
 * failed call left the error message the status convention promises, and the small models
 * (tensor lists, checkpoint meta) that both the harnesses and gen_seeds.c use, so generated
 * seeds match what the harnesses expect.
 *
 * Header-only (static inline functions) so each harness stays one translation unit that both clang's
 * libFuzzer link and gcc's replay_main.c link compile as is.
 * Not here: the parsers' own checks (the library), running the fuzzer (run_fuzz.sh).
 */
#ifndef CADDIE_FUZZ_COMMON_H
#define CADDIE_FUZZ_COMMON_H

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "engine/status.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A harness invariant broke: report and abort, which libFuzzer and the replay both see as a
 * crash (a silent return would let the finding pass). */
#define FUZZ_FAIL(...)                                                                  \
    do {                                                                                \
        fprintf(stderr, "fuzz invariant failed (%s:%d): ", __FILE__, __LINE__);         \
        fprintf(stderr, __VA_ARGS__);                                                   \
        fputc('\n', stderr);                                                            \
        abort();                                                                        \
    } while (0)

static char fuzz_dir_[PATH_MAX], fuzz_file_[PATH_MAX];

/* Remove path and everything under it (no symbolic link is followed: nftw FTW_PHYS). */
static inline int fuzz_rm_entry_(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(p) != 0 && errno != ENOENT;
}
static inline void fuzz_rm_tree(const char *path) {
    nftw(path, fuzz_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fuzz_cleanup_(void) {
    if (fuzz_dir_[0]) fuzz_rm_tree(fuzz_dir_);
}

/* This process's private directory (mkdtemp under $TMPDIR, so parallel fuzzer jobs never
 * share a file), made on first use and removed with all it holds at exit. Failing to make it
 * is the machine's problem, not a finding, but fuzzing on without it would test nothing:
 * abort. */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/caddie-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(fuzz_dir_)) FUZZ_FAIL("mkdtemp %s failed", fuzz_dir_);
        atexit(fuzz_cleanup_);
    }
    return fuzz_dir_;
}

/* Write size bytes to path (replacing it). */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) FUZZ_FAIL("cannot write %s", path);
    if (size && fwrite(data, 1, size, f) != size) FUZZ_FAIL("short write to %s", path);
    if (fclose(f) != 0) FUZZ_FAIL("cannot close %s", path);
}

/* Write the input to <fuzz_dir()>/name and return that path. The directory holds nothing
 * else, so a loader that resolves relative paths (a sweep's `base:`) finds only the input
 * itself. */
static inline const char *fuzz_write_input(const char *name, const uint8_t *data, size_t size) {
    if (!fuzz_file_[0] &&
        (size_t)snprintf(fuzz_file_, sizeof fuzz_file_, "%s/%s", fuzz_dir(), name) >= sizeof fuzz_file_)
        FUZZ_FAIL("temp path too long under %s", fuzz_dir_);
    fuzz_write_file(fuzz_file_, data, size);
    return fuzz_file_;
}

/* status.h: a function that fails fills the cad_err with one line saying what is wrong. */
static inline void fuzz_check_err(int rc, const cad_err *e, const char *what) {
    if (rc == CAD_OK) return;
    if (strnlen(e->msg, sizeof e->msg) == sizeof e->msg) FUZZ_FAIL("%s: error message not terminated", what);
    if (e->msg[0] == 0) FUZZ_FAIL("%s: failed (status %d) with an empty message", what, rc);
}

/* ---- the small models the binary-format harnesses load into ---------------------------- */

/* A checkpoint meta a tiny model would have (the shape fields must match to get past them). */
static inline cad_checkpoint_meta fuzz_ckpt_want(void) {
    cad_checkpoint_meta m;
    memset(&m, 0, sizeof m); /* padding too: the meta is written and hashed as raw bytes */
    m.step = 3;
    m.training_time_ms = 12.5;
    m.adam_step = 3;
    m.stream_file_idx = 0;
    m.stream_pos = 96;
    m.stop_after_step = -1;
    m.n_param_floats = 40;
    m.n_state_floats = 24;
    m.vocab_size = 8;
    m.num_layers = 1;
    m.model_dim = 4;
    m.num_heads = 2;
    m.num_kv_heads = 1;
    m.mlp_mult = 2;
    m.tie_embeddings = 1;
    m.prequant_val_loss = 2.0;
    m.prequant_val_bpb = 1.5;
    return m;
}

/* Tensors of a toy model: a 2-D matrix (per-row int8 in an artifact), a control vector, a
 * 3-D tensor and a plain vector, so every scheme and rank has a place to land. */
#define FUZZ_N_TENSORS 4
static float fuzz_tdata_[FUZZ_N_TENSORS][64];
static inline void fuzz_tensors(cad_named_tensor ts[FUZZ_N_TENSORS]) {
    static const struct { const char *name; int ndim; int64_t shape[3]; } spec[FUZZ_N_TENSORS] = {
        {"tok_emb.weight", 2, {8, 4, 0}},
        {"blocks.0.attn_scale", 1, {4, 0, 0}},
        {"blocks.0.attn.c_q.weight", 3, {2, 2, 3}},
        {"skip_weights", 1, {5, 0, 0}},
    };
    memset(fuzz_tdata_, 0, sizeof fuzz_tdata_);
    for (int i = 0; i < FUZZ_N_TENSORS; i++) {
        memset(&ts[i], 0, sizeof ts[i]);
        ts[i].name = spec[i].name;
        ts[i].ndim = spec[i].ndim;
        ts[i].numel = 1;
        for (int d = 0; d < spec[i].ndim; d++) {
            ts[i].shape[d] = spec[i].shape[d];
            ts[i].numel *= (size_t)spec[i].shape[d];
        }
        ts[i].data = fuzz_tdata_[i];
    }
}

/* ---- the record harness's input: a record folder packed into one file ------------------ */

/* fuzz_record.c's input is the files of a record folder, in this order, each ended by the
 * separator line (the last one may be unterminated); a missing or empty part is a file the
 * record does not have. gen_seeds.c packs the repo's record fixtures the same way. The seed
 * suffixes of the log names let a submission's seed_results.<seed> claims pair with them. */
#define FUZZ_RECORD_SEP "\n#### fuzz-record-next-file ####\n"
#define FUZZ_RECORD_NFILES 5
#define FUZZ_RECORD_FIRST_LOG 2
static inline const char *fuzz_record_file(int i) {
    static const char *const names[FUZZ_RECORD_NFILES] = {
        "submission.json", "README.md", "train_seed1337.log", "train_seed42.log", "logs/train.txt",
    };
    return names[i];
}

#endif
