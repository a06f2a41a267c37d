/*
 * train.c — the training driver behind `caddie train` / `caddie eval` (see train.h): the order
 * of operations, log lines and timing rules are train_gpt.py's main(), line by line where it
 * matters (warmup priming + restore, validation cadence, train_time excluding validation,
 * wallclock cap, serialization + round-trip scoring).
 * Not here: numerics (model.c, optim.c, eval.c), file formats (export.c, safetensors.c,
 * checkpoint.c), argument parsing (cli/cmd_train.c).
 */
#include "engine/fsutil.h"
#include "engine/train.h"

#include "engine/bpb_luts.h"
#include "engine/buildinfo.h"
#include "engine/checkpoint.h"
#include "engine/eval.h"
#include "engine/ttt.h"
#include "engine/export.h"
#include "engine/jsonw.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "engine/stream.h"
#include "engine/tokenizer.h"

#ifdef CADDIE_CUDA
#endif

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- code bytes ------------------------------------------------------------------------ */

static int globs_match_in(const char *root, const char *globs, long *bytes, int *n_files, FILE *listing,
                          const char **unmatched) {
    char *list = strdup(globs);
    if (!list) return -1;
    long total = 0;
    int n = 0, ok = 1;
    for (char *save = NULL, *pat = strtok_r(list, ",", &save); pat; pat = strtok_r(NULL, ",", &save)) {
        while (*pat == ' ') pat++;
        if (!*pat) continue;
        char full[PATH_MAX];
        if (pat[0] == '/' || !root) snprintf(full, sizeof full, "%s", pat);
        else snprintf(full, sizeof full, "%s/%s", root, pat);
        glob_t g;
        memset(&g, 0, sizeof g);
        int grc = glob(full, 0, NULL, &g);
        if (grc != 0 || g.gl_pathc == 0) {
            globfree(&g);
            static char miss[PATH_MAX];
            snprintf(miss, sizeof miss, "%s", pat);
            *unmatched = miss;
            ok = 0;
            break;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            struct stat st;
            if (stat(g.gl_pathv[i], &st) || !S_ISREG(st.st_mode)) continue;
            total += (long)st.st_size;
            n++;
            if (listing) fprintf(listing, "%ld %s\n", (long)st.st_size, g.gl_pathv[i]);
        }
        globfree(&g);
    }
    free(list);
    if (!ok) return 0;
    *bytes = total;
    *n_files = n;
    return 1;
}

int cad_code_bytes(const char *globs, long *bytes, int *n_files, FILE *listing, cad_err *e) {
    const char *unmatched = NULL;
    *bytes = 0;
    *n_files = 0;
    if (!globs || !*globs) return CAD_OK;
    /* candidates: the current directory, then the ancestors of the binary's directory */
    char roots[5][PATH_MAX];
    int nr = 0;
    snprintf(roots[nr++], PATH_MAX, ".");
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *d = dirname(exe);
        for (int up = 0; up < 4 && nr < 5; up++) {
            snprintf(roots[nr++], PATH_MAX, "%s", d);
            d = dirname(d);
        }
    }
    for (int i = 0; i < nr; i++) {
        const char *miss = NULL;
        /* probe without listing first, so a partial match in a wrong root writes nothing */
        long b;
        int n;
        int r = globs_match_in(roots[i], globs, &b, &n, NULL, &miss);
        if (r < 0) return cad_fail(e, CAD_ENOMEM, "out of memory");
        if (r == 1) {
            globs_match_in(roots[i], globs, bytes, n_files, listing, &miss);
            return CAD_OK;
        }
        if (i == 0) unmatched = miss;
    }
    return cad_fail(e, CAD_ECONFIG,
                    "code_files: pattern '%s' matches no file (relative to the current directory or "
                    "the caddie source tree)", unmatched ? unmatched : globs);
}

/* ---- the session ----------------------------------------------------------------------- */

typedef struct session {
    cad_config *c;
    const cad_backend *be;
    cad_tokenizer *tok;
    cad_bpb_luts luts;
    int have_luts;
    uint16_t *val;
    long n_val;
    cad_model m;
    int have_model;
    cad_optim o;
    int have_optim;
    cad_train_loader L;
    int have_loader;
    int32_t *x, *y;
    float *host_params; /* n_param_floats: warmup restore and exports */
    cad_named_tensor *named;
    int n_named;
    FILE *log, *metrics;
    double t_wall0;
    char run_dir[1024];
    char train_pattern[PATH_MAX], val_pattern[PATH_MAX];
    int accum;
    long local_tokens;
} session;

static void log0(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log0(session *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (s->log) {
        va_start(ap, fmt);
        vfprintf(s->log, fmt, ap);
        va_end(ap);
        fputc('\n', s->log);
        fflush(s->log);
    }
}

static void journal(session *s, long step, const char *name, double value) {
    if (!s->metrics) return;
    fprintf(s->metrics, "{\"step\":%ld,\"name\":", step);
    cad_json_write_string(s->metrics, name);
    fputs(",\"value\":", s->metrics);
    cad_json_write_number(s->metrics, value);
    fputs(",\"wall_ms\":", s->metrics);
    cad_json_write_number(s->metrics, round(now_ms() - s->t_wall0));
    fputs("}\n", s->metrics);
    fflush(s->metrics);
}

/* Python's str(float): shortest round-trip digits, always with a '.' or an exponent. */
static void py_float(char *buf, size_t cap, double v) {
    int p = 1;
    for (; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    double a = fabs(v);
    if (strchr(buf, 'e') && a >= 1e-4 && a < 1e16) {
        int ex = (int)floor(log10(a));
        int dec = p - 1 - ex;
        snprintf(buf, cap, "%.*f", dec > 0 ? dec : 0, v);
    }
    if (strchr(buf, 'e')) {
        /* Python writes at least two exponent digits: 1e-05 (C does too) */
        return;
    }
    if (!strchr(buf, '.') && !strchr(buf, 'n') && !strchr(buf, 'i')) strncat(buf, ".0", cap - strlen(buf) - 1);
}

/* out = dir + "/" + name (truncated to cap; run_dir length is checked up front). Built with
 * memcpy because gcc's format-truncation analysis cannot bound the session's run_dir. */
static void path_join(char *out, size_t cap, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    if (a > cap - 2) a = cap - 2;
    memcpy(out, dir, a);
    out[a] = '/';
    if (b > cap - a - 2) b = cap - a - 2;
    memcpy(out + a + 1, name, b);
    out[a + 1 + b] = 0;
}

static int make_uuid4(char *out, size_t cap) {
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, b, 16) != 16) {
        if (fd >= 0) close(fd);
        /* fall back to time and pid: still unique enough for a run name */
        unsigned long long t = (unsigned long long)(now_ms() * 1000) ^ ((unsigned long long)getpid() << 40);
        for (int i = 0; i < 16; i++) b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)(i * 37);
    } else {
        close(fd);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, cap, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

static void session_free(session *s) {
    if (s->have_loader) cad_train_loader_close(&s->L);
    if (s->have_optim) cad_optim_free(&s->o);
    if (s->have_model) cad_model_free(&s->m);
    if (s->have_luts) cad_bpb_luts_free(&s->luts);
    if (s->tok) cad_tokenizer_free(s->tok);
    free(s->val);
    free(s->x);
    free(s->y);
    free(s->host_params);
    free(s->named);
    if (s->log) fclose(s->log);
    if (s->metrics) fclose(s->metrics);
}

/* Tokenizer, LUTs, val split, model, host buffers: everything eval and train share. */
static int session_setup(session *s, cad_config *c, cad_err *e) {
    s->c = c;
    if (strcmp(c->backend, "cuda") == 0) {
#ifdef CADDIE_CUDA
        s->be = cad_backend_cuda(e);
        if (!s->be) return cad_wrap(e, "backend=cuda");
#else
        return cad_fail(e, CAD_ECONFIG, "backend=cuda: this caddie was built without CUDA (no nvcc at build time)");
#endif
    } else {
        s->be = cad_backend_cpu();
    }
    s->accum = cad_config_grad_accum(c);
    s->local_tokens = cad_config_local_tokens(c);
    if (c->threads > 0) omp_set_num_threads((int)c->threads);
    s->be->set_threads(s->be, (int)c->threads);
    if (s->be->set_matmul_precision(s->be, strcmp(c->matmul_precision, "bf16") == 0 ? CAD_PREC_BF16 : CAD_PREC_FP32))
        return cad_fail(e, CAD_ECONFIG, "matmul_precision=%s: not supported by backend %s", c->matmul_precision,
                        s->be->name);
    snprintf(s->train_pattern, sizeof s->train_pattern, "%s/fineweb_train_*.bin", c->data_path);
    snprintf(s->val_pattern, sizeof s->val_pattern, "%s/fineweb_val_*.bin", c->data_path);

    int rc = cad_tokenizer_load(c->tokenizer_path, &s->tok, e);
    if (rc) return rc;
    int sp_vocab = cad_tokenizer_vocab_size(s->tok);
    if (sp_vocab != c->vocab_size)
        return cad_fail(e, CAD_ECONFIG, "VOCAB_SIZE=%ld does not match tokenizer vocab_size=%d (%s)",
                        c->vocab_size, sp_vocab, c->tokenizer_path);
    rc = cad_bpb_luts_build(s->tok, (int)c->vocab_size, &s->luts, e);
    if (rc) return rc;
    s->have_luts = 1;
    rc = cad_val_tokens_load(s->val_pattern, (int)c->train_seq_len, (int)c->vocab_size, &s->val, &s->n_val, e);
    if (rc) return rc;

    cad_model_config mc = {
        .vocab_size = (int)c->vocab_size, .num_layers = (int)c->num_layers, .model_dim = (int)c->model_dim,
        .num_heads = (int)c->num_heads, .num_kv_heads = (int)c->num_kv_heads, .mlp_mult = (int)c->mlp_mult,
        .tie_embeddings = c->tie_embeddings, .rope_base = (float)c->rope_base,
        .logit_softcap = (float)c->logit_softcap, .qk_gain_init = (float)c->qk_gain_init,
        .tied_embed_init_std = (float)c->tied_embed_init_std,
        .max_batch_seqs = (int)(s->local_tokens / c->train_seq_len), .max_seq_len = (int)c->train_seq_len,
        .recur_loops = (int)c->recur_loops, .mlp_leaky_slope = (float)c->mlp_leaky_slope,
        .xsa_last = (int)c->xsa_last_layers, .parallel_last = (int)c->parallel_residual_layers};
    cad_config_recur_span(c, &mc.recur_first, &mc.recur_last); /* validated with the config */
    rc = cad_model_config_check(&mc, e);
    if (rc) return rc;
    rc = cad_model_init(&s->m, &mc, s->be, (uint64_t)c->seed, e);
    if (rc) return rc;
    s->have_model = 1;
    size_t ntok = (size_t)mc.max_batch_seqs * (size_t)mc.max_seq_len;
    s->x = malloc(ntok * sizeof(int32_t));
    s->y = malloc(ntok * sizeof(int32_t));
    s->host_params = malloc((s->m.n_param_floats ? s->m.n_param_floats : 1) * sizeof(float));
    s->named = calloc((size_t)s->m.n_params, sizeof *s->named);
    if (!s->x || !s->y || !s->host_params || !s->named) return cad_fail(e, CAD_ENOMEM, "out of memory for host buffers");
    for (int i = 0; i < s->m.n_params; i++) {
        const cad_param *p = &s->m.params[i];
        cad_named_tensor *t = &s->named[s->n_named];
        t->name = p->name;
        t->ndim = p->ndim;
        for (int d = 0; d < p->ndim && d < CAD_TENSOR_MAX_DIMS; d++) t->shape[d] = p->shape[d];
        t->numel = (size_t)p->numel;
        t->data = s->host_params + (p->data - s->m.param_mem);
        s->n_named++;
    }
    return CAD_OK;
}

/* host_params <-> model parameters (backend memory) */
static void params_to_host(session *s) {
    s->be->copy_to_host(s->be, s->host_params, s->m.param_mem, s->m.n_param_floats * sizeof(float));
}
static void params_from_host(session *s) {
    s->be->copy_to_device(s->be, s->m.param_mem, s->host_params, s->m.n_param_floats * sizeof(float));
}

static int load_weights(session *s, const char *path, cad_err *e) {
    params_to_host(s);
    int rc = cad_safetensors_read_into(path, s->named, s->n_named, 1, e);
    if (rc) return rc;
    params_from_host(s);
    return CAD_OK;
}

static int optim_setup(session *s, cad_err *e) {
    int rc = cad_optim_init_model(&s->o, &s->m, s->c, e);
    if (rc) return rc;
    s->have_optim = 1;
    return CAD_OK;
}

static cad_quant_opts quant_opts(const cad_config *c) {
    cad_quant_opts q = {cad_compressor_parse(c->artifact_compressor), (int)c->quant_matrix_bits, (int)c->quant_embed_bits,
                        c->quant_clip_search, c->quant_sdclip_k, c->quant_sdclip_embed_k};
    return q;
}

static cad_ttt_spec ttt_spec(const cad_config *c) {
    cad_ttt_spec t = {c->eval_stride > 0 ? (int)c->eval_stride : (int)c->train_seq_len, c->ttt_chunk_tokens, c->ttt_lr,
                      c->ttt_momentum, (int)c->ttt_epochs, (int)c->ttt_batch_seqs, c->ttt_grad_clip};
    return t;
}

/* one line per 10 chunks and the last: the running score (the records' ttt_chunk lines) */
static void ttt_progress(void *ud, long chunk, long n_chunks, const double sums[3], double elapsed_ms) {
    session *s = ud;
    if (chunk % 10 != 0 && chunk != n_chunks - 1) return;
    double bpb = sums[2] > 0 ? sums[0] / sums[1] / log(2.0) * (sums[1] / sums[2]) : 0.0;
    log0(s, "ttt_chunk:%ld/%ld bpb:%.6f time:%.1fs", chunk + 1, n_chunks, bpb, elapsed_ms / 1000.0);
}

static cad_eval_spec eval_spec(const session *s) {
    cad_eval_spec sp = {(int)s->c->train_seq_len, s->c->val_batch_size, s->accum, s->c->val_max_tokens};
    return sp;
}

/* One optimizer step's gradients: accum micro-batches, grads scaled like (loss*grad_scale).backward(). */
static int train_micro_steps(session *s, float *train_loss, cad_err *e) {
    cad_config *c = s->c;
    int T = (int)c->train_seq_len, B = (int)(s->local_tokens / T);
    float acc = 0.0f;
    cad_model_zero_grad(&s->m);
    for (int micro = 0; micro < s->accum; micro++) {
        int rc = cad_train_loader_next(&s->L, c->train_batch_tokens, T, s->accum, s->x, s->y, e);
        if (rc) return rc;
        float loss = 0;
        rc = cad_model_forward(&s->m, s->x, s->y, B, T, &loss, e);
        if (rc) return rc;
        acc += loss;
        rc = cad_model_backward(&s->m, e);
        if (rc) return rc;
    }
    /* backward accumulates gradients of each micro-batch's mean loss; grad_scale = 1/accum */
    if (s->accum > 1) s->be->scale(s->be, s->m.n_param_floats, 1.0f / (float)s->accum, s->m.grad_mem);
    *train_loss = acc / (float)s->accum;
    return CAD_OK;
}

static void fmt_mib(char *b, size_t cap, double bytes) { snprintf(b, cap, "%.1fMiB", bytes / 1048576.0); }

static int write_result(session *s, const char *fields_json, cad_err *e) {
    char path[1100], tmp[1200];
    path_join(path, sizeof path, s->run_dir, "result.json");
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    fputs(fields_json, f);
    int bad = ferror(f);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) || bad) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: write failed", tmp); }
    if (rename(tmp, path)) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno)); }
    return CAD_OK;
}

static void ckpt_meta_fill(session *s, cad_checkpoint_meta *m) {
    memset(m, 0, sizeof *m);
    const cad_config *c = s->c;
    m->n_param_floats = (int64_t)s->m.n_param_floats;
    m->n_state_floats = (int64_t)s->o.state_floats;
    m->vocab_size = (int32_t)c->vocab_size;
    m->num_layers = (int32_t)c->num_layers;
    m->model_dim = (int32_t)c->model_dim;
    m->num_heads = (int32_t)c->num_heads;
    m->num_kv_heads = (int32_t)c->num_kv_heads;
    m->mlp_mult = (int32_t)c->mlp_mult;
    m->tie_embeddings = c->tie_embeddings;
    m->stop_after_step = -1;
    m->prequant_val_loss = NAN;
    m->prequant_val_bpb = NAN;
}

int cad_train_run(cad_config *c, cad_err *e) {
    session S;
    memset(&S, 0, sizeof S);
    session *s = &S;
    s->t_wall0 = now_ms();
    int rc = CAD_OK;
    char buf[1100], ckpt_path[1100];

    /* ---- run dir, code accounting (checked before any work) ---- */
    if (!c->run_id[0]) {
        char id[40];
        make_uuid4(id, sizeof id);
        free(c->run_id);
        c->run_id = strdup(id);
    }
    if (strlen(c->run_dir) >= sizeof s->run_dir - 1 || strlen(c->run_id) > 512)
        return cad_fail(e, CAD_ECONFIG, "run_dir / run_id too long (limit 1000 / 512 characters)");
    if (c->run_dir[0]) memcpy(s->run_dir, c->run_dir, strlen(c->run_dir) + 1);
    else path_join(s->run_dir, sizeof s->run_dir, "runs", c->run_id);
    long code_bytes = 0;
    int n_code_files = 0;
    if ((rc = cad_code_bytes(c->code_files, &code_bytes, &n_code_files, NULL, e))) return rc;
    if (c->init_from[0] && access(c->init_from, R_OK))
        return cad_fail(e, CAD_EIO, "init_from '%s': %s", c->init_from, strerror(errno));
    if ((rc = cad_mkdir_p(s->run_dir, e))) return rc;
    path_join(ckpt_path, sizeof ckpt_path, s->run_dir, "checkpoint.bin");
    int resuming = c->resume && access(ckpt_path, R_OK) == 0;

    path_join(buf, sizeof buf, s->run_dir, "config.yaml");
    FILE *cf = fopen(buf, "w");
    if (!cf) return cad_fail(e, CAD_EIO, "%s: cannot create: %s", buf, strerror(errno));
    cad_config_write_yaml(c, cf);
    fclose(cf);
    path_join(buf, sizeof buf, s->run_dir, "code_files.txt");
    FILE *lf = fopen(buf, "w");
    if (lf) {
        cad_code_bytes(c->code_files, &code_bytes, &n_code_files, lf, e);
        fclose(lf);
    }
    path_join(buf, sizeof buf, s->run_dir, "log.txt");
    s->log = fopen(buf, resuming ? "a" : "w");
    path_join(buf, sizeof buf, s->run_dir, "metrics.jsonl");
    s->metrics = fopen(buf, resuming ? "a" : "w");
    if (!s->log || !s->metrics) { rc = cad_fail(e, CAD_EIO, "%s: cannot create log files: %s", s->run_dir, strerror(errno)); goto out; }
    path_join(buf, sizeof buf, s->run_dir, "result.json");
    unlink(buf); /* a stale result must not outlive a failed rerun */

    log0(s, "%s/log.txt", s->run_dir);
    if ((rc = session_setup(s, c, e))) goto out;
    if (c->init_from[0] && (rc = load_weights(s, c->init_from, e))) goto out;
    if ((rc = optim_setup(s, e))) goto out;

    /* ---- train_gpt.py's header lines ---- */
    char real[PATH_MAX];
    const char *dataset = realpath(c->data_path, real) ? basename(real) : c->data_path;
    char **train_files = NULL;
    int n_train_files = 0;
    if (cad_shard_glob(s->train_pattern, &train_files, &n_train_files, e) == CAD_OK)
        cad_shard_glob_free(train_files, n_train_files);
    log0(s, "val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=%s", c->tokenizer_path);
    log0(s, "train_loader:dataset:%s train_shards:%d", dataset, n_train_files);
    log0(s, "val_loader:shards pattern=%s tokens:%ld", s->val_pattern, s->n_val - 1);
    size_t n_params = 0;
    for (int i = 0; i < s->m.n_params; i++) n_params += (size_t)s->m.params[i].numel;
    log0(s, "model_params:%zu", n_params);
    log0(s, "world_size:1 grad_accum_steps:%d", s->accum);
    log0(s, "backend:%s threads:%d matmul_precision:%s", s->be->name, omp_get_max_threads(), c->matmul_precision);
    log0(s, "attention_mode:gqa num_heads:%ld num_kv_heads:%ld", c->num_heads, c->num_kv_heads);
    if (c->recur_loops > 1)
        log0(s, "recurrence: blocks %s x%ld shared, %d virtual layers (%d encoder, %d skips), from %.0f%% of training",
             c->recur_layers, c->recur_loops, s->m.n_virtual_max, s->m.n_virtual_max / 2, s->m.n_virtual_max / 2,
             100.0 * c->recur_start_frac);
    {
        char a[32], b[32], cc[32], d[32];
        py_float(a, sizeof a, c->tie_embeddings ? c->tied_embed_lr : c->embed_lr);
        py_float(b, sizeof b, c->tie_embeddings ? 0.0 : c->head_lr);
        py_float(cc, sizeof cc, c->matrix_lr);
        py_float(d, sizeof d, c->scalar_lr);
        log0(s, "tie_embeddings:%s embed_lr:%s head_lr:%s matrix_lr:%s scalar_lr:%s",
             c->tie_embeddings ? "True" : "False", a, b, cc, d);
    }
    log0(s, "train_batch_tokens:%ld train_seq_len:%ld iterations:%ld warmup_steps:%ld max_wallclock_seconds:%.3f",
         c->train_batch_tokens, c->train_seq_len, c->iterations, c->warmup_steps, c->max_wallclock_seconds);
    log0(s, "seed:%ld", c->seed);
    {
        char a[32], b[32], cc[32], d[32];
        size_t pb = s->m.n_param_floats * sizeof(float);
        fmt_mib(a, sizeof a, (double)pb);
        fmt_mib(b, sizeof b, (double)pb);
        fmt_mib(cc, sizeof cc, (double)cad_optim_bytes(&s->o));
        fmt_mib(d, sizeof d, (double)s->m.act_bytes);
        log0(s, "memory_plan: params:%s grads:%s optimizer:%s activations:%s total:%.1fMiB", a, b, cc, d,
             (2.0 * (double)pb + (double)cad_optim_bytes(&s->o) + (double)s->m.act_bytes) / 1048576.0);
    }
    log0(s, "code_files:%d code_bytes:%ld", n_code_files, code_bytes);

    if ((rc = cad_train_loader_open(&s->L, s->train_pattern, (int)c->vocab_size, 0, 1, e))) goto out;
    s->have_loader = 1;
    if (c->recur_start_frac > 0) cad_model_set_recurrence(&s->m, 0); /* plain until the start fraction */

    /* ---- warmup: prime, then restore weights, optimizer and loader ---- */
    long step = 0;
    double training_time_ms = 0;
    long stop_after_step = -1;
    double prequant_loss = NAN, prequant_bpb = NAN;
    if (resuming) {
        cad_checkpoint_meta want, got;
        ckpt_meta_fill(s, &want);
        if ((rc = cad_checkpoint_load(ckpt_path, &want, &got, s->be, s->m.param_mem, s->o.state, e))) goto out;
        step = (long)got.step;
        training_time_ms = got.training_time_ms;
        s->o.adam_step = (long)got.adam_step;
        stop_after_step = got.stop_after_step;
        prequant_loss = got.prequant_val_loss;
        prequant_bpb = got.prequant_val_bpb;
        cad_stream_pos pos = {got.stream_file_idx, (long)got.stream_pos};
        if ((rc = cad_token_stream_seek(&s->L.stream, pos, e))) goto out;
        log0(s, "resume:step:%ld/%ld train_time:%.0fms from %s", step, c->iterations, training_time_ms, ckpt_path);
    } else if (c->warmup_steps > 0) {
        params_to_host(s);
        for (long ws = 0; ws < c->warmup_steps; ws++) {
            float loss;
            if ((rc = train_micro_steps(s, &loss, e))) goto out;
            cad_optim_step(&s->o, 1.0, c->muon_momentum); /* the groups' initial lr and momentum */
            cad_model_zero_grad(&s->m);
            if (c->warmup_steps <= 20 || (ws + 1) % 10 == 0 || ws + 1 == c->warmup_steps)
                log0(s, "warmup_step:%ld/%ld", ws + 1, c->warmup_steps);
        }
        params_from_host(s);
        cad_optim_reset(&s->o);
        cad_model_zero_grad(&s->m);
        cad_train_loader_close(&s->L);
        s->have_loader = 0;
        if ((rc = cad_train_loader_open(&s->L, s->train_pattern, (int)c->vocab_size, 0, 1, e))) goto out;
        s->have_loader = 1;
    }

    /* ---- main loop (train_gpt.py's, including its timing rules) ---- */
    cad_eval_spec es = eval_spec(s);
    cad_eval_result er;
    double max_wallclock_ms = c->max_wallclock_seconds > 0 ? 1000.0 * c->max_wallclock_seconds : -1;
    double t0 = now_ms(), last_log_ms = training_time_ms;
    long last_log_step = step;
    for (;;) {
        int last_step = step == c->iterations || (stop_after_step >= 0 && step >= stop_after_step);
        int should_validate = last_step || (c->val_loss_every > 0 && step % c->val_loss_every == 0);
        if (should_validate) {
            training_time_ms += now_ms() - t0;
            if ((rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e))) goto out;
            log0(s, "step:%ld/%ld val_loss:%.4f val_bpb:%.4f train_time:%.0fms step_avg:%.2fms", step, c->iterations,
                 er.val_loss, er.val_bpb, training_time_ms, training_time_ms / (double)(step > 1 ? step : 1));
            journal(s, step, "val_loss", er.val_loss);
            journal(s, step, "val_bpb", er.val_bpb);
            prequant_loss = er.val_loss;
            prequant_bpb = er.val_bpb;
            t0 = now_ms();
        }
        if (last_step) {
            if (stop_after_step >= 0 && step < c->iterations)
                log0(s, "stopping_early: wallclock_cap train_time:%.0fms step:%ld/%ld", training_time_ms, step, c->iterations);
            break;
        }
        double elapsed_ms = training_time_ms + (now_ms() - t0);
        double scale = cad_lr_mul(c, step, elapsed_ms);
        if (c->recur_loops > 1 && !s->m.recur_on) { /* the records' delayed start of the loops */
            double frac = max_wallclock_ms > 0 ? elapsed_ms / max_wallclock_ms : (double)step / (double)c->iterations;
            if (frac >= c->recur_start_frac) {
                cad_model_set_recurrence(&s->m, 1);
                log0(s, "recurrence:on step:%ld frac:%.3f virtual_layers:%d", step, frac, s->m.n_virtual);
            }
        }
        float train_loss;
        if ((rc = train_micro_steps(s, &train_loss, e))) goto out;
        if (!isfinite(train_loss)) {
            rc = cad_fail(e, CAD_ENUMERIC, "train_loss is %f at step %ld (diverged)", (double)train_loss, step + 1);
            goto out;
        }
        double momentum = cad_muon_momentum_at(c, step);
        if (c->grad_clip_norm > 0) cad_optim_clip_grad_norm(&s->o, c->grad_clip_norm);
        cad_optim_step(&s->o, scale, momentum);
        cad_model_zero_grad(&s->m);
        step++;
        double approx_ms = training_time_ms + (now_ms() - t0);
        int should_log = c->train_log_every > 0 &&
                         (step <= 10 || step % c->train_log_every == 0 || stop_after_step >= 0);
        if (should_log) {
            log0(s, "step:%ld/%ld train_loss:%.4f train_time:%.0fms step_avg:%.2fms", step, c->iterations,
                 (double)train_loss, approx_ms, approx_ms / (double)step);
            double dt = approx_ms - last_log_ms;
            double tps = dt > 0 ? (double)(step - last_log_step) * (double)c->train_batch_tokens / (dt / 1000.0) : 0;
            double avg = approx_ms / (double)step;
            double eta_s = (double)(c->iterations - step) * avg / 1000.0;
            if (max_wallclock_ms > 0 && (max_wallclock_ms - approx_ms) / 1000.0 < eta_s)
                eta_s = (max_wallclock_ms - approx_ms) / 1000.0 > 0 ? (max_wallclock_ms - approx_ms) / 1000.0 : 0;
            fprintf(stderr, "progress step:%ld/%ld tokens_per_s:%.0f step_ms:%.1f lr_mul:%.4f eta:%.0fs\n", step,
                    c->iterations, tps, (step - last_log_step) > 0 ? dt / (double)(step - last_log_step) : 0, scale, eta_s);
            journal(s, step, "train_loss", (double)train_loss);
            journal(s, step, "lr_mul", scale);
            journal(s, step, "step_ms", (step - last_log_step) > 0 ? dt / (double)(step - last_log_step) : 0);
            journal(s, step, "tokens_per_s", tps);
            last_log_ms = approx_ms;
            last_log_step = step;
        }
        int reached_cap = max_wallclock_ms > 0 && approx_ms >= max_wallclock_ms;
        if (stop_after_step < 0 && reached_cap) stop_after_step = step;
        if (c->checkpoint_every > 0 && step % c->checkpoint_every == 0 && step < c->iterations) {
            double tc = now_ms();
            cad_checkpoint_meta meta;
            ckpt_meta_fill(s, &meta);
            meta.step = step;
            meta.training_time_ms = training_time_ms + (tc - t0);
            meta.adam_step = s->o.adam_step;
            cad_stream_pos pos = cad_token_stream_tell(&s->L.stream);
            meta.stream_file_idx = pos.file_idx;
            meta.stream_pos = pos.pos;
            meta.stop_after_step = (int32_t)stop_after_step;
            meta.prequant_val_loss = prequant_loss;
            meta.prequant_val_bpb = prequant_bpb;
            if ((rc = cad_checkpoint_save(ckpt_path, &meta, s->be, s->m.param_mem, s->o.state, e))) goto out;
            t0 += now_ms() - tc; /* checkpoint time is not training time */
        }
    }
    if (c->ema_decay > 0) { /* the records evaluate and quantize the averaged weights */
        cad_optim_load_ema(&s->o);
        if ((rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e))) goto out;
        log0(s, "ema:applied decay:%g val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", c->ema_decay, er.val_loss,
             er.val_bpb, er.eval_ms);
        journal(s, step, "ema_val_loss", er.val_loss);
        journal(s, step, "ema_val_bpb", er.val_bpb);
        prequant_loss = er.val_loss;
        prequant_bpb = er.val_bpb;
    }
    log0(s, "peak memory allocated: %.0f MiB reserved: %.0f MiB",
         floor((2.0 * (double)s->m.n_param_floats * 4 + (double)cad_optim_bytes(&s->o) + (double)s->m.act_bytes) / 1048576.0),
         floor((2.0 * (double)s->m.n_param_floats * 4 + (double)cad_optim_bytes(&s->o) + (double)s->m.act_bytes) / 1048576.0));

    /* ---- serialization + round-trip validation ---- */
    params_to_host(s);
    /* train_gpt.py writes the raw model (final_model.pt) first; caddie's raw weights are the
     * optional save_weights .safetensors */
    struct stat wst;
    int have_w = 0;
    if (c->save_weights[0]) {
        if ((rc = cad_safetensors_write(c->save_weights, s->named, s->n_named, e))) goto out;
        have_w = stat(c->save_weights, &wst) == 0;
    }
    if (have_w) log0(s, "Serialized model: %lld bytes", (long long)wst.st_size);
    log0(s, "Code size: %ld bytes", code_bytes);
    if (have_w) log0(s, "Total submission size: %lld bytes", (long long)wst.st_size + code_bytes);
    char art[1100];
    path_join(art, sizeof art, s->run_dir, "final_model.int8.ptz");
    cad_int8_stats qs;
    cad_quant_opts qo = quant_opts(c);
    if (qo.matrix_bits != 8 || qo.embed_bits != 8 || qo.clip_search || qo.sdclip_k > 0 || qo.sdclip_embed_k > 0) {
        char cm[48], ce[48]; /* train_gpt.py's log has no such line: only when not its quantizer */
        const char *rule = qo.clip_search ? "gptq-lite" : "p99.99984";
        if (qo.sdclip_k > 0) snprintf(cm, sizeof cm, "sdclip_k=%g", qo.sdclip_k);
        else snprintf(cm, sizeof cm, "%s", rule);
        if (qo.sdclip_embed_k > 0) snprintf(ce, sizeof ce, "sdclip_k=%g", qo.sdclip_embed_k);
        else snprintf(ce, sizeof ce, "%s", rule);
        log0(s, "quant: block_matrices:int%d clip:%s embedding:int%d clip:%s", qo.matrix_bits, cm, qo.embed_bits, ce);
    }
    if ((rc = cad_int8_export(art, s->named, s->n_named, &qo, &qs, e))) goto out;
    const char *zname = cad_compressor_name(cad_compressor_parse(c->artifact_compressor));
    log0(s, "Serialized model int8+%s: %zu bytes (payload:%zu raw:%zu payload_ratio:%.2fx)", zname, qs.compressed_bytes,
         qs.int8_payload_bytes, qs.raw_bytes,
         (double)qs.baseline_tensor_bytes / (double)(qs.int8_payload_bytes ? qs.int8_payload_bytes : 1));
    log0(s, "Total submission size int8+%s: %ld bytes", zname, (long)qs.compressed_bytes + code_bytes);
    if ((rc = cad_int8_import(art, s->named, s->n_named, e))) goto out;
    params_from_host(s);
    if ((rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e))) goto out;
    log0(s, "final_int8_%s_roundtrip val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", zname, er.val_loss, er.val_bpb,
         er.eval_ms);
    log0(s, "final_int8_%s_roundtrip_exact val_loss:%.8f val_bpb:%.8f", zname, er.val_loss, er.val_bpb);
    if (er.partial)
        log0(s, "partial_eval: val_max_tokens:%ld windows:%ld of %ld (result marked partial)", c->val_max_tokens,
             er.n_seqs, (s->n_val - 1) / c->train_seq_len);
    journal(s, step, "final_val_loss", er.val_loss);
    journal(s, step, "final_val_bpb", er.val_bpb);
    if (c->eval_stride > 0) { /* the records' scorer: it becomes the run's score */
        cad_eval_result sw;
        if ((rc = cad_eval_sliding(&s->m, s->val, s->n_val, &s->luts, &es, (int)c->eval_stride, s->x, s->y, &sw, e)))
            goto out;
        log0(s, "final_sliding_window_eval stride:%ld val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", c->eval_stride,
             sw.val_loss, sw.val_bpb, sw.eval_ms);
        log0(s, "final_sliding_window_eval_exact stride:%ld val_loss:%.8f val_bpb:%.8f", c->eval_stride, sw.val_loss,
             sw.val_bpb);
        journal(s, step, "final_sliding_val_loss", sw.val_loss);
        journal(s, step, "final_sliding_val_bpb", sw.val_bpb);
        sw.eval_ms += er.eval_ms; /* the eval budget counts both passes */
        er = sw;
    }
    if (c->ttt_lr > 0) { /* score-first TTT on the round-tripped weights: the run's score */
        cad_ttt_spec ts = ttt_spec(c);
        cad_eval_result tr;
        log0(s, "ttt:start stride:%d chunk_tokens:%ld ttt_lr:%g ttt_epochs:%ld ttt_batch_seqs:%ld", ts.stride,
             c->ttt_chunk_tokens, c->ttt_lr, c->ttt_epochs, c->ttt_batch_seqs);
        if ((rc = cad_eval_ttt(&s->m, s->val, s->n_val, &s->luts, &es, &ts, s->x, s->y, &tr, ttt_progress, s, e)))
            goto out;
        log0(s, "quantized_ttt val_loss:%.8f val_bpb:%.8f eval_time:%.0fms", tr.val_loss, tr.val_bpb, tr.eval_ms);
        journal(s, step, "final_ttt_val_loss", tr.val_loss);
        journal(s, step, "final_ttt_val_bpb", tr.val_bpb);
        tr.eval_ms += er.eval_ms;
        er = tr;
    }

    {
        char *json = NULL;
        size_t jl = 0;
        FILE *j = open_memstream(&json, &jl);
        if (!j) { rc = cad_fail(e, CAD_ENOMEM, "out of memory"); goto out; }
        fputs("{\"run_id\":", j);
        cad_json_write_string(j, c->run_id);
        fputs(",\"val_loss\":", j);
        cad_json_write_number(j, er.val_loss);
        fputs(",\"val_bpb\":", j);
        cad_json_write_number(j, er.val_bpb);
        fputs(",\"prequant_val_loss\":", j);
        cad_json_write_number(j, prequant_loss);
        fputs(",\"prequant_val_bpb\":", j);
        cad_json_write_number(j, prequant_bpb);
        fprintf(j, ",\"artifact_bytes\":%ld,\"model_bytes\":%zu,\"code_bytes\":%ld", (long)qs.compressed_bytes + code_bytes,
                qs.compressed_bytes, code_bytes);
        fputs(",\"train_ms\":", j); /* through the writer: never a bare inf/nan in JSON */
        cad_json_write_number(j, round(training_time_ms));
        fputs(",\"eval_ms\":", j);
        cad_json_write_number(j, round(er.eval_ms));
        fprintf(j, ",\"steps\":%ld,\"tokens\":%lld,\"partial\":%d", step, (long long)step * c->train_batch_tokens,
                er.partial);
        fputs(",\"engine_version\":", j);
        cad_json_write_string(j, CADDIE_VERSION);
        fputs(",\"git_commit\":", j);
        cad_json_write_string(j, cad_build_commit);
        fprintf(j, ",\"git_dirty\":%d}\n", cad_build_dirty);
        fclose(j);
        rc = write_result(s, json, e);
        free(json);
    }
out:
    session_free(s);
    return rc;
}

int cad_eval_weights(cad_config *c, const char *weights, int roundtrip, FILE *out, cad_err *e) {
    session S;
    memset(&S, 0, sizeof S);
    session *s = &S;
    s->t_wall0 = now_ms();
    int rc = session_setup(s, c, e);
    if (!rc) rc = load_weights(s, weights, e);
    cad_eval_spec es = eval_spec(s);
    cad_eval_result er;
    if (!rc) rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e);
    if (!rc) {
        fprintf(out, "eval val_loss:%.8f val_bpb:%.8f tokens:%.0f bytes:%.0f partial:%d eval_time:%.0fms\n", er.val_loss,
                er.val_bpb, er.token_count, er.byte_count, er.partial, er.eval_ms);
        fflush(out);
    }
    if (!rc && roundtrip) {
        char tmpl[] = "/tmp/caddie-eval-XXXXXX";
        char *dir = mkdtemp(tmpl);
        if (!dir) rc = cad_fail(e, CAD_EIO, "mkdtemp: %s", strerror(errno));
        char art[PATH_MAX];
        cad_int8_stats qs;
        if (!rc) {
            snprintf(art, sizeof art, "%s/final_model.int8.ptz", dir);
            params_to_host(s);
            cad_quant_opts qo = quant_opts(c);
            rc = cad_int8_export(art, s->named, s->n_named, &qo, &qs, e);
            if (!rc) rc = cad_int8_import(art, s->named, s->n_named, e);
            unlink(art);
            rmdir(dir);
        }
        if (!rc) {
            params_from_host(s);
            rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e);
        }
        if (!rc) {
            const char *zname = cad_compressor_name(cad_compressor_parse(c->artifact_compressor));
            fprintf(out, "Serialized model int8+%s: %zu bytes\n", zname, qs.compressed_bytes);
            fprintf(out, "final_int8_%s_roundtrip_exact val_loss:%.8f val_bpb:%.8f\n", zname, er.val_loss, er.val_bpb);
        }
    }
    if (!rc && c->eval_stride > 0) {
        rc = cad_eval_sliding(&s->m, s->val, s->n_val, &s->luts, &es, (int)c->eval_stride, s->x, s->y, &er, e);
        if (!rc)
            fprintf(out, "final_sliding_window_eval_exact stride:%ld val_loss:%.8f val_bpb:%.8f eval_time:%.0fms\n",
                    c->eval_stride, er.val_loss, er.val_bpb, er.eval_ms);
    }
    if (!rc && c->ttt_lr > 0) { /* last: it changes the weights */
        cad_ttt_spec ts = ttt_spec(c);
        rc = cad_eval_ttt(&s->m, s->val, s->n_val, &s->luts, &es, &ts, s->x, s->y, &er, NULL, NULL, e);
        if (!rc)
            fprintf(out, "quantized_ttt val_loss:%.8f val_bpb:%.8f eval_time:%.0fms\n", er.val_loss, er.val_bpb,
                    er.eval_ms);
    }
    session_free(s);
    return rc;
}
