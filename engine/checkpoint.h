/*
 * checkpoint.h — the full training state in one file (run_dir/checkpoint.bin), so a killed run
 * resumes on the same loss curve: bit-identical on the CPU with the same `threads`.
 *
 * File (little-endian): "CADCKPT1" | u32 version (1) | u32 reserved | meta (fixed fields below)
 * | f32 params[n_param_floats] | f32 optimizer state[n_state_floats] | u64 FNV-1a of all
 * preceding bytes. Written to a temp file, fsync'd and renamed, so a crash while writing
 * leaves the previous checkpoint intact.
 *
 * What is NOT saved because it is derived: the config (the caller must resume with the same
 * model/optimizer keys; the shape fields below are checked), activations, gradients (zero
 * between steps), the val split and LUTs.
 */
#ifndef CADDIE_CHECKPOINT_H
#define CADDIE_CHECKPOINT_H

#include "engine/backend.h"
#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cad_checkpoint_meta {
    int64_t step;               /* optimizer steps done */
    double training_time_ms;    /* train_gpt.py's training_time_ms at that step */
    int64_t adam_step;          /* cad_optim.adam_step */
    int32_t stream_file_idx;    /* cad_stream_pos of the train loader */
    int64_t stream_pos;
    int32_t stop_after_step;    /* -1 = not set */
    int64_t n_param_floats, n_state_floats;
    int32_t vocab_size, num_layers, model_dim, num_heads, num_kv_heads, mlp_mult, tie_embeddings;
    double prequant_val_loss, prequant_val_bpb; /* last validation (NaN if none yet) */
} cad_checkpoint_meta;

/* params / state are backend memory on be (copied to the host in chunks). */
int cad_checkpoint_save(const char *path, const cad_checkpoint_meta *meta, const cad_backend *be,
                        const float *params, const float *state, cad_err *e);

/* Read meta, check the shape fields and sizes against want (everything but step, time,
 * adam_step, stream and val fields must match), verify the checksum, then fill params/state. */
int cad_checkpoint_load(const char *path, const cad_checkpoint_meta *want, cad_checkpoint_meta *got,
                        const cad_backend *be, float *params, float *state, cad_err *e);

#endif
