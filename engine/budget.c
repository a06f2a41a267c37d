/*
 * budget.c — the artifact budget of a config without training (see budget.h): the model plan's
 * tensors, the exporter's per-tensor container bytes, compressed sizes from the default ratio
 * table, from real weights or from an artifact's ratio, and the code bytes.
 * Not here: printing and exit codes (cli/cmd_budget.c).
 */
#include "engine/budget.h"

#include "engine/backend.h"
#include "engine/export.h"
#include "engine/model.h"
#include "engine/quant_ext.h"
#include "engine/safetensors.h"
#include "engine/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* compressed / raw container bytes of one tensor, by scheme and code bits, per compressor
 * (zlib, zstd, lzma, brotli). Measured with `caddie budget --weights W.safetensors --json` on a
 * trained sample model: experiments/configs/sample_cpu.yaml at num_layers 2, model_dim 192,
 * num_heads 2, num_kv_heads 1, train_batch_tokens 1024, 120 steps, seed 1337 (its per-row
 * tensors: tok_emb 1024x192, mlp fc 384x192 and proj 192x384), sum of est_bytes / raw_bytes
 * over the per-row tensors at quant_matrix_bits = quant_embed_bits = b, and over the fp16 /
 * fp32 tensors at b = 8. The low-bit ratios are small because such weights sit mostly under the
 * per-row step's floor 1/qmax (train_gpt.py's clamp), so most codes are 0; larger or longer
 * trained models use more levels. docs/engine.md#artifact-budget. */
static const double ratio_rows[9][4] = {
    {0, 0, 0, 0}, {0, 0, 0, 0},   /* b = 0, 1 unused (ternary is sized with b = 2) */
    {0.041, 0.036, 0.036, 0.035}, /* 2 */
    {0.137, 0.121, 0.125, 0.118}, /* 3 */
    {0.283, 0.251, 0.252, 0.244}, /* 4 */
    {0.418, 0.369, 0.377, 0.355}, /* 5 */
    {0.540, 0.502, 0.488, 0.478}, /* 6 */
    {0.662, 0.635, 0.610, 0.603}, /* 7 */
    {0.773, 0.759, 0.740, 0.734}, /* 8 */
};
static const double ratio_fp16[4] = {0.929, 0.934, 0.898, 0.880};
static const double ratio_fp32[4] = {0.953, 0.958, 0.976, 0.936};

double cad_budget_default_ratio(int scheme, int bits, int compressor) {
    int k = compressor >= 0 && compressor < 4 ? compressor : 0;
    if (scheme == CAD_Q_FP16) return ratio_fp16[k];
    if (scheme == CAD_Q_FP32) return ratio_fp32[k];
    if (bits < 2) bits = 2;
    if (bits > 8) bits = 8;
    return ratio_rows[bits][k];
}

void cad_budget_free(cad_budget *b) {
    for (int i = 0; b->t && i < b->n; i++) free(b->t[i].name);
    free(b->t);
    memset(b, 0, sizeof *b);
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* The model's tensors with their initial weights on the CPU: the plan train.c builds, with
 * the smallest activation arena (one sequence). */
static int plan_model(const cad_config *c, cad_model *m, cad_err *e) {
    cad_model_config mc = {
        .vocab_size = (int)c->vocab_size, .num_layers = (int)c->num_layers, .model_dim = (int)c->model_dim,
        .num_heads = (int)c->num_heads, .num_kv_heads = (int)c->num_kv_heads, .mlp_mult = (int)c->mlp_mult,
        .tie_embeddings = c->tie_embeddings, .rope_base = (float)c->rope_base,
        .logit_softcap = (float)c->logit_softcap, .qk_gain_init = (float)c->qk_gain_init,
        .tied_embed_init_std = (float)c->tied_embed_init_std, .max_batch_seqs = 1, .max_seq_len = (int)c->train_seq_len,
        .recur_loops = (int)c->recur_loops, .recur_loops_max = (int)c->eval_recur_loops,
        .mlp_leaky_slope = (float)c->mlp_leaky_slope,
        .xsa_last = (int)c->xsa_last_layers, .parallel_last = (int)c->parallel_residual_layers,
        .recur_loop_scales = c->recur_loop_scales, .embed_dim = (int)c->embed_dim, .ln_scale = c->ln_scale,
        .bigram_buckets = (int)c->bigram_buckets, .bigram_dim = (int)c->bigram_dim, .smear_gate = c->smear_gate, .attn_gate = cad_config_attn_gate(c),
        .rope_dims = (int)c->rope_dims};
    cad_config_recur_span(c, &mc.recur_first, &mc.recur_last);
    int rc = cad_model_config_check(&mc, e);
    if (!rc) rc = cad_model_init(m, &mc, cad_backend_cpu(), (uint64_t)c->seed, e);
    return rc;
}

/* Compressed size of n bytes alone. */
static int compressed_len(int comp, const void *p, size_t n, size_t *out, cad_err *e) {
    unsigned char *z;
    int rc = cad_compress_buf(comp, p, n, &z, out, "budget", e);
    if (!rc) free(z);
    return rc;
}

/* --weights W.safetensors: the real export of W at the config's bits into a scratch file; each
 * tensor's compressed share from its own container bytes compressed alone, scaled to the
 * file's size (the whole file compresses better than its parts: context across tensors). */
static int estimate_from_weights(cad_budget *b, const cad_named_tensor *ts, const cad_quant_opts *qo,
                                 const cad_quant_ext_opts *qx, const char *weights, cad_err *e) {
    char dir[] = "/tmp/caddie-budget-XXXXXX";
    if (!mkdtemp(dir)) return cad_fail(e, CAD_EIO, "budget: mkdtemp: %s", strerror(errno));
    char art[64];
    snprintf(art, sizeof art, "%s/model.ptz", dir);
    cad_int8_stats st;
    int rc = cad_int8_export_ext(art, ts, b->n, qo, qx, &st, e);
    unsigned char *raw = NULL, *file = NULL;
    size_t raw_len = 0, file_len = 0;
    if (!rc) {
        FILE *f = fopen(art, "rb");
        struct stat sb;
        if (!f || fstat(fileno(f), &sb)) rc = cad_fail(e, CAD_EIO, "budget: cannot read back %s", art);
        else {
            file_len = (size_t)sb.st_size;
            file = malloc(file_len ? file_len : 1);
            if (!file || fread(file, 1, file_len, f) != file_len) rc = cad_fail(e, CAD_EIO, "budget: cannot read back %s", art);
        }
        if (f) fclose(f);
    }
    unlink(art);
    rmdir(dir);
    if (!rc) rc = cad_decompress_buf(file, file_len, &raw, &raw_len, art, e);
    free(file);
    if (!rc && raw_len != b->raw_bytes)
        rc = cad_fail(e, CAD_ERR, "budget: the export of %s wrote %zu container bytes, the plan counts %zu", weights,
                      raw_len, b->raw_bytes);
    double sum = 0;
    size_t off = CAD_INT8_CONTAINER_OVERHEAD - 4, *alone = calloc((size_t)(b->n ? b->n : 1), sizeof *alone);
    if (!rc && !alone) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < b->n; i++) {
        rc = compressed_len(b->compressor, raw + off, b->t[i].raw_bytes, &alone[i], e);
        off += b->t[i].raw_bytes;
        sum += (double)alone[i];
    }
    if (!rc) {
        b->exact_model_bytes = (long)st.compressed_bytes;
        for (int i = 0; i < b->n; i++)
            b->t[i].est_bytes = sum > 0 ? (double)alone[i] * (double)st.compressed_bytes / sum : 0;
        b->est_model_bytes = (double)st.compressed_bytes;
    }
    free(alone);
    free(raw);
    return rc;
}

/* --weights ARTIFACT: its whole-file ratio for every tensor. */
static int estimate_from_artifact(cad_budget *b, const char *path, cad_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    unsigned char *file = NULL, *raw = NULL;
    size_t raw_len = 0, len = 0;
    int rc = fstat(fileno(f), &sb) ? cad_fail(e, CAD_EIO, "%s: cannot stat", path) : CAD_OK;
    if (!rc) {
        len = (size_t)sb.st_size;
        file = malloc(len ? len : 1);
        if (!file || fread(file, 1, len, f) != len) rc = cad_fail(e, CAD_EIO, "%s: read failed", path);
    }
    fclose(f);
    if (!rc) rc = cad_decompress_buf(file, len, &raw, &raw_len, path, e);
    free(file), free(raw);
    if (!rc && (raw_len < 8 || len == 0)) rc = cad_fail(e, CAD_EFORMAT, "%s: not an artifact (empty)", path);
    if (rc) return rc;
    b->artifact_ratio = (double)len / (double)raw_len;
    b->est_model_bytes = 0;
    for (int i = 0; i < b->n; i++) {
        b->t[i].est_bytes = (double)b->t[i].raw_bytes * b->artifact_ratio;
        b->est_model_bytes += b->t[i].est_bytes;
    }
    b->est_model_bytes += CAD_INT8_CONTAINER_OVERHEAD * b->artifact_ratio;
    return CAD_OK;
}

/* Stand-in AWQ-lite calibration for --weights (no activations here): diag = the weights' column
 * energy, which picks the columns a trained layer's large inputs usually load. */
static float *standin_calib(const cad_named_tensor *t) {
    size_t cols = (size_t)t->shape[1];
    float *h = calloc(cols * cols, sizeof *h);
    if (!h) return NULL;
    for (size_t r = 0; r < (size_t)t->shape[0]; r++)
        for (size_t c = 0; c < cols; c++) h[c * cols + c] += t->data[r * cols + c] * t->data[r * cols + c];
    return h;
}

static int count_code(const cad_config *c, cad_budget *b, cad_err *e) {
    int rc = cad_code_bytes(c->code_files, &b->code_bytes, &b->n_code_files, NULL, e);
    b->raw_code_bytes = b->code_bytes;
    if (!rc && strcmp(c->code_compress, "none")) {
        char *packed;
        size_t len;
        rc = cad_code_pack(c->code_files, c->code_compress, &packed, &len, e);
        if (!rc) free(packed), b->code_bytes = (long)len;
    }
    return rc;
}

int cad_budget_compute(const cad_config *c, const char *weights, cad_budget *b, cad_err *e) {
    memset(b, 0, sizeof *b);
    b->exact_model_bytes = -1;
    b->compressor = cad_compressor_parse(c->artifact_compressor);
    b->source = !weights ? CAD_BUDGET_DEFAULT : has_suffix(weights, ".safetensors") ? CAD_BUDGET_WEIGHTS : CAD_BUDGET_ARTIFACT;
    cad_model m;
    memset(&m, 0, sizeof m);
    int rc = plan_model(c, &m, e);
    if (rc) return rc;
    int n = m.n_params;
    cad_named_tensor *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    float *host = malloc((m.n_param_floats ? m.n_param_floats : 1) * sizeof *host);
    const float **calib = calloc((size_t)(n ? n : 1), sizeof *calib);
    b->t = calloc((size_t)(n ? n : 1), sizeof *b->t);
    if (!ts || !host || !calib || !b->t) { rc = cad_fail(e, CAD_ENOMEM, "budget: out of memory"); goto out; }
    b->n = n;
    m.be->copy_to_host(m.be, host, m.param_mem, m.n_param_floats * sizeof *host);
    for (int i = 0; i < n; i++) {
        const cad_param *p = &m.params[i];
        ts[i].name = p->name;
        ts[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim && d < CAD_TENSOR_MAX_DIMS; d++) ts[i].shape[d] = p->shape[d];
        ts[i].numel = (size_t)p->numel;
        ts[i].data = host + (p->data - m.param_mem);
    }
    if (b->source == CAD_BUDGET_WEIGHTS && (rc = cad_safetensors_read_into(weights, ts, n, 1, e))) goto out;
    /* the names the overrides give must be this model's (as caddie train checks) */
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) { rc = cad_fail(e, CAD_ENOMEM, "budget: out of memory"); goto out; }
    for (int i = 0; i < n; i++) names[i] = ts[i].name;
    rc = cad_quant_names_check("quant_bits_overrides", c->quant_bits_overrides, names, n, e);
    if (!rc) rc = cad_quant_names_check("lqer_tensors", c->lqer_tensors, names, n, e);
    free(names);
    if (rc) goto out;
    cad_quant_opts qo = {b->compressor, (int)c->quant_matrix_bits, (int)c->quant_embed_bits, c->quant_clip_search,
                         c->quant_sdclip_k, c->quant_sdclip_embed_k, NULL, {0, 0, 0}};
    if (cad_config_qat_bits(c) > 0) qo.matrix_bits = cad_config_qat_bits(c);
    cad_quant_ext_opts qx = {c->quant_bits_overrides, c->awq_salient_frac, NULL, (int)c->lqer_rank, c->lqer_tensors};
    /* AWQ-lite applies where training's calibration has a Hessian: the quantised block matrices */
    if (c->awq_salient_frac > 0) {
        for (int i = 0; i < n; i++) {
            if (!cad_model_qat_quantised(&m, i)) continue;
            calib[i] = standin_calib(&ts[i]);
            if (!calib[i]) { rc = cad_fail(e, CAD_ENOMEM, "budget: out of memory"); goto out; }
        }
        qx.calib = calib;
    }
    b->raw_bytes = CAD_INT8_CONTAINER_OVERHEAD;
    for (int i = 0; i < n; i++) {
        cad_budget_tensor *bt = &b->t[i];
        bt->name = strdup(ts[i].name);
        if (!bt->name) { rc = cad_fail(e, CAD_ENOMEM, "budget: out of memory"); goto out; }
        bt->ndim = ts[i].ndim;
        for (int d = 0; d < ts[i].ndim && d < 4; d++) bt->shape[d] = (long)ts[i].shape[d];
        bt->params = (long)ts[i].numel;
        bt->raw_bytes = cad_int8_tensor_plan(&ts[i], i, &qo, &qx, &bt->scheme, &bt->bits);
        bt->est_bytes = (double)bt->raw_bytes * cad_budget_default_ratio(bt->scheme, bt->bits, b->compressor);
        b->params += bt->params;
        b->raw_bytes += bt->raw_bytes;
        b->est_model_bytes += bt->est_bytes;
    }
    b->est_model_bytes += CAD_INT8_CONTAINER_OVERHEAD;
    if (b->source == CAD_BUDGET_WEIGHTS) rc = estimate_from_weights(b, ts, &qo, &qx, weights, e);
    else if (b->source == CAD_BUDGET_ARTIFACT) rc = estimate_from_artifact(b, weights, e);
    if (!rc) rc = count_code(c, b, e);
    if (!rc) {
        b->total_bytes = ceil(b->est_model_bytes) + (double)b->code_bytes;
        b->margin = (double)CAD_ARTIFACT_LIMIT - b->total_bytes;
    }
out:
    for (int i = 0; calib && i < n; i++) free((void *)calib[i]);
    free(calib), free(ts), free(host);
    cad_model_free(&m);
    if (rc) cad_budget_free(b);
    return rc;
}
