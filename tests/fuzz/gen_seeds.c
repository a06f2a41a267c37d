/*
 * gen_seeds.c — writes the binary seed files of tests/fuzz/seeds/ (`make fuzz-seeds`): valid
 * shards, safetensors, checkpoints and int8 artifacts, made with the library's own writers
 * where it has one (so the seeds follow the formats as they are written today) and by hand
 * where a writer never produces that variant (F16/BF16 safetensors, per-row and per-tensor
 * int8 containers, which the exporter only uses for tensors too big to be a seed).
 * The toy models are fuzz_common.h's, the same ones the harnesses load into.
 * The record seeds are the repo's record fixtures (tests/fixtures/logs/<track>/<record>/, run
 * from the repo root) packed as fuzz_record.c reads them: the submission JSON, the README's
 * start and the start and end of two logs (hyperparameters and final scores), cut at lines
 * so a seed stays a few kB.
 * Not here: the text seeds (YAML, logs), which are plain files in tests/fuzz/seeds/.
 */
#include "engine/checkpoint.h"
#include "engine/export.h"
#include "engine/safetensors.h"
#include "engine/shard.h"
#include "tests/fuzz/fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *root;

static void die(const char *what, const cad_err *e) {
    fprintf(stderr, "gen_seeds: %s: %s\n", what, e ? e->msg : strerror(errno));
    exit(1);
}

static const char *seed_path(const char *target, const char *name) {
    static char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", root, target);
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p, NULL);
    snprintf(p, sizeof p, "%s/%s/%s", root, target, name);
    return p;
}

static void write_bytes(const char *target, const char *name, const void *a, size_t na, const void *b, size_t nb) {
    const char *p = seed_path(target, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f) != 0) die(p, NULL);
}

static unsigned char *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, NULL);
    static unsigned char buf[1 << 20];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

/* ---- a container in export.h's layout, built by hand ------------------------------------ */
typedef struct { unsigned char b[4096]; size_t n; } bytes;
static void put(bytes *o, const void *p, size_t n) {
    if (o->n + n > sizeof o->b) { fprintf(stderr, "gen_seeds: container too big\n"); exit(1); }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put_u8(bytes *o, unsigned v) { unsigned char c = (unsigned char)v; put(o, &c, 1); }
static void put_u16(bytes *o, unsigned v) { uint16_t x = (uint16_t)v; put(o, &x, 2); }
static void put_u32(bytes *o, uint32_t v) { put(o, &v, 4); }
static void put_head(bytes *o, const cad_named_tensor *t, int scheme) {
    put_u16(o, (unsigned)strlen(t->name));
    put(o, t->name, strlen(t->name));
    put_u8(o, (unsigned)scheme);
    put_u8(o, (unsigned)t->ndim);
    put(o, t->shape, (size_t)t->ndim * 8);
}

static void gen_int8(void) {
    cad_named_tensor ts[FUZZ_N_TENSORS];
    fuzz_tensors(ts);
    for (int i = 0; i < FUZZ_N_TENSORS; i++)
        for (size_t j = 0; j < ts[i].numel; j++) ts[i].data[j] = (float)((int)(j * 7 + (size_t)i) % 11 - 5) * 0.1f;
    cad_err e;
    unsigned char mode0 = 0;
    for (int c = 0; c < 2; c++) {
        cad_quant_opts qo = {.compressor = c ? CAD_COMPRESS_ZSTD : CAD_COMPRESS_ZLIB, .matrix_bits = 8, .embed_bits = 8};
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/.artifact.tmp", root);
        cad_int8_stats st;
        if (cad_int8_export(tmp, ts, FUZZ_N_TENSORS, &qo, &st, &e) != CAD_OK) die("cad_int8_export", &e);
        size_t len;
        unsigned char *a = read_bytes(tmp, &len);
        write_bytes("int8", c ? "gen-export-zstd" : "gen-export-zlib", &mode0, 1, a, len);
        unlink(tmp);
    }
    /* Every scheme once: per-row (2-D), per-tensor (3-D), fp16 and fp32 vectors. */
    bytes o = {.n = 0};
    put(&o, "CADQINT8", 8);
    put_u32(&o, 1);
    put_u32(&o, FUZZ_N_TENSORS);
    put_head(&o, &ts[0], CAD_Q_PER_ROW);
    for (int64_t r = 0; r < ts[0].shape[0]; r++) put_u16(&o, cad_f32_to_f16(0.01f * (float)(r + 1)));
    for (size_t j = 0; j < ts[0].numel; j++) put_u8(&o, (unsigned)(j * 37) & 0xff);
    put_head(&o, &ts[1], CAD_Q_FP32);
    put(&o, ts[1].data, ts[1].numel * 4);
    put_head(&o, &ts[2], CAD_Q_PER_TENSOR);
    float s = 0.02f;
    put(&o, &s, 4);
    for (size_t j = 0; j < ts[2].numel; j++) put_u8(&o, (unsigned)(j * 11) & 0xff);
    put_head(&o, &ts[3], CAD_Q_FP16);
    for (size_t j = 0; j < ts[3].numel; j++) put_u16(&o, cad_f32_to_f16(ts[3].data[j]));
    unsigned char mode1 = 1, mode2 = 2;
    write_bytes("int8", "gen-container-all-schemes-zlib", &mode1, 1, o.b, o.n);
    write_bytes("int8", "gen-container-all-schemes-zstd", &mode2, 1, o.b, o.n);
}

static void gen_safetensors(void) {
    cad_named_tensor ts[FUZZ_N_TENSORS];
    fuzz_tensors(ts);
    for (int i = 0; i < FUZZ_N_TENSORS; i++)
        for (size_t j = 0; j < ts[i].numel; j++) ts[i].data[j] = (float)j - 2.5f;
    cad_err e;
    if (cad_safetensors_write(seed_path("safetensors", "gen-toy-f32.safetensors"), ts, FUZZ_N_TENSORS, &e) != CAD_OK)
        die("cad_safetensors_write", &e);
    if (cad_safetensors_write(seed_path("safetensors", "gen-one-tensor.safetensors"), ts + 1, 1, &e) != CAD_OK)
        die("cad_safetensors_write", &e);
    /* Half-precision dtypes, which the writer never produces (torch does). */
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
                     "\"__metadata__\":{\"format\":\"pt\"}}");
    while (n % 8) hdr[n++] = ' ';
    unsigned char file[8 + sizeof hdr + 8];
    uint64_t hl = (uint64_t)n;
    memcpy(file, &hl, 8);
    memcpy(file + 8, hdr, (size_t)n);
    uint16_t vals[4] = {cad_f32_to_f16(1.5f), cad_f32_to_f16(-2.0f), 0x3f80 /* bf16 1.0 */, 0xc000 /* -2.0 */};
    memcpy(file + 8 + n, vals, 8);
    write_bytes("safetensors", "gen-f16-bf16.safetensors", file, 8 + (size_t)n + 8, NULL, 0);
}

static void gen_checkpoint(void) {
    const cad_backend *be = cad_backend_cpu();
    cad_checkpoint_meta m = fuzz_ckpt_want();
    float *params = be->alloc(be, (size_t)m.n_param_floats * 4), *state = be->alloc(be, (size_t)m.n_state_floats * 4);
    if (!params || !state) die("alloc", NULL);
    float host[64];
    for (int i = 0; i < 64; i++) host[i] = 0.125f * (float)(i % 9) - 0.5f;
    be->copy_to_device(be, params, host, (size_t)m.n_param_floats * 4);
    be->copy_to_device(be, state, host, (size_t)m.n_state_floats * 4);
    cad_err e;
    if (cad_checkpoint_save(seed_path("checkpoint", "gen-toy.ckpt"), &m, be, params, state, &e) != CAD_OK)
        die("cad_checkpoint_save", &e);
    m.step = 0;
    m.prequant_val_loss = m.prequant_val_bpb = NAN; /* "no validation yet" */
    if (cad_checkpoint_save(seed_path("checkpoint", "gen-step0.ckpt"), &m, be, params, state, &e) != CAD_OK)
        die("cad_checkpoint_save", &e);
    be->free(be, params);
    be->free(be, state);
}

static void gen_shard(void) {
    uint16_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = (uint16_t)((i * 97) % 1024);
    cad_err e;
    if (cad_shard_write(seed_path("shard", "gen-40-tokens.bin"), toks, 40, &e) != CAD_OK) die("cad_shard_write", &e);
    if (cad_shard_write(seed_path("shard", "gen-empty.bin"), toks, 0, &e) != CAD_OK) die("cad_shard_write", &e);
    toks[3] = 4000; /* valid file, id past the 1024 vocabulary */
    if (cad_shard_write(seed_path("shard", "gen-id-over-vocab.bin"), toks, 8, &e) != CAD_OK) die("cad_shard_write", &e);
}

/* ---- record folders, packed (fuzz_common.h, FUZZ_RECORD_SEP) --------------------------- */
#define RECORD_FIXTURES "tests/fixtures/logs"
#define README_KEEP 3000 /* bytes of the README's start */
#define LOG_HEAD 2000    /* bytes of a log's start (hyperparameters, first steps) */
#define LOG_TAIL 1500    /* bytes of its end (final evaluation lines) */

/* Append up to head bytes of the file's start (cut after its last whole line) and, when
 * tail > 0, up to tail bytes of its end (from the first whole line). */
static void put_file_cut(FILE *out, const char *path, size_t head, size_t tail) {
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    if (len <= head + tail) {
        fwrite(b, 1, len, out);
        return;
    }
    size_t h = head;
    while (h > 0 && b[h - 1] != '\n') h--;
    fwrite(b, 1, h, out);
    if (!tail) return;
    size_t t = len - tail;
    while (t < len && b[t - 1] != '\n') t++;
    fwrite(b + t, 1, len - t, out);
}

static void gen_record(const char *track, const char *name) {
    char dir[PATH_MAX * 2], pat[PATH_MAX * 2 + 32], out_name[96];
    snprintf(dir, sizeof dir, "%s/%s/%s", RECORD_FIXTURES, track, name);
    snprintf(out_name, sizeof out_name, "rec-%.80s", name);
    const char *out_path = seed_path("record", out_name);
    FILE *out = fopen(out_path, "wb");
    if (!out) die(out_path, NULL);
    /* submission.json, else the first submission*.json (as the import prefers) */
    glob_t g;
    snprintf(pat, sizeof pat, "%s/submission.json", dir);
    if (glob(pat, 0, NULL, &g) != 0) {
        snprintf(pat, sizeof pat, "%s/submission*.json", dir);
        glob(pat, 0, NULL, &g);
    }
    if (g.gl_pathc) put_file_cut(out, g.gl_pathv[0], (size_t)1 << 19, 0);
    globfree(&g);
    fputs(FUZZ_RECORD_SEP, out);
    snprintf(pat, sizeof pat, "%s/README.md", dir);
    if (access(pat, R_OK) == 0) put_file_cut(out, pat, README_KEEP, 0);
    /* two logs: *.log and *.txt in the folder or one level down, in glob order */
    int n_logs = 0;
    static const char *const pats[] = {"%s/*.log", "%s/*.txt", "%s/*/*.log", "%s/*/*.txt"};
    for (size_t k = 0; k < sizeof pats / sizeof *pats && n_logs < 2; k++) {
        snprintf(pat, sizeof pat, pats[k], dir);
        if (glob(pat, 0, NULL, &g) != 0) continue;
        for (size_t i = 0; i < g.gl_pathc && n_logs < 2; i++) {
            fputs(FUZZ_RECORD_SEP, out);
            put_file_cut(out, g.gl_pathv[i], LOG_HEAD, LOG_TAIL);
            n_logs++;
        }
        globfree(&g);
    }
    if (fclose(out) != 0) die(out_path, NULL);
}

static void gen_records(void) {
    static const char *const tracks[] = {"track_10min_16mb", "track_non_record_16mb"};
    for (size_t t = 0; t < sizeof tracks / sizeof *tracks; t++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", RECORD_FIXTURES, tracks[t]);
        DIR *d = opendir(p);
        if (!d) die(p, NULL);
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.') gen_record(tracks[t], de->d_name);
        closedir(d);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEED_DIR  (writes SEED_DIR/<target>/gen-*)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    gen_shard();
    gen_safetensors();
    gen_checkpoint();
    gen_int8();
    gen_records();
    printf("gen_seeds: wrote the binary and record seeds under %s\n", root);
    return 0;
}
