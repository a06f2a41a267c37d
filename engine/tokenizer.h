/*
 * tokenizer.h — SentencePiece from C: load a .model, ids <-> text, per-piece flags, and
 * train a model with the challenge exporter's options. Implemented by the thin C++ shim
 * engine/tokenizer_shim.cc over Debian's libsentencepiece (the only C++ in caddie); every
 * C++ exception or sentencepiece status becomes a cad_err.
 * Not here: the val_bpb byte tables (bpb_luts.h), shard writing (shard.h).
 */
#ifndef CADDIE_TOKENIZER_H
#define CADDIE_TOKENIZER_H

#include "engine/status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cad_tokenizer cad_tokenizer;

int cad_tokenizer_load(const char *model_path, cad_tokenizer **out, cad_err *e);
void cad_tokenizer_free(cad_tokenizer *t);
int cad_tokenizer_vocab_size(const cad_tokenizer *t);
/* The model's bos id (1 for the challenge tokenizers; -1 if the model has none). */
int cad_tokenizer_bos_id(const cad_tokenizer *t);
/* sp.encode(text) (no BOS/EOS added). *ids is malloc'd, caller frees (NULL when *n == 0). */
int cad_tokenizer_encode(const cad_tokenizer *t, const char *text, size_t len, int **ids, int *n,
                         cad_err *e);
/* sp.decode(ids); *text is malloc'd and NUL-terminated, caller frees. */
int cad_tokenizer_decode(const cad_tokenizer *t, const int *ids, int n, char **text, cad_err *e);
/* The same, also giving the length (the text may contain NUL bytes, e.g. from "\0" input). */
int cad_tokenizer_decode_len(const cad_tokenizer *t, const int *ids, int n, char **text,
                             size_t *len, cad_err *e);
/* sp.id_to_piece(id); valid until the tokenizer is freed; "" for an out-of-range id. */
const char *cad_tokenizer_piece(const cad_tokenizer *t, int id);
/* Piece flags (0 for an out-of-range id). */
int cad_tokenizer_is_control(const cad_tokenizer *t, int id);
int cad_tokenizer_is_unknown(const cad_tokenizer *t, int id);
int cad_tokenizer_is_unused(const cad_tokenizer *t, int id);
int cad_tokenizer_is_byte(const cad_tokenizer *t, int id);

/* Train a BPE model with exactly the challenge exporter's options (parameter-golf.md §5):
 * model_type bpe, vocab_size, character_coverage 0.999, byte_fallback, split_digits,
 * normalization nmt_nfkc, add_dummy_prefix false, pad 0 / bos 1 / eos 2 / unk 3,
 * hard_vocab_limit false; everything else sentencepiece defaults. Documents are read from
 * the input files by textdocs.h (JSONL "text" field or plain text), in order; each goes
 * through text.replace("\0"," ").strip() and empty ones are skipped, like the exporter's
 * iterator. Writes out_prefix.model and out_prefix.vocab. verbose != 0 lets sentencepiece
 * log its progress to stderr. Implemented in tokenizer_train.c. */
int cad_tokenizer_train(const char *const *inputs, int n_inputs, int vocab_size,
                        const char *out_prefix, int verbose, cad_err *e);

/* The trainer proper (in the shim), with documents from a callback: next(ctx, ...) returns 1
 * with a document (already cleaned; passed on unchanged), 0 at the end, or a negative status
 * with e filled, which stops training and is returned. */
typedef int (*cad_doc_iter_fn)(void *ctx, const char **text, size_t *len, cad_err *e);
int cad_tokenizer_train_iter(cad_doc_iter_fn next, void *ctx, int vocab_size,
                             const char *out_prefix, int verbose, cad_err *e);

/* Python's str.strip() (Unicode whitespace) on UTF-8 text: the [*start, *start+*len) range. */
void cad_text_py_strip(const char *s, size_t n, size_t *start, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
