/*
 * main.c — the `caddie` entry point and its command table (the only place that exits).
 *
 * caddie is one binary with git-style commands. This file holds the table of commands,
 * `help` and `version`; every other command lives with the subsystem that owns it and is
 * declared in cli/cli.h. To add a command: write cmd_<name> in its subsystem, declare
 * it in cli.h, add one row below with a one-line summary and its usage text.
 * Not here: option parsing or logic of other commands.
 */
#include "engine/buildinfo.h"
#include "cli/cli.h"

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
    {"train", cmd_train, "train a model as configured (train_gpt.py's loop), write the run dir",
     "usage: caddie train CONFIG.yaml [--set KEY=VALUE]... [--print-config]\n"
     "       caddie train --keys\n"
     "\n"
     "Resolves the config (YAML file < upper-case environment variables < --set; unknown keys\n"
     "and invalid combinations are errors before any work), trains, validates, writes the\n"
     "int8+zlib artifact and scores its round trip. stdout has train_gpt.py's log lines (also\n"
     "RUN_DIR/log.txt); a progress line with tokens/s and ETA goes to stderr. Writes RUN_DIR\n"
     "(default runs/<run_id>): config.yaml log.txt metrics.jsonl code_files.txt\n"
     "final_model.int8.ptz [checkpoint.bin] and, only on success, result.json.\n"
     "  --set KEY=VALUE     override a config key (repeatable; highest precedence)\n"
     "  --print-config      print the resolved config as YAML and exit\n"
     "  --keys              print the table of config keys (markdown) and exit\n"},
    {"eval", cmd_eval, "evaluate .safetensors weights on the val split (val_loss, val_bpb)",
     "usage: caddie eval CONFIG.yaml --weights W.safetensors [--set KEY=VALUE]... [--roundtrip]\n"
     "\n"
     "Builds the configured model, loads W (train_gpt.py tensor names; F32/F16/BF16) and prints\n"
     "\"eval val_loss:X val_bpb:Y tokens:N bytes:N partial:P eval_time:Tms\".\n"
     "  --weights W         the weights to evaluate (required)\n"
     "  --set KEY=VALUE     override a config key (repeatable)\n"
     "  --roundtrip         also quantize to int8+zlib and print the round-trip score\n"},
    {"sweep", cmd_sweep, "validate a sweep YAML and show its runs (plan), or queue them (add)",
     "usage: caddie sweep plan FILE [--devices N] [--force] [--db FILE] [--runs-dir DIR]\n"
     "       caddie sweep add FILE [--force] [--db FILE] [--runs-dir DIR]\n"
     "\n"
     "Validates the whole file first (errors are file:line:col: message). Expands grid x zip x\n"
     "seeds into runs with resolved configs; a run whose config hash (+ engine version) is\n"
     "already done is skipped, one already queued or running too.\n"
     "plan: prints each run (queue | requeue | done | pending | duplicate), the counts and an\n"
     "estimated duration on N devices (mean of finished runs of the sweep, else the timeout).\n"
     "add: writes runs/<run_id>/config.yaml + run.json and queues the runs; start them with\n"
     "'caddie run'.\n"
     "  --devices N         devices to estimate for (plan; default: a run's devices)\n"
     "  --force             queue runs whose config is already done or queued (new -rN ids)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"
     "  --runs-dir DIR      where run directories go (default $CADDIE_RUNS or ./runs)\n"},
    {"run", cmd_run, "the runner: start queued runs on GPUs or CPU slots, record everything in the DB",
     "usage: caddie run [--devices LIST | --cpu-slots N [--threads N]] [--until-empty]\n"
     "                  [--grace SECONDS] [--poll SECONDS] [--db FILE]\n"
     "\n"
     "The one process that drives the queue (one per DB: a second one is refused and told\n"
     "who runs). Runs start in priority order, each in its own process group with\n"
     "CUDA_VISIBLE_DEVICES set to its devices; an 8-device run reserves devices as they free\n"
     "up, 1-device runs backfill only where they end before it can start. Curves are\n"
     "ingested live. Timeout: TERM to the run's group, KILL after the grace. Non-zero exit,\n"
     "NaN loss or no final result: failed (reason + last log lines in runs.error), retried\n"
     "up to the sweep's `retries`. Runs a killed runner left behind are requeued at start.\n"
     "SIGINT/SIGTERM: no new runs, TERM to the running ones (marked interrupted), exit\n"
     "128+signal; a second signal KILLs them.\n"
     "  --devices LIST      GPU ids, e.g. 0-7 or 0,2,4-5 (default: every GPU the NVIDIA\n"
     "                      driver lists, else one CPU slot)\n"
     "  --cpu-slots N       run N runs at a time on the CPU (CUDA_VISIBLE_DEVICES empty)\n"
     "  --threads N         OMP_NUM_THREADS per CPU run (default: cores / N)\n"
     "  --until-empty       exit once nothing runs and nothing runnable is queued\n"
     "  --grace SECONDS     between TERM and KILL (default 10)\n"
     "  --poll SECONDS      tick of the loop (default 0.5; a run's exit wakes it at once)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"status", cmd_status, "is a runner active; runs per status; what runs now; recent failures",
     "usage: caddie status [--db FILE]\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"ls", cmd_ls, "list runs: status, attempts, devices, val_bpb, bytes, duration",
     "usage: caddie ls [--sweep NAME] [--status STATUS] [--db FILE]\n"
     "  --sweep NAME        only the runs of this sweep\n"
     "  --status STATUS     queued, running, done, failed, cancelled or interrupted\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"show", cmd_show, "everything about one run: summary, launch recipe, curves, events, error",
     "usage: caddie show RUN [--db FILE]\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"logs", cmd_logs, "print what a run printed; -f follows it until the run ends",
     "usage: caddie logs RUN [-f|--follow] [--db FILE]\n"
     "Prints <run_dir>/log.txt (command engine) or console.txt (caddie engine: stdout and\n"
     "stderr as captured by the runner).\n"
     "  -f, --follow        keep printing new lines while the run is queued or running\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"cancel", cmd_cancel, "cancel a run, or every queued/running run of a sweep",
     "usage: caddie cancel RUN|SWEEP [--db FILE]\n"
     "A running run is stopped by the runner (TERM to its process group, KILL after the\n"
     "grace) and stays cancelled.\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"retry", cmd_retry, "queue failed, cancelled or interrupted runs (of a run or a sweep) again",
     "usage: caddie retry RUN|SWEEP [--db FILE]\n"
     "Resets the attempt count, so the sweep's `retries` apply again.\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"db", cmd_db, "migrate the results database, or rebuild it from the run directories",
     "usage: caddie db migrate [--db FILE]\n"
     "       caddie db rebuild [--runs-dir DIR] [--db FILE]\n"
     "\n"
     "migrate: apply the schema migrations compiled into caddie (also done on every open).\n"
     "rebuild: empty the database and import every DIR/*/ holding run.json or config.yaml\n"
     "(runs, sweeps, events, metrics, results, artifacts), all or nothing. The run\n"
     "directories are the truth: a deleted database loses nothing. Stop 'caddie run' first.\n"
     "  --runs-dir DIR      run directories to import (default $CADDIE_RUNS or ./runs)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"import-run", cmd_import_run, "import run directories (e.g. of a standalone caddie train) into the DB",
     "usage: caddie import-run DIR... [--no-replace] [--db FILE]\n"
     "\n"
     "Imports each run directory: run.json when present (a queued/run sweep run), else\n"
     "config.yaml (a standalone 'caddie train'; done when result.json exists, else failed),\n"
     "then metrics.jsonl, result.json and the artifact files. Prints run id, status, dir.\n"
     "  --no-replace        fail when the run is already in the DB (default: replace it)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"import-log", cmd_import_log, "import train_gpt.py-style training logs as runs (curves, score, params)",
     "usage: caddie import-log FILE... [--sweep NAME] [--db FILE] [--runs-dir DIR] [--replace]\n"
     "\n"
     "Parses each log (any train_gpt.py dialect: printed source skipped, step lines, size\n"
     "lines, final evaluation lines), writes a run directory DIR/imported/<run_id>/ (log.txt,\n"
     "metrics.jsonl, result.json, config.yaml with the printed hyperparameters) and ingests\n"
     "it. run_id is <sweep or parent folder>-<file name>. The score is the lowest val_bpb of\n"
     "the final evaluations of the quantized model (see db/logparse.c). Prints one line\n"
     "per run: run_id, status, val_bpb, claimed_val_bpb, score line, sweep.\n"
     "  --sweep NAME        put the runs in this sweep (created when new)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"
     "  --runs-dir DIR      where run directories go (default $CADDIE_RUNS or ./runs)\n"
     "  --replace           re-import a run that is already in the DB\n"},
    {"import-record", cmd_import_record, "import Parameter Golf record folders (README, submission.json, logs)",
     "usage: caddie import-record DIR... [--db FILE] [--runs-dir DIR] [--replace]\n"
     "\n"
     "Each record folder becomes a sweep named after the folder, with one run per log file\n"
     "(*.log, *.txt; files without training output are skipped). The submission's claimed\n"
     "val_bpb for a log (seed_results.<seed>, or val_bpb of a single-log record) is kept as\n"
     "the param claimed_val_bpb next to the parsed results.val_bpb; seed logs of one\n"
     "configuration share a group (sweep_groups: mean and std over seeds).\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"
     "  --runs-dir DIR      where run directories go (default $CADDIE_RUNS or ./runs)\n"
     "  --replace           re-import runs that are already in the DB\n"},
    {"report", cmd_report, "write one self-contained HTML report: groups, seed statistics, curves, budgets",
     "usage: caddie report [--sweep NAME]... [--runs SQL-WHERE] [--ref GROUP] [--out FILE.html]\n"
     "                     [--log-x] [--max-groups N] [--db FILE]\n"
     "\n"
     "Groups runs by config (seeds aggregated) and writes one HTML file (inline SVG + CSS, no\n"
     "network): per group n, mean ± std val_bpb, Δ vs the reference group, one-sided Welch p,\n"
     "the record bar (0.005 nats at p < 0.01) and the frontier rule (p < 0.25), budgets\n"
     "(16,000,000 bytes, 600 s train/eval); loss curves with seed bands; val_bpb against every\n"
     "swept parameter (heatmap for two); artifact, time and throughput bars; failed runs.\n"
     "  --sweep NAME        only this sweep (repeatable; default: every sweep)\n"
     "  --runs SQL-WHERE    only runs matching an SQL expression over run_summary columns,\n"
     "                      e.g. --runs \"started_at > '2026-04-20'\"\n"
     "  --ref GROUP         reference group: group hash (or prefix), run id, run name or label\n"
     "                      (default: a group named baseline, else the first group that ran)\n"
     "  --out FILE.html     output file (default report.html; - for stdout)\n"
     "  --log-x             log-scaled step axis for the loss curves\n"
     "  --max-groups N      groups drawn in the curve charts, 1..8 (default 8)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"top", cmd_top, "the best config groups as an aligned table, with the same statistics as the report",
     "usage: caddie top [--sweep NAME]... [-n N] [--runs SQL-WHERE] [--ref GROUP] [--db FILE]\n"
     "  --sweep NAME        only this sweep (repeatable)\n"
     "  -n N                show the N best groups (default 10)\n"
     "  --runs SQL-WHERE    only runs matching an SQL expression over run_summary columns\n"
     "  --ref GROUP         reference group for Δ and p (default as in 'caddie report')\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"compare", cmd_compare, "compare two runs or groups: means, Welch p, record bar, frontier rule",
     "usage: caddie compare A B [--sweep NAME]... [--db FILE]\n"
     "\n"
     "A and B are run ids (one run) or groups (group hash or prefix, run name, or label: all\n"
     "seeds). Prints both side by side, A - B in bpb and nats, the one-sided Welch test that A\n"
     "is better, the record bar, the frontier rule, and same-seed pairs.\n"
     "  --sweep NAME        look A and B up in this sweep only (repeatable)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"seeds-needed", cmd_seeds_needed, "how many seeds each comparison needs for p < 0.01",
     "usage: caddie seeds-needed --sweep NAME [--delta NATS] [--ref GROUP] [--db FILE]\n"
     "\n"
     "From the observed seed std of val_loss (pooled when a group has one seed): the seeds per\n"
     "side for a true improvement of --delta nats, for the observed Δ, and for the observed Δ\n"
     "to clear the 0.005-nat record bar, each at one-sided p < 0.01.\n"
     "  --sweep NAME        the sweep (required)\n"
     "  --delta NATS        improvement to detect (default 0.005)\n"
     "  --ref GROUP         reference group (default as in 'caddie report')\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"export-submission", cmd_export_submission, "write a record folder: submission.json, README.md, logs",
     "usage: caddie export-submission RUN|GROUP --out DIR [--name NAME] [--author NAME]\n"
     "                                [--github-id ID] [--blurb TEXT] [--track TRACK] [--db FILE]\n"
     "\n"
     "RUN exports one run; GROUP (hash or prefix, run name, label) exports all its seeds.\n"
     "Writes DIR/submission.json in the challenge's format (val_bpb mean and std, seeds,\n"
     "seed_results, bytes_total, bytes_code, compliance), DIR/README.md with the seed table,\n"
     "DIR/train_seed<S>.log copied from each run dir's log.txt, and DIR/config.yaml.\n"
     "  --out DIR           output directory (required; created)\n"
     "  --name NAME         submission name (default: the group label)\n"
     "  --author NAME       author (default: git config user.name, else $USER)\n"
     "  --github-id ID      GitHub id (default empty)\n"
     "  --blurb TEXT        one-paragraph description (default empty)\n"
     "  --track TRACK       track (default 10min_16mb)\n"
     "  --db FILE           results database (default $CADDIE_DB or ./caddie.db)\n"},
    {"bench", cmd_bench, "time train steps of a config on cpu or cuda: ms/step, tokens/s, MFU, per-op table",
     "usage: caddie bench [--backend cpu|cuda] [--config FILE] [--set KEY=VALUE]... [--steps N]\n"
     "                    [--warmup N] [--profile-steps N] [--peak-tflops X]\n"
     "                    [--torch-script train_gpt.py] [--python PYTHON]\n"
     "\n"
     "Runs --warmup untimed then --steps timed optimizer steps of the config (each: grad_accum\n"
     "micro-steps of forward+backward on the training stream, Muon/Adam, a backend sync) and prints\n"
     "ms/step, tokens/s, model TFLOP/s with model FLOPs/step = 6*P*tokens + 6*L*T*C*tokens (P all\n"
     "parameters, L blocks, causal attention 12*L*T*C per token halved) and MFU against 989 TFLOP/s\n"
     "(bf16 dense) on an H100/H200, else against --peak-tflops. Then --profile-steps more steps\n"
     "through a timing wrapper: one line per backend slot called (calls, total ms, % of those\n"
     "steps' wall time; cpu: wall clock, cuda: CUDA events) and the time outside slots.\n"
     "Without --config: train_gpt.py's baseline (9x512, T=1024, 524,288 tokens/step = 8 micro-steps\n"
     "of 64x1024 on one device) on the bundled sample (`make sample`). The lr schedule ignores the\n"
     "wallclock; nothing is written. --backend cuda without a GPU fails (exit 1, \"no CUDA device\").\n"
     "  --backend B          cpu or cuda (overrides the config's backend key)\n"
     "  --config FILE        run config (YAML; the keys of caddie train); --set KEY=VALUE overrides\n"
     "  --steps N            timed steps (default 10)     --warmup N  untimed steps first (default 3)\n"
     "  --profile-steps N    steps of the per-slot table (default 1; 0: no table)\n"
     "  --peak-tflops X      device peak for MFU (default: by device name, H100/H200 = 989)\n"
     "  --torch-script PATH  also run train_gpt.py (when PYTHON can import torch) on the same data\n"
     "                       and config with ITERATIONS=N WARMUP_STEPS=warmup VAL_LOSS_EVERY=0 and\n"
     "                       print its step_avg and the ratio; skipped with a line when no torch\n"
     "  --python PYTHON      interpreter for --torch-script (default python3)\n"},
    {"gpu", cmd_gpu, "check the CUDA backend against the CPU reference on this machine's GPU",
     "usage: caddie gpu selftest [--seed N] [--large] [--max-nmse X] [--quiet] [--ops-only]\n"
     "                           [--train-config FILE] [--grad-seqs N]\n"
     "\n"
     "Runs every backend op (matmul, embedding, rmsnorm, q/k norm + RoPE, attention, relu^2,\n"
     "residual mixes, softcap cross-entropy, axpby/scale/sumsq/Adam; forward and backward) on\n"
     "the CUDA backend and on the CPU reference with identical inputs, and compares each\n"
     "output: NMSE against --max-nmse, NaN/Inf positions, guard values around outputs.\n"
     "Prints one line per compared output and a summary; exit 0 when all pass, 1 when one\n"
     "fails or when there is no CUDA backend (built without nvcc) or no visible device.\n"
     "  --seed N        input data seed (default 1)\n"
     "  --large         also run model-sized shapes (T=1024 attention, 4096-row norms)\n"
     "  --max-nmse X    NMSE bound per output (default 1e-7, ggml's fp32 default)\n"
     "  --quiet         print only failing outputs and the summary\n"
     "Then (unless --ops-only): which kernels matmul, matmul_batched, gram_batched and\n"
     "attention_forward launch in each precision (CUPTI; a TF32 kernel fails), and for fp32 and\n"
     "bf16: every parameter gradient of the 9x512 baseline on --grad-seqs x 1024 tokens (default\n"
     "8; NMSE <= 1e-8 fp32, 1e-4 bf16; loss within 1e-3 relative), a 20-step training run of\n"
     "--train-config (default experiments/configs/sample_cpu.yaml: the loss of every step within\n"
     "1e-3 relative of the CPU's) and two 5-step CUDA runs that must be bit-identical.\n"
     "  --ops-only      only the op-by-op comparison\n"
     "  --train-config FILE  config of the training checks (data, tokenizer, model)\n"
     "  --grad-seqs N   sequences of 1024 tokens in the gradient check (CPU time grows with N)\n"},
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
           "an overnight runner, and a SQLite results database you query with plain SQL.\n\n"
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
    if (cli_wants_help(argc - 1, argv + 1)) {
        printf("caddie %s — %s\n\n", c->name, c->summary);
        cli_print_usage(c);
        return 0;
    }
    return c->fn(argc - 1, argv + 1);
}
