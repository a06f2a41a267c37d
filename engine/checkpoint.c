/*
 * checkpoint.c — write/read the training state file (see checkpoint.h).
 * Not here: when to checkpoint (train.c).
 */
#include "engine/checkpoint.h"

#include "engine/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_MAGIC "CADCKPT1"
#define CKPT_VERSION 1u
#define CHUNK_FLOATS (1u << 20)

typedef struct hw {
    FILE *f;
    uint64_t h;
} hw;

static void fnv(uint64_t *h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 1099511628211ull;
}

static void hw_put(hw *w, const void *p, size_t n) {
    fnv(&w->h, p, n);
    fwrite(p, 1, n, w->f);
}

static int put_floats(hw *w, const cad_backend *be, const float *src, size_t n, float *buf) {
    for (size_t off = 0; off < n; off += CHUNK_FLOATS) {
        size_t k = n - off < CHUNK_FLOATS ? n - off : CHUNK_FLOATS;
        be->copy_to_host(be, buf, src + off, k * sizeof(float));
        hw_put(w, buf, k * sizeof(float));
    }
    return ferror(w->f) ? -1 : 0;
}

int cad_checkpoint_save(const char *path, const cad_checkpoint_meta *meta, const cad_backend *be,
                        const float *params, const float *state, cad_err *e) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    float *buf = malloc(CHUNK_FLOATS * sizeof(float));
    if (!buf) { fclose(f); unlink(tmp); return cad_fail(e, CAD_ENOMEM, "checkpoint: out of memory"); }
    hw w = {f, 1469598103934665603ull};
    uint32_t v = CKPT_VERSION, reserved = 0;
    hw_put(&w, CKPT_MAGIC, 8);
    hw_put(&w, &v, 4);
    hw_put(&w, &reserved, 4);
    hw_put(&w, meta, sizeof *meta);
    int bad = put_floats(&w, be, params, (size_t)meta->n_param_floats, buf) ||
              put_floats(&w, be, state, (size_t)meta->n_state_floats, buf);
    free(buf);
    fwrite(&w.h, 8, 1, f);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: write failed: %s", tmp, strerror(errno)); }
    if (rename(tmp, path)) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno)); }
    return CAD_OK;
}

static int get(FILE *f, uint64_t *h, void *p, size_t n) {
    if (fread(p, 1, n, f) != n) return -1;
    fnv(h, p, n);
    return 0;
}

int cad_checkpoint_load(const char *path, const cad_checkpoint_meta *want, cad_checkpoint_meta *got,
                        const cad_backend *be, float *params, float *state, cad_err *e) {
    /* a regular file only: a FIFO or device at the checkpoint path would block or never end */
    int fd, orc = cad_open_regular(path, "checkpoint", &fd, e);
    if (orc) return orc;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int err = errno;
        close(fd);
        return cad_fail(e, CAD_EIO, "%s: cannot open checkpoint: %s", path, strerror(err));
    }
    uint64_t h = 1469598103934665603ull;
    char magic[8];
    uint32_t v, reserved;
    int rc = CAD_OK;
    float *buf = NULL;
    if (get(f, &h, magic, 8) || memcmp(magic, CKPT_MAGIC, 8)) { rc = cad_fail(e, CAD_EFORMAT, "%s: bad magic (expected %s)", path, CKPT_MAGIC); goto done; }
    if (get(f, &h, &v, 4) || v != CKPT_VERSION || get(f, &h, &reserved, 4)) {
        rc = cad_fail(e, CAD_EFORMAT, "%s: checkpoint version %u (expected %u)", path, v, CKPT_VERSION);
        goto done;
    }
    if (get(f, &h, got, sizeof *got)) { rc = cad_fail(e, CAD_EFORMAT, "%s: truncated header", path); goto done; }
#define CKPT_SAME(field)                                                                         \
    if (got->field != want->field) {                                                             \
        rc = cad_fail(e, CAD_ECONFIG, "%s: checkpoint has " #field "=%lld, this config has %lld", \
                      path, (long long)got->field, (long long)want->field);                       \
        goto done;                                                                               \
    }
    CKPT_SAME(vocab_size) CKPT_SAME(num_layers) CKPT_SAME(model_dim) CKPT_SAME(num_heads)
    CKPT_SAME(num_kv_heads) CKPT_SAME(mlp_mult) CKPT_SAME(tie_embeddings)
    CKPT_SAME(n_param_floats) CKPT_SAME(n_state_floats)
#undef CKPT_SAME
    buf = malloc(CHUNK_FLOATS * sizeof(float));
    if (!buf) { rc = cad_fail(e, CAD_ENOMEM, "checkpoint: out of memory"); goto done; }
    for (int part = 0; part < 2; part++) {
        float *dst = part ? state : params;
        size_t n = (size_t)(part ? got->n_state_floats : got->n_param_floats);
        for (size_t off = 0; off < n; off += CHUNK_FLOATS) {
            size_t k = n - off < CHUNK_FLOATS ? n - off : CHUNK_FLOATS;
            if (get(f, &h, buf, k * sizeof(float))) { rc = cad_fail(e, CAD_EFORMAT, "%s: truncated data", path); goto done; }
            be->copy_to_device(be, dst + off, buf, k * sizeof(float));
        }
    }
    uint64_t stored;
    if (fread(&stored, 8, 1, f) != 1 || stored != h) {
        rc = cad_fail(e, CAD_EFORMAT, "%s: checksum mismatch (file corrupt or truncated)", path);
        goto done;
    }
    if (fgetc(f) != EOF) rc = cad_fail(e, CAD_EFORMAT, "%s: trailing bytes after the checksum", path);
done:
    free(buf);
    fclose(f);
    return rc;
}
