/*
 * cmd_data.c — `caddie data prepare|stats` and `caddie tokenizer train`: turn text into
 * challenge-format shards the way the challenge exporter does, report what a shard set
 * holds (with the official val_bpb byte rule), and train a SentencePiece model with the
 * exporter's options.
 *
 * prepare reproduces download_hf_docs_and_tokenize.py export_shards token for token: each
 * document is BOS + sp.encode(text) with no EOS, the first --val-docs documents are val,
 * shards are filled to --shard-tokens and named fineweb_{val,train}_NNNNNN.bin.
 * Not here: the shard format (engine/shard.c), reading input files and JSON
 * (engine/textdocs.c), the tokenizer (engine/tokenizer_shim.cc), byte tables
 * (engine/bpb_luts.c).
 */
#include "fsutil.h"
#include "bpb_luts.h"
#include "cli.h"
#include "shard.h"
#include "textdocs.h"
#include "tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_VAL_DOCS 50000L /* NUM_VAL_DOCS of the exporter */
#define ENCODE_BATCH 256        /* documents encoded in parallel per batch */

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
            long want = w->cap ? w->cap * 2 : 1L << 16;
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

static void progress_print(double t0, long bytes_done, long bytes_total, long docs, long tokens) {
    double dt = now_s() - t0;
    if (bytes_total > 0)
        fprintf(stderr, "\rprepare: %5.1f%%  %.1f/%.1f MB  %ld docs  %ld tokens  %.0f tokens/s   ",
                100.0 * (double)bytes_done / (double)bytes_total, bytes_done / 1e6,
                bytes_total / 1e6, docs, tokens, dt > 0 ? tokens / dt : 0.0);
    else
        fprintf(stderr, "\rprepare: %ld docs  %ld tokens  %.0f tokens/s   ", docs, tokens,
                dt > 0 ? tokens / dt : 0.0);
    fflush(stderr);
}

static int prepare_run(const cad_tokenizer *tok, const char *const *inputs, int n_inputs,
                       const char *out, long val_docs, long shard_tokens, cad_err *e) {
    int vocab = cad_tokenizer_vocab_size(tok);
    int bos = cad_tokenizer_bos_id(tok);
    if (vocab > 65536)
        return cad_fail(e, CAD_ECONFIG, "tokenizer vocab %d is too large for uint16 shards", vocab);
    if (bos < 0 || bos >= vocab)
        return cad_fail(e, CAD_ECONFIG, "tokenizer has no BOS id (documents start with BOS)");
    /* inputs are checked before anything in DIR is touched */
    cad_docs docs;
    int rc = cad_docs_open(&docs, inputs, n_inputs, e);
    if (rc == CAD_OK) rc = cad_mkdir_p(out, e);
    if (rc == CAD_OK) rc = remove_shards(out, e);
    if (rc != CAD_OK) {
        cad_docs_close(&docs);
        return rc;
    }
    split_writer w[2] = {
        {.name = "val", .dir = out, .shard_tokens = shard_tokens},
        {.name = "train", .dir = out, .shard_tokens = shard_tokens},
    };
    doc_batch *b = calloc(1, sizeof *b);
    uint16_t *toks = NULL;
    long toks_cap = 0;
    long bytes_total = cad_docs_total_bytes(inputs, n_inputs);
    int tty = isatty(2);
    double t0 = now_s(), last_progress = t0;
    long docs_total = 0;
    int cur = 0; /* the exporter starts in "val" and flushes when the split changes */
    int done = 0;
    if (!b) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    while (rc == CAD_OK && !done) {
        /* read up to ENCODE_BATCH documents */
        b->n = 0;
        b->text_len = 0;
        while (b->n < ENCODE_BATCH) {
            const char *t;
            size_t n;
            int r = cad_docs_next(&docs, &t, &n, e);
            if (r < 0) {
                rc = -r;
                break;
            }
            if (r == 0) {
                done = 1;
                break;
            }
            if (b->text_len + n + 1 > b->text_cap) {
                size_t c = b->text_cap ? b->text_cap : 1 << 20;
                while (c < b->text_len + n + 1) c *= 2;
                char *p = realloc(b->text, c);
                if (!p) {
                    rc = cad_fail(e, CAD_ENOMEM, "out of memory");
                    break;
                }
                b->text = p;
                b->text_cap = c;
            }
            memcpy(b->text + b->text_len, t, n);
            b->off[b->n] = b->text_len;
            b->len[b->n] = n;
            b->text_len += n;
            b->n++;
        }
        if (rc != CAD_OK) break;
        /* encode in parallel: SentencePieceProcessor::Encode is const and thread-safe, and the
         * order of results does not depend on the schedule */
#pragma omp parallel for schedule(dynamic, 4)
        for (int i = 0; i < b->n; i++)
            b->rc[i] = cad_tokenizer_encode(tok, b->text + b->off[i], b->len[i], &b->ids[i],
                                            &b->n_ids[i], &b->err[i]);
        for (int i = 0; i < b->n; i++) {
            if (rc == CAD_OK && b->rc[i] != CAD_OK) {
                *e = b->err[i];
                rc = b->rc[i];
            }
            if (rc == CAD_OK) {
                int split = docs_total < val_docs ? 0 : 1;
                if (split != cur) {
                    rc = writer_flush(&w[cur], e);
                    cur = split;
                }
                long n = (long)b->n_ids[i] + 1;
                if (rc == CAD_OK && n > toks_cap) {
                    uint16_t *p = realloc(toks, (size_t)n * sizeof *p);
                    if (!p) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
                    else toks = p, toks_cap = n;
                }
                if (rc == CAD_OK) {
                    toks[0] = (uint16_t)bos;
                    for (int k = 0; k < b->n_ids[i]; k++) {
                        int id = b->ids[i][k];
                        if (id < 0 || id >= vocab) {
                            rc = cad_fail(e, CAD_EFORMAT,
                                          "document %ld: token id %d outside vocab size %d",
                                          docs_total + 1, id, vocab);
                            break;
                        }
                        toks[k + 1] = (uint16_t)id;
                    }
                }
                if (rc == CAD_OK) {
                    docs_total++;
                    w[cur].docs++;
                    w[cur].tokens += n;
                    w[cur].bytes += (long)b->len[i];
                    rc = writer_push(&w[cur], toks, n, e);
                }
            }
            free(b->ids[i]);
            b->ids[i] = NULL;
        }
        if (tty && rc == CAD_OK && now_s() - last_progress > 0.2) {
            last_progress = now_s();
            progress_print(t0, docs.bytes_read, bytes_total, docs_total, w[0].tokens + w[1].tokens);
        }
    }
    if (rc == CAD_OK) rc = writer_flush(&w[cur], e);
    if (rc == CAD_OK && docs_total == 0)
        rc = cad_fail(e, CAD_EFORMAT, "%s: no documents in the input", inputs[0]);
    if (rc == CAD_OK && docs_total < val_docs)
        rc = cad_fail(e, CAD_ECONFIG,
                      "--val-docs %ld but the input has only %ld documents", 
                      val_docs, docs_total);
    double dt = now_s() - t0;
    if (tty) {
        if (rc == CAD_OK)
            progress_print(t0, docs.bytes_read, bytes_total, docs_total,
                           w[0].tokens + w[1].tokens);
        fputc('\n', stderr);
    }
    if (rc == CAD_OK) {
        printf("%-6s %7s %10s %12s %14s %12s\n", "split", "shards", "documents", "tokens",
               "utf8_bytes", "bytes/token");
        long td = 0, tt = 0, tb = 0;
        int ts = 0;
        for (int s = 0; s < 2; s++) {
            printf("%-6s %7d %10ld %12ld %14ld %12.4f\n", w[s].name, w[s].shards, w[s].docs,
                   w[s].tokens, w[s].bytes, w[s].tokens ? (double)w[s].bytes / w[s].tokens : 0.0);
            td += w[s].docs, tt += w[s].tokens, tb += w[s].bytes, ts += w[s].shards;
        }
        printf("%-6s %7d %10ld %12ld %14ld %12.4f\n", "total", ts, td, tt, tb,
               tt ? (double)tb / tt : 0.0);
        fprintf(stderr, "prepare: wrote %d shards to %s in %.2f s (%.0f tokens/s)\n", ts, out,
                dt, dt > 0 ? tt / dt : 0.0);
    } else {
        /* never leave a partial shard set that looks complete */
        cad_err ignore;
        remove_shards(out, &ignore);
    }
    for (int s = 0; s < 2; s++) free(w[s].buf);
    if (b) free(b->text);
    free(b);
    free(toks);
    cad_docs_close(&docs);
    return rc;
}

static int data_prepare(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"input", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},       {"val-docs", required_argument, 0, 'v'},
        {"shard-tokens", required_argument, 0, 's'}, {0, 0, 0, 0},
    };
    const char *model = NULL, *out = NULL;
    long val_docs = DEFAULT_VAL_DOCS, shard_tokens = CAD_SHARD_DEFAULT_TOKENS;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    int n_inputs = 0, c;
    if (!inputs) return cli_fail("data", "out of memory");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 't': model = optarg; break;
        case 'i': inputs[n_inputs++] = optarg; break;
        case 'o': out = optarg; break;
        case 'v':
            if (cli_parse_long(optarg, 0, LONG_MAX, &val_docs) != 0) {
                free(inputs);
                return cli_usage_error("data", "--val-docs: '%s' is not a count >= 0", optarg);
            }
            break;
        case 's':
            if (cli_parse_long(optarg, 1, CAD_SHARD_MAX_TOKENS, &shard_tokens) != 0) {
                free(inputs);
                return cli_usage_error("data", "--shard-tokens: '%s' is not in [1, %ld]", optarg,
                                       CAD_SHARD_MAX_TOKENS);
            }
            break;
        case ':':
            free(inputs);
            return cli_usage_error("data", "option '%s' needs a value", argv[optind - 1]);
        default:
            free(inputs);
            return cli_usage_error("data", "prepare: unknown option '%s'", argv[optind - 1]);
        }
    }
    /* plain arguments after the options are more inputs: --input a.jsonl b.jsonl */
    for (int i = optind; i < argc; i++) inputs[n_inputs++] = argv[i];
    const char *missing = !model ? "--tokenizer" : !out ? "--out" : !n_inputs ? "--input" : NULL;
    if (missing) {
        free(inputs);
        return cli_usage_error("data", "prepare needs %s", missing);
    }
    cad_err e;
    cad_err_clear(&e);
    cad_tokenizer *tok = NULL;
    int rc = cad_tokenizer_load(model, &tok, &e);
    if (rc == CAD_OK) rc = prepare_run(tok, inputs, n_inputs, out, val_docs, shard_tokens, &e);
    cad_tokenizer_free(tok);
    free(inputs);
    if (rc != CAD_OK) return cli_fail("data", "prepare: %s", e.msg);
    return 0;
}

/* ---- stats --------------------------------------------------------------------------- */

typedef struct split_stats {
    int shards;
    long tokens, docs;
    int64_t lut_bytes;
    long eval_keep;        /* val: tokens kept by the trim at seq_len (0 if too short) */
    int64_t eval_bytes;
} split_stats;

static int stats_split(const char *dir, const char *split, const cad_tokenizer *tok,
                       const cad_bpb_luts *luts, int seq_len, split_stats *st, cad_err *e) {
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

static int data_stats(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, 0, 't'},
        {"seq-len", required_argument, 0, 'L'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *dir = NULL;
    long seq_len = 1024;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 't': model = optarg; break;
        case 'L':
            if (cli_parse_long(optarg, 1, INT_MAX, &seq_len) != 0)
                return cli_usage_error("data", "--seq-len: '%s' is not a positive integer",
                                       optarg);
            break;
        case ':': return cli_usage_error("data", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("data", "stats: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("data", "stats needs exactly one shard directory");
    dir = argv[optind];
    if (!model) return cli_usage_error("data", "stats needs --tokenizer");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_fail("data", "stats: %s: not a directory", dir);

    cad_err e;
    cad_err_clear(&e);
    cad_tokenizer *tok = NULL;
    cad_bpb_luts luts = {0};
    split_stats st[2];
    static const char *const names[2] = {"val", "train"};
    int rc = cad_tokenizer_load(model, &tok, &e);
    if (rc == CAD_OK) rc = cad_bpb_luts_build(tok, cad_tokenizer_vocab_size(tok), &luts, &e);
    for (int s = 0; s < 2 && rc == CAD_OK; s++)
        rc = stats_split(dir, names[s], tok, &luts, (int)seq_len, &st[s], &e);
    if (rc == CAD_OK && st[0].shards + st[1].shards == 0)
        rc = cad_fail(&e, CAD_EIO, "%s: no fineweb_val_*.bin or fineweb_train_*.bin shards", dir);
    if (rc == CAD_OK) {
        printf("dir: %s\ntokenizer: %s (vocab %d)\n", dir, model, cad_tokenizer_vocab_size(tok));
        printf("%-6s %7s %12s %10s %14s %12s\n", "split", "shards", "tokens", "documents",
               "lut_bytes", "bytes/token");
        for (int s = 0; s < 2; s++)
            printf("%-6s %7d %12ld %10ld %14lld %12.4f\n", names[s], st[s].shards, st[s].tokens,
                   st[s].docs, (long long)st[s].lut_bytes,
                   st[s].tokens ? (double)st[s].lut_bytes / (double)st[s].tokens : 0.0);
        if (st[0].eval_keep > 0)
            printf("val eval at seq_len %ld: %ld tokens kept, %ld targets, %lld lut_bytes, "
                   "%.4f bytes/target\n",
                   seq_len, st[0].eval_keep, st[0].eval_keep - 1, (long long)st[0].eval_bytes,
                   (double)st[0].eval_bytes / (double)(st[0].eval_keep - 1));
        else if (st[0].shards)
            printf("val eval at seq_len %ld: too short (%ld tokens, need %ld)\n", seq_len,
                   st[0].tokens, seq_len + 1);
    }
    cad_bpb_luts_free(&luts);
    cad_tokenizer_free(tok);
    if (rc != CAD_OK) return cli_fail("data", "stats: %s", e.msg);
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("data", "expected a subcommand: prepare or stats");
    if (strcmp(argv[1], "prepare") == 0) return data_prepare(argc - 1, argv + 1);
    if (strcmp(argv[1], "stats") == 0) return data_stats(argc - 1, argv + 1);
    return cli_usage_error("data", "unknown subcommand '%s' (expected prepare or stats)",
                           argv[1]);
}

/* ---- tokenizer train ------------------------------------------------------------------- */

static int tokenizer_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"vocab", required_argument, 0, 'V'}, {"input", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},   {"verbose", no_argument, 0, 'v'},
        {0, 0, 0, 0},
    };
    long vocab = 0;
    const char *out = NULL;
    int verbose = 0, n_inputs = 0, c;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return cli_fail("tokenizer", "out of memory");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'V':
            if (cli_parse_long(optarg, 1, 65536, &vocab) != 0) {
                free(inputs);
                return cli_usage_error("tokenizer", "--vocab: '%s' is not in [1, 65536]", optarg);
            }
            break;
        case 'i': inputs[n_inputs++] = optarg; break;
        case 'o': out = optarg; break;
        case 'v': verbose = 1; break;
        case ':':
            free(inputs);
            return cli_usage_error("tokenizer", "option '%s' needs a value", argv[optind - 1]);
        default:
            free(inputs);
            return cli_usage_error("tokenizer", "train: unknown option '%s'", argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) inputs[n_inputs++] = argv[i];
    const char *missing = !vocab ? "--vocab" : !out ? "--out" : !n_inputs ? "--input" : NULL;
    if (missing) {
        free(inputs);
        return cli_usage_error("tokenizer", "train needs %s", missing);
    }
    /* sentencepiece's own message for a missing directory is obscure: check it here */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    struct stat sb;
    if (slash && slash != parent) {
        *slash = 0;
        if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(inputs);
            return cli_fail("tokenizer", "train: %s: output directory does not exist", parent);
        }
    }
    cad_err e;
    cad_err_clear(&e);
    double t0 = now_s();
    int rc = cad_tokenizer_train(inputs, n_inputs, (int)vocab, out, verbose, &e);
    free(inputs);
    if (rc != CAD_OK) return cli_fail("tokenizer", "train: %s", e.msg);
    char model[PATH_MAX];
    snprintf(model, sizeof model, "%s.model", out);
    cad_tokenizer *tok = NULL;
    rc = cad_tokenizer_load(model, &tok, &e);
    if (rc != CAD_OK) return cli_fail("tokenizer", "train: %s", e.msg);
    int pieces = cad_tokenizer_vocab_size(tok);
    cad_tokenizer_free(tok);
    printf("wrote %s.model and %s.vocab: %d pieces", out, out, pieces);
    if (pieces != vocab) printf(" (asked for %ld: hard_vocab_limit is false)", vocab);
    printf("\n");
    fprintf(stderr, "tokenizer: trained in %.1f s\n", now_s() - t0);
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("tokenizer", "expected a subcommand: train");
    if (strcmp(argv[1], "train") == 0) return tokenizer_train(argc - 1, argv + 1);
    return cli_usage_error("tokenizer", "unknown subcommand '%s' (expected train)", argv[1]);
}
