/*
 * bench.c — the train-step session, the timed loop, FLOPs/peak and the PyTorch side run of
 * bench.h.
 */
#include "engine/bench.h"
#include "engine/mamba.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- session ------------------------------------------------------------------------------ */

void cad_bench_session_close(cad_bench_session *s) {
    if (s->have_loader) cad_train_loader_close(&s->L);
    if (s->have_optim) cad_optim_free(&s->o);
    if (s->have_model) cad_model_free(&s->m);
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

int cad_bench_session_open(cad_bench_session *s, cad_config *c, const cad_backend *be, cad_err *e) {
    memset(s, 0, sizeof *s);
    s->c = c;
    s->be = be;
    s->accum = cad_config_grad_accum(c);
    long local = cad_config_local_tokens(c);
    s->T = (int)c->train_seq_len;
    if (local <= 0 || local % s->T)
        return cad_fail(e, CAD_ECONFIG, "train_batch_tokens=%ld does not split into %d micro-steps of whole %ld-token sequences",
                        c->train_batch_tokens, s->accum, c->train_seq_len);
    s->B = (int)(local / s->T);
    if (c->threads > 0) omp_set_num_threads((int)c->threads);
    be->set_threads(be, (int)c->threads);
    int prec = strcmp(c->matmul_precision, "bf16") == 0 ? CAD_PREC_BF16 : CAD_PREC_FP32;
    if (be->set_matmul_precision(be, prec))
        return cad_fail(e, CAD_ECONFIG, "matmul_precision=%s: not supported by backend %s", c->matmul_precision, be->name);
    cad_model_config mc = {
        .vocab_size = (int)c->vocab_size, .num_layers = (int)c->num_layers, .model_dim = (int)c->model_dim,
        .num_heads = (int)c->num_heads, .num_kv_heads = (int)c->num_kv_heads, .mlp_mult = (int)c->mlp_mult,
        .tie_embeddings = c->tie_embeddings, .rope_base = (float)c->rope_base,
        .logit_softcap = (float)c->logit_softcap, .qk_gain_init = (float)c->qk_gain_init,
        .tied_embed_init_std = (float)c->tied_embed_init_std, .max_batch_seqs = s->B, .max_seq_len = s->T,
        .recur_loops = (int)c->recur_loops, .mlp_leaky_slope = (float)c->mlp_leaky_slope,
        .xsa_last = (int)c->xsa_last_layers, .parallel_last = (int)c->parallel_residual_layers,
        .embed_dim = (int)c->embed_dim, .ln_scale = c->ln_scale, .bigram_buckets = (int)c->bigram_buckets,
        .bigram_dim = (int)c->bigram_dim, .smear_gate = c->smear_gate, .attn_gate = cad_config_attn_gate(c), .rope_dims = (int)c->rope_dims,
        .mlp_experts = (int)c->mlp_experts, .mlp_top_k = (int)c->mlp_top_k, .moe_aux_weight = (float)c->moe_aux_weight,
        .early_exit_weight = (float)c->early_exit_weight};
    mc.n_exits = cad_config_early_exits(c, mc.exit_depths, CAD_MAX_EARLY_EXITS); /* validated with the config */
    cad_config_recur_span(c, &mc.recur_first, &mc.recur_last);
    int rc_mamba = cad_mamba_model_config(c, &mc, e); /* block_type, mamba_* */
    if (rc_mamba) return rc_mamba;
    int rc = cad_model_config_check(&mc, e);
    if (!rc) rc = cad_model_init(&s->m, &mc, be, (uint64_t)c->seed, e);
    if (rc) return rc;
    s->have_model = 1;
    rc = cad_optim_init_model(&s->o, &s->m, c, e);
    if (rc) goto fail;
    s->have_optim = 1;
    char pattern[PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/fineweb_train_*.bin", c->data_path);
    rc = cad_train_loader_open(&s->L, pattern, (int)c->vocab_size, 0, 1, e);
    if (rc) goto fail;
    s->have_loader = 1;
    s->x = malloc((size_t)local * sizeof(int32_t));
    s->y = malloc((size_t)local * sizeof(int32_t));
    if (!s->x || !s->y) {
        rc = cad_fail(e, CAD_ENOMEM, "out of memory for a %ld-token batch", local);
        goto fail;
    }
    return CAD_OK;
fail:
    cad_bench_session_close(s);
    return rc;
}

int cad_bench_session_grads(cad_bench_session *s, float *loss, cad_err *e) {
    float acc = 0;
    cad_model_zero_grad(&s->m);
    for (int micro = 0; micro < s->accum; micro++) {
        int rc = cad_train_loader_next(&s->L, s->c->train_batch_tokens, s->T, s->accum, s->x, s->y, e);
        float l = 0;
        if (!rc) rc = cad_model_forward(&s->m, s->x, s->y, s->B, s->T, &l, e);
        if (!rc) rc = cad_model_backward(&s->m, e);
        if (rc) return rc;
        acc += l;
    }
    if (s->accum > 1) s->be->scale(s->be, s->m.n_param_floats, 1.0f / (float)s->accum, s->m.grad_mem);
    *loss = acc / (float)s->accum;
    return CAD_OK;
}

int cad_bench_session_step(cad_bench_session *s, float *loss, cad_err *e) {
    const cad_config *c = s->c;
    int rc = cad_bench_session_grads(s, loss, e);
    if (rc) return rc;
    if (!isfinite(*loss))
        return cad_fail(e, CAD_ENUMERIC, "train_loss is %f at step %ld (diverged)", (double)*loss, s->step + 1);
    if (c->grad_clip_norm > 0) cad_optim_clip_grad_norm(&s->o, c->grad_clip_norm);
    cad_optim_step(&s->o, cad_lr_mul(c, s->step, 0.0), cad_muon_momentum_at(c, s->step));
    cad_model_zero_grad(&s->m);
    s->be->sync(s->be);
    s->step++;
    return CAD_OK;
}

/* ---- benchmark ------------------------------------------------------------------------------ */

double cad_bench_model_flops(double n_params, int layers, int T, int C, double tokens) {
    return 6.0 * n_params * tokens + 6.0 * (double)layers * (double)T * (double)C * tokens;
}

double cad_bench_peak_tflops(const char *name) {
    if (name && (strstr(name, "H100") || strstr(name, "H200"))) return 989.0;
    return 0.0;
}

int cad_bench_run(cad_config *c, const cad_backend *be, cad_slot_timer *timer, const cad_bench_opts *o,
                  cad_bench_result *r, cad_err *e) {
    memset(r, 0, sizeof *r);
    if (o->steps < 1 || o->warmup < 0 || o->profile_steps < 0)
        return cad_fail(e, CAD_ECONFIG, "bench: steps must be >= 1 and warmup, profile steps >= 0");
    if (o->profile_steps > 0 && !timer) return cad_fail(e, CAD_ECONFIG, "bench: profiling needs a slot timer");
    cad_timed_backend *tb = NULL;
    const cad_backend *run_be = be;
    int rc;
    if (timer) {
        if ((rc = cad_timed_backend_create(be, timer, &tb, e))) return rc;
        run_be = cad_timed_backend_get(tb);
    }
    cad_bench_session s;
    if ((rc = cad_bench_session_open(&s, c, run_be, e))) goto out;
    r->tokens_per_step = c->train_batch_tokens;
    r->accum = s.accum, r->B = s.B, r->T = s.T;
    r->layers = cad_model_virtual_layers(&s.m.cfg);
    r->n_params = (long)s.m.n_param_floats;
    r->model_flops = cad_bench_model_flops((double)r->n_params, r->layers, s.T, (int)c->model_dim,
                                           (double)c->train_batch_tokens);
    float loss;
    for (long i = 0; i < o->warmup; i++)
        if ((rc = cad_bench_session_step(&s, &loss, e))) goto out_s;
    double total = 0;
    r->ms_min = INFINITY;
    for (long i = 0; i < o->steps; i++) {
        double t0 = now_ms();
        if ((rc = cad_bench_session_step(&s, &loss, e))) goto out_s;
        double dt = now_ms() - t0;
        total += dt;
        if (dt < r->ms_min) r->ms_min = dt;
        if (dt > r->ms_max) r->ms_max = dt;
        if (i == 0) r->first_loss = loss;
        r->last_loss = loss;
    }
    r->ms_mean = total / (double)o->steps;
    r->tokens_per_s = (double)r->tokens_per_step / (r->ms_mean / 1e3);
    r->tflops = r->model_flops / (r->ms_mean / 1e3) / 1e12;
    if (o->profile_steps > 0) {
        cad_timed_reset(tb);
        cad_timed_backend_enable(tb, 1);
        double t0 = now_ms();
        for (long i = 0; i < o->profile_steps && !rc; i++) rc = cad_bench_session_step(&s, &loss, e);
        cad_timed_backend_enable(tb, 0); /* flushes: every pending span is resolved */
        r->profile_ms = now_ms() - t0;
        if (rc) goto out_s;
        r->profiled_steps = o->profile_steps;
        r->timer_what = timer->what;
        memcpy(r->slots, cad_timed_stats(tb), sizeof r->slots);
    }
out_s:
    cad_bench_session_close(&s);
out:
    cad_timed_backend_free(tb);
    return rc;
}

/* ---- PyTorch ------------------------------------------------------------------------------- */

/* Run argv with extra environment entries (NULL-terminated "K=V"), cwd, stdout+stderr to log
 * (NULL: /dev/null). Returns the exit status (-1 when it could not run). */
static int run_child(char *const argv[], char *const env[], const char *cwd, const char *log) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) dup2(in, 0);
        if (cwd && chdir(cwd) != 0) _exit(126);
        for (int i = 0; env && env[i]; i++) putenv(env[i]);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int cad_bench_torch_available(const char *python) {
    char *argv[] = {(char *)(python ? python : "python3"), "-c", "import torch", NULL};
    return run_child(argv, NULL, NULL, NULL) == 0;
}

int cad_bench_parse_step_avg(const char *text, double *ms, cad_err *e) {
    int found = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 5 && strncmp(line, "step:", 5) == 0) {
            const char *p = line;
            while ((p = strstr(p, "step_avg:")) && p < line + len) {
                char *q;
                double v = strtod(p + 9, &q);
                if (q != p + 9 && strncmp(q, "ms", 2) == 0 && isfinite(v)) *ms = v, found = 1;
                p += 9;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return found ? CAD_OK : cad_fail(e, CAD_EFORMAT, "no 'step:... step_avg:Xms' line in the PyTorch log");
}

static int read_file(const char *path, char **out, cad_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += k;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    if (!b) return cad_fail(e, CAD_ENOMEM, "%s: out of memory", path);
    b[n] = 0;
    *out = b;
    return CAD_OK;
}

int cad_bench_torch_run(const char *python, const char *script, const cad_config *c, long warmup, long steps,
                        const char *tmp_root, const char *log_path, double *step_avg_ms, cad_err *e) {
    char abs_script[PATH_MAX], abs_data[PATH_MAX], abs_tok[PATH_MAX], abs_log[PATH_MAX], dir[PATH_MAX];
    if (!realpath(script, abs_script)) return cad_fail(e, CAD_EIO, "%s: %s", script, strerror(errno));
    if (!realpath(c->data_path, abs_data)) return cad_fail(e, CAD_EIO, "data_path %s: %s", c->data_path, strerror(errno));
    if (!realpath(c->tokenizer_path, abs_tok))
        return cad_fail(e, CAD_EIO, "tokenizer_path %s: %s", c->tokenizer_path, strerror(errno));
    /* the log is created by the child, so resolve its directory only */
    if (log_path[0] == '/') snprintf(abs_log, sizeof abs_log, "%s", log_path);
    else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return cad_fail(e, CAD_EIO, "getcwd: %s", strerror(errno));
        if ((size_t)snprintf(abs_log, sizeof abs_log, "%s/%s", cwd, log_path) >= sizeof abs_log)
            return cad_fail(e, CAD_EIO, "%s: path too long", log_path);
    }
    if ((size_t)snprintf(dir, sizeof dir, "%s/caddie-bench-torch-XXXXXX", tmp_root ? tmp_root : "/tmp") >= sizeof dir)
        return cad_fail(e, CAD_EIO, "temporary directory name too long");
    if (!mkdtemp(dir)) return cad_fail(e, CAD_EIO, "mkdtemp %s: %s", dir, strerror(errno));
    enum { NENV = 20, ENVLEN = PATH_MAX + 32 };
    static char envbuf[NENV][ENVLEN];
    char *env[NENV + 1];
    int n = 0;
#define SETENV(...) (snprintf(envbuf[n], ENVLEN, __VA_ARGS__), env[n] = envbuf[n], n++)
    SETENV("DATA_PATH=%s", abs_data);
    SETENV("TOKENIZER_PATH=%s", abs_tok);
    SETENV("VOCAB_SIZE=%ld", c->vocab_size);
    SETENV("NUM_LAYERS=%ld", c->num_layers);
    SETENV("MODEL_DIM=%ld", c->model_dim);
    SETENV("NUM_HEADS=%ld", c->num_heads);
    SETENV("NUM_KV_HEADS=%ld", c->num_kv_heads);
    SETENV("MLP_MULT=%ld", c->mlp_mult);
    SETENV("TIE_EMBEDDINGS=%d", c->tie_embeddings ? 1 : 0);
    SETENV("TRAIN_SEQ_LEN=%ld", c->train_seq_len);
    SETENV("TRAIN_BATCH_TOKENS=%ld", c->train_batch_tokens);
    SETENV("ITERATIONS=%ld", steps);
    SETENV("WARMUP_STEPS=%ld", warmup);
    SETENV("VAL_LOSS_EVERY=0");
    SETENV("TRAIN_LOG_EVERY=1");
    SETENV("MAX_WALLCLOCK_SECONDS=0");
    SETENV("SEED=%ld", c->seed);
    SETENV("RUN_ID=caddie_bench_torch");
#undef SETENV
    env[n] = NULL;
    /* a python given as a path is resolved here: the child runs in the temporary directory */
    char abs_py[PATH_MAX];
    if (!python) python = "python3";
    if (strchr(python, '/')) {
        if (!realpath(python, abs_py)) return cad_fail(e, CAD_EIO, "%s: %s", python, strerror(errno));
        python = abs_py;
    }
    char *argv[] = {(char *)python, abs_script, NULL};
    int st = run_child(argv, env, dir, abs_log);
    if (st != 0)
        return cad_fail(e, CAD_ECHILD, "%s %s exited with status %d (log: %s; its files: %s)", argv[0], script, st,
                        abs_log, dir);
    char *text = NULL;
    int rc = read_file(abs_log, &text, e);
    if (rc) return rc;
    rc = cad_bench_parse_step_avg(text, step_avg_ms, e);
    free(text);
    if (rc) return cad_wrap(e, "%s", abs_log);
    return CAD_OK;
}
