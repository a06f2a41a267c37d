/*
 * cmd_train.c — `caddie train` and `caddie eval`: parse the command line, resolve the run
 * config (YAML < environment < --set, validated before any work) and hand it to the engine;
 * their usage texts and option tables.
 * Not here: anything the engine does (engine/train.c).
 */
#include "cli/cli.h"
#include "engine/collective.h"
#include "engine/config.h"
#include "engine/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Collect --set values; argv strings outlive the call. */
typedef struct sets {
    char **v;
    int n;
} sets;

static int sets_add(sets *s, char *kv) {
    char **nv = realloc(s->v, (size_t)(s->n + 1) * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->v[s->n++] = kv;
    return 0;
}

static void print_keys(void) {
    printf("| key | type | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < cad_config_key_count(); i++) {
        const cad_config_key *k = cad_config_key_at(i);
        printf("| `%s` | %s | `%s` | %s |\n", k->name, cad_config_type_name(k->type), k->def[0] ? k->def : "\"\"",
               k->doc);
    }
}

enum train_opt { TRAIN_SET, TRAIN_PRINT_CONFIG, TRAIN_KEYS };
static const cli_opt train_opts[] = {
    {TRAIN_SET, "set", 's', "KEY=VALUE", "override a config key (repeatable; highest precedence)"},
    {TRAIN_PRINT_CONFIG, "print-config", 0, NULL, "print the resolved config as YAML and exit"},
    {TRAIN_KEYS, "keys", 0, NULL, "print the table of config keys (markdown) and exit"},
    CLI_OPT_END,
};

static int cmd_train(int argc, char **argv) {
    sets st = {0};
    int print_only = 0, id;
    cli_parser p;
    cli_parser_init(&p, &cmd_train_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum train_opt)id) {
        case TRAIN_SET: sets_add(&st, p.arg); break;
        case TRAIN_PRINT_CONFIG: print_only = 1; break;
        case TRAIN_KEYS: print_keys(); free(st.v); return 0;
        }
    }
    if (id == CLI_OPTS_BAD) {
        free(st.v);
        return 2;
    }
    if (p.ind != argc - 1) {
        free(st.v);
        return cli_usage_error("train", "expected exactly one CONFIG.yaml");
    }
    cad_config cfg;
    cad_err e = {0};
    int rc = cad_config_resolve(&cfg, argv[p.ind], st.n, st.v, &e);
    free(st.v);
    if (rc) {
        cad_config_free(&cfg);
        return rc == CAD_EUSAGE ? cli_usage_error("train", "%s", e.msg) : cli_fail("train", "%s", e.msg);
    }
    if (print_only) {
        cad_config_write_yaml(&cfg, stdout);
        cad_config_free(&cfg);
        return 0;
    }
    /* RANK / WORLD_SIZE from `caddie launch` (absent: one rank) */
    cad_coll *coll = NULL;
    rc = cad_coll_open_env(&coll, &e);
    if (rc) {
        cad_config_free(&cfg);
        return cli_fail("train", "%s", e.msg);
    }
    cad_train_sink sink = {stdout, stderr};
    rc = cad_train_run_dp(&cfg, &sink, coll, &e);
    int rank = cad_coll_rank(coll), world = cad_coll_world(coll);
    cad_coll_free(coll);
    cad_config_free(&cfg);
    if (rc && world > 1) return cli_fail("train", "rank %d: %s", rank, e.msg);
    if (rc) return cli_fail("train", "%s", e.msg);
    return 0;
}

const cli_command cmd_train_def = {
    .name = "train",
    .fn = cmd_train,
    .summary = "train a model as configured (train_gpt.py's loop), write the run dir",
    .synopsis = (const char *const[]){"CONFIG.yaml [--set KEY=VALUE]... [--print-config]", "--keys", NULL},
    .description =
        "Resolves the config (YAML file < upper-case environment variables < --set; unknown keys\n"
        "and invalid combinations are errors before any work), trains, validates, writes the\n"
        "int8+zlib artifact and scores its round trip. stdout has train_gpt.py's log lines (also\n"
        "RUN_DIR/log.txt); a progress line with tokens/s and ETA goes to stderr. Writes RUN_DIR\n"
        "(default runs/<run_id>): config.yaml log.txt metrics.jsonl code_files.txt\n"
        "final_model.int8.ptz [checkpoint.bin] and, only on success, result.json.\n"
        "Data parallel: run it through `caddie launch --nproc N train CONFIG.yaml`, which sets\n"
        "RANK/WORLD_SIZE/LOCAL_RANK for each rank; only rank 0 prints and writes RUN_DIR.\n",
    .opts = train_opts,
};

enum eval_opt { EVAL_WEIGHTS, EVAL_SET, EVAL_ROUNDTRIP };
static const cli_opt eval_opts[] = {
    {EVAL_WEIGHTS, "weights", 'w', "W", "the weights to evaluate (required)"},
    {EVAL_SET, "set", 's', "KEY=VALUE", "override a config key (repeatable)"},
    {EVAL_ROUNDTRIP, "roundtrip", 0, NULL, "also quantize to int8+zlib and print the round-trip score"},
    CLI_OPT_END,
};

static int cmd_eval(int argc, char **argv) {
    sets st = {0};
    const char *weights = NULL;
    int roundtrip = 0, id;
    cli_parser p;
    cli_parser_init(&p, &cmd_eval_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum eval_opt)id) {
        case EVAL_SET: sets_add(&st, p.arg); break;
        case EVAL_WEIGHTS: weights = p.arg; break;
        case EVAL_ROUNDTRIP: roundtrip = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) {
        free(st.v);
        return 2;
    }
    if (p.ind != argc - 1 || !weights) {
        free(st.v);
        return cli_usage_error("eval", "expected CONFIG.yaml and --weights W.safetensors");
    }
    cad_config cfg;
    cad_err e = {0};
    int rc = cad_config_resolve(&cfg, argv[p.ind], st.n, st.v, &e);
    free(st.v);
    if (!rc) rc = cad_eval_weights(&cfg, weights, roundtrip, stdout, &e);
    cad_config_free(&cfg);
    if (rc) return rc == CAD_EUSAGE ? cli_usage_error("eval", "%s", e.msg) : cli_fail("eval", "%s", e.msg);
    return 0;
}

const cli_command cmd_eval_def = {
    .name = "eval",
    .fn = cmd_eval,
    .summary = "evaluate .safetensors weights on the val split (val_loss, val_bpb)",
    .synopsis = (const char *const[]){"CONFIG.yaml --weights W.safetensors [--set KEY=VALUE]... [--roundtrip]", NULL},
    .description =
        "Builds the configured model, loads W (train_gpt.py tensor names; F32/F16/BF16) and prints\n"
        "\"eval val_loss:X val_bpb:Y tokens:N bytes:N partial:P eval_time:Tms\".\n",
    .opts = eval_opts,
};
