/*
 * stream.h — token streams over shard sets, exactly as train_gpt.py reads them.
 *
 * cad_token_stream  = TokenStream: the train shards in sorted order, contiguous, wrapping
 *                     around forever (no shuffling), one shard mapped at a time.
 * cad_train_loader  = DistributedTokenLoader: per micro-step every rank's contiguous span of
 *                     global_tokens/(world*accum) + 1 tokens out of one shared chunk.
 * cad_val_tokens_load = load_validation_tokens: all val shards concatenated and trimmed to
 *                     ((N-1)/seq_len)*seq_len + 1 tokens.
 * A length curriculum (cad_token_stream_set_curriculum) reorders documents inside fixed windows
 * of each shard; with it off the stream is train_gpt.py's, token for token.
 * Not here: shard file format (shard.h), what the model does with the tokens.
 */
#ifndef CADDIE_STREAM_H
#define CADDIE_STREAM_H

#include "engine/shard.h"
#include "engine/status.h"

#include <stdint.h>

/* A position in the stream: the shard index (into the sorted glob) and token offset in it.
 * Saved in checkpoints and used to rewind after warmup steps. */
typedef struct cad_stream_pos {
    int file_idx;
    long pos;
} cad_stream_pos;

typedef struct cad_token_stream {
    char **paths;      /* sorted shard paths (owned) */
    int n_files;
    int vocab_size;    /* 0 = no id check */
    int file_idx;      /* shard currently mapped */
    long pos;          /* next token to hand out within it */
    cad_shard cur;     /* the mapped shard paths[file_idx] */
    /* Length curriculum (0 = off): shard positions [k*window, (k+1)*window) form window k; its
     * documents (segments starting at the window start or at a bos token) are handed out
     * shortest first, ties in stream order. pos still counts tokens taken from the shard, so
     * tell/seek (and checkpoints) address the reordered stream. */
    long window;
    int bos_id;
    uint16_t *win;     /* the current window, reordered (window tokens) */
    long win_start, win_len; /* its shard position and length; win_len 0 = none loaded */
} cad_token_stream;

int cad_token_stream_open(cad_token_stream *s, const char *pattern, int vocab_size, cad_err *e);
/* Copy the next n tokens into out, crossing shard ends and wrapping to shard 0 as needed. */
int cad_token_stream_take(cad_token_stream *s, long n, uint16_t *out, cad_err *e);
cad_stream_pos cad_token_stream_tell(const cad_token_stream *s);
/* Jump to a position from tell(); an out-of-range position is an error. */
int cad_token_stream_seek(cad_token_stream *s, cad_stream_pos p, cad_err *e);
void cad_token_stream_close(cad_token_stream *s);
/* Switch the length curriculum on (window > 0 tokens, documents start at bos_id) or off (0);
 * applies from the current position on. CAD_ECONFIG for a negative window, CAD_ENOMEM. */
int cad_token_stream_set_curriculum(cad_token_stream *s, long window, int bos_id, cad_err *e);

typedef struct cad_train_loader {
    cad_token_stream stream;
    int rank, world;
    uint16_t *chunk;   /* scratch for the shared world*(local+1) chunk */
    long chunk_cap;
} cad_train_loader;

int cad_train_loader_open(cad_train_loader *L, const char *pattern, int vocab_size, int rank,
                          int world, cad_err *e);
/* Exactly DistributedTokenLoader.next_batch(global_tokens, seq_len, grad_accum_steps):
 *   local = global_tokens / (world*grad_accum_steps); chunk = take(world*(local+1));
 *   span = chunk[rank*(local+1) : (rank+1)*(local+1)]; x = span[:-1]; y = span[1:].
 * x and y receive `local` int32 each (rows of seq_len). local must be a positive multiple
 * of seq_len (the reshape in train_gpt.py would fail otherwise): that is a CAD_ECONFIG. */
int cad_train_loader_next(cad_train_loader *L, long global_tokens, int seq_len,
                          int grad_accum_steps, int32_t *x, int32_t *y, cad_err *e);
/* Number of tokens per rank per micro-step (x and y sizes) for these settings, or -1 when
 * they are invalid (not divisible, or local not a multiple of seq_len). */
long cad_train_loader_local_tokens(long global_tokens, int seq_len, int world,
                                   int grad_accum_steps);
void cad_train_loader_close(cad_train_loader *L);

/* All shards matching pattern concatenated in sorted order, trimmed to
 * ((N-1)/seq_len)*seq_len + 1 tokens. *tokens is malloc'd (caller frees). Too few tokens for
 * one window of seq_len is an error naming the pattern. */
int cad_val_tokens_load(const char *pattern, int seq_len, int vocab_size, uint16_t **tokens,
                        long *n_tokens, cad_err *e);

#endif
