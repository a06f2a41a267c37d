/*
 * main.c — the `caddie` entry point and its command table (the only place that exits).
 *
 * caddie is one binary with git-style commands. This file holds the table of commands,
 * `help` and `version`; every other command lives with the subsystem that owns it and is
 * declared in sweep/cli.h. To add a command: write cmd_<name> in its subsystem, declare
 * it in cli.h, add one row below with a one-line summary and its usage text.
 * Not here: option parsing or logic of other commands.
 */
#include "buildinfo.h"
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cli_command cli_commands[] = {
    {"help", cmd_help, "show the commands, or the usage of one command",
     "usage: caddie help [COMMAND]\n"},
    {"version", cmd_version, "print version, git commit, compiler and compiled-in backends",
     "usage: caddie version\n"},
    {"data", cmd_data, "tokenize text into challenge shards (prepare), or report a shard set (stats)",
     "usage: caddie data prepare --tokenizer MODEL --input FILE [--input FILE]... --out DIR\n"
     "                           [--val-docs N] [--shard-tokens N]\n"
     "       caddie data stats DIR --tokenizer MODEL [--seq-len N]\n"
     "\n"
     "prepare: tokenize documents into DIR/fineweb_{val,train}_NNNNNN.bin exactly like the\n"
     "challenge exporter: each document is BOS (id 1) + sp.encode(text), no EOS; the first N\n"
     "documents are val, the rest train; shards hold --shard-tokens tokens (the last of each\n"
     "split is partial). Old fineweb_*.bin in DIR are removed first; each shard is written to a\n"
     "temporary name and renamed. Output is deterministic.\n"
     "  --tokenizer MODEL   SentencePiece .model (vocab <= 65536)\n"
     "  --input FILE        input text, repeatable; more files may follow as plain arguments.\n"
     "                      Read in order. FILE ending in .jsonl: one JSON object a line, the\n"
     "                      document is its \"text\" field (blank lines are skipped). Any other\n"
     "                      FILE: plain UTF-8 text, documents separated by one or more blank\n"
     "                      lines (empty or whitespace-only); a document is its lines joined\n"
     "                      with \\n (a \\r before a line end is dropped)\n"
     "  --out DIR           output directory (created if missing)\n"
     "  --val-docs N        documents in the val split (default 50000, the challenge's)\n"
     "  --shard-tokens N    tokens per shard (default 100000000, the challenge's)\n"
     "Prints per split: shards, documents, tokens (BOS included), UTF-8 bytes of the texts and\n"
     "bytes/token; a progress line and the throughput on stderr.\n"
     "\n"
     "stats: per split (val, train): shards, tokens, documents (BOS count), lut_bytes = the byte\n"
     "total by the official val_bpb rule (train_gpt.py's LUTs, over all tokens of the split\n"
     "read as one stream), bytes/token = lut_bytes/tokens; for val also the eval window that\n"
     "train_gpt.py keeps at --seq-len L: ((N-1)/L)*L+1 tokens, its targets and lut_bytes.\n"
     "  --tokenizer MODEL   the model the shards were made with (ids are checked < its vocab)\n"
     "  --seq-len N         eval sequence length for the val trim (default 1024)\n"},
    {"tokenizer", cmd_tokenizer, "train a SentencePiece BPE model with the challenge's options",
     "usage: caddie tokenizer train --vocab N --input FILE [--input FILE]... --out PREFIX\n"
     "                              [--verbose]\n"
     "\n"
     "Trains a BPE model with exactly the challenge exporter's SentencePiece options\n"
     "(character_coverage 0.999, byte_fallback, split_digits, nmt_nfkc, no dummy prefix,\n"
     "pad 0 / bos 1 / eos 2 / unk 3, hard_vocab_limit false; other options at their defaults,\n"
     "so documents longer than 4192 bytes are skipped) and writes PREFIX.model and\n"
     "PREFIX.vocab. Documents are read like `caddie data prepare` reads them, then cleaned like\n"
     "the exporter: NUL -> space, Python str.strip(), empty documents skipped.\n"
     "  --vocab N           vocabulary size (the model may end up smaller: hard_vocab_limit false)\n"
     "  --input FILE        input text (.jsonl or plain text, as for data prepare), repeatable;\n"
     "                      more files may follow as plain arguments\n"
     "  --out PREFIX        output prefix (its directory must exist)\n"
     "  --verbose           show sentencepiece's training log on stderr\n"},
    {0, 0, 0, 0},
};

const cli_command *cli_find(const char *name) {
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "caddie %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'caddie help %s')\n", cmd);
    return 2;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "caddie %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

void cli_print_usage(const cli_command *c) {
    printf("%s", c->usage);
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    }
    return 0;
}

int cmd_help(int argc, char **argv) {
    if (argc > 2) return cli_usage_error("help", "expected at most one command name");
    if (argc == 2) {
        const cli_command *c = cli_find(argv[1]);
        if (!c) return cli_usage_error("help", "'%s' is not a caddie command", argv[1]);
        printf("caddie %s — %s\n\n", c->name, c->summary);
        cli_print_usage(c);
        return 0;
    }
    printf("usage: caddie <command> [args]\n\n"
           "caddie runs Parameter Golf experiments: a C/CUDA training engine, YAML sweeps,\n"
           "an overnight runner, and a SQLite results database you can query with sqlite3.\n\n"
           "commands:\n");
    for (const cli_command *c = cli_commands; c->name; c++)
        printf("  %-18s %s\n", c->name, c->summary);
    printf("\n'caddie help <command>' shows its usage.\n");
    return 0;
}

int cmd_version(int argc, char **argv) {
    (void)argv;
    if (argc > 1) return cli_usage_error("version", "takes no arguments");
    printf("caddie %s\n", CADDIE_VERSION);
    printf("commit:   %s%s\n", cad_build_commit, cad_build_dirty ? " (dirty)" : "");
    printf("compiler: %s\n", cad_build_compiler);
    printf("backends: %s\n", cad_build_backends);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        cmd_help(1, argv);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) return cmd_help(1, argv);
    if (strcmp(name, "--version") == 0) return cmd_version(1, argv);
    const cli_command *c = cli_find(name);
    if (!c) {
        fprintf(stderr, "caddie: '%s' is not a caddie command. See 'caddie help'.\n", name);
        return 2;
    }
    if (c->fn != cmd_help && cli_wants_help(argc - 1, argv + 1)) {
        printf("caddie %s — %s\n\n", c->name, c->summary);
        cli_print_usage(c);
        return 0;
    }
    return c->fn(argc - 1, argv + 1);
}
