/*
 * prepare.c — the challenge exporter's work in the engine: text documents into
 * fineweb_{val,train}_NNNNNN.bin shards, and what a shard set holds under the official val_bpb
 * byte rule.
 *
 * cad_prepare_shards reproduces download_hf_docs_and_tokenize.py export_shards token for
 * token: each document is BOS + sp.encode(text) with no EOS, the first val_docs documents are
 * val, shards are filled to shard_tokens and named fineweb_{val,train}_NNNNNN.bin.
 * Not here: the shard format (engine/shard.c), reading input files and JSON
 * (engine/textdocs.c), the tokenizer (engine/tokenizer_shim.cc), byte tables
 * (engine/bpb_luts.c), printing (cli/cmd_data.c).
 */
#include "engine/prepare.h"

#include "engine/fsutil.h"
#include "engine/shard.h"
#include "engine/textdocs.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ENCODE_BATCH 256        /* documents encoded in parallel per batch */
#define SHARD_VOCAB_MAX 65536   /* shards store uint16 token ids */
#define SHARD_BUF_MIN_TOKENS (1L << 16) /* first size of a split's buffer; it doubles up to shard_tokens */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Remove DIR/fineweb_<split>_*.bin for both splits, as the exporter does before writing, so
 * a smaller re-export never leaves stale shards in the glob. */
static int remove_shards(const char *dir, cad_err *e) {
    static const char *const splits[] = {"val", "train"};
    for (int s = 0; s < 2; s++) {
        char pat[PATH_MAX];
        snprintf(pat, sizeof pat, "%s/fineweb_%s_*.bin", dir, splits[s]);
        glob_t g;
        if (glob(pat, 0, NULL, &g) != 0) continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            if (unlink(g.gl_pathv[i]) != 0) {
                int err = errno;
                cad_fail(e, CAD_EIO, "%s: cannot remove stale shard: %s", g.gl_pathv[i],
                         strerror(err));
                globfree(&g);
                return CAD_EIO;
            }
        }
        globfree(&g);
    }
    return CAD_OK;
}

/* ---- prepare ------------------------------------------------------------------------- */

typedef struct split_writer {
    const char *name; /* "val" / "train" */
    const char *dir;
    uint16_t *buf;    /* grows up to shard_tokens, so small inputs stay small in memory */
    long fill, cap, shard_tokens;
    int shards;
    long docs, tokens, bytes;
} split_writer;

static int writer_flush(split_writer *w, cad_err *e) {
    if (w->fill == 0) return CAD_OK;
    char path[PATH_MAX];
    if (cad_shard_name(path, sizeof path, w->dir, w->name, w->shards) != 0)
        return cad_fail(e, CAD_EIO, "%s: output path too long", w->dir);
    int rc = cad_shard_write(path, w->buf, w->fill, e);
    if (rc != CAD_OK) return rc;
    w->shards++;
    w->fill = 0;
    return CAD_OK;
}

static int writer_push(split_writer *w, const uint16_t *toks, long n, cad_err *e) {
    long pos = 0;
    while (pos < n) {
        if (w->fill == w->cap) {
            long want = w->cap ? w->cap * 2 : SHARD_BUF_MIN_TOKENS;
            if (want > w->shard_tokens) want = w->shard_tokens;
            uint16_t *b = realloc(w->buf, (size_t)want * sizeof *b);
            if (!b) return cad_fail(e, CAD_ENOMEM, "out of memory for a %ld-token shard", want);
            w->buf = b;
            w->cap = want;
        }
        long take = w->cap - w->fill;
        if (take > n - pos) take = n - pos;
        memcpy(w->buf + w->fill, toks + pos, (size_t)take * sizeof *toks);
        w->fill += take;
        pos += take;
        if (w->fill == w->shard_tokens) {
            int rc = writer_flush(w, e);
            if (rc != CAD_OK) return rc;
        }
    }
    return CAD_OK;
}

/* One batch of documents, copied out of the reader so they can be encoded in parallel. */
typedef struct doc_batch {
    char *text;        /* all texts back to back */
    size_t text_len, text_cap;
    size_t off[ENCODE_BATCH], len[ENCODE_BATCH];
    int *ids[ENCODE_BATCH];
    int n_ids[ENCODE_BATCH];
    int rc[ENCODE_BATCH];
    cad_err err[ENCODE_BATCH];
    int n;
} doc_batch;

/* The state of one export, from the first batch to the result. */
typedef struct prepare_run {
    const cad_tokenizer *tok;
    int vocab, bos;
    long val_docs;
    cad_docs docs;
    split_writer w[2]; /* [0] val, [1] train */
    int cur;           /* the exporter starts in "val" and flushes when the split changes */
    doc_batch *b;
    uint16_t *toks;    /* one document: BOS + its ids */
    long toks_cap;
    long docs_total;
} prepare_run;

#define DOC_TEXT_MIN_CAP (1 << 20) /* first size of a batch's text buffer */

/* Copy up to ENCODE_BATCH documents out of the reader; *done at the end of the input. */
static int batch_read(prepare_run *p, int *done, cad_err *e) {
    doc_batch *b = p->b;
    b->n = 0;
    b->text_len = 0;
    while (b->n < ENCODE_BATCH) {
        const char *t;
        size_t n;
        int r = cad_docs_next(&p->docs, &t, &n, e);
        if (r < 0) return -r;
        if (r == 0) {
            *done = 1;
            return CAD_OK;
        }
        if (b->text_len + n + 1 > b->text_cap) {
            size_t c = b->text_cap ? b->text_cap : DOC_TEXT_MIN_CAP;
            while (c < b->text_len + n + 1) c *= 2;
            char *q = realloc(b->text, c);
            if (!q) return cad_fail(e, CAD_ENOMEM, "out of memory");
            b->text = q;
            b->text_cap = c;
        }
        memcpy(b->text + b->text_len, t, n);
        b->off[b->n] = b->text_len;
        b->len[b->n] = n;
        b->text_len += n;
        b->n++;
    }
    return CAD_OK;
}

/* Encode the batch in parallel: SentencePieceProcessor::Encode is const and thread-safe, and
 * the order of results does not depend on the schedule. */
static void batch_encode(prepare_run *p) {
    doc_batch *b = p->b;
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < b->n; i++)
        b->rc[i] = cad_tokenizer_encode(p->tok, b->text + b->off[i], b->len[i], &b->ids[i], &b->n_ids[i], &b->err[i]);
}

/* Document i of the batch, as BOS + ids, into its split (switching splits after val_docs). */
static int doc_write(prepare_run *p, int i, cad_err *e) {
    doc_batch *b = p->b;
    int split = p->docs_total < p->val_docs ? 0 : 1, rc;
    if (split != p->cur) {
        if ((rc = writer_flush(&p->w[p->cur], e))) return rc;
        p->cur = split;
    }
    long n = (long)b->n_ids[i] + 1;
    if (n > p->toks_cap) {
        uint16_t *t = realloc(p->toks, (size_t)n * sizeof *t);
        if (!t) return cad_fail(e, CAD_ENOMEM, "out of memory");
        p->toks = t;
        p->toks_cap = n;
    }
    p->toks[0] = (uint16_t)p->bos;
    for (int k = 0; k < b->n_ids[i]; k++) {
        int id = b->ids[i][k];
        if (id < 0 || id >= p->vocab)
            return cad_fail(e, CAD_EFORMAT, "document %ld: token id %d outside vocab size %d", p->docs_total + 1, id,
                            p->vocab);
        p->toks[k + 1] = (uint16_t)id;
    }
    split_writer *w = &p->w[p->cur];
    p->docs_total++;
    w->docs++;
    w->tokens += n;
    w->bytes += (long)b->len[i];
    return writer_push(w, p->toks, n, e);
}

/* Write the encoded batch in input order; every document's ids are freed, even after an
 * error. */
static int batch_write(prepare_run *p, cad_err *e) {
    doc_batch *b = p->b;
    int rc = CAD_OK;
    for (int i = 0; i < b->n; i++) {
        if (rc == CAD_OK && b->rc[i] != CAD_OK) {
            *e = b->err[i];
            rc = b->rc[i];
        }
        if (rc == CAD_OK) rc = doc_write(p, i, e);
        free(b->ids[i]);
        b->ids[i] = NULL;
    }
    return rc;
}

/* The last shard, and the checks only the whole input can answer. */
static int prepare_finish(prepare_run *p, const char *first_input, cad_err *e) {
    int rc = writer_flush(&p->w[p->cur], e);
    if (rc) return rc;
    if (p->docs_total == 0) return cad_fail(e, CAD_EFORMAT, "%s: no documents in the input", first_input);
    if (p->docs_total < p->val_docs)
        return cad_fail(e, CAD_ECONFIG, "--val-docs %ld but the input has only %ld documents", p->val_docs,
                        p->docs_total);
    return CAD_OK;
}

static void prepare_free(prepare_run *p) {
    for (int s = 0; s < 2; s++) free(p->w[s].buf);
    if (p->b) free(p->b->text);
    free(p->b);
    free(p->toks);
    cad_docs_close(&p->docs);
}

int cad_prepare_shards(const cad_tokenizer *tok, const char *const *inputs, int n_inputs,
                       const char *out, long val_docs, long shard_tokens,
                       cad_prepare_progress_fn progress, void *progress_ud,
                       cad_prepare_result *res, cad_err *e) {
    memset(res, 0, sizeof *res);
    prepare_run p = {.tok = tok, .vocab = cad_tokenizer_vocab_size(tok), .bos = cad_tokenizer_bos_id(tok),
                     .val_docs = val_docs};
    if (p.vocab > SHARD_VOCAB_MAX)
        return cad_fail(e, CAD_ECONFIG, "tokenizer vocab %d is too large for uint16 shards", p.vocab);
    if (p.bos < 0 || p.bos >= p.vocab)
        return cad_fail(e, CAD_ECONFIG, "tokenizer has no BOS id (documents start with BOS)");
    /* inputs are checked before anything in DIR is touched */
    int rc = cad_docs_open(&p.docs, inputs, n_inputs, e);
    if (rc == CAD_OK) rc = cad_mkdir_p(out, e);
    if (rc == CAD_OK) rc = remove_shards(out, e);
    if (rc != CAD_OK) {
        cad_docs_close(&p.docs);
        return rc;
    }
    for (int s = 0; s < 2; s++)
        p.w[s] = (split_writer){.name = s ? "train" : "val", .dir = out, .shard_tokens = shard_tokens};
    p.b = calloc(1, sizeof *p.b);
    long bytes_total = cad_docs_total_bytes(inputs, n_inputs);
    double t0 = now_s();
    if (!p.b) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int done = 0; rc == CAD_OK && !done;) {
        if ((rc = batch_read(&p, &done, e))) break;
        batch_encode(&p);
        if ((rc = batch_write(&p, e))) break;
        if (progress)
            progress(progress_ud, p.docs.bytes_read, bytes_total, p.docs_total, p.w[0].tokens + p.w[1].tokens);
    }
    if (rc == CAD_OK) rc = prepare_finish(&p, inputs[0], e);
    if (rc == CAD_OK) {
        for (int s = 0; s < 2; s++)
            res->split[s] = (cad_prepare_split){.name = p.w[s].name, .shards = p.w[s].shards, .docs = p.w[s].docs,
                                                .tokens = p.w[s].tokens, .bytes = p.w[s].bytes};
        res->seconds = now_s() - t0;
    } else {
        /* never leave a partial shard set that looks complete */
        cad_err ignore;
        remove_shards(out, &ignore);
    }
    prepare_free(&p);
    return rc;
}


/* ---- stats of a shard set ------------------------------------------------------------------------- */

int cad_prepare_split_stats(const char *dir, const char *split, const cad_tokenizer *tok,
                            const cad_bpb_luts *luts, int seq_len, cad_split_stats *st,
                            cad_err *e) {
    memset(st, 0, sizeof *st);
    char pat[PATH_MAX];
    snprintf(pat, sizeof pat, "%s/fineweb_%s_*.bin", dir, split);
    char **paths;
    int n;
    cad_err ge;
    if (cad_shard_glob(pat, &paths, &n, &ge) != CAD_OK) return CAD_OK; /* no shards: zeros */
    int vocab = cad_tokenizer_vocab_size(tok), bos = cad_tokenizer_bos_id(tok);
    long total = 0;
    int rc = CAD_OK;
    for (int i = 0; i < n && rc == CAD_OK; i++) {
        long c;
        rc = cad_shard_read_header(paths[i], &c, e);
        total += c;
    }
    long keep = total > 0 ? ((total - 1) / seq_len) * seq_len + 1 : 0;
    st->eval_keep = keep > 1 ? keep : 0;
    long g = 0; /* global index of the next token in the split stream */
    int prev = -1;
    for (int i = 0; i < n && rc == CAD_OK; i++) {
        cad_shard s;
        rc = cad_shard_open(&s, paths[i], vocab, e);
        if (rc != CAD_OK) break;
        for (long k = 0; k < s.n_tokens; k++, g++) {
            int y = s.tokens[k];
            st->docs += y == bos;
            if (prev >= 0) {
                int b = cad_bpb_token_bytes(luts, prev, y);
                st->lut_bytes += b;
                if (g < st->eval_keep) st->eval_bytes += b;
            }
            prev = y;
        }
        st->tokens += s.n_tokens;
        st->shards++;
        cad_shard_close(&s);
    }
    cad_shard_glob_free(paths, n);
    return rc;
}

