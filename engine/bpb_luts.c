/*
 * bpb_luts.c — build the val_bpb byte tables exactly like train_gpt.py's
 * build_sentencepiece_luts, and count the bytes of a token stream by eval_val's rule.
 * Not here: the loss or the model.
 */
#include "engine/bpb_luts.h"

#include <stdlib.h>
#include <string.h>

int cad_bpb_luts_build(const cad_tokenizer *t, int vocab_size, cad_bpb_luts *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    int sp_vocab = cad_tokenizer_vocab_size(t);
    if (vocab_size < 0)
        return cad_fail(e, CAD_ECONFIG, "byte LUTs: vocab_size %d is negative", vocab_size);
    int size = sp_vocab > vocab_size ? sp_vocab : vocab_size;
    out->base_bytes = calloc((size_t)size, sizeof *out->base_bytes);
    out->has_leading_space = calloc((size_t)size, 1);
    out->is_boundary = malloc((size_t)size);
    if (!out->base_bytes || !out->has_leading_space || !out->is_boundary) {
        cad_bpb_luts_free(out);
        return cad_fail(e, CAD_ENOMEM, "byte LUTs: out of memory for %d entries", size);
    }
    out->size = size;
    memset(out->is_boundary, 1, (size_t)size);
    static const char space_mark[] = "\xe2\x96\x81"; /* U+2581 '▁', 3 bytes in UTF-8 */
    for (int id = 0; id < sp_vocab; id++) {
        if (cad_tokenizer_is_control(t, id) || cad_tokenizer_is_unknown(t, id) ||
            cad_tokenizer_is_unused(t, id))
            continue;
        out->is_boundary[id] = 0;
        if (cad_tokenizer_is_byte(t, id)) {
            out->base_bytes[id] = 1;
            continue;
        }
        const char *piece = cad_tokenizer_piece(t, id);
        size_t n = strlen(piece);
        if (n >= 3 && memcmp(piece, space_mark, 3) == 0) {
            out->has_leading_space[id] = 1;
            n -= 3;
        }
        out->base_bytes[id] = (int16_t)n;
    }
    return CAD_OK;
}

void cad_bpb_luts_free(cad_bpb_luts *l) {
    if (!l) return;
    free(l->base_bytes);
    free(l->has_leading_space);
    free(l->is_boundary);
    memset(l, 0, sizeof *l);
}

int cad_bpb_luts_load(const char *model_path, int vocab_size, cad_bpb_luts *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    cad_tokenizer *t;
    int rc = cad_tokenizer_load(model_path, &t, e);
    if (rc != CAD_OK) return rc;
    int sp_vocab = cad_tokenizer_vocab_size(t);
    if (sp_vocab != vocab_size)
        rc = cad_fail(e, CAD_ECONFIG, "%s: vocab_size %d does not match the tokenizer's %d",
                      model_path, vocab_size, sp_vocab);
    else
        rc = cad_bpb_luts_build(t, vocab_size, out, e);
    cad_tokenizer_free(t);
    return rc;
}

int cad_bpb_count_bytes(const cad_bpb_luts *l, const uint16_t *tokens, long n, int64_t *bytes,
                        cad_err *e) {
    int64_t total = 0;
    *bytes = 0;
    for (long i = 0; i < n; i++)
        if (tokens[i] >= l->size)
            return cad_fail(e, CAD_EFORMAT, "byte count: token %ld has id %d >= LUT size %d", i,
                            tokens[i], l->size);
    for (long i = 0; i + 1 < n; i++) total += cad_bpb_token_bytes(l, tokens[i], tokens[i + 1]);
    *bytes = total;
    return CAD_OK;
}
