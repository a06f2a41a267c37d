/*
 * test_engine_resume.c — checkpoint/resume determinism: train N steps straight; train the same
 * config with checkpoint_every = N/2, then (as if killed right after the checkpoint) resume
 * from it to N: the train losses after the checkpoint and the final weights must be
 * bit-identical (CPU, same threads). Also the checkpoint file's own error handling.
 */
#include "test_util.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/safetensors.h"
#include "engine/shard.h"
#include "engine/train.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[4200];

static void make_shards(void) {
    snprintf(data_dir, sizeof data_dir, "%s/data", check_tmpdir());
    mkdir(data_dir, 0755);
    long n = 20000;
    uint16_t *t = malloc((size_t)n * 2);
    unsigned s = 99;
    for (long i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        t[i] = (uint16_t)(i % 40 == 0 ? 1 : 4 + (s >> 16) % 200);
    }
    char p[4300];
    cad_err e = {0};
    /* two train shards, so the checkpointed stream position crosses a shard boundary */
    snprintf(p, sizeof p, "%s/fineweb_train_000000.bin", data_dir);
    /* 514 tokens per step: the step-4 checkpoint (2056 tokens in) lies in the second shard */
    CHECK(cad_shard_write(p, t, 1500, &e) == CAD_OK);
    snprintf(p, sizeof p, "%s/fineweb_train_000001.bin", data_dir);
    CHECK(cad_shard_write(p, t + 1500, 13500, &e) == CAD_OK);
    snprintf(p, sizeof p, "%s/fineweb_val_000000.bin", data_dir);
    CHECK(cad_shard_write(p, t + 15000, 5000, &e) == CAD_OK);
    free(t);
}

static int config(cad_config *c, const char *run, const char *weights, int n_extra, char **extra) {
    char d[4300], tok[4300], rd[4300], sw[4300], code[4300];
    snprintf(d, sizeof d, "data_path=%s", data_dir);
    snprintf(tok, sizeof tok, "tokenizer_path=%s", check_src_path("data/sample/fineweb_1024_bpe.model"));
    snprintf(rd, sizeof rd, "run_dir=%s/%s", check_tmpdir(), run);
    snprintf(sw, sizeof sw, "save_weights=%s/%s", check_tmpdir(), weights);
    snprintf(code, sizeof code, "code_files=%s", check_src_path("tests/unit/test_engine_resume.c"));
    char *sets[32] = {d, tok, rd, sw, code, "num_layers=2", "model_dim=32", "num_heads=2", "num_kv_heads=1",
                      "train_seq_len=32", "train_batch_tokens=512", "grad_accum_steps=2", "iterations=8",
                      "warmdown_iters=3", "warmup_steps=1", "max_wallclock_seconds=0", "val_loss_every=0",
                      "train_log_every=1", "val_batch_size=1024", "val_max_tokens=1024", "threads=2",
                      "grad_clip_norm=1.0", "run_id=r"};
    int n = 23;
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    cad_err e = {0};
    int rc = cad_config_resolve(c, NULL, n, sets, &e);
    if (rc) printf("config: %s\n", e.msg);
    return rc;
}

static int run_quiet(cad_config *c, cad_err *e) {
    return cad_train_run(c, NULL, e);
}

/* the train_loss text of step S in a log ("step:S/8 train_loss:X.XXXX") */
static int loss_text(const char *log, int step, char *out, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, "step:%d/8 train_loss:", step);
    const char *p = log ? strstr(log, key) : NULL;
    if (!p) return 0;
    snprintf(out, cap, "%.*s", 6, p + strlen(key));
    return 1;
}

/* tag names the run dirs; extra: technique keys that carry state of their own (EMA) */
static void resume_case(const char *tag, int n_x, char **x) {
    cad_config a, b, c;
    cad_err e = {0};
    char *ck[8] = {"checkpoint_every=4"}, *rs[8] = {"resume=1"};
    for (int i = 0; i < n_x; i++) ck[1 + i] = rs[1 + i] = x[i];
    char straight[64], split[64], w_a[64], w_b[64], w_c[64];
    snprintf(straight, sizeof straight, "%sstraight", tag);
    snprintf(split, sizeof split, "%ssplit", tag);
    snprintf(w_a, sizeof w_a, "%sstraight.safetensors", tag);
    snprintf(w_b, sizeof w_b, "%ssplit.safetensors", tag);
    snprintf(w_c, sizeof w_c, "%sresumed.safetensors", tag);
    if (config(&a, straight, w_a, n_x, x) || config(&b, split, w_b, 1 + n_x, ck)) {
        CHECK(0);
        return;
    }
    CHECK_MSG(run_quiet(&a, &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(run_quiet(&b, &e) == CAD_OK, "%s", e.msg);
    char ckpt[4300];
    snprintf(ckpt, sizeof ckpt, "%s/%s/checkpoint.bin", check_tmpdir(), split);
    struct stat st;
    CHECK(stat(ckpt, &st) == 0); /* written at step 4 (not at the last step) */
    /* "kill" after step 4: resume from that checkpoint into the same run dir */
    if (config(&c, split, w_c, 1 + n_x, rs)) { CHECK(0); return; }
    char log_path[4300];
    snprintf(log_path, sizeof log_path, "%s/%s/log.txt", check_tmpdir(), split);
    char *before = check_slurp(log_path, NULL);
    size_t before_len = before ? strlen(before) : 0;
    CHECK_MSG(run_quiet(&c, &e) == CAD_OK, "%s", e.msg);
    char straight_log[4300];
    snprintf(straight_log, sizeof straight_log, "%s/%s/log.txt", check_tmpdir(), straight);
    char *log_a = check_slurp(straight_log, NULL);
    char *log_c = check_slurp(log_path, NULL);
    CHECK(log_a && log_c && strlen(log_c) > before_len);
    const char *resumed = log_c ? log_c + before_len : NULL;
    CHECK(resumed && strstr(resumed, "resume:step:4/8") != NULL);
    CHECK(resumed && strstr(resumed, "step:4/8 train_loss:") == NULL); /* steps 1-4 not redone */
    for (int s = 5; s <= 8; s++) {
        char la[16], lc[16];
        CHECK(loss_text(log_a, s, la, sizeof la) && loss_text(resumed, s, lc, sizeof lc));
        CHECK_MSG(strcmp(la, lc) == 0, "step %d: straight %s, resumed %s", s, la, lc);
    }
    /* final weights: bit-identical */
    cad_safetensors_file fa, fc;
    char pa[4300], pc[4300];
    snprintf(pa, sizeof pa, "%s/%s", check_tmpdir(), w_a);
    snprintf(pc, sizeof pc, "%s/%s", check_tmpdir(), w_c);
    CHECK(cad_safetensors_load(pa, &fa, &e) == CAD_OK);
    CHECK(cad_safetensors_load(pc, &fc, &e) == CAD_OK);
    CHECK_EQ_INT(fa.n, fc.n);
    for (int i = 0; i < fa.n && i < fc.n; i++)
        CHECK_MSG(fa.tensors[i].numel == fc.tensors[i].numel &&
                      memcmp(fa.tensors[i].data, fc.tensors[i].data, fa.tensors[i].numel * 4) == 0,
                  "tensor %s differs after resume", fa.tensors[i].name);
    cad_safetensors_file_free(&fa);
    cad_safetensors_file_free(&fc);
    free(before), free(log_a), free(log_c);
    cad_config_free(&a);
    cad_config_free(&b);
    cad_config_free(&c);
}

static void test_resume_is_bit_identical(void) { resume_case("", 0, NULL); }

/* EMA lives in the optimizer state arena: a resumed run averages on from the saved average
 * (the final weights written are the EMA weights, so they check it bit for bit). */
static void test_resume_with_ema_and_wd(void) {
    char *x[] = {"ema_decay=0.8", "muon_wd=0.05"};
    resume_case("ema_", 2, x);
}

/* delayed recurrence switches on at step 4 of 8 (right after the checkpoint): the resumed run
 * must make the same decision from the restored step */
static void test_resume_with_delayed_recurrence(void) {
    char *x[] = {"recur_layers=0-1", "recur_loops=2", "recur_start_frac=0.5"};
    resume_case("rec_", 3, x);
}

/* seq_len_schedule switches 16 -> 32 tokens per row at step 4 of 8 (right after the checkpoint):
 * the resumed run takes the same rows from the same stream position */
static void test_resume_with_seq_len_schedule(void) {
    char *x[] = {"seq_len_schedule=16@0,32@0.5"};
    resume_case("sls_", 1, x);
}

static void test_checkpoint_errors(void) {
    const cad_backend *be = cad_backend_cpu();
    float p[6] = {1, 2, 3, 4, 5, 6}, s[4] = {7, 8, 9, 10}, p2[6], s2[4];
    cad_checkpoint_meta m, got;
    memset(&m, 0, sizeof m);
    m.step = 3, m.n_param_floats = 6, m.n_state_floats = 4, m.model_dim = 32, m.num_layers = 2;
    char path[4300];
    snprintf(path, sizeof path, "%s/ck.bin", check_tmpdir());
    cad_err e = {0};
    CHECK(cad_checkpoint_save(path, &m, be, p, s, &e) == CAD_OK);
    CHECK(cad_checkpoint_load(path, &m, &got, be, p2, s2, &e) == CAD_OK);
    CHECK(memcmp(p, p2, sizeof p) == 0 && memcmp(s, s2, sizeof s) == 0 && got.step == 3);
    cad_checkpoint_meta other = m;
    other.model_dim = 64;
    CHECK(cad_checkpoint_load(path, &other, &got, be, p2, s2, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "model_dim=32") && strstr(e.msg, "64"), "%s", e.msg);
    /* flip one data byte: the checksum catches it */
    FILE *f = fopen(path, "r+b");
    fseek(f, -12, SEEK_END);
    int ch = fgetc(f);
    fseek(f, -12, SEEK_END);
    fputc(ch ^ 1, f);
    fclose(f);
    CHECK(cad_checkpoint_load(path, &m, &got, be, p2, s2, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "checksum"), "%s", e.msg);
    /* truncated, wrong magic */
    CHECK(truncate(path, 30) == 0);
    CHECK(cad_checkpoint_load(path, &m, &got, be, p2, s2, &e) == CAD_EFORMAT);
    check_write_file(path, "NOTACKPTxxxxxxxx");
    CHECK(cad_checkpoint_load(path, &m, &got, be, p2, s2, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "bad magic"), "%s", e.msg);
    /* a FIFO at the checkpoint path blocked fopen forever; now refused at once (alarm guards) */
    CHECK(unlink(path) == 0 && mkfifo(path, 0600) == 0);
    alarm(10);
    CHECK(cad_checkpoint_load(path, &m, &got, be, p2, s2, &e) == CAD_EIO);
    CHECK_MSG(strstr(e.msg, path) && strstr(e.msg, "not a regular file"), "%s", e.msg);
    alarm(0);
    unlink(path);
}

/* resume=1 over a bit-flipped or truncated checkpoint fails naming the file and the way to
 * start over, and does not train from step 0 in its place (no new step lines in log.txt). */
static void test_resume_refuses_bad_checkpoint(void) {
    cad_config b, c;
    cad_err e = {0};
    char *ck[1] = {"checkpoint_every=4"}, *rs[1] = {"resume=1"};
    if (config(&b, "badck", "badck.safetensors", 1, ck)) { CHECK(0); cad_config_free(&b); return; }
    CHECK_MSG(run_quiet(&b, &e) == CAD_OK, "%s", e.msg);
    char ckpt[4300], log_path[4300];
    snprintf(ckpt, sizeof ckpt, "%s/badck/checkpoint.bin", check_tmpdir());
    snprintf(log_path, sizeof log_path, "%s/badck/log.txt", check_tmpdir());
    size_t len = 0;
    char *good = check_slurp(ckpt, &len);
    cad_config_free(&b);
    if (!good || len < 200) { CHECK(0); free(good); return; }
    for (int bad = 0; bad < 2; bad++) {
        if (bad == 0) {
            good[len / 2] ^= 0x10; /* one bit in the weights */
            check_write_bytes(ckpt, good, len);
            good[len / 2] ^= 0x10;
        } else {
            check_write_bytes(ckpt, good, len - 100); /* truncated */
        }
        char *before = check_slurp(log_path, NULL);
        if (config(&c, "badck", "badck2.safetensors", 1, rs)) { CHECK(0); free(before); break; }
        CHECK_EQ_INT(run_quiet(&c, &e), CAD_EFORMAT);
        cad_config_free(&c);
        char want[9000];
        snprintf(want, sizeof want, "move the checkpoint aside ('mv %s %s.bad') and run again", ckpt, ckpt);
        CHECK_MSG(strstr(e.msg, ckpt) && strstr(e.msg, want) &&
                      strstr(e.msg, bad ? "truncated" : "checksum mismatch"), "%s", e.msg);
        char *after = check_slurp(log_path, NULL);
        const char *tail = after && before && strlen(after) >= strlen(before) ? after + strlen(before) : "";
        CHECK_MSG(!strstr(tail, "step:1/8"), "trained from step 0:\n%s", tail);
        free(before), free(after);
    }
    free(good);
}

int main(void) {
    make_shards();
    RUN(test_resume_refuses_bad_checkpoint);
    RUN(test_resume_is_bit_identical);
    RUN(test_resume_with_ema_and_wd);
    RUN(test_resume_with_delayed_recurrence);
    RUN(test_resume_with_seq_len_schedule);
    RUN(test_checkpoint_errors);
    return check_report();
}
