/*
 * test_engine_safetensors.c — safetensors interop with PyTorch, both ways:
 *  - reads tests/fixtures/engine/torch_written.safetensors (written from torch tensors by
 *    tests/scripts/gen_safetensors_fixture.py; F32, F16 and BF16) and checks every value
 *    against the generator's formula;
 *  - writes the same tensors and requires the bytes of
 *    tests/fixtures/engine/caddie_written.safetensors, a file this writer produced and that
 *    `gen_safetensors_fixture.py --check` loaded into torch and verified (regenerate with
 *    CADDIE_WRITE_FIXTURE=1, then run the --check);
 *  - round trip and malformed-file errors.
 */
#include "check.h"
#include "engine/safetensors.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define NT 6
static const char *names[NT] = {"tok_emb.weight", "skip_weights", "blocks.0.attn.c_q.weight",
                                "blocks.0.attn.q_gain", "blocks.0.attn_scale", "blocks.0.resid_mix"};
static const int64_t shapes[NT][2] = {{64, 16}, {0, 16}, {16, 16}, {2, 0}, {16, 0}, {2, 16}};
static const int dtypes[NT] = {0, 0, 0, 0, 1, 2}; /* F32, F16, BF16 as the generator wrote them */

static float bf16_round(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even, as torch's .to(bfloat16) */
    x &= 0xffff0000u;
    memcpy(&f, &x, 4);
    return f;
}

/* the generator's formula: sin(0.37*i + k) * 0.5**k, in double, then fp32 (then fp16/bf16) */
static float expect_value(int k, size_t i) {
    float f = (float)(sin(0.37 * (double)i + k) * pow(0.5, k));
    if (dtypes[k] == 1) return cad_f16_to_f32(cad_f32_to_f16(f));
    if (dtypes[k] == 2) return bf16_round(f);
    return f;
}

static void make_tensors(cad_named_tensor *ts, float **bufs) {
    for (int k = 0; k < NT; k++) {
        ts[k].name = names[k];
        ts[k].ndim = shapes[k][1] || k == 1 ? 2 : 1;
        ts[k].shape[0] = shapes[k][0];
        ts[k].shape[1] = shapes[k][1];
        ts[k].numel = (size_t)shapes[k][0] * (size_t)(ts[k].ndim == 2 ? shapes[k][1] : 1);
        bufs[k] = ts[k].data = malloc(ts[k].numel * 4 + 4);
        for (size_t i = 0; i < ts[k].numel; i++) ts[k].data[i] = expect_value(k, i);
    }
}

static void test_reads_torch_file(void) {
    cad_safetensors_file f;
    cad_err e = {0};
    int rc = cad_safetensors_load(check_src_path("tests/fixtures/engine/torch_written.safetensors"), &f, &e);
    CHECK_MSG(rc == CAD_OK, "%s", e.msg);
    if (rc) return;
    CHECK_EQ_INT(f.n, NT);
    for (int k = 0; k < NT && k < f.n; k++) {
        const cad_named_tensor *t = &f.tensors[k];
        CHECK_STR(t->name, names[k]);
        CHECK_EQ_INT(t->shape[0], shapes[k][0]);
        int bad = 0;
        for (size_t i = 0; i < t->numel; i++) bad += t->data[i] != expect_value(k, i);
        CHECK_MSG(bad == 0, "%s: %d values differ", names[k], bad);
    }
    cad_safetensors_file_free(&f);
}

static void test_writes_torch_verified_bytes(void) {
    cad_named_tensor ts[NT];
    float *bufs[NT];
    make_tensors(ts, bufs);
    char path[4200];
    snprintf(path, sizeof path, "%s/caddie.safetensors", check_tmpdir());
    const char *fixture = check_src_path("tests/fixtures/engine/caddie_written.safetensors");
    cad_err e = {0};
    CHECK(cad_safetensors_write(getenv("CADDIE_WRITE_FIXTURE") ? fixture : path, ts, NT, &e) == CAD_OK);
    FILE *a = fopen(path, "rb"), *b = fopen(fixture, "rb");
    if (getenv("CADDIE_WRITE_FIXTURE")) a = fopen(fixture, "rb");
    CHECK(a && b);
    if (a && b) {
        int same = 1, ca, cb;
        do {
            ca = fgetc(a), cb = fgetc(b);
            same &= ca == cb;
        } while (ca != EOF && cb != EOF);
        CHECK_MSG(same, "caddie's writer output differs from the torch-verified fixture");
    }
    if (a) fclose(a);
    if (b) fclose(b);
    for (int k = 0; k < NT; k++) free(bufs[k]);
}

static void test_round_trip_and_errors(void) {
    cad_named_tensor ts[NT], back[NT];
    float *bufs[NT], *bufs2[NT];
    make_tensors(ts, bufs);
    make_tensors(back, bufs2);
    for (int k = 0; k < NT; k++) memset(back[k].data, 0, back[k].numel * 4);
    char path[4200], bad[4200];
    snprintf(path, sizeof path, "%s/rt.safetensors", check_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.safetensors", check_tmpdir());
    cad_err e = {0};
    CHECK(cad_safetensors_write(path, ts, NT, &e) == CAD_OK);
    CHECK_MSG(cad_safetensors_read_into(path, back, NT, 1, &e) == CAD_OK, "%s", e.msg);
    for (int k = 0; k < NT; k++) CHECK(memcmp(ts[k].data, back[k].data, ts[k].numel * 4) == 0);

    /* file has more tensors than the model: fine unless strict */
    CHECK(cad_safetensors_read_into(path, back, NT - 1, 0, &e) == CAD_OK);
    CHECK(cad_safetensors_read_into(path, back, NT - 1, 1, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "unexpected tensor 'blocks.0.resid_mix'"), "%s", e.msg);
    /* model has a tensor the file lacks */
    CHECK(cad_safetensors_write(path, ts, NT - 1, &e) == CAD_OK);
    CHECK(cad_safetensors_read_into(path, back, NT, 0, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "'blocks.0.resid_mix' missing"), "%s", e.msg);
    /* shape mismatch names both shapes */
    back[2].shape[0] = 8, back[2].shape[1] = 32;
    CHECK(cad_safetensors_read_into(path, back, NT - 1, 0, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "[16,16]") && strstr(e.msg, "[8,32]"), "%s", e.msg);
    back[2].shape[0] = 16, back[2].shape[1] = 16;

    /* declared header length (-1: the JSON's length), JSON, data bytes after it, expected text */
    struct { long hlen; const char *json; int data; const char *want; } cases[] = {
        {-2, "", 0, "too short"},
        {255, "{}", 0, "exceeds the file"},
        {-1, "[]", 0, "'{' expected"},
        {-1, "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "dtype I64"},
        {-1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "do not fit"},
        {-1, "{\"a\":{\"dtype\":\"F32\",\"shape\"", 0, "header"},
        {-1, "{\"a\":{\"dtype\":\"F32\"}}", 0, "lacks"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(bad, "wb");
        if (cases[i].hlen == -2) {
            fwrite("\5\0\0", 1, 3, f);
        } else {
            uint64_t h = cases[i].hlen < 0 ? strlen(cases[i].json) : (uint64_t)cases[i].hlen;
            fwrite(&h, 8, 1, f);
            fputs(cases[i].json, f);
            for (int k = 0; k < cases[i].data; k++) fputc(0, f);
        }
        fclose(f);
        cad_safetensors_file sf;
        int rc = cad_safetensors_load(bad, &sf, &e);
        CHECK_MSG(rc == CAD_EFORMAT && strstr(e.msg, cases[i].want) && strstr(e.msg, "bad.safetensors"),
                  "case %zu: rc %d msg '%s' (want '%s')", i, rc, e.msg, cases[i].want);
    }
    CHECK(cad_safetensors_read_into("/nonexistent/x.safetensors", back, NT, 0, &e) == CAD_EIO);
    for (int k = 0; k < NT; k++) free(bufs[k]), free(bufs2[k]);
}

/* A file with the given header JSON (its exact length declared) and n_data zero bytes. */
static const char *write_st(const char *name, const char *json, size_t json_len, int n_data) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", check_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    uint64_t h = json_len;
    fwrite(&h, 8, 1, f);
    fwrite(json, 1, json_len, f);
    for (int k = 0; k < n_data; k++) fputc(0, f);
    fclose(f);
    return path;
}

/* Headers an adversary would write: each is refused with a message naming the problem,
 * never loaded wrong (under ASan a heap overrun here would abort the test). */
static void test_hostile_headers_refused(void) {
    cad_err e = {0};
    cad_safetensors_file sf;
    /* numel*2 wraps to 0 in size_t: offsets [0,0] used to "fit", then 2^63 floats were copied */
    const char *ovf = "{\"a\":{\"dtype\":\"F16\",\"shape\":[4611686018427387904,2],\"data_offsets\":[0,0]}}";
    const char *p = write_st("ovf.safetensors", ovf, strlen(ovf), 0);
    int rc = cad_safetensors_load(p, &sf, &e);
    CHECK_MSG(rc == CAD_EFORMAT && strstr(e.msg, "tensor 'a'") && strstr(e.msg, "[4611686018427387904,2]"),
              "rc %d msg '%s'", rc, e.msg);
    /* a NUL inside a name would load tensor "a\0b" as "a" */
    const char *nul = "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    p = write_st("nul.safetensors", nul, strlen(nul), 4);
    rc = cad_safetensors_load(p, &sf, &e);
    CHECK_MSG(rc == CAD_EFORMAT && strstr(e.msg, "NUL character") && strstr(e.msg, "nul.safetensors"),
              "rc %d msg '%s'", rc, e.msg);
    /* a raw NUL byte in a name, too */
    const char raw[] = "{\"a\0b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    p = write_st("rawnul.safetensors", raw, sizeof raw - 1, 4);
    rc = cad_safetensors_load(p, &sf, &e);
    CHECK_MSG(rc == CAD_EFORMAT && strstr(e.msg, "NUL character"), "rc %d msg '%s'", rc, e.msg);
    /* bytes after the JSON object inside the declared header length */
    const char *junk = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  xyz";
    p = write_st("junk.safetensors", junk, strlen(junk), 4);
    rc = cad_safetensors_load(p, &sf, &e);
    CHECK_MSG(rc == CAD_EFORMAT && strstr(e.msg, "unexpected bytes after the header"), "rc %d msg '%s'", rc, e.msg);
    const char *two = "{}{}";
    p = write_st("two.safetensors", two, strlen(two), 0);
    CHECK(cad_safetensors_load(p, &sf, &e) == CAD_EFORMAT);
    /* the format's padding (spaces) stays fine */
    const char *pad = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}       ";
    p = write_st("pad.safetensors", pad, strlen(pad), 4);
    rc = cad_safetensors_load(p, &sf, &e);
    CHECK_MSG(rc == CAD_OK && sf.n == 1 && strcmp(sf.tensors[0].name, "a") == 0 && sf.tensors[0].data[0] == 0.0f,
              "rc %d msg '%s'", rc, e.msg);
    if (rc == CAD_OK) cad_safetensors_file_free(&sf);
}

/* A FIFO at the weights path would block the read forever: refused at once (alarm guards it). */
static void test_fifo_refused(void) {
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/w.safetensors", check_tmpdir());
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(10);
    cad_safetensors_file sf;
    cad_err e = {0};
    int rc = cad_safetensors_load(fifo, &sf, &e);
    CHECK_MSG(rc == CAD_EIO && strstr(e.msg, fifo) && strstr(e.msg, "not a regular file"), "rc %d msg '%s'", rc, e.msg);
    rc = cad_safetensors_load("/dev/zero", &sf, &e);
    CHECK_MSG(rc == CAD_EIO && strstr(e.msg, "/dev/zero: not a regular file"), "rc %d msg '%s'", rc, e.msg);
    alarm(0);
    unlink(fifo);
}

int main(void) {
    RUN(test_reads_torch_file);
    RUN(test_writes_torch_verified_bytes);
    RUN(test_round_trip_and_errors);
    RUN(test_hostile_headers_refused);
    RUN(test_fifo_refused);
    return check_report();
}
