/*
 * cmd_data.c — `caddie data prepare|stats` and `caddie tokenizer train`: turn text into
 * challenge-format shards the way the challenge exporter does, report what a shard set
 * holds (with the official val_bpb byte rule), and train a SentencePiece model with the
 * exporter's options.
 *
 * This file declares the two commands (usage texts, option tables), parses options and
 * prints; the work (the exporter's token-for-token shard
 * writing, the per-split statistics) is engine/prepare.c.
 * Not here: the shard format (engine/shard.c), reading input files and JSON
 * (engine/textdocs.c), the tokenizer (engine/tokenizer_shim.cc), byte tables
 * (engine/bpb_luts.c).
 */
#include "engine/fsutil.h"
#include "engine/bpb_luts.h"
#include "engine/prepare.h"
#include "engine/prepcache.h"
#include "cli/cli.h"
#include "engine/shard.h"
#include "engine/textdocs.h"
#include "engine/tokenizer.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
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

/* ---- prepare ------------------------------------------------------------------------- */

/* A progress line on a terminal, at most every 0.2 s. */
typedef struct progress_state {
    double t0, last;
    int shown;
} progress_state;

static void progress_line(double t0, long bytes_done, long bytes_total, long docs, long tokens) {
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

static void progress_cb(void *ud, long bytes_done, long bytes_total, long docs, long tokens) {
    progress_state *ps = ud;
    double now = now_s();
    if (now - ps->last <= 0.2) return;
    ps->last = now;
    ps->shown = 1;
    progress_line(ps->t0, bytes_done, bytes_total, docs, tokens);
}

static void prepare_print(const cad_prepare_result *r, const char *out) {
    printf("%-6s %7s %10s %12s %14s %12s\n", "split", "shards", "documents", "tokens",
           "utf8_bytes", "bytes/token");
    long td = 0, tt = 0, tb = 0;
    int ts = 0;
    for (int s = 0; s < 2; s++) {
        const cad_prepare_split *w = &r->split[s];
        printf("%-6s %7d %10ld %12ld %14ld %12.4f\n", w->name, w->shards, w->docs, w->tokens,
               w->bytes, w->tokens ? (double)w->bytes / w->tokens : 0.0);
        td += w->docs, tt += w->tokens, tb += w->bytes, ts += w->shards;
    }
    printf("%-6s %7d %10ld %12ld %14ld %12.4f\n", "total", ts, td, tt, tb,
           tt ? (double)tb / tt : 0.0);
    fprintf(stderr, "prepare: wrote %d shards to %s in %.2f s (%.0f tokens/s)\n", ts, out,
            r->seconds, r->seconds > 0 ? tt / r->seconds : 0.0);
}

enum prepare_opt { PREP_TOKENIZER, PREP_INPUT, PREP_OUT, PREP_VAL_DOCS, PREP_SHARD_TOKENS };
static const cli_opt prepare_opts[] = {
    {PREP_TOKENIZER, "tokenizer", 0, "MODEL", "SentencePiece .model (vocab <= 65536)"},
    {PREP_INPUT, "input", 0, "FILE",
     "input text, repeatable; more files may follow as plain arguments.\n"
     "Read in order. FILE ending in .jsonl: one JSON object a line, the\n"
     "document is its \"text\" field (blank lines are skipped). Any other\n"
     "FILE: plain UTF-8 text, documents separated by one or more blank\n"
     "lines (empty or whitespace-only); a document is its lines joined\n"
     "with \\n (a \\r before a line end is dropped)"},
    {PREP_OUT, "out", 0, "DIR", "output directory (created if missing)"},
    {PREP_VAL_DOCS, "val-docs", 0, "N", "documents in the val split (default 50000, the challenge's)"},
    {PREP_SHARD_TOKENS, "shard-tokens", 0, "N", "tokens per shard (default 100000000, the challenge's)"},
    CLI_OPT_END,
};
static int data_prepare(int argc, char **argv);
static const cli_subcommand data_prepare_sub = {
    .name = "prepare",
    .fn = data_prepare,
    .synopsis = (const char *const[]){"--tokenizer MODEL --input FILE [--input FILE]... --out DIR\n"
                                      "[--val-docs N] [--shard-tokens N]",
                                      NULL},
    .description =
        "prepare: tokenize documents into DIR/fineweb_{val,train}_NNNNNN.bin exactly like the\n"
        "challenge exporter: each document is BOS (id 1) + sp.encode(text), no EOS; the first N\n"
        "documents are val, the rest train; shards hold --shard-tokens tokens (the last of each\n"
        "split is partial). Old fineweb_*.bin in DIR are removed first; each shard is written to a\n"
        "temporary name and renamed. Output is deterministic. Prints per split: shards, documents,\n"
        "tokens (BOS included), UTF-8 bytes of the texts and bytes/token; a progress line and the\n"
        "throughput on stderr.\n",
    .opts = prepare_opts,
};

static int data_prepare(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    long val_docs = CAD_PREPARE_DEFAULT_VAL_DOCS, shard_tokens = CAD_SHARD_DEFAULT_TOKENS;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    int n_inputs = 0, id;
    if (!inputs) return cli_fail("data", "out of memory");
    cli_parser p;
    cli_parser_init(&p, &cmd_data_def, &data_prepare_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum prepare_opt)id) {
        case PREP_TOKENIZER: model = p.arg; break;
        case PREP_INPUT: inputs[n_inputs++] = p.arg; break;
        case PREP_OUT: out = p.arg; break;
        case PREP_VAL_DOCS:
            if (cli_parse_long(p.arg, 0, LONG_MAX, &val_docs) != 0) {
                free(inputs);
                return cli_usage_error("data", "--val-docs: '%s' is not a count >= 0", p.arg);
            }
            break;
        case PREP_SHARD_TOKENS:
            if (cli_parse_long(p.arg, 1, CAD_SHARD_MAX_TOKENS, &shard_tokens) != 0) {
                free(inputs);
                return cli_usage_error("data", "--shard-tokens: '%s' is not in [1, %ld]", p.arg,
                                       CAD_SHARD_MAX_TOKENS);
            }
            break;
        }
    }
    if (id == CLI_OPTS_BAD) {
        free(inputs);
        return 2;
    }
    /* plain arguments after the options are more inputs: --input a.jsonl b.jsonl */
    for (int i = p.ind; i < argc; i++) inputs[n_inputs++] = argv[i];
    const char *missing = !model ? "--tokenizer" : !out ? "--out" : !n_inputs ? "--input" : NULL;
    if (missing) {
        free(inputs);
        return cli_usage_error("data", "prepare needs %s", missing);
    }
    cad_err e;
    cad_err_clear(&e);
    cad_tokenizer *tok = NULL;
    int rc = cad_tokenizer_load(model, &tok, &e);
    progress_state ps = {.t0 = now_s(), .last = now_s()};
    cad_prepare_result res;
    if (rc == CAD_OK)
        rc = cad_prepare_shards(tok, inputs, n_inputs, out, val_docs, shard_tokens,
                                isatty(2) ? progress_cb : NULL, &ps, &res, &e);
    if (ps.shown) fputc('\n', stderr);
    if (rc == CAD_OK) prepare_print(&res, out);
    cad_tokenizer_free(tok);
    free(inputs);
    if (rc != CAD_OK) return cli_fail("data", "prepare: %s", e.msg);
    return 0;
}

/* ---- stats --------------------------------------------------------------------------- */

enum stats_opt { STATS_TOKENIZER, STATS_SEQ_LEN };
static const cli_opt stats_opts[] = {
    {STATS_TOKENIZER, "tokenizer", 0, "MODEL", "the model the shards were made with (ids are checked < its vocab)"},
    {STATS_SEQ_LEN, "seq-len", 0, "N", "eval sequence length for the val trim (default 1024)"},
    CLI_OPT_END,
};
static int data_stats(int argc, char **argv);
static const cli_subcommand data_stats_sub = {
    .name = "stats",
    .fn = data_stats,
    .synopsis = (const char *const[]){"DIR --tokenizer MODEL [--seq-len N]", NULL},
    .description =
        "stats: per split (val, train): shards, tokens, documents (BOS count), lut_bytes = the byte\n"
        "total by the official val_bpb rule (train_gpt.py's LUTs, over all tokens of the split\n"
        "read as one stream), bytes/token = lut_bytes/tokens; for val also the eval window that\n"
        "train_gpt.py keeps at --seq-len L: ((N-1)/L)*L+1 tokens, its targets and lut_bytes.\n",
    .opts = stats_opts,
};

static int data_stats(int argc, char **argv) {
    const char *model = NULL, *dir = NULL;
    long seq_len = 1024;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_data_def, &data_stats_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum stats_opt)id) {
        case STATS_TOKENIZER: model = p.arg; break;
        case STATS_SEQ_LEN:
            if (cli_parse_long(p.arg, 1, INT_MAX, &seq_len) != 0)
                return cli_usage_error("data", "--seq-len: '%s' is not a positive integer",
                                       p.arg);
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind + 1 != argc)
        return cli_usage_error("data", "stats needs exactly one shard directory");
    dir = argv[p.ind];
    if (!model) return cli_usage_error("data", "stats needs --tokenizer");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_fail("data", "stats: %s: not a directory", dir);

    cad_err e;
    cad_err_clear(&e);
    cad_tokenizer *tok = NULL;
    cad_bpb_luts luts = {0};
    cad_split_stats st[2];
    static const char *const names[2] = {"val", "train"};
    int rc = cad_tokenizer_load(model, &tok, &e);
    if (rc == CAD_OK) rc = cad_bpb_luts_build(tok, cad_tokenizer_vocab_size(tok), &luts, &e);
    for (int s = 0; s < 2 && rc == CAD_OK; s++)
        rc = cad_prepare_split_stats(dir, names[s], tok, &luts, (int)seq_len, &st[s], &e);
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

/* ---- build (one prepared-data cache entry) --------------------------------------------- */

enum build_opt { BUILD_INPUT, BUILD_VOCAB, BUILD_VAL_DOCS, BUILD_SHARD_TOKENS, BUILD_SHA, BUILD_OUT, BUILD_VERBOSE };
static const cli_opt build_opts[] = {
    {BUILD_INPUT, "input", 0, "FILE", "the corpus (.jsonl or plain text, as for data prepare)"},
    {BUILD_VOCAB, "vocab", 0, "N", "tokenizer vocabulary size (260..65536)"},
    {BUILD_VAL_DOCS, "val-docs", 0, "N", "documents in the val split (default 50000, the challenge's)"},
    {BUILD_SHARD_TOKENS, "shard-tokens", 0, "N", "tokens per shard (default 100000000)"},
    {BUILD_SHA, "corpus-sha256", 0, "HEX", "fail unless the corpus bytes have this sha256"},
    {BUILD_OUT, "out", 0, "DIR", "the entry directory (made atomically; left alone when complete)"},
    {BUILD_VERBOSE, "verbose", 0, NULL, "show sentencepiece's training log on stderr"},
    CLI_OPT_END,
};
static int data_build(int argc, char **argv);
static const cli_subcommand data_build_sub = {
    .name = "build",
    .fn = data_build,
    .synopsis = (const char *const[]){"--input FILE --vocab N --out DIR [--val-docs N] [--shard-tokens N]\n"
                                      "[--corpus-sha256 HEX] [--verbose]",
                                      NULL},
    .description =
        "build: one prepared-data cache entry, what a sweep's prepare: section queues (the\n"
        "runner starts it as a run of engine prepare): `tokenizer train` on the corpus, then\n"
        "`data prepare` with that tokenizer, into DIR/tokenizer.model and DIR/data/, then\n"
        "DIR/prep.json. Built in DIR.tmp-PID and renamed, so DIR exists only complete; a complete\n"
        "DIR is reused as it is.\n",
    .opts = build_opts,
};

static int data_build(int argc, char **argv) {
    cad_prepcache_opts o = {.val_docs = CAD_PREPARE_DEFAULT_VAL_DOCS, .shard_tokens = CAD_SHARD_DEFAULT_TOKENS};
    long vocab = 0;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_data_def, &data_build_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum build_opt)id) {
        case BUILD_INPUT: o.corpus = p.arg; break;
        case BUILD_VOCAB:
            if (cli_parse_long(p.arg, 1, 65536, &vocab) != 0)
                return cli_usage_error("data", "--vocab: '%s' is not in [260, 65536]", p.arg);
            break;
        case BUILD_VAL_DOCS:
            if (cli_parse_long(p.arg, 0, LONG_MAX, &o.val_docs) != 0)
                return cli_usage_error("data", "--val-docs: '%s' is not a count >= 0", p.arg);
            break;
        case BUILD_SHARD_TOKENS:
            if (cli_parse_long(p.arg, 1, CAD_SHARD_MAX_TOKENS, &o.shard_tokens) != 0)
                return cli_usage_error("data", "--shard-tokens: '%s' is not in [1, %ld]", p.arg,
                                       CAD_SHARD_MAX_TOKENS);
            break;
        case BUILD_SHA: o.corpus_sha256 = p.arg; break;
        case BUILD_OUT: o.out = p.arg; break;
        case BUILD_VERBOSE: o.verbose = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind != argc) return cli_usage_error("data", "build: unexpected argument '%s'", argv[p.ind]);
    const char *missing = !o.corpus ? "--input" : !vocab ? "--vocab" : !o.out ? "--out" : NULL;
    if (missing) return cli_usage_error("data", "build needs %s", missing);
    /* 4 special ids + 256 byte pieces; checked after the options so every option is parsed */
    if (vocab < 260) return cli_usage_error("data", "--vocab: '%ld' is not in [260, 65536]", vocab);
    o.vocab = (int)vocab;
    cad_err e;
    cad_err_clear(&e);
    cad_prepcache_result r;
    fprintf(stderr, "build: vocab %d, val_docs %ld, from %s into %s\n", o.vocab, o.val_docs, o.corpus, o.out);
    if (cad_prepcache_build(&o, &r, &e) != CAD_OK) return cli_fail("data", "build: %s", e.msg);
    if (r.reused) printf("%s: already built (reused)\n", o.out);
    else
        printf("%s: tokenizer %d pieces; val %ld docs %ld tokens; train %ld docs %ld tokens; %.1f s\n", o.out,
               r.pieces, r.docs[0], r.tokens[0], r.docs[1], r.tokens[1], r.seconds);
    return 0;
}

const cli_command cmd_data_def = {
    .name = "data",
    .summary = "tokenize text into challenge shards (prepare), report a shard set (stats), or build a prepared-data cache entry (build)",
    .subs = (const cli_subcommand *const[]){&data_prepare_sub, &data_stats_sub, &data_build_sub, NULL},
};

/* ---- tokenizer train ------------------------------------------------------------------- */

enum train_opt { TOK_VOCAB, TOK_INPUT, TOK_OUT, TOK_VERBOSE };
static const cli_opt tokenizer_train_opts[] = {
    {TOK_VOCAB, "vocab", 0, "N", "vocabulary size (the model may end up smaller: hard_vocab_limit false)"},
    {TOK_INPUT, "input", 0, "FILE",
     "input text (.jsonl or plain text, as for data prepare), repeatable;\n"
     "more files may follow as plain arguments"},
    {TOK_OUT, "out", 0, "PREFIX", "output prefix (its directory must exist)"},
    {TOK_VERBOSE, "verbose", 0, NULL, "show sentencepiece's training log on stderr"},
    CLI_OPT_END,
};
static int tokenizer_train(int argc, char **argv);
static const cli_subcommand tokenizer_train_sub = {
    .name = "train",
    .fn = tokenizer_train,
    .synopsis = (const char *const[]){"--vocab N --input FILE [--input FILE]... --out PREFIX\n"
                                      "[--verbose]",
                                      NULL},
    .description =
        "Trains a BPE model with exactly the challenge exporter's SentencePiece options\n"
        "(character_coverage 0.999, byte_fallback, split_digits, nmt_nfkc, no dummy prefix,\n"
        "pad 0 / bos 1 / eos 2 / unk 3, hard_vocab_limit false; other options at their defaults,\n"
        "so documents longer than 4192 bytes are skipped) and writes PREFIX.model and\n"
        "PREFIX.vocab. Documents are read like `caddie data prepare` reads them, then cleaned like\n"
        "the exporter: NUL -> space, Python str.strip(), empty documents skipped.\n",
    .opts = tokenizer_train_opts,
};

static int tokenizer_train(int argc, char **argv) {
    long vocab = 0;
    const char *out = NULL;
    int verbose = 0, n_inputs = 0, id;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return cli_fail("tokenizer", "out of memory");
    cli_parser p;
    cli_parser_init(&p, &cmd_tokenizer_def, &tokenizer_train_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum train_opt)id) {
        case TOK_VOCAB:
            if (cli_parse_long(p.arg, 1, 65536, &vocab) != 0) {
                free(inputs);
                return cli_usage_error("tokenizer", "--vocab: '%s' is not in [1, 65536]", p.arg);
            }
            break;
        case TOK_INPUT: inputs[n_inputs++] = p.arg; break;
        case TOK_OUT: out = p.arg; break;
        case TOK_VERBOSE: verbose = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) {
        free(inputs);
        return 2;
    }
    for (int i = p.ind; i < argc; i++) inputs[n_inputs++] = argv[i];
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

const cli_command cmd_tokenizer_def = {
    .name = "tokenizer",
    .summary = "train a SentencePiece BPE model with the challenge's options",
    .subs = (const cli_subcommand *const[]){&tokenizer_train_sub, NULL},
};
