/*
 * logparse.h — incremental parser for train_gpt.py-style training stdout (every dialect
 * found in the Parameter Golf record folders), turning lines into metrics, a final
 * summary (the score and sizes) and the hyperparameters the log prints.
 *
 * Used by the runner for `command`-engine runs (fed live, line by line, as the process
 * prints) and by `caddie import-log` / `caddie import-record` (fed a whole file). Both go
 * through the same state machine so a live run and a re-imported log give the same rows.
 *
 * Not here: reading files or pipes (runner/tail.h), writing the run directory or the DB
 * (db/ingest.h, cli/cmd_import.c), metrics.jsonl written by our own engine (that is
 * already structured; this parser is for text logs).
 *
 * Dialects understood (see the .c file for the exact grammar of each):
 *   - the training script's source printed at the top of the log (train_gpt.py logs its
 *     own code first). Code lines are never parsed as metrics; the parser recognises the
 *     code block and skips it (see "code skipping" in logparse.c).
 *   - optional unix-timestamp / wall-clock prefixes before any line.
 *   - step lines, three families:
 *       baseline:        step:S/N train_loss:X train_time:Tms step_avg:Ams [tok/s:..]
 *                        step:S/N val_loss:X val_bpb:Y train_time:Tms step_avg:Ams
 *       Hyperparameters: S/N train_loss: X train_time: 8.7m tok/s: N
 *                        S/N val_loss: X val_bpb: Y
 *       ternary:         step:S/N loss:X t:Nms avg:Nms ...
 *   - size lines of every compressor ("Serialized model int8+zlib: N bytes",
 *     "Total submission size int6+lzma: N bytes", zstd, brotli, ...), `key=value` and
 *     `key: value` final lines, TTT progress lines (ignored: they are not the score).
 *
 * Which final line is the score: see the precedence table at cad_log_summary below.
 */
#ifndef CADDIE_LOGPARSE_H
#define CADDIE_LOGPARSE_H

#include <stddef.h>

/* The most metrics one line can produce; pass an out array at least this long. */
#define CAD_LOG_MAX_METRICS_PER_LINE 8

/* One point of a curve, named as in the caddie metrics journal (metrics.jsonl):
 * train_loss, val_loss, val_bpb, step_ms (average ms/step as printed), tokens_per_s,
 * lr (absolute) or lr_mul (schedule multiplier), as the log prints them.
 * wall_ms is the training time printed on the same line (train_time / t), or -1 when
 * the line prints none. value may be NaN or Inf when the log printed nan/inf. */
typedef struct cad_log_metric {
    char name[32];
    long step;
    double value;
    double wall_ms;
} cad_log_metric;

/* What the whole log says at its end. Doubles are NAN and integers -1 when the log never
 * printed them.
 *
 * Which final line is the score (derived from the 80 published logs in
 * tests/fixtures/logs, see EXPECTED.tsv / EXCEPTIONS.md there, and logparse.c):
 *   - candidates are the final evaluation lines of the QUANTIZED model: round trip
 *     (final_int8_zlib_roundtrip, final_int6_roundtrip, quantized, final_ternary_...),
 *     sliding window (final_sliding_window, final_int6_sliding_window, quantized_sliding_
 *     window, final_sliding), TTT (final_ttt_lora, legal_ttt, quantized_ttt[_phased|_lora],
 *     final_int6_ttt), key=value summaries (ttt_sliding:done val_bpb=...);
 *     pre-quantization / post-EMA evaluations are never the score (-> prequant_val_*);
 *   - the score is the LOWEST val_bpb among the candidates of the last run in the log
 *     (a step line after a final line starts a new run: appended second runs win);
 *   - values equal within the coarser printed precision tie, and the more precise line
 *     wins ("_exact" over its 4-decimal twin), then the earlier one.
 * The lowest, not "TTT first": submitters claim their best legal evaluation, and a worse
 * TTT result (2026-04-04 seed 42: TTT 1.336, claimed sliding window 1.0894) is not it. */
typedef struct cad_log_summary {
    int has_score;               /* 1 when some final evaluation line was seen */
    double val_loss, val_bpb;    /* the score */
    char score_line_kind[64];    /* key of the line that gave the score, e.g.
                                    "final_int8_zlib_roundtrip_exact" */
    double prequant_val_loss, prequant_val_bpb; /* last full-precision evaluation */
    long artifact_bytes;         /* total submission size (model + code), compressed */
    long model_bytes;            /* compressed model alone */
    long code_bytes;             /* code size */
    char compressor[32];         /* e.g. "int8+zlib", "int6+lzma", "brotli" ("" unknown) */
    double train_ms;             /* last training time printed (ms) */
    double eval_ms;              /* evaluation time of the score line (ms), if printed */
    long steps;                  /* last training step seen */
    long total_steps;            /* N of step:S/N */
    double last_train_loss;
    long n_nan;                  /* loss values printed as nan/inf (runner fails the run) */
    long n_out_of_range;         /* negative loss/bpb values: neither curve points nor scores */
    long n_long_lines;           /* lines over CAD_LOG_MAX_LINE bytes fed in pieces: skipped */
    long first_long_line;        /* the first one's 1-based line number, 0 when none */
    long n_lines;                /* lines fed (not counting the skipped long ones) */
    long n_code_lines;           /* lines skipped as printed source code */
    long n_metric_lines;         /* lines that produced metrics */
    int seed;                    /* seed printed in the log, -1 when none */
    /* Lines that name a score ("bpb" in any case) but gave nothing: no metric, no score,
     * no size, and are not printed source. An import names the first (file:line). */
    long n_unread_score_lines;
    long first_unread_score_line; /* its 1-based line number, 0 when none */
    char first_unread_score_text[96]; /* its start (printable bytes only) */
} cad_log_summary;

typedef struct cad_logparse cad_logparse;

/* The longest line cad_logparse_feed holds (after dropping a '\r'-redrawn line's old
 * segments): longer lines are skipped and counted (n_long_lines), so memory stays bounded
 * whatever a run prints. */
#define CAD_LOG_MAX_LINE ((size_t)1 << 20)

/* NULL only when out of memory. */
cad_logparse *cad_logparse_new(void);
void cad_logparse_free(cad_logparse *p);

/* Feed one complete line (without the '\n'; a trailing '\r' is ignored; need not be
 * NUL-terminated). Writes up to max_out metrics into out and returns how many this
 * line produced (0 for most lines). max_out >= CAD_LOG_MAX_METRICS_PER_LINE never loses
 * one. */
int cad_logparse_line(cad_logparse *p, const char *line, size_t len, cad_log_metric *out,
                      int max_out);

/* Feed arbitrary bytes (any chunking): complete lines are parsed at once, a partial last
 * line is kept until its newline arrives or cad_logparse_finish. Calls fn(ctx, metric)
 * for each metric; a non-zero return from fn stops and is returned. Returns 0 otherwise,
 * or -1 when out of memory. */
typedef int (*cad_log_metric_fn)(void *ctx, const cad_log_metric *m);
int cad_logparse_feed(cad_logparse *p, const char *buf, size_t len, cad_log_metric_fn fn,
                      void *ctx);
/* Parse a buffered partial last line (the writer exited). Same return as feed. */
int cad_logparse_finish(cad_logparse *p, cad_log_metric_fn fn, void *ctx);

/* The summary so far (valid at any moment; final after the last line). */
void cad_logparse_summary(const cad_logparse *p, cad_log_summary *out);

/* Hyperparameters the log printed ("Hyperparameters:" blocks, `key:value` /
 * `key=value` config lines before training starts), in first-seen order; a key printed
 * again keeps its last value. Keys are lower-cased as printed (e.g. "qk_gain_init");
 * values are the printed text. Returns the count; get returns 0 on success, -1 when i
 * is out of range. Pointers stay valid until the next feed or free. */
int cad_logparse_param_count(const cad_logparse *p);
int cad_logparse_param_get(const cad_logparse *p, int i, const char **key,
                           const char **value);

#endif
