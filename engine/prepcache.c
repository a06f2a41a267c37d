/*
 * prepcache.c — building one prepared-data cache entry (engine/prepcache.h): check the corpus
 * hash, train the tokenizer, cut the shards, write the manifest, all in "<entry>.tmp-<pid>",
 * then rename it to <entry> so only complete entries ever carry the entry's name.
 *
 * Not here: the key's use by sweeps and the queue (sweep/, db/queue.c), printing
 * (cli/cmd_data.c), the tokenizer and exporter themselves.
 */
#include "engine/prepcache.h"

#include "engine/fsutil.h"
#include "engine/jsonw.h"
#include "engine/prepare.h"
#include "engine/sha256.h"
#include "engine/tokenizer.h"

#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cad_prepcache_key(const char *corpus_sha256, int vocab, long val_docs, long shard_tokens,
                       char hex[65]) {
    char text[256];
    int n = snprintf(text, sizeof text,
                     "caddie prepcache %d\ncorpus_sha256=%s\nvocab=%d\nval_docs=%ld\nshard_tokens=%ld\n",
                     CAD_PREPCACHE_FORMAT, corpus_sha256, vocab, val_docs, shard_tokens);
    cad_sha256_hex(text, (size_t)n, hex);
}

int cad_prepcache_complete(const char *dir) {
    char path[PATH_MAX];
    struct stat sb;
    if (snprintf(path, sizeof path, "%s/%s", dir, CAD_PREPCACHE_MANIFEST) >= (int)sizeof path) return 0;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Remove a directory tree we made (no symlinks followed). */
static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* Temp dirs of builds whose process is gone (killed mid-build): they hold nothing anyone
 * can use, and would otherwise pile up beside the cache entries. */
static void remove_stale_temps(const char *out) {
    char pat[PATH_MAX];
    if (snprintf(pat, sizeof pat, "%s.tmp-*", out) >= (int)sizeof pat) return;
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *dash = strrchr(g.gl_pathv[i], '-');
        char *end;
        long pid = strtol(dash + 1, &end, 10);
        if (*end || pid <= 0) continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) rm_tree(g.gl_pathv[i]);
    }
    globfree(&g);
}

static int write_manifest(const char *path, const cad_prepcache_opts *o, const char *sha,
                          int64_t corpus_bytes, const cad_prepcache_result *r, cad_err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot write: %s", path, strerror(errno));
    fputs("{\"format\":", f);
    fprintf(f, "%d,\"corpus\":", CAD_PREPCACHE_FORMAT);
    cad_json_write_string(f, o->corpus);
    fputs(",\"corpus_sha256\":", f);
    cad_json_write_string(f, sha);
    fprintf(f, ",\"corpus_bytes\":%lld,\"vocab\":%d,\"pieces\":%d,\"val_docs\":%ld,\"shard_tokens\":%ld,"
               "\"val_tokens\":%ld,\"train_tokens\":%ld,\"val_docs_written\":%ld,\"train_docs\":%ld,"
               "\"seconds\":%.3f}\n",
            (long long)corpus_bytes, o->vocab, r->pieces, o->val_docs, o->shard_tokens, r->tokens[0],
            r->tokens[1], r->docs[0], r->docs[1], r->seconds);
    if (fclose(f) != 0) return cad_fail(e, CAD_EIO, "%s: write failed: %s", path, strerror(errno));
    return CAD_OK;
}

/* Everything but the rename, inside tmp. */
static int build_in(const char *tmp, const cad_prepcache_opts *o, const char *sha, int64_t bytes,
                    cad_prepcache_result *res, double t0, cad_err *e) {
    char prefix[PATH_MAX + 32], model[PATH_MAX + 32], data[PATH_MAX + 32], manifest[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s/tokenizer", tmp);
    snprintf(model, sizeof model, "%s/%s", tmp, CAD_PREPCACHE_TOKENIZER);
    snprintf(data, sizeof data, "%s/%s", tmp, CAD_PREPCACHE_DATA);
    snprintf(manifest, sizeof manifest, "%s/%s", tmp, CAD_PREPCACHE_MANIFEST);
    const char *inputs[1] = {o->corpus};
    int rc = cad_tokenizer_train(inputs, 1, o->vocab, prefix, o->verbose, e);
    if (rc) return cad_wrap(e, "tokenizer (vocab %d) on %s", o->vocab, o->corpus);
    cad_tokenizer *tok = NULL;
    if ((rc = cad_tokenizer_load(model, &tok, e))) return rc;
    res->pieces = cad_tokenizer_vocab_size(tok);
    cad_prepare_result pr;
    rc = cad_prepare_shards(tok, inputs, 1, data, o->val_docs, o->shard_tokens, NULL, NULL, &pr, e);
    cad_tokenizer_free(tok);
    if (rc) return cad_wrap(e, "shards of %s (val_docs %ld)", o->corpus, o->val_docs);
    for (int s = 0; s < 2; s++) res->tokens[s] = pr.split[s].tokens, res->docs[s] = pr.split[s].docs;
    res->seconds = now_s() - t0;
    return write_manifest(manifest, o, sha, bytes, res, e);
}

int cad_prepcache_build(const cad_prepcache_opts *o, cad_prepcache_result *res, cad_err *e) {
    memset(res, 0, sizeof *res);
    double t0 = now_s();
    if (cad_prepcache_complete(o->out)) {
        res->reused = 1;
        return CAD_OK;
    }
    char sha[65];
    int64_t bytes = 0;
    int rc = cad_sha256_file_hex(o->corpus, sha, &bytes, e);
    if (rc) return cad_wrap(e, "corpus");
    if (o->corpus_sha256 && strcmp(sha, o->corpus_sha256) != 0)
        return cad_fail(e, CAD_ECONFIG,
                        "corpus %s changed since the sweep was queued: sha256 %.12s..., expected "
                        "%.12s... (queue the sweep again: 'caddie sweep add' keys the cache by the "
                        "corpus bytes)",
                        o->corpus, sha, o->corpus_sha256);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", o->out, (long)getpid()) >= (int)sizeof tmp)
        return cad_fail(e, CAD_EIO, "%s: path too long", o->out);
    /* the cache directory itself: <cache> of <cache>/<key> */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", o->out);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if ((rc = cad_mkdir_p(parent, e))) return rc;
    }
    remove_stale_temps(o->out);
    rm_tree(tmp); /* a leftover of an earlier process that had our pid */
    if (mkdir(tmp, 0777) != 0) return cad_fail(e, CAD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    rc = build_in(tmp, o, sha, bytes, res, t0, e);
    if (!rc && rename(tmp, o->out) != 0) {
        int err = errno;
        /* another builder finished the same entry first: its entry is as good as ours */
        if ((err == EEXIST || err == ENOTEMPTY) && cad_prepcache_complete(o->out)) res->reused = 1;
        else rc = cad_fail(e, CAD_EIO, "%s: cannot rename to %s: %s", tmp, o->out, strerror(err));
    }
    if (rc || res->reused) rm_tree(tmp);
    return rc;
}
