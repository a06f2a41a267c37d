/*
 * cmd_budget.c — `caddie budget CONFIG`: the artifact bytes a config makes, before training
 * (engine/budget.c): per tensor shape, parameters, scheme, bits, container and estimated
 * compressed bytes; totals, code bytes and the margin to the 16,000,000-byte cap. Exit status 0
 * when it fits, 3 when it does not (1 failure, 2 usage), so a sweep script can test it.
 * Not here: any counting (engine/budget.c, engine/export.c).
 */
#include "cli/cli.h"
#include "engine/budget.h"
#include "engine/config.h"
#include "engine/export.h"
#include "engine/jsonw.h"
#include "engine/quant_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUDGET_OVER 3 /* exit status: the estimate exceeds the cap */
#define BUDGET_MAX_SETS 256

static const char *scheme_name(int s) {
    switch (s) {
    case CAD_Q_PER_ROW: return "per-row";
    case CAD_Q_PER_TENSOR: return "int8";
    case CAD_Q_FP16: return "fp16";
    case CAD_Q_FP32: return "fp32";
    case CAD_Q_PER_ROW_EXT: return "per-row+";
    }
    return "?";
}

static void shape_text(const cad_budget_tensor *t, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int d = 0; d < t->ndim && o < cap; d++) o += (size_t)snprintf(buf + o, cap - o, d ? "x%ld" : "%ld", t->shape[d]);
    if (t->ndim == 0) snprintf(buf, cap, "scalar");
}

static const char *source_text(const cad_budget *b) {
    return b->source == CAD_BUDGET_WEIGHTS ? "weights" : b->source == CAD_BUDGET_ARTIFACT ? "artifact" : "default";
}

static void print_table(const cad_budget *b, const char *cfg, const char *weights) {
    printf("budget: %s, compressor %s, compressed sizes from %s%s%s\n", cfg, cad_compressor_name(b->compressor),
           b->source == CAD_BUDGET_DEFAULT ? "the default ratio table (docs/engine.md#artifact-budget)" : source_text(b),
           weights ? " " : "", weights ? weights : "");
    printf("%-34s %-12s %10s %-9s %4s %11s %11s\n", "tensor", "shape", "params", "scheme", "bits", "raw_bytes",
           "est_bytes");
    for (int i = 0; i < b->n; i++) {
        const cad_budget_tensor *t = &b->t[i];
        char sh[64];
        shape_text(t, sh, sizeof sh);
        printf("%-34s %-12s %10ld %-9s %4d %11zu %11.0f\n", t->name, sh, t->params, scheme_name(t->scheme), t->bits,
               t->raw_bytes, t->est_bytes);
    }
    printf("params: %ld  container: %zu bytes  model: %.0f bytes%s\n", b->params, b->raw_bytes, b->est_model_bytes,
           b->exact_model_bytes >= 0 ? " (the real export of these weights)" : " (estimate)");
    if (b->source == CAD_BUDGET_ARTIFACT) printf("artifact ratio: %.4f\n", b->artifact_ratio);
    printf("code: %ld bytes (%d files%s", b->code_bytes, b->n_code_files, b->raw_code_bytes != b->code_bytes ? ", packed from " : ")\n");
    if (b->raw_code_bytes != b->code_bytes) printf("%ld)\n", b->raw_code_bytes);
    printf("total: %.0f bytes of %ld: margin %.0f (%s)\n", b->total_bytes, CAD_ARTIFACT_LIMIT, b->margin,
           b->margin >= 0 ? "fits" : "OVER");
}

static void print_json(const cad_budget *b) {
    FILE *f = stdout;
    fputs("{\"compressor\":", f);
    cad_json_write_string(f, cad_compressor_name(b->compressor));
    fputs(",\"source\":", f);
    cad_json_write_string(f, source_text(b));
    fputs(",\"tensors\":[", f);
    for (int i = 0; i < b->n; i++) {
        const cad_budget_tensor *t = &b->t[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        cad_json_write_string(f, t->name);
        fputs(",\"shape\":[", f);
        for (int d = 0; d < t->ndim; d++) fprintf(f, d ? ",%ld" : "%ld", t->shape[d]);
        fprintf(f, "],\"params\":%ld,\"scheme\":", t->params);
        cad_json_write_string(f, scheme_name(t->scheme));
        fprintf(f, ",\"bits\":%d,\"raw_bytes\":%zu,\"est_bytes\":", t->bits, t->raw_bytes);
        cad_json_write_number(f, t->est_bytes);
        fputc('}', f);
    }
    fprintf(f, "],\"params\":%ld,\"container_bytes\":%zu,\"model_bytes\":", b->params, b->raw_bytes);
    cad_json_write_number(f, b->est_model_bytes);
    fprintf(f, ",\"exact_model_bytes\":%ld,\"code_bytes\":%ld,\"raw_code_bytes\":%ld,\"total_bytes\":", b->exact_model_bytes,
            b->code_bytes, b->raw_code_bytes);
    cad_json_write_number(f, b->total_bytes);
    fprintf(f, ",\"limit\":%ld,\"margin\":", CAD_ARTIFACT_LIMIT);
    cad_json_write_number(f, b->margin);
    fprintf(f, ",\"fits\":%s}\n", b->margin >= 0 ? "true" : "false");
}

enum budget_opt { BUDGET_WEIGHTS, BUDGET_SET, BUDGET_JSON };
static const cli_opt budget_opts[] = {
    {BUDGET_WEIGHTS, "weights", 'w', "FILE",
     "trained weights of this model (.safetensors: the real export's size at the config's bits)\n"
     "or an artifact (.ptz: its compression ratio)"},
    {BUDGET_SET, "set", 's', "KEY=VALUE", "override a config key (repeatable)"},
    {BUDGET_JSON, "json", 0, NULL, "print one JSON object instead of the table"},
    CLI_OPT_END,
};

static int cmd_budget(int argc, char **argv) {
    char *sets[BUDGET_MAX_SETS];
    int n_sets = 0, json = 0, id;
    const char *weights = NULL;
    cli_parser p;
    cli_parser_init(&p, &cmd_budget_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum budget_opt)id) {
        case BUDGET_WEIGHTS: weights = p.arg; break;
        case BUDGET_SET:
            if (n_sets == BUDGET_MAX_SETS) return cli_usage_error("budget", "more than %d --set", BUDGET_MAX_SETS);
            sets[n_sets++] = p.arg;
            break;
        case BUDGET_JSON: json = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind != argc - 1) return cli_usage_error("budget", "expected exactly one CONFIG.yaml");
    cad_config cfg;
    cad_err e = {0};
    int rc = cad_config_resolve(&cfg, argv[p.ind], n_sets, sets, &e);
    cad_budget b;
    if (!rc) rc = cad_budget_compute(&cfg, weights, &b, &e);
    cad_config_free(&cfg);
    if (rc) return rc == CAD_EUSAGE ? cli_usage_error("budget", "%s", e.msg) : cli_fail("budget", "%s", e.msg);
    if (json) print_json(&b);
    else print_table(&b, argv[p.ind], weights);
    int over = b.margin < 0;
    cad_budget_free(&b);
    return over ? BUDGET_OVER : 0;
}

const cli_command cmd_budget_def = {
    .name = "budget",
    .fn = cmd_budget,
    .summary = "artifact bytes of a config before training: per tensor, code, margin to 16,000,000",
    .synopsis = (const char *const[]){"CONFIG.yaml [--weights FILE] [--set KEY=VALUE]... [--json]", NULL},
    .description =
        "Plans the configured model (no data, no training) and prints each tensor's shape,\n"
        "parameters, artifact scheme and bits, its bytes in the artifact container and an estimate\n"
        "of its compressed bytes; then the model, the code bytes (code_files, packed with\n"
        "code_compress, as caddie train counts them) and the margin to the 16,000,000-byte cap.\n"
        "Without --weights the compressed sizes come from a measured ratio table; with trained\n"
        ".safetensors weights of the same model they are the real export's; with an artifact, its\n"
        "ratio. Exit status: 0 fits, 3 over the cap, 1 failure, 2 usage.\n",
    .opts = budget_opts,
};
