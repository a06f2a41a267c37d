/*
 * bpb_luts.h — the val_bpb byte-counting tables, exactly train_gpt.py build_sentencepiece_luts,
 * and the per-target byte rule of eval_val (parameter-golf.md §6).
 *
 * Tables are sized max(sp_vocab, vocab_size). Defaults (also for ids >= sp vocab): 0 bytes,
 * no leading space, boundary. Control/unknown/unused pieces keep the defaults; byte pieces
 * count 1; other pieces count the UTF-8 length of the piece without a leading U+2581, which
 * sets has_leading_space.
 * Not here: the loss itself, tokenization.
 */
#ifndef CADDIE_BPB_LUTS_H
#define CADDIE_BPB_LUTS_H

#include "engine/status.h"
#include "engine/tokenizer.h"

#include <stdint.h>

typedef struct cad_bpb_luts {
    int size;
    int16_t *base_bytes;
    uint8_t *has_leading_space;
    uint8_t *is_boundary;
} cad_bpb_luts;

int cad_bpb_luts_build(const cad_tokenizer *t, int vocab_size, cad_bpb_luts *out, cad_err *e);
void cad_bpb_luts_free(cad_bpb_luts *l);

/* What the trainer calls: load MODEL, require its vocab to equal vocab_size (train_gpt.py
 * raises "VOCAB_SIZE=... does not match tokenizer vocab_size=..." otherwise; here it is a
 * CAD_ECONFIG naming the model) and build the tables. The tokenizer is not kept. */
int cad_bpb_luts_load(const char *model_path, int vocab_size, cad_bpb_luts *out, cad_err *e);

/* Bytes counted for target y whose input (previous) token is x_prev:
 * base_bytes[y] + (has_leading_space[y] && !is_boundary[x_prev]). Ids must be < l->size. */
static inline int cad_bpb_token_bytes(const cad_bpb_luts *l, int x_prev, int y) {
    return l->base_bytes[y] + (l->has_leading_space[y] && !l->is_boundary[x_prev]);
}

/* Sum of cad_bpb_token_bytes over the pairs (tokens[i], tokens[i+1]) for i in [0, n-1):
 * what eval_val counts for the stream tokens[0..n). Ids >= l->size are an error. */
int cad_bpb_count_bytes(const cad_bpb_luts *l, const uint16_t *tokens, long n, int64_t *bytes,
                        cad_err *e);

#endif
