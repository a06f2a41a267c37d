/*
 * cmd_data.c — `caddie data prepare|stats` and `caddie tokenizer train`: turn text into
 * challenge-format shards the way the challenge exporter does, report what a shard set
 * holds (with the official val_bpb byte rule), and train a SentencePiece model with the
 * exporter's options.
 *
 * This file parses options and prints; the work (the exporter's token-for-token shard
 * writing, the per-split statistics) is engine/prepare.c.
 * Not here: the shard format (engine/shard.c), reading input files and JSON
 * (engine/textdocs.c), the tokenizer (engine/tokenizer_shim.cc), byte tables
 * (engine/bpb_luts.c).
 */
#include "engine/fsutil.h"
#include "engine/bpb_luts.h"
#include "engine/prepare.h"
#include "cli/cli.h"
#include "engine/shard.h"
#include "engine/textdocs.h"
#include "engine/tokenizer.h"

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

static int data_prepare(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"input", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},       {"val-docs", required_argument, 0, 'v'},
        {"shard-tokens", required_argument, 0, 's'}, {0, 0, 0, 0},
    };
    const char *model = NULL, *out = NULL;
    long val_docs = CAD_PREPARE_DEFAULT_VAL_DOCS, shard_tokens = CAD_SHARD_DEFAULT_TOKENS;
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
