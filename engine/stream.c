/*
 * stream.c — train token stream, distributed train loader and validation tokens, written
 * to reproduce train_gpt.py's TokenStream / DistributedTokenLoader / load_validation_tokens
 * token for token. Not here: shard parsing (shard.c).
 */
#include "engine/stream.h"

#include <stdlib.h>
#include <string.h>

int cad_token_stream_open(cad_token_stream *s, const char *pattern, int vocab_size, cad_err *e) {
    memset(s, 0, sizeof *s);
    int rc = cad_shard_glob(pattern, &s->paths, &s->n_files, e);
    if (rc != CAD_OK) return rc;
    s->vocab_size = vocab_size;
    rc = cad_shard_open(&s->cur, s->paths[0], vocab_size, e);
    if (rc != CAD_OK) {
        cad_shard_glob_free(s->paths, s->n_files);
        memset(s, 0, sizeof *s);
        return rc;
    }
    return CAD_OK;
}

/* Map shard idx in place of the current one. */
static int stream_load(cad_token_stream *s, int idx, cad_err *e) {
    cad_shard next;
    int rc = cad_shard_open(&next, s->paths[idx], s->vocab_size, e);
    if (rc != CAD_OK) return rc;
    cad_shard_close(&s->cur);
    s->cur = next;
    s->file_idx = idx;
    s->pos = 0;
    s->win_len = 0;
    return CAD_OK;
}

/* One document segment of a curriculum window: [start, start + len) of the raw window. */
typedef struct {
    long start, len;
} curr_seg;

static int curr_seg_cmp(const void *a, const void *b) {
    const curr_seg *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start; /* stable: stream order among equals */
}

/* Load the window holding shard position pos, its documents shortest first. */
static int curr_fill(cad_token_stream *s, cad_err *e) {
    long start = s->pos / s->window * s->window, len = s->cur.n_tokens - start;
    if (len > s->window) len = s->window;
    const uint16_t *raw = s->cur.tokens + start;
    long n = 0;
    for (long i = 0; i < len; i++) n += i == 0 || raw[i] == s->bos_id;
    curr_seg *seg = malloc((size_t)n * sizeof *seg);
    if (!seg) return cad_fail(e, CAD_ENOMEM, "curriculum: out of memory for %ld documents", n);
    n = 0;
    for (long i = 0; i < len; i++)
        if (i == 0 || raw[i] == s->bos_id) {
            if (n) seg[n - 1].len = i - seg[n - 1].start;
            seg[n].start = i, seg[n].len = 0, n++;
        }
    seg[n - 1].len = len - seg[n - 1].start;
    qsort(seg, (size_t)n, sizeof *seg, curr_seg_cmp);
    long o = 0;
    for (long k = 0; k < n; k++) {
        memcpy(s->win + o, raw + seg[k].start, (size_t)seg[k].len * sizeof *s->win);
        o += seg[k].len;
    }
    free(seg);
    s->win_start = start, s->win_len = len;
    return CAD_OK;
}

int cad_token_stream_set_curriculum(cad_token_stream *s, long window, int bos_id, cad_err *e) {
    if (window < 0) return cad_fail(e, CAD_ECONFIG, "curriculum_window=%ld: expected > 0 tokens", window);
    free(s->win);
    s->win = NULL;
    s->window = window, s->bos_id = bos_id, s->win_len = 0;
    if (window && !(s->win = malloc((size_t)window * sizeof *s->win)))
        return cad_fail(e, CAD_ENOMEM, "curriculum: out of memory for a window of %ld tokens", window);
    return CAD_OK;
}

int cad_token_stream_take(cad_token_stream *s, long n, uint16_t *out, cad_err *e) {
    long remaining = n;
    /* Shards visited in a row without yielding a token: a full cycle of empty shards would
     * loop forever in the Python code; here it is an error. */
    int empty_run = 0;
    while (remaining > 0) {
        long avail = s->cur.n_tokens - s->pos;
        if (avail <= 0) {
            if (++empty_run > s->n_files)
                return cad_fail(e, CAD_EFORMAT, "%s: every shard of the stream is empty",
                                s->paths[0]);
            int rc = stream_load(s, (s->file_idx + 1) % s->n_files, e);
            if (rc != CAD_OK) return rc;
            continue;
        }
        empty_run = 0;
        long k = remaining < avail ? remaining : avail;
        const uint16_t *src = s->cur.tokens + s->pos;
        if (s->window) { /* from the reordered window holding pos */
            if (!s->win_len || s->pos < s->win_start || s->pos >= s->win_start + s->win_len) {
                int rc = curr_fill(s, e);
                if (rc != CAD_OK) return rc;
            }
            long in_win = s->win_start + s->win_len - s->pos;
            k = k < in_win ? k : in_win;
            src = s->win + (s->pos - s->win_start);
        }
        memcpy(out, src, (size_t)k * sizeof *out);
        out += k;
        s->pos += k;
        remaining -= k;
    }
    return CAD_OK;
}

cad_stream_pos cad_token_stream_tell(const cad_token_stream *s) {
    cad_stream_pos p = {s->file_idx, s->pos};
    return p;
}

int cad_token_stream_seek(cad_token_stream *s, cad_stream_pos p, cad_err *e) {
    if (p.file_idx < 0 || p.file_idx >= s->n_files)
        return cad_fail(e, CAD_ECONFIG, "stream position: shard index %d out of range [0, %d)",
                        p.file_idx, s->n_files);
    if (p.file_idx != s->file_idx) {
        int rc = stream_load(s, p.file_idx, e);
        if (rc != CAD_OK) return rc;
    }
    /* pos == n_tokens is valid: it is where the stream stands right after draining a shard
     * (TokenStream advances lazily on the next take). */
    if (p.pos < 0 || p.pos > s->cur.n_tokens)
        return cad_fail(e, CAD_ECONFIG, "%s: stream position %ld out of range [0, %ld]",
                        s->paths[p.file_idx], p.pos, s->cur.n_tokens);
    s->pos = p.pos;
    return CAD_OK;
}

void cad_token_stream_close(cad_token_stream *s) {
    if (!s) return;
    free(s->win);
    cad_shard_close(&s->cur);
    cad_shard_glob_free(s->paths, s->n_files);
    memset(s, 0, sizeof *s);
}

int cad_train_loader_open(cad_train_loader *L, const char *pattern, int vocab_size, int rank,
                          int world, cad_err *e) {
    memset(L, 0, sizeof *L);
    if (world < 1 || rank < 0 || rank >= world)
        return cad_fail(e, CAD_ECONFIG, "train loader: rank %d / world %d invalid", rank, world);
    int rc = cad_token_stream_open(&L->stream, pattern, vocab_size, e);
    if (rc != CAD_OK) return rc;
    L->rank = rank;
    L->world = world;
    return CAD_OK;
}

long cad_train_loader_local_tokens(long global_tokens, int seq_len, int world,
                                   int grad_accum_steps) {
    if (global_tokens <= 0 || seq_len <= 0 || world <= 0 || grad_accum_steps <= 0) return -1;
    long local = global_tokens / ((long)world * grad_accum_steps);
    if (local <= 0 || local % seq_len != 0) return -1;
    return local;
}

int cad_train_loader_next(cad_train_loader *L, long global_tokens, int seq_len,
                          int grad_accum_steps, int32_t *x, int32_t *y, cad_err *e) {
    long local = cad_train_loader_local_tokens(global_tokens, seq_len, L->world, grad_accum_steps);
    if (local < 0)
        return cad_fail(e, CAD_ECONFIG,
                        "train_batch_tokens %ld / (world %d * grad_accum_steps %d) must be a "
                        "positive multiple of train_seq_len %d",
                        global_tokens, L->world, grad_accum_steps, seq_len);
    long span = local + 1;
    long need = span * L->world;
    if (need > L->chunk_cap) {
        uint16_t *c = realloc(L->chunk, (size_t)need * sizeof *c);
        if (!c) return cad_fail(e, CAD_ENOMEM, "train loader: out of memory for %ld tokens", need);
        L->chunk = c;
        L->chunk_cap = need;
    }
    int rc = cad_token_stream_take(&L->stream, need, L->chunk, e);
    if (rc != CAD_OK) return rc;
    const uint16_t *mine = L->chunk + (long)L->rank * span;
    for (long i = 0; i < local; i++) {
        x[i] = mine[i];
        y[i] = mine[i + 1];
    }
    return CAD_OK;
}

void cad_train_loader_close(cad_train_loader *L) {
    if (!L) return;
    cad_token_stream_close(&L->stream);
    free(L->chunk);
    memset(L, 0, sizeof *L);
}

int cad_val_tokens_load(const char *pattern, int seq_len, int vocab_size, uint16_t **tokens,
                        long *n_tokens, cad_err *e) {
    *tokens = NULL;
    *n_tokens = 0;
    if (seq_len <= 0)
        return cad_fail(e, CAD_ECONFIG, "val tokens: seq_len %d must be positive", seq_len);
    char **paths;
    int n;
    int rc = cad_shard_glob(pattern, &paths, &n, e);
    if (rc != CAD_OK) return rc;
    long total = 0;
    for (int i = 0; i < n && rc == CAD_OK; i++) {
        long c = 0;
        rc = cad_shard_read_header(paths[i], &c, e);
        total += c;
    }
    uint16_t *buf = NULL;
    if (rc == CAD_OK) {
        long usable = total > 0 ? ((total - 1) / seq_len) * seq_len : 0;
        if (usable <= 0) {
            rc = cad_fail(e, CAD_EFORMAT,
                          "%s: validation split is too short: %ld tokens for seq_len %d (need at "
                          "least %d)",
                          pattern, total, seq_len, seq_len + 1);
        } else {
            long keep = usable + 1;
            buf = malloc((size_t)keep * sizeof *buf);
            if (!buf) rc = cad_fail(e, CAD_ENOMEM, "val tokens: out of memory for %ld", keep);
            long fill = 0;
            for (int i = 0; i < n && rc == CAD_OK && fill < keep; i++) {
                cad_shard s;
                rc = cad_shard_open(&s, paths[i], vocab_size, e);
                if (rc != CAD_OK) break;
                long k = s.n_tokens < keep - fill ? s.n_tokens : keep - fill;
                memcpy(buf + fill, s.tokens, (size_t)k * sizeof *buf);
                fill += k;
                cad_shard_close(&s);
            }
            if (rc == CAD_OK) *n_tokens = keep;
        }
    }
    cad_shard_glob_free(paths, n);
    if (rc != CAD_OK) {
        free(buf);
        return rc;
    }
    *tokens = buf;
    return CAD_OK;
}
