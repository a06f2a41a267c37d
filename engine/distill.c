/*
 * distill.c — the distillation teacher and the student model's hooks (distill.h).
 */
#include "engine/distill.h"

#include "engine/safetensors.h"
#include "engine/train.h"

#include <stdlib.h>
#include <string.h>

/* The teacher's config: its own YAML over the defaults, validated; nothing from the environment
 * or --set, which configure the student. */
static int teacher_config(cad_config *tc, const cad_config *c, cad_err *e) {
    int rc = cad_config_init(tc, e);
    if (!rc) rc = cad_config_load_yaml(tc, c->distill_teacher_config, e);
    if (!rc) rc = cad_config_validate(tc, e);
    if (rc) return cad_wrap(e, "distill_teacher_config");
    if (tc->vocab_size != c->vocab_size)
        return cad_fail(e, CAD_ECONFIG, "distillation: the teacher (distill_teacher_config '%s', weights '%s') has "
                        "vocab_size=%ld, the student %ld: expected the same vocabulary", c->distill_teacher_config,
                        c->distill_from, tc->vocab_size, c->vocab_size);
    return CAD_OK;
}

/* Read the weights through a host copy laid out like the teacher's parameter arena. */
static int teacher_weights(cad_distill *d, const char *path, cad_err *e) {
    cad_model *t = &d->teacher;
    float *host = malloc((t->n_param_floats ? t->n_param_floats : 1) * sizeof *host);
    cad_named_tensor *named = calloc((size_t)(t->n_params ? t->n_params : 1), sizeof *named);
    int rc = host && named ? CAD_OK : cad_fail(e, CAD_ENOMEM, "distillation: out of memory for the teacher's weights");
    if (!rc) {
        int n = cad_train_named_tensors(t, host, named);
        rc = cad_safetensors_read_into(path, named, n, 1, e);
        if (rc) rc = cad_wrap(e, "distill_from (the teacher's weights, shapes from distill_teacher_config)");
    }
    if (!rc) t->be->copy_to_device(t->be, t->param_mem, host, t->n_param_floats * sizeof(float));
    free(host);
    free(named);
    return rc;
}

int cad_distill_open(cad_distill *d, const cad_config *c, const cad_backend *be, int max_batch_seqs, int max_seq_len,
                     cad_err *e) {
    memset(d, 0, sizeof *d);
    d->alpha = (float)c->distill_alpha;
    d->temp = (float)c->distill_temp;
    cad_config tc;
    int rc = teacher_config(&tc, c, e);
    cad_model_config mc;
    if (!rc) rc = cad_train_model_config(&tc, max_batch_seqs, max_seq_len, &mc, e);
    if (!rc) rc = cad_model_config_check(&mc, e);
    if (!rc) rc = cad_model_init(&d->teacher, &mc, be, (uint64_t)tc.seed, e);
    cad_config_free(&tc);
    if (rc) return rc;
    d->have_teacher = 1;
    size_t N = (size_t)max_batch_seqs * (size_t)max_seq_len;
    d->kl_dev = be->alloc(be, N * sizeof(float));
    d->kl_host = malloc(N * sizeof(float));
    if (!d->kl_dev || !d->kl_host)
        rc = cad_fail(e, CAD_ENOMEM, "distillation: out of memory for %zu per-token KL values", N);
    if (!rc) rc = teacher_weights(d, c->distill_from, e);
    if (rc) cad_distill_close(d);
    return rc;
}

void cad_distill_close(cad_distill *d) {
    if (d->have_teacher) {
        d->teacher.be->free(d->teacher.be, d->kl_dev);
        cad_model_free(&d->teacher);
    }
    free(d->kl_host);
    memset(d, 0, sizeof *d);
}

int cad_distill_teacher_forward(cad_distill *d, const int32_t *x, int B, int T, cad_err *e) {
    d->cur_B = d->cur_T = 0;
    d->grad_ready = 0;
    int rc = cad_model_forward(&d->teacher, x, NULL, B, T, NULL, e);
    if (rc) return cad_wrap(e, "distillation teacher");
    d->cur_B = B, d->cur_T = T;
    return CAD_OK;
}

int cad_distill_after_forward(cad_model *m, int N, double *kl, cad_err *e) {
    cad_distill *d = m->kd;
    if (d->cur_B != m->cur_B || d->cur_T != m->cur_T)
        return cad_fail(e, CAD_ERR, "distillation: no teacher logits for this %d x %d batch (teacher forward first)",
                        m->cur_B, m->cur_T);
    const cad_backend *be = m->be;
    be->distill_kl(be, d->teacher.logits, d->kl_dev, m->logits, N, m->cfg.vocab_size, d->temp, d->alpha,
                   m->cfg.logit_softcap, 1.0f / (float)N);
    be->copy_to_host(be, d->kl_host, d->kl_dev, (size_t)N * sizeof(float));
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += d->kl_host[n];
    d->cur_B = d->cur_T = 0; /* the teacher's logits now hold the gradient */
    d->grad_ready = 1;
    d->last_kl = sum / N;
    *kl = d->last_kl;
    return CAD_OK;
}

void cad_distill_add_grad(cad_model *m, int N) {
    cad_distill *d = m->kd;
    if (!d->grad_ready) return;
    m->be->axpby(m->be, (size_t)N * m->cfg.vocab_size, 1.0f, d->teacher.logits, 1.0f, m->logits);
    d->grad_ready = 0;
}
