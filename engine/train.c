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
#include "engine/collective.h"
#include "engine/dp_buckets.h"
#include "engine/early_exit.h"
#include "engine/eval.h"
#include "engine/ttt.h"
#include "engine/ttt_lora.h"
#include "engine/export.h"
#include "engine/distill.h"
#include "engine/gptq.h"
#include "engine/quant_ext.h"
#include "engine/jsonw.h"
#include "engine/mamba.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "engine/stream.h"
#include "engine/tokenizer.h"


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

/* "." and the binary's directory with 3 ancestors: enough to reach the source tree from
 * build/caddie and from build/asan/tests/<test> */
#define CODE_ROOTS_MAX 5

int cad_code_bytes(const char *globs, long *bytes, int *n_files, FILE *listing, cad_err *e) {
    const char *unmatched = NULL;
    *bytes = 0;
    *n_files = 0;
    if (!globs || !*globs) return CAD_OK;
    /* candidates: the current directory, then the ancestors of the binary's directory */
    char roots[CODE_ROOTS_MAX][PATH_MAX];
    int nr = 0;
    snprintf(roots[nr++], PATH_MAX, ".");
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *d = dirname(exe);
        while (nr < CODE_ROOTS_MAX) {
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

/* Python's base64.b85encode alphabet (RFC 1924 order). */
static const char b85_alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";

/* base64.b85encode: 4 bytes (big-endian) -> 5 digits, a short last group padded with zeros and
 * its output cut to k+1 digits. dst holds n + (n+3)/4 characters. */
static size_t b85_encode(const unsigned char *src, size_t n, char *dst) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t k = n - i < 4 ? n - i : 4;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) v = v << 8 | (j < k ? src[i + j] : 0);
        char d[5];
        for (int j = 4; j >= 0; j--) d[j] = b85_alphabet[v % 85], v /= 85;
        memcpy(dst + o, d, k + 1);
        o += k + 1;
    }
    return o;
}

/* The records' self-extracting wrappers around the base85 text; the string literal is safe
 * because the alphabet has neither '"' nor '\'. */
static const char code_wrap_tail[] = "\")))\n";

int cad_code_pack(const char *globs, const char *method, char **text, size_t *len, cad_err *e) {
    int comp = !strcmp(method, "lzma") ? CAD_COMPRESS_LZMA : !strcmp(method, "zlib") ? CAD_COMPRESS_ZLIB : -1;
    if (comp < 0) return cad_fail(e, CAD_ECONFIG, "code_compress='%s': expected lzma or zlib", method);
    char *listing = NULL, *cat = NULL;
    size_t listing_len = 0, cat_len = 0;
    FILE *lf = open_memstream(&listing, &listing_len);
    if (!lf) return cad_fail(e, CAD_ENOMEM, "out of memory");
    long bytes;
    int n_files;
    int rc = cad_code_bytes(globs, &bytes, &n_files, lf, e);
    if (fclose(lf) && !rc) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    FILE *cf = rc ? NULL : open_memstream(&cat, &cat_len);
    if (!rc && !cf) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    /* the counted files in listing order ("bytes path" lines), concatenated: one shipped file */
    for (char *save = NULL, *line = rc ? NULL : strtok_r(listing, "\n", &save); line && !rc;
         line = strtok_r(NULL, "\n", &save)) {
        const char *path = strchr(line, ' ');
        FILE *f = path ? fopen(path + 1, "rb") : NULL;
        if (!f) { rc = cad_fail(e, CAD_EIO, "code_files: cannot read '%s': %s", path ? path + 1 : line, strerror(errno)); break; }
        char buf[1 << 14];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, got, cf);
        if (ferror(f)) rc = cad_fail(e, CAD_EIO, "code_files: read failed: %s", path + 1);
        fclose(f);
    }
    if (cf && fclose(cf) && !rc) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    free(listing);
    unsigned char *z = NULL;
    size_t zlen = 0;
    if (!rc) rc = cad_compress_buf(comp, cat, cat_len, &z, &zlen, "code_files", e);
    free(cat);
    if (rc) return rc;
    char head[64];
    int hl = snprintf(head, sizeof head, "import %s,base64\nexec(%s.decompress(base64.b85decode(\"", method, method);
    size_t cap = (size_t)hl + zlen + (zlen + 3) / 4 + sizeof code_wrap_tail;
    char *t = malloc(cap);
    if (!t) { free(z); return cad_fail(e, CAD_ENOMEM, "out of memory"); }
    memcpy(t, head, (size_t)hl);
    size_t o = (size_t)hl + b85_encode(z, zlen, t + hl);
    memcpy(t + o, code_wrap_tail, sizeof code_wrap_tail); /* with its NUL, not counted */
    free(z);
    *text = t;
    *len = o + sizeof code_wrap_tail - 1;
    return CAD_OK;
}

/* ---- the session ----------------------------------------------------------------------- */

/* The run directory's path is bounded so every file name inside it fits RUN_PATH_MAX. */
#define RUN_DIR_MAX 1024
#define RUN_ID_MAX 512
#define RUN_PATH_MAX (RUN_DIR_MAX + 76)
#define UUID_TEXT_MAX 40 /* 36 characters and the NUL */
#define PY_FLOAT_MAX 32  /* Python's str(float) of a double: at most 24 characters */
#define QUANT_RULE_MAX 48 /* "sdclip_k=%g" or a clip rule's name */

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
    FILE *out;          /* the caller's copy of the log (caddie train: stdout); may be NULL */
    FILE *progress;     /* the caller's progress lines (caddie train: stderr); may be NULL */
    FILE *log, *metrics; /* run_dir/log.txt and run_dir/metrics.jsonl */
    double t_wall0;
    char run_dir[RUN_DIR_MAX];
    char train_pattern[PATH_MAX], val_pattern[PATH_MAX];
    int accum;
    long local_tokens;
    int qat_live; /* QAT switched on (qat_bits set and qat_start_frac reached) */
    cad_coll *coll;   /* the other ranks (NULL: world 1) */
    cad_dp_buckets dpb; /* dp_bucket_mb: the gradient buckets of the last micro-step */
    int rank, world;  /* only rank 0 writes the run dir and the sink */
    double exit_depth; /* early exit: mean depth of the last evaluation (NaN: no exits at eval) */
    cad_distill kd;    /* distill_from: the teacher (have_kd) */
    int have_kd;
    int train_loops;   /* the training schedule's passes, kept while an evaluation runs eval_recur_loops */
    int seq_T;         /* training sequence length now (seq_len_schedule, else train_seq_len) */
} session;

/* One line of train_gpt.py's log: to the caller's sink and to log.txt, each flushed so a tail
 * (the runner) sees whole lines as they happen. */
static void log0(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log0(session *s, const char *fmt, ...) {
    va_list ap;
    FILE *to[2] = {s->out, s->log};
    for (int i = 0; i < 2; i++) {
        if (!to[i]) continue;
        va_start(ap, fmt);
        vfprintf(to[i], fmt, ap);
        va_end(ap);
        fputc('\n', to[i]);
        fflush(to[i]);
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
    unsigned char b[16]; /* 128 bits, version 4 */
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
    cad_dp_buckets_free(&s->dpb);
    if (s->have_model) cad_model_free(&s->m);
    if (s->have_kd) cad_distill_close(&s->kd);
    if (s->have_luts) cad_bpb_luts_free(&s->luts);
    if (s->tok) cad_tokenizer_free(s->tok);
    free(s->val);
    free(s->x);
    free(s->y);
    free(s->host_params);
    free(s->named);
    /* unchecked: only a run that already failed gets here with its logs open */
    if (s->log) fclose(s->log);
    if (s->metrics) fclose(s->metrics);
}

/* Close log.txt and metrics.jsonl of a finished run, so a full disk fails the run before
 * result.json declares it done. */
static int session_close_logs(session *s, cad_err *e) {
    FILE *f[2] = {s->log, s->metrics};
    const char *name[2] = {"log.txt", "metrics.jsonl"};
    s->log = s->metrics = NULL;
    int rc = CAD_OK;
    for (int i = 0; i < 2; i++) {
        if (!f[i]) continue; /* ranks other than 0 write no logs */
        int bad = ferror(f[i]);
        if ((fclose(f[i]) || bad) && rc == CAD_OK) rc = cad_fail(e, CAD_EIO, "%s/%s: write failed", s->run_dir, name[i]);
    }
    return rc;
}

/* Tokenizer, LUTs, val split, model, host buffers: everything eval and train share. */
/* The tensor names quant_bits_overrides / lqer_tensors give must exist in this model (a typo
 * would change nothing, silently), checked before any work; then QAT learns the overrides. */
static int quant_names_setup(session *s, cad_err *e) {
    const char **names = malloc((size_t)(s->n_named ? s->n_named : 1) * sizeof *names);
    if (!names) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int i = 0; i < s->n_named; i++) names[i] = s->named[i].name;
    int rc = cad_quant_names_check("quant_bits_overrides", s->c->quant_bits_overrides, names, s->n_named, e);
    if (!rc) rc = cad_quant_names_check("lqer_tensors", s->c->lqer_tensors, names, s->n_named, e);
    free(names);
    if (!rc) rc = cad_model_set_qat_overrides(&s->m, s->c->quant_bits_overrides, e);
    return rc;
}

int cad_train_model_config(const cad_config *c, int max_batch_seqs, int max_seq_len, cad_model_config *mc, cad_err *e) {
    *mc = (cad_model_config){
        .vocab_size = (int)c->vocab_size, .num_layers = (int)c->num_layers, .model_dim = (int)c->model_dim,
        .num_heads = (int)c->num_heads, .num_kv_heads = (int)c->num_kv_heads, .mlp_mult = (int)c->mlp_mult,
        .tie_embeddings = c->tie_embeddings, .rope_base = (float)c->rope_base,
        .logit_softcap = (float)c->logit_softcap, .qk_gain_init = (float)c->qk_gain_init,
        .tied_embed_init_std = (float)c->tied_embed_init_std,
        .max_batch_seqs = max_batch_seqs, .max_seq_len = max_seq_len,
        .recur_loops = (int)c->recur_loops, .recur_loops_max = (int)c->eval_recur_loops,
        .mlp_leaky_slope = (float)c->mlp_leaky_slope,
        .xsa_last = (int)c->xsa_last_layers, .parallel_last = (int)c->parallel_residual_layers,
        .recur_loop_scales = c->recur_loop_scales,
        .embed_dim = (int)c->embed_dim, .ln_scale = c->ln_scale, .bigram_buckets = (int)c->bigram_buckets,
        .bigram_dim = (int)c->bigram_dim, .smear_gate = c->smear_gate, .attn_gate = cad_config_attn_gate(c),
        .rope_dims = (int)c->rope_dims,
        .mlp_experts = (int)c->mlp_experts, .mlp_top_k = (int)c->mlp_top_k, .moe_aux_weight = (float)c->moe_aux_weight,
        .early_exit_weight = (float)c->early_exit_weight};
    mc->n_exits = cad_config_early_exits(c, mc->exit_depths, CAD_MAX_EARLY_EXITS); /* validated with the config */
    cad_config_recur_span(c, &mc->recur_first, &mc->recur_last); /* validated with the config */
    return cad_mamba_model_config(c, mc, e); /* block_type, mamba_* */
}

int cad_train_named_tensors(const cad_model *m, float *host, cad_named_tensor *named) {
    for (int i = 0; i < m->n_params; i++) {
        const cad_param *p = &m->params[i];
        cad_named_tensor *t = &named[i];
        t->name = p->name;
        t->ndim = p->ndim;
        for (int d = 0; d < p->ndim && d < CAD_TENSOR_MAX_DIMS; d++) t->shape[d] = p->shape[d];
        t->numel = (size_t)p->numel;
        t->data = host + (p->data - m->param_mem);
    }
    return m->n_params;
}

static int session_setup(session *s, cad_config *c, cad_err *e) {
    s->c = c;
    int rc0;
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
    if (!s->coll) s->world = 1;
    if (c->grad_accum_steps == 0 && 8 % s->world)
        return cad_fail(e, CAD_ECONFIG, "WORLD_SIZE=%d must divide 8 (grad_accum_steps = 8 // world_size) or set "
                        "grad_accum_steps", s->world);
    s->accum = c->grad_accum_steps > 0 ? (int)c->grad_accum_steps : 8 / s->world;
    s->local_tokens = cad_train_loader_local_tokens(c->train_batch_tokens, (int)c->train_seq_len, s->world, s->accum);
    if (s->local_tokens <= 0)
        return cad_fail(e, CAD_ECONFIG, "train_batch_tokens=%ld over world_size %d x grad_accum_steps %d is not a "
                        "positive multiple of train_seq_len=%ld per micro-step", c->train_batch_tokens, s->world,
                        s->accum, c->train_seq_len);
    long sched_T[CAD_SEQ_SCHEDULE_MAX];
    double sched_f[CAD_SEQ_SCHEDULE_MAX];
    int n_sched = cad_config_seq_schedule(c, sched_T, sched_f, CAD_SEQ_SCHEDULE_MAX); /* validated with the config */
    for (int i = 0; i < n_sched; i++) /* every rank reads the same spans: only the rows' shape changes */
        if (s->local_tokens % sched_T[i])
            return cad_fail(e, CAD_ECONFIG, "seq_len_schedule entry %ld@%g: expected a length dividing the %ld tokens "
                            "of a rank's micro-step (world_size %d, grad_accum_steps %d)", sched_T[i], sched_f[i],
                            s->local_tokens, s->world, s->accum);
    s->seq_T = (int)cad_config_train_seq_len_at(c, 0.0);
    if (s->coll && (rc0 = cad_coll_attach_backend(s->coll, s->be, e))) return rc0;
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
    long eval_T = cad_config_eval_seq_len(c);
    rc = cad_val_tokens_load(s->val_pattern, (int)eval_T, (int)c->vocab_size, &s->val, &s->n_val, e);
    if (rc) return rc;

    cad_model_config mc;
    rc = cad_train_model_config(c, (int)(s->local_tokens / c->train_seq_len), (int)c->train_seq_len, &mc, e);
    if (rc) return rc;
    /* the longest window of training (seq_len_schedule) or evaluation sizes RoPE and the plan:
     * the same token budget, fewer rows; shorter windows run more rows of the same tokens */
    long plan_T = cad_config_train_seq_len_max(c) > eval_T ? cad_config_train_seq_len_max(c) : eval_T;
    if (plan_T != c->train_seq_len) {
        mc.max_seq_len = (int)plan_T;
        mc.max_batch_seqs = (int)((s->local_tokens + plan_T - 1) / plan_T);
    }
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
    s->n_named = cad_train_named_tensors(&s->m, s->host_params, s->named);
    return quant_names_setup(s, e);
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

/* distill_from: the teacher, planned for the training micro-batches (distill.h). */
static int distill_setup(session *s, cad_err *e) {
    const cad_config *c = s->c;
    int T = (int)c->train_seq_len, rc = cad_distill_open(&s->kd, c, s->be, (int)(s->local_tokens / T), T, e);
    if (rc) return rc;
    s->have_kd = 1;
    log0(s, "distill: teacher:%s config:%s params:%zu alpha:%g temp:%g", c->distill_from, c->distill_teacher_config,
         s->kd.teacher.n_param_floats, c->distill_alpha, c->distill_temp);
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
                        c->quant_clip_search, c->quant_sdclip_k, c->quant_sdclip_embed_k, NULL, {0, 0, 0}};
    if (cad_config_qat_bits(c) > 0) q.matrix_bits = cad_config_qat_bits(c); /* export at the bits QAT trained */
    q.gptq.damp = c->gptq_damp, q.gptq.act_order = c->gptq_act_order, q.gptq.block = CAD_GPTQ_BLOCK;
    return q;
}

/* quant_ext.h's refinements; calib (AWQ-lite's columns) is filled in by train_export. */
static cad_quant_ext_opts quant_ext_opts(const cad_config *c) {
    cad_quant_ext_opts q = {c->quant_bits_overrides, c->awq_salient_frac, NULL, (int)c->lqer_rank, c->lqer_tensors};
    return q;
}

static cad_ttt_spec ttt_spec(const cad_config *c) {
    cad_ttt_spec t = {c->eval_stride > 0 ? (int)c->eval_stride : (int)cad_config_eval_seq_len(c), c->ttt_chunk_tokens, c->ttt_lr,
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

/* LoRA TTT: one line per tenth of the documents (the records' per-batch progress lines) */
static void ttt_lora_progress(void *ud, long doc, long n_docs, const double sums[3], double elapsed_ms) {
    session *s = ud;
    long every = n_docs / 10 > 0 ? n_docs / 10 : 1;
    if ((doc + 1) % every != 0 && doc != n_docs - 1) return;
    double bpb = sums[2] > 0 ? sums[0] / sums[1] / log(2.0) * (sums[1] / sums[2]) : 0.0;
    log0(s, "ttt_lora_doc:%ld/%ld bpb:%.6f time:%.1fs", doc + 1, n_docs, bpb, elapsed_ms / 1000.0);
}

/* Test-time training of ttt_mode on the session's weights (sgd changes them, lora does not). */
static int eval_ttt_mode(session *s, const cad_eval_spec *es, cad_eval_result *er, int log_progress, cad_err *e) {
    const cad_config *c = s->c;
    if (!strcmp(c->ttt_mode, "lora")) {
        cad_lora_spec ls = {(int)c->ttt_lora_rank, 0, (int)c->ttt_lora_chunk, (int)c->ttt_epochs, c->ttt_lr,
                            (uint64_t)c->seed};
        int rc = cad_lora_targets_parse(c->ttt_lora_targets, "ttt_lora_targets", &ls.targets, e);
        if (rc) return rc;
        return cad_eval_ttt_lora(&s->m, s->val, s->n_val, &s->luts, es, &ls, s->x, s->y, NULL, er,
                                 log_progress ? ttt_lora_progress : NULL, s, e);
    }
    cad_ttt_spec ts = ttt_spec(c);
    return cad_eval_ttt(&s->m, s->val, s->n_val, &s->luts, es, &ts, s->x, s->y, er, log_progress ? ttt_progress : NULL,
                        s, e);
}

static cad_eval_spec eval_spec(const session *s) {
    cad_eval_spec sp = {(int)cad_config_eval_seq_len(s->c), s->c->val_batch_size, s->accum, s->c->val_max_tokens,
                        s->rank, s->world};
    return sp;
}

/* Reduce a rank's float64 eval sums over all ranks, then finish the result from them. */
static int eval_reduce(session *s, cad_eval_result *r, cad_err *e) {
    if (s->world == 1) return CAD_OK;
    double sums[3] = {r->loss_sum, r->token_count, r->byte_count};
    int rc = cad_coll_allreduce_sum_f64(s->coll, sums, 3, e);
    if (!rc) rc = cad_eval_result_finish(r, sums, e);
    return rc;
}

/* Every evaluation's model state, switched on by eval_begin and back by eval_end: the early-exit
 * threshold (training forwards never exit) and eval_recur_loops passes over the recurrent span
 * (training keeps its own schedule, recur_start_frac included). eval_end logs the mean exit
 * depth over all ranks and keeps it in s->exit_depth. */
static void eval_begin(session *s) {
    s->exit_depth = NAN;
    s->train_loops = s->m.loops;
    if (s->c->eval_recur_loops > 0) cad_model_set_loops(&s->m, (int)s->c->eval_recur_loops);
    if (s->m.ee && s->c->early_exit_threshold < 1.0) cad_model_set_exit_threshold(&s->m, (float)s->c->early_exit_threshold);
}

static int eval_end(session *s, const char *what, cad_err *e) {
    cad_model_set_loops(&s->m, s->train_loops);
    if (!s->m.ee || s->c->early_exit_threshold >= 1.0) return CAD_OK;
    double st[2];
    cad_model_exit_stats(&s->m, &st[0], &st[1]);
    cad_model_set_exit_threshold(&s->m, 1.0f);
    if (s->world > 1) {
        int rc = cad_coll_allreduce_sum_f64(s->coll, st, 2, e);
        if (rc) return rc;
    }
    s->exit_depth = st[0] > 0 ? st[1] / st[0] : NAN;
    log0(s, "early_exit: %s threshold:%g mean_depth:%.4f of %d tokens:%.0f", what, s->c->early_exit_threshold,
         s->exit_depth, s->m.n_virtual, st[0]);
    return CAD_OK;
}

/* eval_val over all ranks: each its share of the windows (eval.h), the sums all-reduced. */
static int eval_val_dp(session *s, const cad_eval_spec *es, cad_eval_result *r, cad_err *e) {
    double t0 = now_ms();
    eval_begin(s);
    int rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, es, s->x, s->y, r, e);
    if (!rc) rc = eval_reduce(s, r, e);
    if (!rc) rc = eval_end(s, "val", e);
    r->eval_ms = now_ms() - t0;
    return rc;
}

/* The sliding-window schedule over all ranks: rank r scores windows [n*r/world, n*(r+1)/world). */
static int eval_sliding_dp(session *s, const cad_eval_spec *es, int stride, cad_eval_result *r, cad_err *e) {
    if (s->world == 1) {
        eval_begin(s);
        int rc = cad_eval_sliding(&s->m, s->val, s->n_val, &s->luts, es, stride, s->x, s->y, r, e);
        return rc ? rc : eval_end(s, "sliding", e);
    }
    eval_begin(s);
    double t0 = now_ms();
    memset(r, 0, sizeof *r);
    long N, n_win;
    int rc = cad_eval_sliding_plan(&s->m, s->n_val, es, stride, &N, &n_win, &r->partial, e);
    double sums[3] = {0, 0, 0};
    long k0 = n_win * s->rank / s->world, k1 = n_win * (s->rank + 1) / s->world;
    if (!rc) rc = cad_eval_windows(&s->m, s->val, N, es->seq_len, stride, k0, k1, &s->luts, s->x, s->y, sums, e);
    if (!rc) rc = cad_coll_allreduce_sum_f64(s->coll, sums, 3, e);
    if (!rc) rc = cad_eval_result_finish(r, sums, e);
    if (!rc) rc = eval_end(s, "sliding", e);
    r->n_seqs = n_win;
    r->eval_ms = now_ms() - t0;
    return rc;
}

/* One optimizer step's gradients: accum micro-batches, grads scaled like (loss*grad_scale).backward(). */
static int train_micro_steps(session *s, float *train_loss, cad_err *e) {
    cad_config *c = s->c;
    int T = s->seq_T, B = (int)(s->local_tokens / T);
    float acc = 0.0f;
    cad_model_zero_grad(&s->m);
    /* QAT only in training forwards: validation and the final evals read the fp32 weights */
    int rc0 = cad_model_set_qat(&s->m, s->qat_live ? cad_config_qat_bits(c) : 0, e);
    if (rc0) return rc0;
    /* dp_bucket_mb: the last micro-step's backward launches each gradient bucket's all-reduce
     * as soon as the bucket is complete (dp_buckets.h), overlapping communication with the rest
     * of the backward; the earlier micro-steps only accumulate */
    int bucketed = s->world > 1 && c->dp_bucket_mb > 0;
    float grad_scale = s->accum > 1 ? 1.0f / (float)s->accum : 1.0f;
    for (int micro = 0; micro < s->accum; micro++) {
        int rc = cad_train_loader_next(&s->L, c->train_batch_tokens, T, s->accum, s->x, s->y, e);
        if (rc) return rc;
        float loss = 0;
        if (s->have_kd && (rc = cad_distill_teacher_forward(&s->kd, s->x, B, T, e))) return rc;
        s->m.kd = s->have_kd ? &s->kd : NULL; /* the teacher takes part in this forward and backward only */
        rc = cad_model_forward(&s->m, s->x, s->y, B, T, &loss, e);
        if (!rc && bucketed && micro == s->accum - 1) {
            int n_before = s->dpb.n;
            rc = cad_dp_buckets_plan(&s->dpb, &s->m, c->dp_bucket_mb, e);
            if (!rc && s->dpb.n != n_before) /* the first plan, and again when the number of buckets changes */
                log0(s, "dp_buckets:%d bucket_mb:%g", s->dpb.n, c->dp_bucket_mb);
            if (!rc) {
                cad_dp_buckets_arm(&s->dpb, &s->m, s->coll, grad_scale);
                rc = cad_model_backward(&s->m, e);
                cad_err we;
                int rc_wait = cad_dp_buckets_finish(&s->dpb, &we); /* the queue drains even on failure */
                if (!rc && rc_wait) *e = we, rc = rc_wait;
            }
        } else if (!rc) {
            rc = cad_model_backward(&s->m, e);
        }
        s->m.kd = NULL;
        if (rc) return rc;
        acc += loss;
    }
    cad_model_set_qat(&s->m, 0, e); /* switching off cannot fail */
    /* backward accumulates gradients of each micro-batch's mean loss; grad_scale = 1/accum */
    if (s->accum > 1 && !bucketed) s->be->scale(s->be, s->m.n_param_floats, grad_scale, s->m.grad_mem);
    *train_loss = acc / (float)s->accum;
    if (s->world > 1) {
        /* DDP's average: one flat all-reduce of the whole gradient arena (or, bucketed, the
         * buckets already reduced above), then the loss the log shows is the mean over ranks
         * too (train_gpt.py logs rank 0's own) */
        int rc = bucketed ? CAD_OK : cad_coll_allreduce_mean(s->coll, s->m.grad_mem, s->m.n_param_floats, e);
        double l = *train_loss;
        if (!rc) rc = cad_coll_allreduce_sum_f64(s->coll, &l, 1, e);
        if (rc) return rc;
        *train_loss = (float)(l / s->world);
    }
    return CAD_OK;
}

static void fmt_mib(char *b, size_t cap, double bytes) { snprintf(b, cap, "%.1fMiB", bytes / 1048576.0); }

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

/* ---- cad_train_run: one run, phase by phase ------------------------------------------------ */

/* Everything a run carries from one phase to the next. */
typedef struct train_run {
    session s;
    char ckpt_path[RUN_PATH_MAX];
    int resuming;              /* resume=1 and run_dir/checkpoint.bin exists */
    long code_bytes;           /* counted: raw_code_bytes, or the packed file with code_compress */
    long raw_code_bytes;
    int n_code_files;
    long step;                 /* optimizer steps done */
    double training_time_ms;   /* train_gpt.py's train_time: without validation and checkpoints */
    long stop_after_step;      /* the wallclock cap's last step; -1 until the cap is reached */
    double prequant_loss, prequant_bpb;
    double exit_depth;         /* early exit: mean depth of the score's evaluation (NaN: none) */
    double max_wallclock_ms;   /* -1: no cap */
    double t0;                 /* start of the current timed stretch of training */
    double last_log_ms;        /* train time at the last progress line */
    long last_log_step;
    cad_eval_spec es;
    cad_int8_stats qs;         /* the artifact written by train_export */
    cad_eval_result score;     /* the run's score: round trip, else sliding window, else TTT */
} train_run;

/* Write c as run_dir/<name> (config.yaml) and check that it reached the disk. */
static int write_config_yaml(train_run *r, cad_err *e) {
    char path[RUN_PATH_MAX];
    path_join(path, sizeof path, r->s.run_dir, "config.yaml");
    FILE *f = fopen(path, "w");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot create: %s", path, strerror(errno));
    cad_config_write_yaml(r->s.c, f);
    int bad = ferror(f);
    if (fclose(f) || bad) return cad_fail(e, CAD_EIO, "%s: write failed", path);
    return CAD_OK;
}

/* code_files.txt lists what code_bytes counted: informative, so a failure to write it is not
 * a failed run (the byte count is in the log and result.json either way). */
static void write_code_listing(train_run *r, cad_err *e) {
    char path[RUN_PATH_MAX];
    path_join(path, sizeof path, r->s.run_dir, "code_files.txt");
    FILE *f = fopen(path, "w");
    if (!f) return;
    long bytes; /* the count itself is train_open_run_dir's (packed with code_compress) */
    int n_files;
    cad_code_bytes(r->s.c->code_files, &bytes, &n_files, f, e);
    if (fclose(f)) unlink(path); /* a truncated listing would mislead more than none */
}

static FILE *open_in_run_dir(train_run *r, const char *name, const char *mode) {
    char path[RUN_PATH_MAX];
    path_join(path, sizeof path, r->s.run_dir, name);
    return fopen(path, mode);
}

/* Name the run, check what can fail before any work (run_dir length, code_files, init_from),
 * then create the run dir with config.yaml, code_files.txt, log.txt and metrics.jsonl. */
static int train_open_run_dir(train_run *r, cad_err *e) {
    session *s = &r->s;
    cad_config *c = s->c;
    if (!c->run_id[0]) {
        char id[UUID_TEXT_MAX];
        make_uuid4(id, sizeof id);
        int rc = cad_coll_broadcast(s->coll, id, sizeof id, 0, e); /* every rank names the same run */
        if (rc) return rc;
        char *dup = strdup(id);
        if (!dup) return cad_fail(e, CAD_ENOMEM, "out of memory");
        free(c->run_id);
        c->run_id = dup;
    }
    if (strlen(c->run_dir) >= sizeof s->run_dir - 1 || strlen(c->run_id) > RUN_ID_MAX)
        return cad_fail(e, CAD_ECONFIG, "run_dir / run_id too long (limit %d / %d characters)", RUN_DIR_MAX - 24,
                        RUN_ID_MAX);
    if (c->run_dir[0]) memcpy(s->run_dir, c->run_dir, strlen(c->run_dir) + 1);
    else path_join(s->run_dir, sizeof s->run_dir, "runs", c->run_id);
    int rc = cad_code_bytes(c->code_files, &r->code_bytes, &r->n_code_files, NULL, e);
    if (rc) return rc;
    r->raw_code_bytes = r->code_bytes;
    if (strcmp(c->code_compress, "none")) { /* the artifact counts what ships: the packed file */
        char *packed;
        size_t packed_len;
        if ((rc = cad_code_pack(c->code_files, c->code_compress, &packed, &packed_len, e))) return rc;
        free(packed);
        r->code_bytes = (long)packed_len;
    }
    if (c->init_from[0] && access(c->init_from, R_OK))
        return cad_fail(e, CAD_EIO, "init_from '%s': %s", c->init_from, strerror(errno));
    path_join(r->ckpt_path, sizeof r->ckpt_path, s->run_dir, "checkpoint.bin");
    r->resuming = c->resume && access(r->ckpt_path, R_OK) == 0;
    if (s->rank != 0) { /* rank 0's view of the checkpoint decides; only rank 0 writes files */
        int32_t resuming = 0;
        rc = cad_coll_broadcast(s->coll, &resuming, sizeof resuming, 0, e);
        r->resuming = resuming;
        return rc;
    }
    int32_t resuming = r->resuming;
    if ((rc = cad_coll_broadcast(s->coll, &resuming, sizeof resuming, 0, e))) return rc;
    if ((rc = cad_mkdir_p(s->run_dir, e))) return rc;
    if ((rc = write_config_yaml(r, e))) return rc;
    write_code_listing(r, e);
    s->log = open_in_run_dir(r, "log.txt", r->resuming ? "a" : "w");
    s->metrics = open_in_run_dir(r, "metrics.jsonl", r->resuming ? "a" : "w");
    if (!s->log || !s->metrics)
        return cad_fail(e, CAD_EIO, "%s: cannot create log files: %s", s->run_dir, strerror(errno));
    char result[RUN_PATH_MAX];
    path_join(result, sizeof result, s->run_dir, "result.json");
    unlink(result); /* a stale result must not outlive a failed rerun */
    return CAD_OK;
}

/* train_gpt.py's header lines, then caddie's own (backend, memory plan, code accounting). */
static void train_print_header(train_run *r) {
    session *s = &r->s;
    const cad_config *c = s->c;
    char real[PATH_MAX];
    const char *dataset = realpath(c->data_path, real) ? basename(real) : c->data_path;
    char **train_files = NULL;
    int n_train_files = 0;
    cad_err ignored; /* a missing train split is reported by the loader, right after this */
    if (cad_shard_glob(s->train_pattern, &train_files, &n_train_files, &ignored) == CAD_OK)
        cad_shard_glob_free(train_files, n_train_files);
    log0(s, "val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=%s", c->tokenizer_path);
    log0(s, "train_loader:dataset:%s train_shards:%d", dataset, n_train_files);
    log0(s, "val_loader:shards pattern=%s tokens:%ld", s->val_pattern, s->n_val - 1);
    size_t n_params = 0;
    for (int i = 0; i < s->m.n_params; i++) n_params += (size_t)s->m.params[i].numel;
    log0(s, "model_params:%zu", n_params);
    log0(s, "world_size:%d grad_accum_steps:%d", s->world, s->accum);
    log0(s, "backend:%s threads:%d matmul_precision:%s", s->be->name, omp_get_max_threads(), c->matmul_precision);
    log0(s, "attention_mode:gqa num_heads:%ld num_kv_heads:%ld", c->num_heads, c->num_kv_heads);
    if (c->eval_seq_len > 0) log0(s, "eval_seq_len:%ld train_seq_len:%ld", c->eval_seq_len, c->train_seq_len);
    if (c->recur_loops > 1)
        log0(s, "recurrence: blocks %s x%ld shared, %d virtual layers (%d encoder, %d skips), from %.0f%% of training",
             c->recur_layers, c->recur_loops, s->m.n_virtual_max, s->m.n_virtual_max / 2, s->m.n_virtual_max / 2,
             100.0 * c->recur_start_frac);
    if (c->seq_len_schedule[0]) log0(s, "seq_len_schedule:%s (tokens per step stay %ld)", c->seq_len_schedule, c->train_batch_tokens);
    if (c->eval_recur_loops > 0)
        log0(s, "eval_recur_loops:%ld (training: %ld) virtual_layers_at_eval:%d", c->eval_recur_loops, c->recur_loops,
             cad_model_virtual_layers(&(cad_model_config){.num_layers = (int)c->num_layers, .recur_first = s->m.cfg.recur_first,
                                                          .recur_last = s->m.cfg.recur_last, .recur_loops = (int)c->eval_recur_loops}));
    char a[PY_FLOAT_MAX], b[PY_FLOAT_MAX], cc[PY_FLOAT_MAX], d[PY_FLOAT_MAX];
    py_float(a, sizeof a, c->tie_embeddings ? c->tied_embed_lr : c->embed_lr);
    py_float(b, sizeof b, c->tie_embeddings ? 0.0 : c->head_lr);
    py_float(cc, sizeof cc, c->matrix_lr);
    py_float(d, sizeof d, c->scalar_lr);
    log0(s, "tie_embeddings:%s embed_lr:%s head_lr:%s matrix_lr:%s scalar_lr:%s", c->tie_embeddings ? "True" : "False",
         a, b, cc, d);
    log0(s, "train_batch_tokens:%ld train_seq_len:%ld iterations:%ld warmup_steps:%ld max_wallclock_seconds:%.3f",
         c->train_batch_tokens, c->train_seq_len, c->iterations, c->warmup_steps, c->max_wallclock_seconds);
    log0(s, "seed:%ld", c->seed);
    size_t pb = s->m.n_param_floats * sizeof(float);
    fmt_mib(a, sizeof a, (double)pb);
    fmt_mib(b, sizeof b, (double)pb);
    fmt_mib(cc, sizeof cc, (double)cad_optim_bytes(&s->o));
    fmt_mib(d, sizeof d, (double)s->m.act_bytes);
    log0(s, "memory_plan: params:%s grads:%s optimizer:%s activations:%s total:%.1fMiB", a, b, cc, d,
         (2.0 * (double)pb + (double)cad_optim_bytes(&s->o) + (double)s->m.act_bytes) / 1048576.0);
    log0(s, "code_files:%d code_bytes:%ld", r->n_code_files, r->code_bytes);
    if (strcmp(c->code_compress, "none"))
        log0(s, "code_compress:%s raw_code_bytes:%ld code_bytes:%ld", c->code_compress, r->raw_code_bytes, r->code_bytes);
}

/* resume=1 with a checkpoint: weights, optimizer state, counters and the stream position. */
static int train_resume(train_run *r, cad_err *e) {
    session *s = &r->s;
    cad_checkpoint_meta want, got;
    ckpt_meta_fill(s, &want);
    int rc = cad_checkpoint_load(r->ckpt_path, &want, &got, s->be, s->m.param_mem, s->o.state, e);
    if (rc) {
        /* resume: 1 never starts over by itself (that would silently discard the steps the
         * checkpoint stood for and put a from-scratch curve under the same run): the run
         * fails, and starting over is the user's explicit move of the file */
        char why[CAD_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return cad_fail(e, rc,
                        "resume: %s; the run is not started over by itself: to start it from "
                        "step 0, move the checkpoint aside ('mv %s %s.bad') and run again",
                        why, r->ckpt_path, r->ckpt_path);
    }
    r->step = (long)got.step;
    r->training_time_ms = got.training_time_ms;
    s->o.adam_step = (long)got.adam_step;
    r->stop_after_step = got.stop_after_step;
    r->prequant_loss = got.prequant_val_loss;
    r->prequant_bpb = got.prequant_val_bpb;
    cad_stream_pos pos = {got.stream_file_idx, (long)got.stream_pos};
    if ((rc = cad_token_stream_seek(&s->L.stream, pos, e))) return rc;
    log0(s, "resume:step:%ld/%ld train_time:%.0fms from %s", r->step, s->c->iterations, r->training_time_ms,
         r->ckpt_path);
    return CAD_OK;
}

/* The train loader from the stream's start, with the length curriculum when one is set (every
 * rank reads the same shared chunk, so the order is the same on every rank). */
static int train_loader_open(session *s, cad_err *e) {
    const cad_config *c = s->c;
    int rc = cad_train_loader_open(&s->L, s->train_pattern, (int)c->vocab_size, s->rank, s->world, e);
    if (rc) return rc;
    s->have_loader = 1;
    if (!strcmp(c->curriculum, "length"))
        rc = cad_token_stream_set_curriculum(&s->L.stream, c->curriculum_window, CAD_BOS_ID, e);
    return rc;
}

/* train_gpt.py's warmup: warmup_steps real steps prime the kernels, then weights, optimizer
 * and loader are restored, so the curve equals a run without warmup. */
static int train_warmup(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    params_to_host(s);
    for (long ws = 0; ws < c->warmup_steps; ws++) {
        float loss;
        int rc = train_micro_steps(s, &loss, e);
        if (rc) return rc;
        /* the groups' initial lr and momentum */
        if ((rc = cad_optim_step_dp(&s->o, 1.0, c->muon_momentum, s->coll, e))) return rc;
        cad_model_zero_grad(&s->m);
        if (c->warmup_steps <= 20 || (ws + 1) % 10 == 0 || ws + 1 == c->warmup_steps)
            log0(s, "warmup_step:%ld/%ld", ws + 1, c->warmup_steps);
    }
    params_from_host(s);
    cad_optim_reset(&s->o);
    cad_model_zero_grad(&s->m);
    cad_train_loader_close(&s->L);
    s->have_loader = 0;
    return train_loader_open(s, e);
}

/* A validation pass inside the loop; its time is not train time. */
static int train_validate(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    r->training_time_ms += now_ms() - r->t0;
    cad_eval_result er;
    int rc = eval_val_dp(s, &r->es, &er, e);
    if (rc) return rc;
    log0(s, "step:%ld/%ld val_loss:%.4f val_bpb:%.4f train_time:%.0fms step_avg:%.2fms", r->step, c->iterations,
         er.val_loss, er.val_bpb, r->training_time_ms, r->training_time_ms / (double)(r->step > 1 ? r->step : 1));
    journal(s, r->step, "val_loss", er.val_loss);
    journal(s, r->step, "val_bpb", er.val_bpb);
    if (!isnan(s->exit_depth)) journal(s, r->step, "exit_mean_depth", s->exit_depth);
    r->prequant_loss = er.val_loss;
    r->prequant_bpb = er.val_bpb;
    r->t0 = now_ms();
    return CAD_OK;
}

/* The step's log line, the progress line (tokens/s, ETA) and their journal entries. */
static void train_log_step(train_run *r, float train_loss, double scale, double approx_ms) {
    session *s = &r->s;
    const cad_config *c = s->c;
    long step = r->step, steps = step - r->last_log_step;
    log0(s, "step:%ld/%ld train_loss:%.4f train_time:%.0fms step_avg:%.2fms", step, c->iterations, (double)train_loss,
         approx_ms, approx_ms / (double)step);
    double dt = approx_ms - r->last_log_ms;
    double tps = dt > 0 ? (double)steps * (double)c->train_batch_tokens / (dt / 1000.0) : 0;
    double step_ms = steps > 0 ? dt / (double)steps : 0;
    double eta_s = (double)(c->iterations - step) * (approx_ms / (double)step) / 1000.0;
    double left_s = (r->max_wallclock_ms - approx_ms) / 1000.0;
    if (r->max_wallclock_ms > 0 && left_s < eta_s) eta_s = left_s > 0 ? left_s : 0;
    if (s->progress) {
        fprintf(s->progress, "progress step:%ld/%ld tokens_per_s:%.0f step_ms:%.1f lr_mul:%.4f eta:%.0fs\n", step,
                c->iterations, tps, step_ms, scale, eta_s);
        fflush(s->progress);
    }
    journal(s, step, "train_loss", (double)train_loss);
    if (s->have_kd) journal(s, step, "distill_kl", s->kd.last_kl);
    journal(s, step, "lr_mul", scale);
    journal(s, step, "step_ms", step_ms);
    journal(s, step, "tokens_per_s", tps);
    r->last_log_ms = approx_ms;
    r->last_log_step = step;
}

/* One optimizer step: schedule, delayed recurrence, gradients, clip, update, log lines, and
 * whether the wallclock cap makes this the last step. */
static int train_step(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    double elapsed_ms = r->training_time_ms + (now_ms() - r->t0);
    /* under a wallclock cap the schedule reads the clock: rank 0's, so every rank takes the same lr */
    int rc0 = r->max_wallclock_ms > 0 ? cad_coll_broadcast(s->coll, &elapsed_ms, sizeof elapsed_ms, 0, e) : CAD_OK;
    if (rc0) return rc0;
    double scale = cad_lr_mul(c, r->step, elapsed_ms);
    double frac = cad_train_frac(c, r->step, elapsed_ms);
    if (c->ema_decay > 0 && c->ema_start_frac > 0) { /* the average tracks the weights until then */
        int active = frac >= c->ema_start_frac;
        if (active && s->o.ema_inactive) log0(s, "ema:start step:%ld frac:%.3f", r->step, frac);
        cad_optim_set_ema_active(&s->o, active);
    }
    int T = (int)cad_config_train_seq_len_at(c, frac); /* progressive context: the rows reshape, the stream does not */
    if (T != s->seq_T) {
        s->seq_T = T;
        log0(s, "seq_len:%d step:%ld frac:%.3f batch_seqs:%ld", T, r->step, frac, s->local_tokens / T);
    }
    if (c->recur_loops > 1 && !s->m.recur_on) { /* the records' delayed start of the loops */
        if (frac >= c->recur_start_frac) {
            cad_model_set_recurrence(&s->m, 1);
            log0(s, "recurrence:on step:%ld frac:%.3f virtual_layers:%d", r->step, frac, s->m.n_virtual);
        }
    }
    if (cad_config_qat_bits(c) > 0 && !s->qat_live && c->qat_start_frac < 1) { /* the records' late QAT */
        double frac = r->max_wallclock_ms > 0 ? elapsed_ms / r->max_wallclock_ms : (double)r->step / (double)c->iterations;
        if (frac >= c->qat_start_frac) {
            s->qat_live = 1;
            log0(s, "qat:on step:%ld frac:%.3f bits:%s", r->step, frac, c->qat_bits);
        }
    }
    float train_loss;
    int rc = train_micro_steps(s, &train_loss, e);
    if (rc) return rc;
    if (!isfinite(train_loss))
        return cad_fail(e, CAD_ENUMERIC, "train_loss is %f at step %ld (diverged)", (double)train_loss, r->step + 1);
    double momentum = cad_muon_momentum_at(c, r->step);
    if (c->grad_clip_norm > 0) cad_optim_clip_grad_norm(&s->o, c->grad_clip_norm);
    if ((rc = cad_optim_step_dp(&s->o, scale, momentum, s->coll, e))) return rc;
    cad_model_zero_grad(&s->m);
    r->step++;
    double approx_ms = r->training_time_ms + (now_ms() - r->t0);
    /* rank 0's clock decides the cap for all (train_gpt.py all-reduces its reached_cap flag) */
    if (r->max_wallclock_ms > 0 && (rc = cad_coll_broadcast(s->coll, &approx_ms, sizeof approx_ms, 0, e))) return rc;
    if (c->train_log_every > 0 &&
        (r->step <= 10 || r->step % c->train_log_every == 0 || r->stop_after_step >= 0))
        train_log_step(r, train_loss, scale, approx_ms);
    if (r->stop_after_step < 0 && r->max_wallclock_ms > 0 && approx_ms >= r->max_wallclock_ms)
        r->stop_after_step = r->step;
    return CAD_OK;
}

/* checkpoint.bin for resume=1; its time is not train time. */
static int train_checkpoint(train_run *r, cad_err *e) {
    session *s = &r->s;
    if (s->rank != 0) return CAD_OK; /* every rank holds the same state; rank 0 saves it */
    double tc = now_ms();
    cad_checkpoint_meta meta;
    ckpt_meta_fill(s, &meta);
    meta.step = r->step;
    meta.training_time_ms = r->training_time_ms + (tc - r->t0);
    meta.adam_step = s->o.adam_step;
    cad_stream_pos pos = cad_token_stream_tell(&s->L.stream);
    meta.stream_file_idx = pos.file_idx;
    meta.stream_pos = pos.pos;
    meta.stop_after_step = (int32_t)r->stop_after_step;
    meta.prequant_val_loss = r->prequant_loss;
    meta.prequant_val_bpb = r->prequant_bpb;
    int rc = cad_checkpoint_save(r->ckpt_path, &meta, s->be, s->m.param_mem, s->o.state, e);
    r->t0 += now_ms() - tc;
    return rc;
}

/* train_gpt.py's main loop, including its timing rules: validate at val_loss_every and on the
 * last step (iterations, or the step the wallclock cap chose). */
static int train_loop(train_run *r, cad_err *e) {
    const cad_config *c = r->s.c;
    r->max_wallclock_ms = c->max_wallclock_seconds > 0 ? 1000.0 * c->max_wallclock_seconds : -1;
    r->t0 = now_ms();
    r->last_log_ms = r->training_time_ms;
    r->last_log_step = r->step;
    for (;;) {
        int last_step = r->step == c->iterations || (r->stop_after_step >= 0 && r->step >= r->stop_after_step);
        int rc;
        if ((last_step || (c->val_loss_every > 0 && r->step % c->val_loss_every == 0)) && (rc = train_validate(r, e)))
            return rc;
        if (last_step) {
            if (r->stop_after_step >= 0 && r->step < c->iterations)
                log0(&r->s, "stopping_early: wallclock_cap train_time:%.0fms step:%ld/%ld", r->training_time_ms, r->step,
                     c->iterations);
            return CAD_OK;
        }
        if ((rc = train_step(r, e))) return rc;
        if (c->checkpoint_every > 0 && r->step % c->checkpoint_every == 0 && r->step < c->iterations &&
            (rc = train_checkpoint(r, e)))
            return rc;
    }
}

/* After the loop: the EMA weights replace the trained ones (the records evaluate and quantize
 * the average), then train_gpt.py's peak memory line. */
static int train_finish_weights(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    if (c->ema_decay > 0) {
        cad_optim_load_ema(&s->o);
        cad_eval_result er;
        int rc = eval_val_dp(s, &r->es, &er, e);
        if (rc) return rc;
        log0(s, "ema:applied decay:%g val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", c->ema_decay, er.val_loss,
             er.val_bpb, er.eval_ms);
        journal(s, r->step, "ema_val_loss", er.val_loss);
        journal(s, r->step, "ema_val_bpb", er.val_bpb);
        r->prequant_loss = er.val_loss;
        r->prequant_bpb = er.val_bpb;
    }
    double peak_mib =
        floor((2.0 * (double)s->m.n_param_floats * 4 + (double)cad_optim_bytes(&s->o) + (double)s->m.act_bytes) /
              1048576.0);
    log0(s, "peak memory allocated: %.0f MiB reserved: %.0f MiB", peak_mib, peak_mib);
    return CAD_OK;
}

/* "quant: ..." names the quantizer, only when it is not train_gpt.py's (its log has no such
 * line). */
static void log_quant_rule(session *s, const cad_quant_opts *qo) {
    if (qo->matrix_bits == 8 && qo->embed_bits == 8 && !qo->clip_search && qo->sdclip_k <= 0 && qo->sdclip_embed_k <= 0)
        return;
    char cm[QUANT_RULE_MAX], ce[QUANT_RULE_MAX];
    const char *rule = qo->clip_search ? "gptq-lite" : "p99.99984";
    if (qo->sdclip_k > 0) snprintf(cm, sizeof cm, "sdclip_k=%g", qo->sdclip_k);
    else snprintf(cm, sizeof cm, "%s", rule);
    if (qo->sdclip_embed_k > 0) snprintf(ce, sizeof ce, "sdclip_k=%g", qo->sdclip_embed_k);
    else snprintf(ce, sizeof ce, "%s", rule);
    char mb[16];
    if (qo->matrix_bits == CAD_QUANT_TERNARY) snprintf(mb, sizeof mb, "ternary");
    else snprintf(mb, sizeof mb, "int%d", qo->matrix_bits);
    if (qo->matrix_bits == CAD_QUANT_TERNARY) snprintf(cm, sizeof cm, "absmean");
    log0(s, "quant: block_matrices:%s clip:%s embedding:int%d clip:%s", mb, cm, qo->embed_bits, ce);
}

/* "quant_ext: ..." records the per-tensor refinements (quant_ext.h), only when one is set. */
static void log_quant_ext(session *s, const cad_config *c) {
    if (!c->quant_bits_overrides[0] && c->awq_salient_frac <= 0 && c->lqer_rank <= 0) return;
    log0(s, "quant_ext: bits_overrides:%s awq_salient_frac:%g lqer_rank:%ld lqer_tensors:%s",
         c->quant_bits_overrides[0] ? c->quant_bits_overrides : "none", c->awq_salient_frac, c->lqer_rank,
         c->lqer_tensors[0] ? c->lqer_tensors : "all");
}

/* gptq_calib: self_generated (the records' "AR self-generated" calibration: 64 x 2048 tokens at
 * temperature 0.8): sequences sampled from the trained model itself, so the calibration touches
 * no data at all. Each of n_seq sequences of T tokens starts with BOS (every document does) and
 * grows one token per forward over the prefix (no KV cache: T forwards of rows B x t, the
 * micro-batch's B sequences at a time), the next token drawn from softmax(z / SELF_GEN_TEMP) of the
 * last position's softcapped logits with a splitmix64 stream seeded by `seed`: deterministic for a
 * config and its weights. */
#define SELF_GEN_TEMP 0.8
static uint64_t splitmix64(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int calib_self_generate(session *s, int32_t *out, int n_seq, int T, cad_err *e) {
    const cad_config *c = s->c;
    int V = (int)c->vocab_size, Bmax = (int)(s->local_tokens / T), rc = CAD_OK;
    float *row = malloc((size_t)V * sizeof *row);
    double *w = malloc((size_t)V * sizeof *w);
    if (!row || !w) rc = cad_fail(e, CAD_ENOMEM, "gptq: out of memory for sampling");
    uint64_t rng = (uint64_t)c->seed ^ 0x5E1F6E4ull; /* its own stream, not the weight init's */
    for (int s0 = 0; !rc && s0 < n_seq; s0 += Bmax) {
        int B = n_seq - s0 < Bmax ? n_seq - s0 : Bmax;
        int32_t *seq = out + (size_t)s0 * T;
        for (int b = 0; b < B; b++) seq[(size_t)b * T] = CAD_BOS_ID;
        for (int t = 1; !rc && t < T; t++) {
            for (int b = 0; b < B; b++) memcpy(s->x + (size_t)b * t, seq + (size_t)b * T, (size_t)t * sizeof *s->x);
            rc = cad_model_forward(&s->m, s->x, NULL, B, t, NULL, e);
            for (int b = 0; !rc && b < B; b++) {
                s->be->copy_to_host(s->be, row, s->m.logits + ((size_t)b * t + (size_t)(t - 1)) * V, (size_t)V * sizeof *row);
                float mx = row[0];
                for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
                double sum = 0.0;
                for (int v = 0; v < V; v++) sum += w[v] = exp(((double)row[v] - mx) / SELF_GEN_TEMP);
                double u = (double)(splitmix64(&rng) >> 11) * (1.0 / 9007199254740992.0) * sum, acc = 0.0;
                int pick = V - 1;
                for (int v = 0; v < V; v++)
                    if ((acc += w[v]) > u) { pick = v; break; }
                seq[(size_t)b * T + t] = pick;
            }
        }
    }
    free(row);
    free(w);
    return rc;
}

/* quant_method: gptq. The Hessians of every per-row block matrix's input from
 * gptq_calib_batches forwards over the next batches of the train stream (the records calibrate
 * on train batches inside the time budget; validation data would be illegal) or, with gptq_calib:
 * self_generated, over sequences the model samples itself (calib_self_generate), copied to the host:
 * hess[i] for named[i] (NULL elsewhere), all in *store. */
static int gptq_calibrate(train_run *r, const float ***hess_out, float **store_out, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    double t0 = now_ms();
    int T = s->seq_T, B = (int)(s->local_tokens / T), rc = CAD_OK;
    int self_gen = !strcmp(c->gptq_calib, "self_generated");
    int32_t *gen = NULL;
    size_t bt = (size_t)B * T;
    if (self_gen) {
        gen = malloc((size_t)c->gptq_calib_batches * bt * sizeof *gen);
        if (!gen) return cad_fail(e, CAD_ENOMEM, "gptq: out of memory for %ld self-generated batches", c->gptq_calib_batches);
        double tg = now_ms();
        rc = calib_self_generate(s, gen, (int)c->gptq_calib_batches * B, T, e);
        if (!rc)
            log0(s, "gptq: calib:self_generated seqs:%ld tokens:%ld temperature:%g seed:%ld gen_time:%.0fms",
                 c->gptq_calib_batches * B, c->gptq_calib_batches * (long)bt, SELF_GEN_TEMP, c->seed, now_ms() - tg);
    }
    if (!rc) rc = cad_model_calib_begin(&s->m, e);
    for (long k = 0; !rc && k < c->gptq_calib_batches; k++) {
        if (self_gen) memcpy(s->x, gen + (size_t)k * bt, bt * sizeof *gen);
        else rc = cad_train_loader_next(&s->L, c->train_batch_tokens, T, s->accum, s->x, s->y, e);
        if (!rc) rc = cad_model_forward(&s->m, s->x, NULL, B, T, NULL, e);
    }
    cad_model_calib_end(&s->m);
    free(gen);
    if (rc) return rc;
    size_t total = 0;
    int n = 0, dim;
    for (int i = 0; i < s->n_named; i++)
        if (cad_model_qat_quantised(&s->m, i) && cad_model_calib_hessian(&s->m, i, &dim)) total += (size_t)dim * dim, n++;
    const float **hess = calloc((size_t)(s->n_named > 0 ? s->n_named : 1), sizeof *hess);
    float *store = malloc((total ? total : 1) * sizeof *store);
    if (!hess || !store) { free(hess), free(store); return cad_fail(e, CAD_ENOMEM, "gptq: out of memory for %zu floats of Hessians", total); }
    size_t off = 0;
    for (int i = 0; i < s->n_named; i++) {
        const float *h = cad_model_qat_quantised(&s->m, i) ? cad_model_calib_hessian(&s->m, i, &dim) : NULL;
        if (!h) continue;
        s->be->copy_to_host(s->be, store + off, h, (size_t)dim * dim * sizeof(float));
        hess[i] = store + off;
        off += (size_t)dim * dim;
    }
    log0(s, "gptq: calib_batches:%ld tokens:%ld matrices:%d damp:%g act_order:%d calib_time:%.0fms", c->gptq_calib_batches,
         c->gptq_calib_batches * s->local_tokens, n, c->gptq_damp, c->gptq_act_order, now_ms() - t0);
    *hess_out = hess;
    *store_out = store;
    return CAD_OK;
}

/* Serialization: the optional raw save_weights, then the quantized, compressed artifact and
 * the submission size it makes with the code. */
static int train_export(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    params_to_host(s);
    /* train_gpt.py writes the raw model (final_model.pt) first; caddie's raw weights are the
     * optional save_weights .safetensors */
    struct stat wst;
    int have_w = 0, rc;
    if (c->save_weights[0]) {
        if ((rc = cad_safetensors_write(c->save_weights, s->named, s->n_named, e))) return rc;
        have_w = stat(c->save_weights, &wst) == 0;
    }
    if (have_w) log0(s, "Serialized model: %lld bytes", (long long)wst.st_size);
    log0(s, "Code size: %ld bytes", r->code_bytes);
    if (have_w) log0(s, "Total submission size: %lld bytes", (long long)wst.st_size + r->code_bytes);
    char art[RUN_PATH_MAX];
    path_join(art, sizeof art, s->run_dir, "final_model.int8.ptz");
    cad_quant_opts qo = quant_opts(c);
    log_quant_rule(s, &qo);
    const float **hess = NULL;
    float *hess_store = NULL;
    int gptq = !strcmp(c->quant_method, "gptq");
    /* AWQ-lite reads the same calibration (diag of X^T X) without GPTQ's codes */
    if ((gptq || c->awq_salient_frac > 0) && (rc = gptq_calibrate(r, &hess, &hess_store, e))) return rc;
    qo.hessians = gptq ? hess : NULL;
    cad_quant_ext_opts qx = quant_ext_opts(c);
    qx.calib = hess;
    log_quant_ext(s, c);
    double tq = now_ms();
    rc = cad_int8_export_ext(art, s->named, s->n_named, &qo, &qx, &r->qs, e);
    int used_gptq = gptq && hess != NULL;
    free(hess), free(hess_store);
    if (rc) return rc;
    if (used_gptq) log0(s, "gptq: quantized in %.0fms", now_ms() - tq);
    const cad_int8_stats *qs = &r->qs;
    const char *zname = cad_compressor_name(cad_compressor_parse(c->artifact_compressor));
    log0(s, "Serialized model int8+%s: %zu bytes (payload:%zu raw:%zu payload_ratio:%.2fx)", zname, qs->compressed_bytes,
         qs->int8_payload_bytes, qs->raw_bytes,
         (double)qs->baseline_tensor_bytes / (double)(qs->int8_payload_bytes ? qs->int8_payload_bytes : 1));
    log0(s, "Total submission size int8+%s: %ld bytes", zname, (long)qs->compressed_bytes + r->code_bytes);
    return CAD_OK;
}

/* The sliding-window evaluator (the records' scorer) replaces the round trip as the score. */
static int train_score_sliding(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    cad_eval_result sw;
    int rc = eval_sliding_dp(s, &r->es, (int)c->eval_stride, &sw, e);
    if (rc) return rc;
    log0(s, "final_sliding_window_eval stride:%ld val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", c->eval_stride,
         sw.val_loss, sw.val_bpb, sw.eval_ms);
    log0(s, "final_sliding_window_eval_exact stride:%ld val_loss:%.8f val_bpb:%.8f", c->eval_stride, sw.val_loss,
         sw.val_bpb);
    r->exit_depth = s->exit_depth;
    journal(s, r->step, "final_sliding_val_loss", sw.val_loss);
    journal(s, r->step, "final_sliding_val_bpb", sw.val_bpb);
    sw.eval_ms += r->score.eval_ms; /* the eval budget counts both passes */
    r->score = sw;
    return CAD_OK;
}

/* Score-first TTT on the round-tripped weights becomes the score; it changes the weights, so
 * it runs last. */
static int train_score_ttt(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    cad_eval_result tr;
    if (!strcmp(c->ttt_mode, "lora"))
        log0(s, "ttt:start mode:lora rank:%ld targets:%s chunk:%ld ttt_lr:%g ttt_epochs:%ld", c->ttt_lora_rank,
             c->ttt_lora_targets, c->ttt_lora_chunk, c->ttt_lr, c->ttt_epochs);
    else
        log0(s, "ttt:start stride:%d chunk_tokens:%ld ttt_lr:%g ttt_epochs:%ld ttt_batch_seqs:%ld", ttt_spec(c).stride,
             c->ttt_chunk_tokens, c->ttt_lr, c->ttt_epochs, c->ttt_batch_seqs);
    int loops = s->m.loops; /* TTT scores (and adapts) with eval_recur_loops passes too */
    if (c->eval_recur_loops > 0) cad_model_set_loops(&s->m, (int)c->eval_recur_loops);
    int rc = eval_ttt_mode(s, &r->es, &tr, 1, e);
    cad_model_set_loops(&s->m, loops);
    if (rc) return rc;
    log0(s, "quantized_ttt val_loss:%.8f val_bpb:%.8f eval_time:%.0fms", tr.val_loss, tr.val_bpb, tr.eval_ms);
    journal(s, r->step, "final_ttt_val_loss", tr.val_loss);
    journal(s, r->step, "final_ttt_val_bpb", tr.val_bpb);
    r->exit_depth = NAN; /* TTT scores every token at full depth */
    tr.eval_ms += r->score.eval_ms;
    r->score = tr;
    return CAD_OK;
}

/* The final score: load the artifact back (what a submission would run), evaluate it, then the
 * configured stronger evaluators. */
static int train_final_eval(train_run *r, cad_err *e) {
    session *s = &r->s;
    const cad_config *c = s->c;
    char art[RUN_PATH_MAX];
    path_join(art, sizeof art, s->run_dir, "final_model.int8.ptz");
    int rc = cad_int8_import(art, s->named, s->n_named, e);
    if (rc) return rc;
    params_from_host(s);
    cad_eval_result *er = &r->score;
    if ((rc = eval_val_dp(s, &r->es, er, e))) return rc;
    const char *zname = cad_compressor_name(cad_compressor_parse(c->artifact_compressor));
    log0(s, "final_int8_%s_roundtrip val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", zname, er->val_loss, er->val_bpb,
         er->eval_ms);
    log0(s, "final_int8_%s_roundtrip_exact val_loss:%.8f val_bpb:%.8f", zname, er->val_loss, er->val_bpb);
    if (er->partial)
        log0(s, "partial_eval: val_max_tokens:%ld windows:%ld of %ld (result marked partial)", c->val_max_tokens,
             er->n_seqs, (s->n_val - 1) / cad_config_eval_seq_len(c));
    journal(s, r->step, "final_val_loss", er->val_loss);
    journal(s, r->step, "final_val_bpb", er->val_bpb);
    if (!isnan(s->exit_depth)) journal(s, r->step, "final_exit_mean_depth", s->exit_depth);
    r->exit_depth = s->exit_depth; /* of the score's evaluation; the sliding pass may replace it */
    if (c->eval_stride > 0 && (rc = train_score_sliding(r, e))) return rc;
    if (c->ttt_lr > 0 && (rc = train_score_ttt(r, e))) return rc;
    return CAD_OK;
}

/* result.json's fields, in the order readers have always seen them. */
typedef enum { RES_STR, RES_NUM, RES_INT, RES_MS } result_kind;
typedef struct {
    const char *key;
    result_kind kind;
    const char *str;  /* RES_STR */
    double num;       /* RES_NUM (%.17g, NaN as null), RES_MS (whole milliseconds) */
    long long i;      /* RES_INT */
} result_field;

static void write_result_fields(FILE *f, const result_field *fs, int n) {
    fputc('{', f);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        cad_json_write_string(f, fs[i].key);
        fputc(':', f);
        switch (fs[i].kind) {
        case RES_STR: cad_json_write_string(f, fs[i].str); break;
        case RES_NUM: cad_json_write_number(f, fs[i].num); break;
        case RES_INT: fprintf(f, "%lld", fs[i].i); break;
        case RES_MS: cad_json_write_number(f, round(fs[i].num)); break; /* never a bare inf/nan */
        }
    }
    fputs("}\n", f);
}

/* result.json marks the run done, so it appears whole or not at all: a temp file, fsync,
 * rename. */
static int train_write_result(train_run *r, cad_err *e) {
    const session *s = &r->s;
    const cad_config *c = s->c;
    const cad_eval_result *er = &r->score;
    const result_field fs[] = {
        {"run_id", RES_STR, c->run_id, 0, 0},
        {"val_loss", RES_NUM, NULL, er->val_loss, 0},
        {"val_bpb", RES_NUM, NULL, er->val_bpb, 0},
        {"prequant_val_loss", RES_NUM, NULL, r->prequant_loss, 0},
        {"prequant_val_bpb", RES_NUM, NULL, r->prequant_bpb, 0},
        {"artifact_bytes", RES_INT, NULL, 0, (long long)r->qs.compressed_bytes + r->code_bytes},
        {"model_bytes", RES_INT, NULL, 0, (long long)r->qs.compressed_bytes},
        {"code_bytes", RES_INT, NULL, 0, r->code_bytes},
        {"train_ms", RES_MS, NULL, r->training_time_ms, 0},
        {"eval_ms", RES_MS, NULL, er->eval_ms, 0},
        {"steps", RES_INT, NULL, 0, r->step},
        {"tokens", RES_INT, NULL, 0, (long long)r->step * c->train_batch_tokens},
        {"partial", RES_INT, NULL, 0, er->partial},
        {"engine_version", RES_STR, CADDIE_VERSION, 0, 0},
        {"git_commit", RES_STR, cad_build_commit, 0, 0},
        {"git_dirty", RES_INT, NULL, 0, cad_build_dirty},
        {"exit_mean_depth", RES_NUM, NULL, r->exit_depth, 0}, /* null without early exit at eval */
    };
    char path[RUN_PATH_MAX], tmp[RUN_PATH_MAX + 32];
    path_join(path, sizeof path, s->run_dir, "result.json");
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    write_result_fields(f, fs, (int)(sizeof fs / sizeof fs[0]));
    int bad = ferror(f);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) || bad) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: write failed", tmp); }
    if (rename(tmp, path)) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno)); }
    return CAD_OK;
}

int cad_train_run(cad_config *c, const cad_train_sink *sink, cad_err *e) {
    return cad_train_run_dp(c, sink, NULL, e);
}

int cad_train_run_dp(cad_config *c, const cad_train_sink *sink, cad_coll *coll, cad_err *e) {
    train_run *r = calloc(1, sizeof *r);
    if (!r) return cad_fail(e, CAD_ENOMEM, "out of memory");
    session *s = &r->s;
    s->c = c;
    s->coll = coll;
    s->rank = cad_coll_rank(coll);
    s->world = cad_coll_world(coll);
    s->out = sink && s->rank == 0 ? sink->log : NULL;
    s->progress = sink && s->rank == 0 ? sink->progress : NULL;
    s->t_wall0 = now_ms();
    r->stop_after_step = -1;
    r->prequant_loss = r->prequant_bpb = NAN;
    r->exit_depth = r->s.exit_depth = NAN;
    int rc = train_open_run_dir(r, e);
    if (!rc) {
        log0(s, "%s/log.txt", s->run_dir);
        rc = session_setup(s, c, e);
    }
    if (!rc && c->init_from[0]) rc = load_weights(s, c->init_from, e);
    if (!rc && c->distill_from[0]) rc = distill_setup(s, e);
    if (!rc) rc = optim_setup(s, e);
    if (!rc) {
        train_print_header(r);
        rc = train_loader_open(s, e);
    }
    if (!rc && c->recur_start_frac > 0) cad_model_set_recurrence(&s->m, 0); /* plain until the start fraction */
    if (!rc && r->resuming) rc = train_resume(r, e);
    else if (!rc && c->warmup_steps > 0) rc = train_warmup(r, e);
    r->es = eval_spec(s);
    if (!rc) rc = train_loop(r, e);
    if (!rc) rc = train_finish_weights(r, e);
    /* rank 0 writes the artifact; the others wait for it, then every rank scores its share of
     * the round trip */
    if (!rc && s->rank == 0) rc = train_export(r, e);
    if (!rc) rc = cad_coll_barrier(s->coll, e);
    if (!rc) rc = train_final_eval(r, e);
    if (!rc) rc = session_close_logs(s, e);
    if (!rc && s->rank == 0) rc = train_write_result(r, e);
    if (rc) cad_coll_abort(s->coll, e->msg); /* peers waiting on this rank fail now, naming why */
    session_free(s);
    free(r);
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
    if (!rc) eval_begin(s); /* early_exit_threshold applies to the plain score and the round trip */
    if (!rc) rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e);
    if (!rc) rc = eval_end(s, "val", e);
    if (!rc) {
        fprintf(out, "eval val_loss:%.8f val_bpb:%.8f tokens:%.0f bytes:%.0f partial:%d eval_time:%.0fms\n", er.val_loss,
                er.val_bpb, er.token_count, er.byte_count, er.partial, er.eval_ms);
        if (!isnan(s->exit_depth)) fprintf(out, "early_exit: mean_depth:%.4f of %d\n", s->exit_depth, s->m.n_virtual);
        fflush(out);
    }
    if (!rc && roundtrip && c->awq_salient_frac > 0)
        rc = cad_fail(e, CAD_ECONFIG, "awq_salient_frac=%g: the eval round trip has no calibration batches (AWQ-lite "
                                      "chooses its columns at the end of caddie train); expected awq_salient_frac=0",
                      c->awq_salient_frac);
    if (!rc && roundtrip && !strcmp(c->quant_method, "gptq"))
        rc = cad_fail(e, CAD_ECONFIG, "quant_method=gptq: the eval round trip has no calibration batches (GPTQ runs "
                                      "at the end of caddie train); expected quant_method=clip_search");
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
            cad_quant_ext_opts qx = quant_ext_opts(c);
            rc = cad_int8_export_ext(art, s->named, s->n_named, &qo, &qx, &qs, e);
            if (!rc) rc = cad_int8_import(art, s->named, s->n_named, e);
            unlink(art);
            rmdir(dir);
        }
        if (!rc) {
            params_from_host(s);
            eval_begin(s);
            rc = cad_eval_val(&s->m, s->val, s->n_val, &s->luts, &es, s->x, s->y, &er, e);
            if (!rc) rc = eval_end(s, "roundtrip", e);
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
        rc = eval_ttt_mode(s, &es, &er, 0, e);
        if (!rc)
            fprintf(out, "quantized_ttt val_loss:%.8f val_bpb:%.8f eval_time:%.0fms\n", er.val_loss, er.val_bpb,
                    er.eval_ms);
    }
    session_free(s);
    return rc;
}
