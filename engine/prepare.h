/*
 * prepare.h — turning text into challenge-format shards (the exporter's work), and the
 * statistics of a shard set by the official val_bpb byte rule.
 *
 * Library code: nothing here prints; progress comes back through a callback and the figures
 * in the result structs, for `caddie data prepare|stats` (cli/cmd_data.c) to print.
 * Not here: the shard file format (engine/shard.h), input parsing (engine/textdocs.h).
 */
#ifndef CADDIE_PREPARE_H
#define CADDIE_PREPARE_H

#include "engine/bpb_luts.h"
#include "engine/status.h"
#include "engine/tokenizer.h"

#include <stdint.h>

#define CAD_PREPARE_DEFAULT_VAL_DOCS 50000L /* NUM_VAL_DOCS of the exporter */

/* What one split (val, train) received. */
typedef struct cad_prepare_split {
    const char *name; /* "val" / "train" */
    int shards;
    long docs, tokens, bytes; /* tokens include BOS; bytes are the UTF-8 bytes of the texts */
} cad_prepare_split;

typedef struct cad_prepare_result {
    cad_prepare_split split[2]; /* [0] val, [1] train */
    double seconds;
} cad_prepare_result;

/* Called after each batch of documents: input bytes read so far (of bytes_total, 0 when
 * unknown), documents and tokens written so far. */
typedef void (*cad_prepare_progress_fn)(void *ud, long bytes_done, long bytes_total, long docs,
                                        long tokens);

/* Tokenize the documents of inputs[0..n_inputs) into out/fineweb_{val,train}_NNNNNN.bin.
 * Inputs are checked before anything in out is touched; old fineweb_*.bin shards in out are
 * removed first (a smaller re-export never leaves stale shards), and on failure the partial
 * set is removed. Fails when the input has fewer than val_docs documents. progress may be
 * NULL. */
int cad_prepare_shards(const cad_tokenizer *tok, const char *const *inputs, int n_inputs,
                       const char *out, long val_docs, long shard_tokens,
                       cad_prepare_progress_fn progress, void *progress_ud,
                       cad_prepare_result *res, cad_err *e);

/* One split of a shard set read as one stream. */
typedef struct cad_split_stats {
    int shards;
    long tokens, docs;     /* docs = BOS count */
    int64_t lut_bytes;     /* bytes by the official val_bpb rule over all tokens */
    long eval_keep;        /* val: tokens kept by the trim at seq_len (0 if too short) */
    int64_t eval_bytes;    /* lut bytes of the kept targets */
} cad_split_stats;

/* Statistics of dir/fineweb_<split>_*.bin (all zero when there are none). Token ids are
 * checked against the tokenizer's vocabulary. */
int cad_prepare_split_stats(const char *dir, const char *split, const cad_tokenizer *tok,
                            const cad_bpb_luts *luts, int seq_len, cad_split_stats *st,
                            cad_err *e);

#endif
