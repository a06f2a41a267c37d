/*
 * test_engine_train.c — the training driver end to end on a tiny model and synthetic shards:
 * the run directory contract (log.txt identical to stdout, metrics.jsonl, result.json,
 * config.yaml, artifact), falling loss, the warmup restore (warmup_steps primes and then
 * restores weights, optimizer and loader, so the losses equal a run without warmup, bit for
 * bit), init_from/save_weights, code_files accounting, and errors before any work.
 */
#include "test_util.h"
#include "engine/config.h"
#include "engine/export.h"
#include "engine/safetensors.h"
#include "engine/shard.h"
#include "engine/train.h"

#include <sys/stat.h>

static char data_dir[4200];

/* A learnable stream: each token mostly follows a fixed successor table, BOS every ~50. */
static void make_shards(void) {
    snprintf(data_dir, sizeof data_dir, "%s/data", check_tmpdir());
    mkdir(data_dir, 0755);
    long n = 40000;
    uint16_t *t = malloc((size_t)n * 2);
    unsigned s = 12345;
    int cur = 5;
    for (long i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        if (i % 50 == 0) cur = 1;
        else if ((s >> 16) % 4 == 0) cur = 4 + (int)((s >> 8) % 300);
        else cur = 4 + (cur * 7 + 3) % 300;
        t[i] = (uint16_t)cur;
    }
    char p[4300];
    cad_err e = {0};
    snprintf(p, sizeof p, "%s/fineweb_train_000000.bin", data_dir);
    CHECK(cad_shard_write(p, t, 30000, &e) == CAD_OK);
    snprintf(p, sizeof p, "%s/fineweb_val_000000.bin", data_dir);
    CHECK(cad_shard_write(p, t + 30000, 10000, &e) == CAD_OK);
    free(t);
}

static int tiny_config(cad_config *c, const char *run, int n_extra, char **extra) {
    char d[4300], tok[4300], rd[4300];
    snprintf(d, sizeof d, "data_path=%s", data_dir);
    snprintf(tok, sizeof tok, "tokenizer_path=%s", check_src_path("data/sample/fineweb_1024_bpe.model"));
    snprintf(rd, sizeof rd, "run_dir=%s/%s", check_tmpdir(), run);
    char *sets[32] = {d, tok, rd, "num_layers=2", "model_dim=32", "num_heads=2", "num_kv_heads=1",
                      "train_seq_len=32", "train_batch_tokens=256", "grad_accum_steps=2", "iterations=8",
                      "warmdown_iters=4", "warmup_steps=0", "max_wallclock_seconds=0", "val_loss_every=4",
                      "train_log_every=1", "val_batch_size=1024", "val_max_tokens=2048", "threads=1",
                      "matrix_lr=0.02", "tied_embed_lr=0.05", "run_id=t"};
    int n = 22;
    /* code accounting: this test file only, so the sum is known */
    static char code[4300];
    snprintf(code, sizeof code, "code_files=%s", check_src_path("tests/unit/test_engine_train.c"));
    sets[n++] = code;
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    cad_err e = {0};
    int rc = cad_config_resolve(c, NULL, n, sets, &e);
    if (rc) printf("config: %s\n", e.msg);
    return rc;
}

/* Run training with the log sink in run_dir/../<run>.stdout and the progress sink in
 * <run>.stderr (what `caddie train` connects to stdout and stderr); returns the status. */
static int run_captured(cad_config *c, const char *run, cad_err *e) {
    char out[4300], err[4300];
    snprintf(out, sizeof out, "%s/%s.stdout", check_tmpdir(), run);
    snprintf(err, sizeof err, "%s/%s.stderr", check_tmpdir(), run);
    cad_train_sink sink = {fopen(out, "w"), fopen(err, "w")};
    CHECK(sink.log && sink.progress);
    int rc = cad_train_run(c, &sink, e);
    if (sink.log) CHECK(fclose(sink.log) == 0);
    if (sink.progress) CHECK(fclose(sink.progress) == 0);
    return rc;
}

static const char *run_file(const char *run, const char *name) {
    static char p[4][4400];
    static int k;
    k = (k + 1) & 3;
    snprintf(p[k], sizeof p[k], "%s/%s/%s", check_tmpdir(), run, name);
    return p[k];
}

/* train_loss values from a log text, in order */
static int train_losses(const char *log, double *out, int cap) {
    int n = 0;
    for (const char *p = log; (p = strstr(p, " train_loss:")) && n < cap; p++) out[n++] = atof(p + 12);
    return n;
}

static void test_run_dir_contract(void) {
    cad_config c;
    if (tiny_config(&c, "basic", 0, NULL)) { CHECK(0); return; }
    cad_err e = {0};
    int rc = run_captured(&c, "basic", &e);
    CHECK_MSG(rc == CAD_OK, "%s", e.msg);
    char *log = check_slurp(run_file("basic", "log.txt"), NULL);
    char so[4300];
    snprintf(so, sizeof so, "%s/basic.stdout", check_tmpdir());
    char *out = check_slurp(so, NULL);
    CHECK(log && out);
    if (!log || !out) { free(log), free(out); cad_config_free(&c); return; }
    CHECK_MSG(strcmp(log, out) == 0, "log.txt differs from stdout");
    /* progress lines go to their own sink only, so the log stays train_gpt.py's format */
    snprintf(so, sizeof so, "%s/basic.stderr", check_tmpdir());
    char *prog = check_slurp(so, NULL);
    CHECK(prog && strstr(prog, "progress step:8/8 tokens_per_s:") != NULL);
    CHECK(strstr(log, "progress") == NULL);
    free(prog);
    CHECK(strstr(log, "step:0/8 val_loss:") != NULL);
    CHECK(strstr(log, "step:8/8 val_loss:") != NULL);
    CHECK(strstr(log, "step:1/8 train_loss:") != NULL);
    CHECK(strstr(log, "model_params:") != NULL);
    CHECK(strstr(log, "world_size:1 grad_accum_steps:2") != NULL);
    CHECK(strstr(log, "tie_embeddings:True embed_lr:0.05 head_lr:0.0 matrix_lr:0.02 scalar_lr:0.04") != NULL);
    CHECK(strstr(log, "Serialized model int8+zlib: ") != NULL);
    CHECK(strstr(log, "Total submission size int8+zlib: ") != NULL);
    CHECK(strstr(log, "final_int8_zlib_roundtrip_exact val_loss:") != NULL);
    CHECK(strstr(log, "partial_eval:") != NULL);
    double tl[16];
    int n = train_losses(log, tl, 16);
    CHECK_EQ_INT(n, 8);
    CHECK_MSG(n == 8 && tl[7] < tl[0] - 0.3, "loss did not fall: %g -> %g", tl[0], n ? tl[n - 1] : 0);

    char *res = check_slurp(run_file("basic", "result.json"), NULL);
    CHECK(res != NULL);
    if (res) {
        static const char *fields[] = {"\"run_id\":\"t\"", "\"val_loss\":", "\"val_bpb\":", "\"prequant_val_loss\":",
                                       "\"prequant_val_bpb\":", "\"artifact_bytes\":", "\"model_bytes\":",
                                       "\"code_bytes\":", "\"train_ms\":", "\"eval_ms\":", "\"steps\":8",
                                       "\"tokens\":2048", "\"partial\":1", "\"engine_version\":", "\"git_commit\":",
                                       "\"git_dirty\":"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            CHECK_MSG(strstr(res, fields[i]), "result.json lacks %s: %s", fields[i], res);
        /* code_bytes is this file's size; artifact = model + code */
        struct stat st, art;
        stat(check_src_path("tests/unit/test_engine_train.c"), &st);
        stat(run_file("basic", "final_model.int8.ptz"), &art);
        char want[128];
        snprintf(want, sizeof want, "\"artifact_bytes\":%lld,\"model_bytes\":%lld,\"code_bytes\":%lld",
                 (long long)(art.st_size + st.st_size), (long long)art.st_size, (long long)st.st_size);
        CHECK_MSG(strstr(res, want), "want %s in %s", want, res);
    }
    char *mj = check_slurp(run_file("basic", "metrics.jsonl"), NULL);
    CHECK(mj && strstr(mj, "{\"step\":1,\"name\":\"train_loss\",\"value\":"));
    CHECK(mj && strstr(mj, "\"name\":\"val_bpb\""));
    CHECK(mj && strstr(mj, "\"name\":\"tokens_per_s\""));
    char *cy = check_slurp(run_file("basic", "config.yaml"), NULL);
    CHECK(cy && strstr(cy, "num_layers: 2\n") && strstr(cy, "model_dim: 32\n"));
    free(log), free(out), free(res), free(mj), free(cy);
    cad_config_free(&c);
}

static void test_warmup_restores_everything(void) {
    /* warmup_steps changes weights, optimizer state and loader position while priming; after
     * the restore the run must be bit-identical to one without warmup. */
    char *w0[] = {"warmup_steps=0", "val_loss_every=0"};
    char *w3[] = {"warmup_steps=3", "val_loss_every=0"};
    cad_config a, b;
    if (tiny_config(&a, "w0", 2, w0) || tiny_config(&b, "w3", 2, w3)) { CHECK(0); return; }
    cad_err e = {0};
    CHECK_MSG(run_captured(&a, "w0", &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(run_captured(&b, "w3", &e) == CAD_OK, "%s", e.msg);
    char *la = check_slurp(run_file("w0", "log.txt"), NULL), *lb = check_slurp(run_file("w3", "log.txt"), NULL);
    CHECK(la && lb);
    if (la && lb) {
        CHECK(strstr(lb, "warmup_step:3/3") != NULL);
        double ta[16], tb[16];
        int na = train_losses(la, ta, 16), nb = train_losses(lb, tb, 16);
        CHECK_EQ_INT(na, nb);
        for (int i = 0; i < na && i < nb; i++) CHECK_MSG(ta[i] == tb[i], "step %d: %.6f vs %.6f", i + 1, ta[i], tb[i]);
        const char *fa = strstr(la, "final_int8_zlib_roundtrip_exact"), *fb = strstr(lb, "final_int8_zlib_roundtrip_exact");
        CHECK(fa && fb && strncmp(fa, fb, 80) == 0);
    }
    free(la), free(lb);
    cad_config_free(&a);
    cad_config_free(&b);
}

static void test_save_weights_and_init_from(void) {
    char w[4400], sw[4500], init[4500];
    snprintf(w, sizeof w, "%s/saved.safetensors", check_tmpdir());
    snprintf(sw, sizeof sw, "save_weights=%s", w);
    char *x1[] = {sw, "val_loss_every=0"};
    cad_config a;
    if (tiny_config(&a, "save", 2, x1)) { CHECK(0); return; }
    cad_err e = {0};
    CHECK_MSG(run_captured(&a, "save", &e) == CAD_OK, "%s", e.msg);
    cad_safetensors_file f;
    CHECK_MSG(cad_safetensors_load(w, &f, &e) == CAD_OK, "%s", e.msg);
    int has_emb = 0, has_q = 0, has_skip = 0;
    for (int i = 0; i < f.n; i++) {
        has_emb |= strcmp(f.tensors[i].name, "tok_emb.weight") == 0 && f.tensors[i].shape[0] == 1024 && f.tensors[i].shape[1] == 32;
        has_q |= strcmp(f.tensors[i].name, "blocks.1.attn.c_q.weight") == 0;
        has_skip |= strcmp(f.tensors[i].name, "skip_weights") == 0;
    }
    CHECK(has_emb && has_q && has_skip);
    cad_safetensors_file_free(&f);

    /* init_from with 0 iterations: the final (pre-quant) eval is of exactly those weights,
     * so it equals `caddie eval` of the file. */
    snprintf(init, sizeof init, "init_from=%s", w);
    char *x2[] = {init, "iterations=0", "val_loss_every=0"};
    cad_config b;
    if (tiny_config(&b, "init", 3, x2)) { CHECK(0); return; }
    CHECK_MSG(run_captured(&b, "init", &e) == CAD_OK, "%s", e.msg);
    char *lb = check_slurp(run_file("init", "log.txt"), NULL);
    char ev[4400];
    snprintf(ev, sizeof ev, "%s/eval.txt", check_tmpdir());
    FILE *ef = fopen(ev, "w");
    CHECK_MSG(cad_eval_weights(&b, w, 0, ef, &e) == CAD_OK, "%s", e.msg);
    fclose(ef);
    char *et = check_slurp(ev, NULL);
    CHECK(lb && et);
    if (lb && et) {
        const char *p = strstr(lb, "step:0/0 val_loss:");
        const char *q = strstr(et, "eval val_loss:");
        CHECK(p && q);
        if (p && q) CHECK_MSG(fabs(atof(p + 18) - atof(q + 14)) < 1e-4, "train eval %s vs eval %s", p, q);
    }
    free(lb), free(et);
    cad_config_free(&a);
    cad_config_free(&b);
}

/* The "step:S/N val_loss:... val_bpb:..." and final round-trip lines of a run's log, in order. */
static void val_lines(const char *log, char *out, size_t cap) {
    out[0] = 0;
    for (const char *p = log; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if ((strstr(p, " val_bpb:") && strstr(p, " val_bpb:") < p + len) && strlen(out) + len + 2 < cap) {
            /* without the timing fields, which differ between runs */
            const char *t = strstr(p, " train_time:");
            const char *et = strstr(p, " eval_time:");
            size_t keep = len;
            if (t && t < p + len) keep = (size_t)(t - p);
            if (et && et < p + keep) keep = (size_t)(et - p);
            strncat(out, p, keep);
            strcat(out, "\n");
        }
        p = nl ? nl + 1 : NULL;
    }
}

/* eval_seq_len: equal to train_seq_len it is today's run (every val line the same); longer,
 * the model plans RoPE tables and windows for it, trains the same and evaluates differently. */
static void test_eval_seq_len(void) {
    char *x0[] = {"val_loss_every=0"};
    char *x1[] = {"val_loss_every=0", "eval_seq_len=32"};
    char *x2[] = {"val_loss_every=0", "eval_seq_len=64"};
    cad_config a, b, d;
    if (tiny_config(&a, "evlen0", 1, x0) || tiny_config(&b, "evlen32", 2, x1) || tiny_config(&d, "evlen64", 2, x2)) {
        CHECK(0);
        return;
    }
    cad_err e = {0};
    CHECK_MSG(run_captured(&a, "evlen0", &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(run_captured(&b, "evlen32", &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(run_captured(&d, "evlen64", &e) == CAD_OK, "%s", e.msg);
    char *la = check_slurp(run_file("evlen0", "log.txt"), NULL), *lb = check_slurp(run_file("evlen32", "log.txt"), NULL);
    char *ld = check_slurp(run_file("evlen64", "log.txt"), NULL);
    CHECK(la && lb && ld);
    if (la && lb && ld) {
        static char va[8192], vb[8192], vd[8192];
        val_lines(la, va, sizeof va), val_lines(lb, vb, sizeof vb), val_lines(ld, vd, sizeof vd);
        CHECK(strlen(va) > 0);
        CHECK_MSG(strcmp(va, vb) == 0, "eval_seq_len=train_seq_len changed the scores:\n%s---\n%s", va, vb);
        CHECK_MSG(strcmp(va, vd) != 0, "eval_seq_len=64 scored exactly like 32:\n%s", vd);
        double train_a[16], train_d[16];
        int na = train_losses(la, train_a, 16), nd = train_losses(ld, train_d, 16);
        CHECK_EQ_INT(na, nd);
        for (int i = 0; i < na && i < nd; i++) CHECK_MSG(train_a[i] == train_d[i], "train_loss %d differs", i);
        CHECK(strstr(ld, "eval_seq_len:64 train_seq_len:32") != NULL);
    }
    free(la), free(lb), free(ld);
    cad_config_free(&a), cad_config_free(&b), cad_config_free(&d);
}

/* Three runs of one config with different extra keys; the val lines (timings cut) and the
 * train losses of each, for tests that compare what a key changes. */
typedef struct {
    char val[8192];
    double train[16];
    int n_train;
    char *log;
} run_view;

static int run_three(const char *names[3], char **extra[3], const int n_extra[3], run_view v[3]) {
    for (int i = 0; i < 3; i++) {
        cad_config c;
        v[i].log = NULL;
        if (tiny_config(&c, names[i], n_extra[i], extra[i])) return -1;
        cad_err e = {0};
        int rc = run_captured(&c, names[i], &e);
        cad_config_free(&c);
        CHECK_MSG(rc == CAD_OK, "%s: %s", names[i], e.msg);
        if (rc) return -1;
        v[i].log = check_slurp(run_file(names[i], "log.txt"), NULL);
        if (!v[i].log) return -1;
        val_lines(v[i].log, v[i].val, sizeof v[i].val);
        v[i].n_train = train_losses(v[i].log, v[i].train, 16);
    }
    return 0;
}

/* eval_recur_loops: equal to recur_loops it is today's run (every val line the same); 3 passes
 * trains the same 2-pass model (same train losses) and scores it differently. */
static void test_eval_recur_loops_run(void) {
    char *x0[] = {"recur_layers=0-0", "recur_loops=2"};
    char *x1[] = {"recur_layers=0-0", "recur_loops=2", "eval_recur_loops=2"};
    char *x2[] = {"recur_layers=0-0", "recur_loops=2", "eval_recur_loops=3"};
    const char *names[3] = {"erl0", "erl2", "erl3"};
    char **extra[3] = {x0, x1, x2};
    const int n[3] = {2, 3, 3};
    static run_view v[3];
    if (run_three(names, extra, n, v) == 0) {
        CHECK(strlen(v[0].val) > 0);
        CHECK_MSG(strcmp(v[0].val, v[1].val) == 0, "eval_recur_loops=recur_loops changed the scores:\n%s---\n%s",
                  v[0].val, v[1].val);
        CHECK_MSG(strcmp(v[0].val, v[2].val) != 0, "eval_recur_loops=3 scored exactly like 2:\n%s", v[2].val);
        CHECK_EQ_INT(v[0].n_train, v[2].n_train);
        for (int i = 0; i < v[0].n_train && i < v[2].n_train; i++)
            CHECK_MSG(v[0].train[i] == v[2].train[i], "train_loss %d differs", i);
        CHECK(strstr(v[2].log, "eval_recur_loops:3 (training: 2) virtual_layers_at_eval:4") != NULL);
    }
    for (int i = 0; i < 3; i++) free(v[i].log);
}

/* seq_len_schedule: one entry at train_seq_len is today's run (every train loss and val line the
 * same); 16 then 32 tokens per row trains differently from step 2 and switches at step 4 of 8,
 * reading the same tokens per step (the val lines after the run differ, the step count not). */
static void test_seq_len_schedule_run(void) {
    char *x0[] = {"grad_accum_steps=1"};
    char *x1[] = {"grad_accum_steps=1", "seq_len_schedule=32@0"};
    char *x2[] = {"grad_accum_steps=1", "seq_len_schedule=16@0,32@0.5"};
    const char *names[3] = {"sls0", "sls1", "sls2"};
    char **extra[3] = {x0, x1, x2};
    const int n[3] = {1, 2, 2};
    static run_view v[3];
    if (run_three(names, extra, n, v) == 0) {
        CHECK_MSG(strcmp(v[0].val, v[1].val) == 0, "a one-entry schedule at train_seq_len changed the scores");
        CHECK_EQ_INT(v[0].n_train, v[1].n_train);
        CHECK_EQ_INT(v[0].n_train, v[2].n_train);
        for (int i = 0; i < v[0].n_train && i < v[1].n_train; i++) CHECK(v[0].train[i] == v[1].train[i]);
        /* step 1 reads the zero-init projections (no context effect yet); step 2 does not */
        CHECK_MSG(v[0].n_train > 1 && v[0].train[1] != v[2].train[1], "16-token rows trained like 32-token rows");
        CHECK(strstr(v[2].log, "seq_len:32 step:4 frac:0.500 batch_seqs:8") != NULL);
        CHECK(strstr(v[0].log, "\nseq_len:") == NULL);
        CHECK(strstr(v[2].log, "seq_len_schedule:16@0,32@0.5 (tokens per step stay 256)") != NULL);
    }
    for (int i = 0; i < 3; i++) free(v[i].log);
}

/* curriculum: length through the trainer: windows of one token cannot reorder anything (the run
 * is the plain one, bit for bit); windows of 4096 tokens (~80 documents of the test shard, BOS
 * every 50) hand the short ones out first and train on other rows. */
static void test_curriculum_run(void) {
    char *x0[] = {"curriculum=none"};
    char *x1[] = {"curriculum=length", "curriculum_window=1"};
    char *x2[] = {"curriculum=length", "curriculum_window=4096"};
    const char *names[3] = {"cur0", "cur1", "cur2"};
    char **extra[3] = {x0, x1, x2};
    const int n[3] = {1, 2, 2};
    static run_view v[3];
    if (run_three(names, extra, n, v) == 0) {
        CHECK_MSG(strcmp(v[0].val, v[1].val) == 0, "one-token windows changed the scores");
        CHECK_EQ_INT(v[0].n_train, v[1].n_train);
        for (int i = 0; i < v[0].n_train && i < v[1].n_train; i++) CHECK(v[0].train[i] == v[1].train[i]);
        CHECK_MSG(v[0].train[0] != v[2].train[0], "the length curriculum read the plain stream");
    }
    for (int i = 0; i < 3; i++) free(v[i].log);
}

static void test_errors_before_work(void) {
    cad_config c;
    cad_err e = {0};
    char *x1[] = {"code_files=no/such/dir/*.c"};
    if (tiny_config(&c, "err1", 1, x1)) { CHECK(0); return; }
    CHECK(cad_train_run(&c, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "no/such/dir/*.c"), "%s", e.msg);
    struct stat st;
    CHECK(stat(run_file("err1", "log.txt"), &st) != 0); /* nothing written */
    cad_config_free(&c);

    char *x2[] = {"vocab_size=512"};
    if (tiny_config(&c, "err2", 1, x2)) { CHECK(0); return; }
    CHECK(run_captured(&c, "err2", &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "vocab_size=1024"), "%s", e.msg);
    CHECK(stat(run_file("err2", "result.json"), &st) != 0);
    cad_config_free(&c);

    char *x3[] = {"init_from=/no/such.safetensors"};
    if (tiny_config(&c, "err3", 1, x3)) { CHECK(0); return; }
    CHECK(cad_train_run(&c, NULL, &e) == CAD_EIO);
    CHECK_MSG(strstr(e.msg, "/no/such.safetensors"), "%s", e.msg);
    cad_config_free(&c);
}

static void test_wallclock_cap_stops_early(void) {
    /* train_gpt.py: once train_time reaches max_wallclock_seconds the step is the last one; it is
     * validated and "stopping_early" is logged; result.json counts the steps actually done. */
    char *x[] = {"max_wallclock_seconds=0.000001", "iterations=50", "val_loss_every=0"};
    cad_config c;
    if (tiny_config(&c, "cap", 3, x)) { CHECK(0); return; }
    cad_err e = {0};
    CHECK_MSG(run_captured(&c, "cap", &e) == CAD_OK, "%s", e.msg);
    char *log = check_slurp(run_file("cap", "log.txt"), NULL);
    char *res = check_slurp(run_file("cap", "result.json"), NULL);
    CHECK(log && strstr(log, "step:1/50 val_loss:") && strstr(log, "stopping_early: wallclock_cap train_time:") &&
          strstr(log, "step:1/50\n"));
    CHECK(log && !strstr(log, "step:2/50"));
    CHECK(res && strstr(res, "\"steps\":1,"));
    free(log), free(res);
    cad_config_free(&c);
}

/* Python's base64.b85decode, written here independently of train.c's encoder. */
static size_t b85_decode(const char *src, size_t n, unsigned char *dst) {
    static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 5) {
        size_t k = n - i < 5 ? n - i : 5;
        uint64_t v = 0;
        for (size_t j = 0; j < 5; j++) v = v * 85 + (uint64_t)(j < k ? strchr(alpha, src[i + j]) - alpha : 84);
        for (size_t j = 0; j + 1 < k; j++) dst[o++] = (unsigned char)(v >> (24 - 8 * j));
    }
    return o;
}

/* code_compress: the packed code is the records' exec stub whose base85 payload decompresses
 * to exactly the counted file; both methods are smaller than the raw file; a run with
 * code_compress counts the packed size in result.json and logs both sizes. */
static void test_code_compress(void) {
    const char *src = check_src_path("tests/unit/test_engine_train.c");
    size_t raw_len = 0;
    char *raw = check_slurp(src, &raw_len);
    static const char *methods[2] = {"lzma", "zlib"};
    size_t packed_len[2] = {0};
    cad_err e = {0};
    for (int m = 0; m < 2; m++) {
        char *text = NULL;
        CHECK_MSG(cad_code_pack(src, methods[m], &text, &packed_len[m], &e) == CAD_OK, "%s", e.msg);
        if (!text) continue;
        char head[64], tail[] = "\")))\n";
        snprintf(head, sizeof head, "import %s,base64\nexec(%s.decompress(base64.b85decode(\"", methods[m], methods[m]);
        size_t hl = strlen(head), tl = strlen(tail);
        CHECK(strlen(text) == packed_len[m] && packed_len[m] > hl + tl);
        CHECK(strncmp(text, head, hl) == 0 && strcmp(text + packed_len[m] - tl, tail) == 0);
        CHECK_MSG(packed_len[m] < raw_len / 2, "%s: packed %zu of %zu raw bytes", methods[m], packed_len[m], raw_len);
        size_t b85 = packed_len[m] - hl - tl;
        unsigned char *z = malloc(b85), *back = NULL;
        size_t zl = b85_decode(text + hl, b85, z), bl = 0;
        CHECK_MSG(cad_decompress_buf(z, zl, &back, &bl, "code", &e) == CAD_OK, "%s: %s", methods[m], e.msg);
        CHECK_MSG(raw && bl == raw_len && memcmp(back, raw, bl) == 0, "%s: payload is not the counted file", methods[m]);
        if (m == 0) CHECK(zl > 6 && memcmp(z, "\xfd" "7zXZ", 6) == 0);
        free(z), free(back), free(text);
    }
    char *text = NULL;
    size_t tl = 0;
    CHECK_EQ_INT(cad_code_pack(src, "brotli", &text, &tl, &e), CAD_ECONFIG);
    char *set[] = {"code_compress=lzma"};
    cad_config c;
    if (tiny_config(&c, "codez", 1, set)) { CHECK(0); free(raw); return; }
    CHECK_MSG(run_captured(&c, "codez", &e) == CAD_OK, "%s", e.msg);
    char *res = check_slurp(run_file("codez", "result.json"), NULL), *log = check_slurp(run_file("codez", "log.txt"), NULL);
    char want[128];
    snprintf(want, sizeof want, "\"code_bytes\":%zu", packed_len[0]);
    CHECK_MSG(res && strstr(res, want), "want %s in %s", want, res ? res : "(none)");
    snprintf(want, sizeof want, "code_compress:lzma raw_code_bytes:%zu code_bytes:%zu", raw_len, packed_len[0]);
    CHECK_MSG(log && strstr(log, want), "want '%s' in the log", want);
    free(res), free(log), free(raw);
    cad_config_free(&c);
}

/* A run on the bundled sample (data/sample/fineweb10B_sp1024): tiny model whose MLP matrices
 * are large enough (384x192 > 65,536) to be quantised per row. Returns the round-trip
 * penalty, val_bpb - prequant_val_bpb, or NAN on failure. */
static double sample_penalty(const char *run, int n_extra, char **extra) {
    char d[4300], tok[4300], rd[4300], code[4300];
    snprintf(d, sizeof d, "data_path=%s", check_src_path("data/sample/fineweb10B_sp1024"));
    snprintf(tok, sizeof tok, "tokenizer_path=%s", check_src_path("data/sample/fineweb_1024_bpe.model"));
    snprintf(rd, sizeof rd, "run_dir=%s/%s", check_tmpdir(), run);
    snprintf(code, sizeof code, "code_files=%s", check_src_path("tests/unit/test_engine_train.c"));
    char *sets[32] = {d, tok, rd, code, "num_layers=1", "model_dim=192", "num_heads=2", "num_kv_heads=1",
                      "train_seq_len=64", "train_batch_tokens=256", "grad_accum_steps=1", "iterations=60",
                      "warmdown_iters=10", "warmup_steps=0", "max_wallclock_seconds=0", "val_loss_every=0",
                      "train_log_every=0", "val_batch_size=4096", "val_max_tokens=4096", "threads=1", "seed=7",
                      "run_id=q"};
    int n = 22;
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    cad_config c;
    cad_err e = {0};
    if (cad_config_resolve(&c, NULL, n, sets, &e)) { CHECK_MSG(0, "config: %s", e.msg); return NAN; }
    int rc = cad_train_run(&c, NULL, &e);
    cad_config_free(&c);
    CHECK_MSG(rc == CAD_OK, "%s: %s", run, e.msg);
    char *res = check_slurp(run_file(run, "result.json"), NULL);
    const char *a = res ? strstr(res, "\"val_bpb\":") : NULL, *b = res ? strstr(res, "\"prequant_val_bpb\":") : NULL;
    double pen = a && b ? atof(a + 10) - atof(b + 19) : NAN;
    free(res);
    return pen;
}

/* QAT at ternary on the sample, 60 steps, same seed and data: the round-trip penalty of a run
 * that fake-quantised from the start is below that of a run exported at ternary without QAT
 * (qat_start_frac=1: never switched on) by at least 0.10 bpb (measured: see docs/engine.md),
 * and the QAT run logs its switch and the ternary quantizer. */
static void test_qat_ternary_penalty(void) {
    char *off[] = {"qat_bits=ternary", "qat_start_frac=1"};
    char *on[] = {"qat_bits=ternary", "qat_start_frac=0"};
    double p_off = sample_penalty("qat_off", 2, off), p_on = sample_penalty("qat_on", 2, on);
    printf("# ternary round-trip penalty: without QAT %.4f, with QAT %.4f bpb\n", p_off, p_on);
    CHECK_MSG(p_on < p_off - 0.10, "QAT penalty %.4f not 0.10 below the no-QAT penalty %.4f", p_on, p_off);
    char *log = check_slurp(run_file("qat_on", "log.txt"), NULL), *log0 = check_slurp(run_file("qat_off", "log.txt"), NULL);
    CHECK(log && strstr(log, "qat:on step:0 frac:0.000 bits:ternary"));
    CHECK(log && strstr(log, "quant: block_matrices:ternary clip:absmean embedding:int8"));
    CHECK(log0 && !strstr(log0, "qat:on") && strstr(log0, "quant: block_matrices:ternary"));
    free(log), free(log0);
}

/* Full GPTQ at int4 on the sample: the same 60-step run (same seed, so the same trained
 * weights) exported with round-to-nearest (clip_search, quant_clip_search on: GPTQ-lite) and
 * with GPTQ on 4 calibration batches; GPTQ's round-trip penalty is lower by at least 0.02 bpb
 * (measured: see docs/engine.md), and the run logs its calibration. */
static void test_gptq_int4_penalty(void) {
    char *rtn[] = {"quant_matrix_bits=4", "quant_clip_search=1"};
    char *gq[] = {"quant_matrix_bits=4", "quant_clip_search=1", "quant_method=gptq", "gptq_calib_batches=4"};
    double p_rtn = sample_penalty("int4_rtn", 2, rtn), p_gptq = sample_penalty("int4_gptq", 4, gq);
    printf("# int4 round-trip penalty: clip search %.4f, gptq %.4f bpb\n", p_rtn, p_gptq);
    CHECK_MSG(p_gptq < p_rtn - 0.02, "GPTQ penalty %.4f not 0.02 below the clip search's %.4f", p_gptq, p_rtn);
    char *log = check_slurp(run_file("int4_gptq", "log.txt"), NULL);
    CHECK(log && strstr(log, "gptq: calib_batches:4 tokens:1024 matrices:2 damp:0.01 act_order:0"));
    free(log);
}

int main(void) {
    make_shards();
    RUN(test_run_dir_contract);
    RUN(test_warmup_restores_everything);
    RUN(test_save_weights_and_init_from);
    RUN(test_eval_seq_len);
    RUN(test_eval_recur_loops_run);
    RUN(test_seq_len_schedule_run);
    RUN(test_curriculum_run);
    RUN(test_errors_before_work);
    RUN(test_wallclock_cap_stops_early);
    RUN(test_code_compress);
    RUN(test_qat_ternary_penalty);
    RUN(test_gptq_int4_penalty);
    return check_report();
}
