/*
 * parity_fixture.h — reader for the PyTorch parity fixtures written by
 * tests/scripts/gen_model_fixture.py's write_fixture (format documented there: "CADP" magic,
 * version 1, named float32/int32 records), shared by the engine tests that use them.
 * Header-only like check.h: each test is its own executable. Included after model.h it also
 * gives the model config of a fixture (pf_model_config).
 */
#ifndef CADDIE_TEST_PARITY_FIXTURE_H
#define CADDIE_TEST_PARITY_FIXTURE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pf_record {
    char name[128];
    int is_int, ndim;
    int shape[4];
    long numel;
    void *data; /* float* or int32_t* */
} pf_record;

typedef struct pf_file {
    int n;
    pf_record *r;
} pf_file;

/* 0 on success; prints the reason and returns -1 otherwise. */
static inline int pf_load(const char *path, pf_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) { printf("cannot open fixture %s\n", path); return -1; }
    int32_t hdr[3];
    if (fread(hdr, 4, 3, fp) != 3 || hdr[0] != 0x43414450 || hdr[1] != 1 || hdr[2] <= 0 ||
        hdr[2] > 100000) {
        printf("%s: bad header: magic/version/record count (regenerate with tests/scripts/gen_*_fixture.py)\n", path);
        fclose(fp);
        return -1;
    }
    f->r = calloc((size_t)hdr[2], sizeof *f->r);
    for (int i = 0; i < hdr[2]; i++) {
        pf_record *r = &f->r[i];
        int32_t nl, dt, nd;
        if (fread(&nl, 4, 1, fp) != 1 || nl <= 0 || nl >= (int)sizeof r->name) goto bad;
        if (fread(r->name, 1, (size_t)nl, fp) != (size_t)nl) goto bad;
        if (fread(&dt, 4, 1, fp) != 1 || fread(&nd, 4, 1, fp) != 1 || nd < 0 || nd > 4) goto bad;
        r->is_int = dt == 1;
        r->ndim = nd;
        r->numel = 1;
        for (int d = 0; d < nd; d++) {
            if (fread(&r->shape[d], 4, 1, fp) != 1) goto bad;
            r->numel *= r->shape[d];
        }
        r->data = malloc((size_t)(r->numel ? r->numel : 1) * 4);
        if (fread(r->data, 4, (size_t)r->numel, fp) != (size_t)r->numel) goto bad;
        f->n = i + 1;
    }
    fclose(fp);
    return 0;
bad:
    printf("%s: truncated record\n", path);
    fclose(fp);
    return -1;
}

static inline const pf_record *pf_get(const pf_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->r[i].name, name) == 0) return &f->r[i];
    printf("fixture record '%s' missing\n", name);
    return NULL;
}

static inline double pf_scalar(const pf_file *f, const char *name) {
    const pf_record *r = pf_get(f, name);
    return r ? (r->is_int ? (double)((int32_t *)r->data)[0] : (double)((float *)r->data)[0]) : NAN;
}

static inline void pf_free(pf_file *f) {
    for (int i = 0; i < f->n; i++) free(f->r[i].data);
    free(f->r);
    memset(f, 0, sizeof *f);
}

#ifdef CADDIE_MODEL_H
/* The model of a fixture's config.* records (the generator's GPT settings), planned for
 * batches of up to max_batch_seqs sequences of config.T tokens. */
static inline cad_model_config pf_model_config(const pf_file *f, int max_batch_seqs) {
    cad_model_config c = {
        .vocab_size = (int)pf_scalar(f, "config.vocab_size"),
        .num_layers = (int)pf_scalar(f, "config.num_layers"),
        .model_dim = (int)pf_scalar(f, "config.model_dim"),
        .num_heads = (int)pf_scalar(f, "config.num_heads"),
        .num_kv_heads = (int)pf_scalar(f, "config.num_kv_heads"),
        .mlp_mult = (int)pf_scalar(f, "config.mlp_mult"),
        .tie_embeddings = (int)pf_scalar(f, "config.tie_embeddings"),
        .rope_base = (float)pf_scalar(f, "config.rope_base"),
        .logit_softcap = (float)pf_scalar(f, "config.logit_softcap"),
        .qk_gain_init = (float)pf_scalar(f, "config.qk_gain_init"),
        .tied_embed_init_std = (float)pf_scalar(f, "config.tied_embed_init_std"),
        .max_batch_seqs = max_batch_seqs,
        .max_seq_len = (int)pf_scalar(f, "config.T")};
    for (int i = 0; i < f->n; i++) { /* technique keys: only in fixtures that use them */
        if (strcmp(f->r[i].name, "config.recur_loops") == 0) {
            c.recur_first = (int)pf_scalar(f, "config.recur_first");
            c.recur_last = (int)pf_scalar(f, "config.recur_last");
            c.recur_loops = (int)pf_scalar(f, "config.recur_loops");
        }
        if (strcmp(f->r[i].name, "config.mlp_leaky_slope") == 0)
            c.mlp_leaky_slope = (float)pf_scalar(f, "config.mlp_leaky_slope");
        if (strcmp(f->r[i].name, "config.xsa_last") == 0) c.xsa_last = (int)pf_scalar(f, "config.xsa_last");
        if (strcmp(f->r[i].name, "config.recur_loop_scales") == 0)
            c.recur_loop_scales = (int)pf_scalar(f, "config.recur_loop_scales");
        if (strcmp(f->r[i].name, "config.parallel_last") == 0)
            c.parallel_last = (int)pf_scalar(f, "config.parallel_last");
        static const struct { const char *rec; size_t off; } ints[] = {
            {"config.embed_dim", offsetof(cad_model_config, embed_dim)},
            {"config.ln_scale", offsetof(cad_model_config, ln_scale)},
            {"config.bigram_buckets", offsetof(cad_model_config, bigram_buckets)},
            {"config.bigram_dim", offsetof(cad_model_config, bigram_dim)},
            {"config.smear_gate", offsetof(cad_model_config, smear_gate)},
            {"config.rope_dims", offsetof(cad_model_config, rope_dims)},
            {"config.attn_gate", offsetof(cad_model_config, attn_gate)}};
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
            if (strcmp(f->r[i].name, ints[k].rec) == 0) *(int *)((char *)&c + ints[k].off) = (int)pf_scalar(f, ints[k].rec);
        /* micro-MoE and early exit (tests/scripts/gen_moe_fixture.py) */
        if (strcmp(f->r[i].name, "config.mlp_experts") == 0) {
            c.mlp_experts = (int)pf_scalar(f, "config.mlp_experts");
            c.mlp_top_k = (int)pf_scalar(f, "config.mlp_top_k");
            c.moe_aux_weight = (float)pf_scalar(f, "config.moe_aux_weight");
        }
        if (strcmp(f->r[i].name, "config.n_exits") == 0) {
            c.n_exits = (int)pf_scalar(f, "config.n_exits");
            c.early_exit_weight = (float)pf_scalar(f, "config.early_exit_weight");
            for (int k = 0; k < c.n_exits && k < CAD_MAX_EARLY_EXITS; k++) {
                char nm[32];
                snprintf(nm, sizeof nm, "config.exit_depth%d", k);
                c.exit_depths[k] = (int)pf_scalar(f, nm);
            }
        }
    }
    return c;
}
#endif

#endif
