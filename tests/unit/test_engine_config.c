/*
 * test_engine_config.c — the run config: train_gpt.py defaults, file < env < --set precedence,
 * unknown keys with the closest name, type errors with file:line:col, invalid combinations,
 * the resolved config.yaml reading back to the same values, and the key-table API the sweep
 * validator uses.
 */
#include "test_util.h"
#include "engine/config.h"

#include <stdlib.h>

static void test_defaults_are_train_gpt(void) {
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    CHECK_EQ_INT(c.num_layers, 9);
    CHECK_EQ_INT(c.model_dim, 512);
    CHECK_EQ_INT(c.num_heads, 8);
    CHECK_EQ_INT(c.num_kv_heads, 4);
    CHECK_EQ_INT(c.mlp_mult, 2);
    CHECK_EQ_INT(c.vocab_size, 1024);
    CHECK_EQ_INT(c.tie_embeddings, 1);
    CHECK_EQ_INT(c.iterations, 20000);
    CHECK_EQ_INT(c.warmdown_iters, 1200);
    CHECK_EQ_INT(c.warmup_steps, 20);
    CHECK_EQ_INT(c.train_batch_tokens, 524288);
    CHECK_EQ_INT(c.train_seq_len, 1024);
    CHECK_EQ_INT(c.val_batch_size, 524288);
    CHECK_EQ_INT(c.val_loss_every, 1000);
    CHECK_EQ_INT(c.train_log_every, 200);
    CHECK_EQ_INT(c.seed, 1337);
    CHECK_EQ_INT(c.muon_backend_steps, 5);
    CHECK_EQ_INT(c.muon_momentum_warmup_steps, 500);
    CHECK_NEAR(c.max_wallclock_seconds, 600.0, 0, 0);
    CHECK_NEAR(c.qk_gain_init, 1.5, 0, 0);
    CHECK_NEAR(c.rope_base, 10000.0, 0, 0);
    CHECK_NEAR(c.logit_softcap, 30.0, 0, 0);
    CHECK_NEAR(c.embed_lr, 0.6, 0, 0);
    CHECK_NEAR(c.head_lr, 0.008, 0, 0);
    CHECK_NEAR(c.tied_embed_lr, 0.05, 0, 0);
    CHECK_NEAR(c.tied_embed_init_std, 0.005, 0, 0);
    CHECK_NEAR(c.matrix_lr, 0.04, 0, 0);
    CHECK_NEAR(c.scalar_lr, 0.04, 0, 0);
    CHECK_NEAR(c.muon_momentum, 0.95, 0, 0);
    CHECK_NEAR(c.muon_momentum_warmup_start, 0.85, 0, 0);
    CHECK_NEAR(c.beta1, 0.9, 0, 0);
    CHECK_NEAR(c.beta2, 0.95, 0, 0);
    CHECK_NEAR(c.adam_eps, 1e-8, 0, 0);
    CHECK_NEAR(c.grad_clip_norm, 0.0, 0, 0);
    CHECK_STR(c.data_path, "./data/datasets/fineweb10B_sp1024");
    CHECK_STR(c.tokenizer_path, "./data/tokenizers/fineweb_1024_bpe.model");
    CHECK_EQ_INT(cad_config_grad_accum(&c), 8);
    CHECK(cad_config_validate(&c, &e) == CAD_OK);
    cad_config_free(&c);
}

static void test_precedence_file_env_set(void) {
    const char *path = check_write_file(check_tmp_path("prec.yaml"),
                                  "# comment\n"
                                  "num_layers: 4\n"
                                  "model_dim: 256\n"
                                  "qk_gain_init: 2.0\n"
                                  "matrix_lr: 0.03\n"
                                  "run_id: from_file\n");
    setenv("QK_GAIN_INIT", "5.25", 1);
    setenv("MATRIX_LR", "0.02", 1);
    char *sets[] = {"matrix_lr=0.01", "train_batch_tokens=65_536"};
    cad_config c;
    cad_err e = {0};
    int rc = cad_config_resolve(&c, path, 2, sets, &e);
    unsetenv("QK_GAIN_INIT");
    unsetenv("MATRIX_LR");
    CHECK_MSG(rc == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(c.num_layers, 4);           /* file over default */
    CHECK_EQ_INT(c.model_dim, 256);
    CHECK_NEAR(c.qk_gain_init, 5.25, 0, 0);  /* env over file */
    CHECK_NEAR(c.matrix_lr, 0.01, 0, 0);     /* --set over env over file */
    CHECK_EQ_INT(c.train_batch_tokens, 65536);
    CHECK_STR(c.run_id, "from_file");
    CHECK_EQ_INT(c.num_heads, 8);            /* untouched default */
    const cad_config_key *k = cad_config_key_find("qk_gain_init");
    CHECK(strstr(c.origin[k - cad_config_key_at(0)], "QK_GAIN_INIT") != NULL);
    cad_config_free(&c);
}

static void test_unknown_key_closest_name(void) {
    CHECK_STR(cad_config_key_closest("num_layer"), "num_layers");
    CHECK_STR(cad_config_key_closest("matrx_lr"), "matrix_lr");
    CHECK_STR(cad_config_key_closest("QK_GAIN"), "qk_gain_init");
    CHECK(cad_config_key_find("nope") == NULL);

    const char *path = check_write_file(check_tmp_path("unk.yaml"), "num_layers: 4\nmodel_dmi: 256\n");
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_resolve(&c, path, 0, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "unk.yaml:2:1") && strstr(e.msg, "'model_dmi'") &&
                  strstr(e.msg, "did you mean 'model_dim'"), "%s", e.msg);
    cad_config_free(&c);

    char *sets[] = {"warmup_step=3"};
    CHECK(cad_config_resolve(&c, NULL, 1, sets, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "did you mean 'warmup_steps'"), "%s", e.msg);
    cad_config_free(&c);

    char *bad[] = {"noequals"};
    CHECK(cad_config_resolve(&c, NULL, 1, bad, &e) == CAD_EUSAGE);
    cad_config_free(&c);
}

static void test_type_errors_name_the_place(void) {
    const char *path = check_write_file(check_tmp_path("type.yaml"), "num_layers: 4\niterations: many\n");
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_resolve(&c, path, 0, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "type.yaml:2:13") && strstr(e.msg, "integer expected"), "%s", e.msg);
    cad_config_free(&c);

    path = check_write_file(check_tmp_path("type2.yaml"), "tie_embeddings: maybe\n");
    CHECK(cad_config_resolve(&c, path, 0, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "boolean expected"), "%s", e.msg);
    cad_config_free(&c);

    path = check_write_file(check_tmp_path("type3.yaml"), "num_layers: [1, 2]\n");
    CHECK(cad_config_resolve(&c, path, 0, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "type3.yaml:1:13"), "%s", e.msg);
    cad_config_free(&c);

    setenv("SEED", "1.5", 1);
    CHECK(cad_config_resolve(&c, NULL, 0, NULL, &e) == CAD_ECONFIG);
    unsetenv("SEED");
    CHECK_MSG(strstr(e.msg, "SEED") && strstr(e.msg, "integer expected"), "%s", e.msg);
    cad_config_free(&c);
}

static void expect_invalid(const char *set, const char *want) {
    char *sets[] = {(char *)set};
    cad_config c;
    cad_err e = {0};
    int rc = cad_config_resolve(&c, NULL, 1, sets, &e);
    CHECK_MSG(rc == CAD_ECONFIG && strstr(e.msg, want), "--set %s: rc %d, msg '%s' (want '%s')", set,
              rc, e.msg, want);
    cad_config_free(&c);
}

static void test_invalid_combinations(void) {
    expect_invalid("model_dim=500", "model_dim=500 must be divisible by num_heads=8");
    expect_invalid("num_kv_heads=3", "num_heads=8 must be divisible by num_kv_heads=3");
    expect_invalid("model_dim=24", "head_dim"); /* 24/8 = 3: odd */
    expect_invalid("logit_softcap=0", "logit_softcap");
    expect_invalid("train_batch_tokens=1000", "multiple of train_seq_len");
    expect_invalid("val_batch_size=4096", "val_batch_size");
    expect_invalid("tokenizer_path=tok.vocab", ".model");
    expect_invalid("beta2=1.0", "beta2");
    expect_invalid("val_max_tokens=10", "val_max_tokens");
    expect_invalid("run_id=a/b", "run_id");
    expect_invalid("vocab_size=70000", "vocab_size");
    expect_invalid("backend=gpu", "expected cpu or cuda");
    expect_invalid("matmul_precision=fp16", "expected fp32 or bf16");
    expect_invalid("muon_wd=-0.1", "weight decay must be >= 0");
    expect_invalid("ema_decay=1", "ema_decay=1");
    expect_invalid("eval_stride=2048", "eval_stride=2048");
    expect_invalid("recur_layers=3to5", "recur_layers='3to5': expected 'a-b'");
    expect_invalid("recur_loops=0", "recur_loops=0");
    expect_invalid("eval_recur_loops=17", "eval_recur_loops=17: expected 0 (= recur_loops) or 1..16");
    expect_invalid("curriculum=shortest", "curriculum='shortest': expected none or length");
    expect_invalid("curriculum_window=0", "curriculum_window=0: expected >= 1 token");
    expect_invalid("attn_gate=dense", "attn_gate='dense': expected none, sparse or full");
    expect_invalid("seq_len_schedule=512@0.1", "seq_len_schedule='512@0.1': expected"); /* must start at 0 */
    expect_invalid("seq_len_schedule=512@0,1024@0.5,768@0.5", "fractions rising from 0");
    expect_invalid("seq_len_schedule=512", "T@frac");
    expect_invalid("seq_len_schedule=512@0,1024@1", "below 1");
    expect_invalid("seq_len_schedule=512@0,1000@0.5", "seq_len_schedule entry 1000@0.5: expected a length dividing");
    expect_invalid("artifact_compressor=xz", "expected zlib, zstd, lzma or brotli");
    expect_invalid("code_compress=brotli", "code_compress='brotli': expected none, lzma or zlib");
    expect_invalid("qat_bits=7", "qat_bits='7': expected 0 (off), 8, 6, 5, 4, 3, 2 or ternary");
    expect_invalid("qat_bits=1", "qat_bits='1'");
    expect_invalid("qat_start_frac=1.5", "qat_start_frac=1.5: expected 0..1");
    expect_invalid("quant_method=awq", "quant_method='awq': expected clip_search or gptq");
    expect_invalid("gptq_calib_batches=0", "gptq_calib_batches=0: expected 1..4096");
    expect_invalid("gptq_damp=0", "gptq_damp=0: expected 0 < damp <= 1");
    {
        /* QAT's fake quantisation is the plain clip: the export must not search another */
        cad_config c;
        cad_err e;
        char *sets[] = {"qat_bits=6", "quant_clip_search=1"};
        CHECK(cad_config_resolve(&c, NULL, 2, sets, &e) == CAD_ECONFIG);
        CHECK_MSG(strstr(e.msg, "expected quant_clip_search=0 and quant_sdclip_k=0") != NULL, "got: %s", e.msg);
        cad_config_free(&c);
        char *ok[] = {"qat_bits=ternary", "artifact_compressor=brotli", "code_compress=lzma"};
        CHECK_MSG(cad_config_resolve(&c, NULL, 3, ok, &e) == CAD_OK, "%s", e.msg);
        CHECK_EQ_INT(cad_config_qat_bits(&c), 1);
        CHECK(cad_config_key_inert(&c, "quant_matrix_bits") && !cad_config_key_inert(&c, "qat_start_frac"));
        cad_config_free(&c);
        char *both[] = {"qat_bits=6", "quant_method=gptq"};
        CHECK(cad_config_resolve(&c, NULL, 2, both, &e) == CAD_ECONFIG);
        CHECK_MSG(strstr(e.msg, "quant_method=gptq with qat_bits=6: expected one of the two") != NULL, "got: %s", e.msg);
        cad_config_free(&c);
        char *g[] = {"quant_method=gptq"};
        CHECK_MSG(cad_config_resolve(&c, NULL, 1, g, &e) == CAD_OK, "%s", e.msg);
        CHECK(!cad_config_key_inert(&c, "gptq_damp") && cad_config_key_inert(&c, "qat_start_frac"));
        cad_config_free(&c);
        CHECK(cad_config_resolve(&c, NULL, 0, NULL, &e) == CAD_OK && cad_config_key_inert(&c, "gptq_damp"));
        cad_config_free(&c);
    }
    {
        cad_config c;
        cad_err e;
        char *sets[] = {"recur_layers=7-9", "recur_loops=2"};
        CHECK(cad_config_resolve(&c, NULL, 2, sets, &e) != CAD_OK);
        CHECK_MSG(strstr(e.msg, "within blocks 0..8") != NULL, "got: %s", e.msg);
        cad_config_free(&c);
    }
}

/* Numbers that used to be misread: a value beyond int that the engine narrowed (4294967424 =
 * 2^32 + 128 trained a 128-wide model), text longer than the parse buffer (cut to its zeros
 * and read as 0, junk suffix ignored), and non-finite floats. Each names the key. */
static void test_numbers_out_of_range_long_or_junk(void) {
    expect_invalid("model_dim=4294967424", "key 'model_dim': integer 4294967424 out of range");
    expect_invalid("num_layers=-2147483649", "key 'num_layers': integer -2147483649 out of range");
    expect_invalid("iterations=99999999999999999999999", "key 'iterations': integer 99999999999999999999999 out of range");
    char zeros[200] = "matrix_lr=";
    size_t o = strlen(zeros);
    for (int i = 0; i < 127; i++) zeros[o++] = '0';
    snprintf(zeros + o, sizeof zeros - o, "5xyz");
    expect_invalid(zeros, "key 'matrix_lr': number expected, got 131 characters");
    zeros[o + 1] = 0; /* 127 zeros and a 5: a fine (if odd) way to write 5 */
    {
        char *sets[] = {zeros};
        cad_config c;
        cad_err e = {0};
        CHECK_MSG(cad_config_resolve(&c, NULL, 1, sets, &e) == CAD_OK && c.matrix_lr == 5.0, "%s", e.msg);
        cad_config_free(&c);
    }
    expect_invalid("matrix_lr=0.05xyz", "key 'matrix_lr': finite number expected, got '0.05xyz'");
    expect_invalid("model_dim=512abc", "key 'model_dim': integer expected, got '512abc'");
    expect_invalid("matrix_lr=inf", "key 'matrix_lr': finite number expected, got 'inf'");
    expect_invalid("matrix_lr=-Infinity", "key 'matrix_lr'");
    expect_invalid("embed_lr=nan", "key 'embed_lr': finite number expected, got 'nan'");
    expect_invalid("rope_base=1e309", "key 'rope_base': finite number expected, got '1e309'");
    expect_invalid("seed=1.5", "key 'seed': integer expected");
    /* the seed is a 64-bit generator seed: any long is fine */
    {
        char *sets[] = {"seed=4294967424"};
        cad_config c;
        cad_err e = {0};
        CHECK_MSG(cad_config_resolve(&c, NULL, 1, sets, &e) == CAD_OK && c.seed == 4294967424L, "%s", e.msg);
        cad_config_free(&c);
    }
    /* the same text in a YAML file is refused at its line:col */
    const char *path = check_write_file(check_tmp_path("big.yaml"), "num_layers: 4\nmodel_dim: 4294967424\n");
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_resolve(&c, path, 0, NULL, &e) == CAD_ECONFIG);
    CHECK_MSG(strstr(e.msg, "big.yaml:2:12") && strstr(e.msg, "model_dim") && strstr(e.msg, "out of range"), "%s",
              e.msg);
    cad_config_free(&c);
}

/* Run ids that are not a plain directory name: ".." wrote the run's files into the current
 * directory (runs/..), "." into runs/ itself. */
static void test_run_id_must_name_its_own_directory(void) {
    expect_invalid("run_id=..", "run_id='..': not a directory name");
    expect_invalid("run_id=.", "run_id='.': not a directory name");
    expect_invalid("run_id=../x", "run_id='../x'");
    expect_invalid("run_id=a/b", "run_id='a/b'");
    expect_invalid("run_id= ", "run_id=' '");
    expect_invalid("run_id=a\tb", "found byte 0x09");
    expect_invalid("run_id=a\x01", "found byte 0x01");
    char *sets[] = {"run_id=..x.y"};
    cad_config c;
    cad_err e = {0};
    CHECK_MSG(cad_config_resolve(&c, NULL, 1, sets, &e) == CAD_OK, "%s", e.msg);
    cad_config_free(&c);
}

static void test_resolved_yaml_round_trips(void) {
    char *sets[] = {"code_files=a.c,b/*.h", "rope_base=20000", "adam_eps=1e-10", "run_id=x1",
                    "init_from=w \"q\".safetensors"};
    cad_config c, d;
    cad_err e = {0};
    CHECK(cad_config_resolve(&c, NULL, 5, sets, &e) == CAD_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/resolved.yaml", check_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(cad_config_write_yaml(&c, f) == CAD_OK);
    fclose(f);
    CHECK_MSG(cad_config_resolve(&d, path, 0, NULL, &e) == CAD_OK, "%s", e.msg);
    for (int i = 0; i < cad_config_key_count(); i++) {
        char a[4096], b[4096];
        cad_config_format(&c, cad_config_key_at(i), a, sizeof a);
        cad_config_format(&d, cad_config_key_at(i), b, sizeof b);
        CHECK_MSG(strcmp(a, b) == 0, "key %s: '%s' vs '%s'", cad_config_key_at(i)->name, a, b);
    }
    CHECK_STR(d.code_files, "a.c,b/*.h");
    CHECK_STR(d.init_from, "w \"q\".safetensors");
    cad_config_free(&c);
    cad_config_free(&d);
}

static void test_yaml_list_joins(void) {
    const char *path = check_write_file(check_tmp_path("list.yaml"), "code_files:\n  - engine/*.c\n  - cli/cmd_train.c\n");
    cad_config c;
    cad_err e = {0};
    CHECK_MSG(cad_config_resolve(&c, path, 0, NULL, &e) == CAD_OK, "%s", e.msg);
    CHECK_STR(c.code_files, "engine/*.c,cli/cmd_train.c");
    cad_config_free(&c);
}

static void test_key_table_api(void) {
    int n = cad_config_key_count();
    CHECK(n >= 45);
    CHECK(cad_config_key_at(n) == NULL);
    CHECK(cad_config_key_at(-1) == NULL);
    for (int i = 0; i < n; i++) {
        const cad_config_key *k = cad_config_key_at(i);
        CHECK(cad_config_key_find(k->name) == k);
        CHECK(k->doc && k->doc[0]);
        for (const char *p = k->name; *p; p++) CHECK(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'));
    }
    CHECK(cad_edit_distance("kitten", "sitting") == 3);
    CHECK(cad_edit_distance("", "abc") == 3);
}

int main(void) {
    RUN(test_defaults_are_train_gpt);
    RUN(test_precedence_file_env_set);
    RUN(test_unknown_key_closest_name);
    RUN(test_type_errors_name_the_place);
    RUN(test_invalid_combinations);
    RUN(test_numbers_out_of_range_long_or_junk);
    RUN(test_run_id_must_name_its_own_directory);
    RUN(test_resolved_yaml_round_trips);
    RUN(test_yaml_list_joins);
    RUN(test_key_table_api);
    return check_report();
}
