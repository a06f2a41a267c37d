/*
 * prepcache.h — one entry of the prepared-data cache: a tokenizer trained on a corpus plus
 * that corpus cut into challenge shards with it, in a directory named by a content hash.
 *
 * A sweep's `prepare:` section (sweep/spec.h) names a corpus and tokenizer vocab sizes; each
 * (corpus bytes, vocab, val_docs, shard_tokens) is one entry at <cache>/<key>/ where key =
 * cad_prepcache_key(...). An entry holds
 *     tokenizer.model, tokenizer.vocab   the SentencePiece model (engine/tokenizer.h options)
 *     data/fineweb_{val,train}_*.bin     the shards (engine/prepare.h)
 *     prep.json                          what it was built from, written last
 * and is built in a temporary sibling directory and renamed into place, so an entry that
 * exists is complete: a killed build leaves only "<key>.tmp-<pid>", never a half entry.
 * Entries are reused by every sweep that asks for the same thing (the key says what).
 *
 * Not here: the queue item that runs the build (db/queue.c, runner/), training and
 * shard writing themselves (engine/tokenizer.h, engine/prepare.h), printing.
 */
#ifndef CADDIE_PREPCACHE_H
#define CADDIE_PREPCACHE_H

#include "engine/status.h"

#include <stdint.h>

/* Bumped when an entry's layout or the way it is built changes: old entries then no longer
 * match any key and are rebuilt, never misread. */
#define CAD_PREPCACHE_FORMAT 1

#define CAD_PREPCACHE_TOKENIZER "tokenizer.model"
#define CAD_PREPCACHE_DATA "data"
#define CAD_PREPCACHE_MANIFEST "prep.json"

typedef struct cad_prepcache_opts {
    const char *corpus;        /* the text (.jsonl or plain, as `caddie data prepare` reads) */
    const char *corpus_sha256; /* hex of the corpus bytes expected (NULL: not checked) */
    int vocab;
    long val_docs;
    long shard_tokens;
    const char *out;           /* the entry directory, <cache>/<key> */
    int verbose;               /* 1: sentencepiece's training log on stderr */
} cad_prepcache_opts;

typedef struct cad_prepcache_result {
    int reused;                /* 1: out already existed (complete), nothing was built */
    int pieces;                /* the tokenizer's vocabulary (may be below vocab) */
    long tokens[2], docs[2];   /* val, train */
    double seconds;
} cad_prepcache_result;

/* The entry key: sha256 hex of the format, the corpus hash and the options. */
void cad_prepcache_key(const char *corpus_sha256, int vocab, long val_docs, long shard_tokens,
                       char hex[65]);

/* 1 when dir is a complete entry (its manifest exists), else 0. */
int cad_prepcache_complete(const char *dir);

/* Build the entry o->out atomically (see above). The corpus is hashed first and must match
 * o->corpus_sha256 (a corpus edited since the sweep was queued would otherwise land under a
 * key that does not describe it). A complete o->out is left as it is (res->reused = 1). */
int cad_prepcache_build(const cad_prepcache_opts *o, cad_prepcache_result *res, cad_err *e);

#endif
