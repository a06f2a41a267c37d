/*
 * cmd_train.c — `caddie train` and `caddie eval`: parse the command line, resolve the run
 * config (YAML < environment < --set, validated before any work) and hand it to the engine.
 * Not here: anything the engine does (engine/train.c).
 */
#include "cli/cli.h"
#include "engine/config.h"
#include "engine/train.h"

#include <getopt.h>
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

int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {{"set", required_argument, 0, 's'},
                                         {"print-config", no_argument, 0, 'p'},
                                         {"keys", no_argument, 0, 'k'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    sets st = {0};
    int print_only = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': sets_add(&st, optarg); break;
        case 'p': print_only = 1; break;
        case 'k': print_keys(); free(st.v); return 0;
        case 'h': cli_print_usage(cli_find("train")); free(st.v); return 0;
        default: free(st.v); return cli_usage_error("train", "unknown option");
        }
    }
    if (optind != argc - 1) {
        free(st.v);
        return cli_usage_error("train", "expected exactly one CONFIG.yaml");
    }
    cad_config cfg;
    cad_err e = {0};
    int rc = cad_config_resolve(&cfg, argv[optind], st.n, st.v, &e);
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
    cad_train_sink sink = {stdout, stderr};
    rc = cad_train_run(&cfg, &sink, &e);
    cad_config_free(&cfg);
    if (rc) return cli_fail("train", "%s", e.msg);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {{"set", required_argument, 0, 's'},
                                         {"weights", required_argument, 0, 'w'},
                                         {"roundtrip", no_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    sets st = {0};
    const char *weights = NULL;
    int roundtrip = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': sets_add(&st, optarg); break;
        case 'w': weights = optarg; break;
        case 'r': roundtrip = 1; break;
        case 'h': cli_print_usage(cli_find("eval")); free(st.v); return 0;
        default: free(st.v); return cli_usage_error("eval", "unknown option");
        }
    }
    if (optind != argc - 1 || !weights) {
        free(st.v);
        return cli_usage_error("eval", "expected CONFIG.yaml and --weights W.safetensors");
    }
    cad_config cfg;
    cad_err e = {0};
    int rc = cad_config_resolve(&cfg, argv[optind], st.n, st.v, &e);
    free(st.v);
    if (!rc) rc = cad_eval_weights(&cfg, weights, roundtrip, stdout, &e);
    cad_config_free(&cfg);
    if (rc) return rc == CAD_EUSAGE ? cli_usage_error("eval", "%s", e.msg) : cli_fail("eval", "%s", e.msg);
    return 0;
}
