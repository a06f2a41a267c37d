/*
 * distill.h — knowledge distillation: a frozen teacher model, built from its own caddie config
 * and loaded from a caddie run's save_weights .safetensors, runs forward-only on every training
 * micro-batch in the same process; the student then trains on
 *   loss = (1 - alpha) * CE(student) + alpha * T^2 * KL(softmax(z_teacher/T) || softmax(z_student/T))
 * per token, averaged over the batch (z: each model's softcapped logits, its own logit_softcap),
 * the KL term and its gradient from the backend's fused distill_kl op.
 *
 * The teacher holds no optimizer state and no gradient is ever computed for it (its arenas are
 * the model's usual ones; the gradient arena stays zero). Only training forwards use it:
 * validation, the round trip, TTT and GPTQ calibration see the student alone.
 *
 * Not here: the op (backend.h distill_kl), the trainer's switch (train.c attaches the teacher
 * around each micro-step's forward and backward).
 */
#ifndef CADDIE_DISTILL_H
#define CADDIE_DISTILL_H

#include "engine/config.h"
#include "engine/model.h"
#include "engine/status.h"

typedef struct cad_distill {
    cad_model teacher;
    int have_teacher;
    float alpha, temp;
    float *kl_dev;       /* backend (B*T): per-token alpha*T^2*KL of the last student forward */
    float *kl_host;      /* host copy */
    int cur_B, cur_T;    /* the batch the teacher's logits belong to (0: none pending) */
    int grad_ready;      /* the student forward ran the op: teacher.logits hold its gradient */
    double last_kl;      /* mean of kl_dev over the last student forward */
} cad_distill;

/* Build the teacher for c's student (c->distill_from set): its config from
 * c->distill_teacher_config (YAML only: no environment, no --set), the same vocab_size as c
 * (CAD_ECONFIG naming both files otherwise), its weights from c->distill_from (every tensor of
 * the teacher's shapes, CAD_EIO/CAD_EFORMAT naming the file and tensor), planned for micro-batches
 * of max_batch_seqs x max_seq_len on be. On failure d is left freed. */
int cad_distill_open(cad_distill *d, const cad_config *c, const cad_backend *be, int max_batch_seqs, int max_seq_len,
                     cad_err *e);
void cad_distill_close(cad_distill *d);

/* The teacher's softcapped logits of x (HOST int32, B*T), kept for the next student forward. */
int cad_distill_teacher_forward(cad_distill *d, const int32_t *x, int B, int T, cad_err *e);

/* Model hooks (model.c, when cad_model.kd is set). Forward, after the student's softcap_xent:
 * the op on its logits and the pending teacher logits; *kl = the batch mean of the KL term.
 * CAD_ERR when no teacher forward of the same B x T is pending. */
int cad_distill_after_forward(cad_model *m, int N, double *kl, cad_err *e);
/* Backward, after the cross-entropy's gradient (weighted 1 - alpha) replaced the logits: adds
 * the KL term's gradient to them. */
void cad_distill_add_grad(cad_model *m, int N);

#endif
