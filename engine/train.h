/*
 * train.h — `caddie train` and `caddie eval`: train_gpt.py's main() on a cad_backend.
 *
 * cad_train_run: resolve the run directory, plan memory, load tokenizer/LUTs/val split, build
 * the model (or init_from a .safetensors), prime with warmup_steps and restore, train with
 * gradient accumulation, Muon/Adam and the lr_mul warmdown, validate at val_loss_every and at
 * the end, write the int8+zlib artifact, evaluate its round trip (the final score) and write
 * result.json. train_gpt.py's log lines go to run_dir/log.txt and to the caller's sink (caddie
 * train: stdout); progress lines with tokens/s and ETA go to a separate sink (caddie train:
 * stderr) so the log stays parseable like train_gpt.py's.
 * Run dir contract: notes/common.md ("Run directory").
 *
 * Not here: option parsing (cli/cmd_train.c), the model math (model.c), the optimizers
 * (optim.c), the artifact format (export.c).
 */
#ifndef CADDIE_TRAIN_H
#define CADDIE_TRAIN_H

#include "engine/collective.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/status.h"

#include <stdio.h>

/* Where a run's text goes besides run_dir. The engine writes nothing else to any stream. */
typedef struct cad_train_sink {
    FILE *log;      /* every log.txt line as it is written (caddie train: stdout); NULL: none */
    FILE *progress; /* "progress step:... tokens_per_s:... eta:..." lines (caddie train: stderr);
                       NULL: none */
} cad_train_sink;

/* The model a config describes (every shape and technique key), planned for forwards of up to
 * max_batch_seqs x max_seq_len tokens; CAD_ECONFIG from block_type. Shared by the trainer and the
 * distillation teacher (distill.c), which is built from its own config. */
int cad_train_model_config(const cad_config *c, int max_batch_seqs, int max_seq_len, cad_model_config *mc,
                           cad_err *e);
/* named[i] (m->n_params entries) = params[i]'s name and shape over host, a host copy laid out like
 * m->param_mem: the view safetensors reads and writes. Returns m->n_params. */
int cad_train_named_tensors(const cad_model *m, float *host, cad_named_tensor *named);

/* Train as configured (c must be validated). Writes only c->run_dir (created if needed) and
 * the sink's streams (sink may be NULL). */
int cad_train_run(cad_config *c, const cad_train_sink *sink, cad_err *e);

/* The same as one rank of a data-parallel run over coll (NULL: world 1): the rank's span of
 * every batch (grad_accum_steps = 8 / world unless set), gradients averaged over ranks every
 * step, the Muon work shared out (cad_optim_step_dp), validation and the sliding window split
 * over ranks and reduced, rank 0's clock deciding the wallclock cap. Only rank 0 writes run_dir
 * and the sink; a rank with no run_id set takes rank 0's. On failure, tells the peers
 * (cad_coll_abort). */
int cad_train_run_dp(cad_config *c, const cad_train_sink *sink, cad_coll *coll, cad_err *e);

/* Evaluate weights (a .safetensors with train_gpt.py names) on the val split as configured.
 * With roundtrip, also quantize to int8+zlib in memory-backed temp files and evaluate that.
 * Prints "eval val_loss:X val_bpb:Y ..." lines to out. */
int cad_eval_weights(cad_config *c, const char *weights, int roundtrip, FILE *out, cad_err *e);

/* Sum the bytes of the files matched by the comma-separated globs (code_files). Relative
 * patterns are resolved against the current directory, else against the repository the
 * running binary was built in (build/caddie -> ..). Every pattern must match something.
 * If listing is non-NULL, writes "bytes path" lines to it. */
int cad_code_bytes(const char *globs, long *bytes, int *n_files, FILE *listing, cad_err *e);

/* code_compress: the counted files (cad_code_bytes' order) concatenated, compressed with method
 * ("lzma": xz preset 9e, "zlib": level 9) and base85-encoded inside the records' one-line
 * self-extracting wrapper `import lzma,base64\nexec(lzma.decompress(base64.b85decode("...")))\n`;
 * *text is malloc'd (NUL-terminated), *len its size: the code bytes such a submission counts. */
int cad_code_pack(const char *globs, const char *method, char **text, size_t *len, cad_err *e);

#endif
