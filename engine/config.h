/*
 * config.h — the run configuration of `caddie train` / `caddie eval`: one table of keys
 * (every train_gpt.py hyperparameter under its own lower-case name, same default and type,
 * plus caddie's extra keys), loaded from a YAML file, then upper-case environment variables,
 * then `--set key=value` (later wins), and validated before any work starts.
 *
 * The key table is public so that other readers (the sweep spec validator) reject unknown
 * engine keys with the same "did you mean" hint: cad_config_key_find / _closest / _at.
 * Adding a key = one line in CAD_CONFIG_KEYS below (name, type, default text, doc); the struct
 * field, YAML/env/--set parsing, the resolved config.yaml and the README table follow from it.
 * Technique keys must default to "off" so that a config with no new keys is train_gpt.py.
 *
 * Not here: what the keys do (train.c, model.c, ...), sweep grids (sweep/).
 */
#ifndef CADDIE_CONFIG_H
#define CADDIE_CONFIG_H

#include "engine/status.h"

#include <stdio.h>

typedef enum { CAD_KEY_INT, CAD_KEY_FLOAT, CAD_KEY_BOOL, CAD_KEY_STR, CAD_KEY_LIST } cad_key_type;

/* C field type per key type. LIST is stored as one comma-separated string (a YAML sequence
 * is joined with ","), so the resolved config stays flat `key: value` lines. */
#define CAD_CFIELD_INT long
#define CAD_CFIELD_FLOAT double
#define CAD_CFIELD_BOOL int
#define CAD_CFIELD_STR char *
#define CAD_CFIELD_LIST char *

/* X(type, name, default text, one-line doc). Defaults are parsed by the same code as user
 * values. The first block is train_gpt.py's Hyperparameters in its order. */
#define CAD_CONFIG_KEYS(X)                                                                         \
    X(STR, data_path, "./data/datasets/fineweb10B_sp1024",                                         \
      "directory with fineweb_train_*.bin / fineweb_val_*.bin shards")                            \
    X(STR, tokenizer_path, "./data/tokenizers/fineweb_1024_bpe.model",                             \
      "SentencePiece .model used for the val_bpb byte tables")                                    \
    X(STR, run_id, "", "run name; empty = a random uuid4 (like train_gpt.py)")                    \
    X(INT, seed, "1337", "seed of the weight init")                                               \
    X(INT, val_batch_size, "524288", "validation tokens per batch (over all ranks and accum)")    \
    X(INT, val_loss_every, "1000", "validate every N steps (0 = only at the end)")                \
    X(INT, train_log_every, "200", "log train_loss every N steps (and the first 10)")             \
    X(INT, iterations, "20000", "number of training steps")                                       \
    X(INT, warmdown_iters, "1200", "steps (or step-times under a wallclock cap) of LR warmdown")   \
    X(INT, warmup_steps, "20", "priming steps whose effect is undone (weights/optim/loader)")      \
    X(INT, train_batch_tokens, "524288", "tokens per optimizer step (all ranks, all micro-steps)") \
    X(INT, train_seq_len, "1024", "sequence length of training and validation windows")           \
    X(FLOAT, max_wallclock_seconds, "600.0", "training time cap in s (0 = none); drives warmdown") \
    X(FLOAT, qk_gain_init, "1.5", "initial per-head query gain")                                  \
    X(INT, vocab_size, "1024", "vocabulary size (must match the tokenizer)")                      \
    X(INT, num_layers, "9", "transformer blocks")                                                 \
    X(INT, num_kv_heads, "4", "key/value heads (GQA)")                                            \
    X(INT, model_dim, "512", "residual width")                                                    \
    X(INT, num_heads, "8", "query heads")                                                         \
    X(INT, mlp_mult, "2", "MLP hidden = mlp_mult * model_dim")                                    \
    X(INT, parallel_residual_layers, "0", "GPT-J parallel attention+MLP in the last N blocks; 0 = off") \
    X(INT, xsa_last_layers, "0", "XSA (exclusive self-attention) in the last N blocks (records: 3-4 or all); 0 = off") \
    X(FLOAT, mlp_leaky_slope, "0.0", "MLP activation leaky_relu(x, s)^2; 0 = relu^2 (records: 0.5)") \
    X(STR, recur_layers, "", "depth recurrence: blocks 'a-b' (0-based) run recur_loops times, shared weights") \
    X(INT, recur_loops, "1", "passes over recur_layers (1 = no recurrence; records: 2-3)")          \
    X(FLOAT, recur_start_frac, "0.0", "switch recurrence on at this fraction of training (records: 0.35-0.5)") \
    X(BOOL, tie_embeddings, "1", "share tok_emb as the output head")                              \
    X(FLOAT, rope_base, "10000.0", "RoPE base")                                                   \
    X(FLOAT, logit_softcap, "30.0", "logits = c*tanh(z/c)")                                       \
    X(FLOAT, embed_lr, "0.6", "Adam LR of tok_emb when untied")                                   \
    X(FLOAT, head_lr, "0.008", "Adam LR of lm_head when untied")                                  \
    X(FLOAT, tied_embed_lr, "0.05", "Adam LR of the tied embedding")                              \
    X(FLOAT, tied_embed_init_std, "0.005", "std of the tied embedding init")                      \
    X(FLOAT, matrix_lr, "0.04", "Muon LR of the block matrices")                                  \
    X(FLOAT, scalar_lr, "0.04", "Adam LR of scales, gains, resid_mix, skip_weights")              \
    X(FLOAT, muon_momentum, "0.95", "Muon momentum after warmup")                                 \
    X(INT, muon_backend_steps, "5", "Newton-Schulz iterations")                                   \
    X(FLOAT, muon_momentum_warmup_start, "0.85", "Muon momentum at step 0")                       \
    X(INT, muon_momentum_warmup_steps, "500", "steps of linear momentum warmup")                  \
    X(FLOAT, beta1, "0.9", "Adam beta1")                                                          \
    X(FLOAT, beta2, "0.95", "Adam beta2")                                                         \
    X(FLOAT, adam_eps, "1e-8", "Adam epsilon")                                                    \
    X(FLOAT, grad_clip_norm, "0.0", "global grad-norm clip (0 = off)")                            \
    X(BOOL, muon_row_norm, "0", "MuonEq-R: normalise each row of the Muon update before Newton-Schulz") \
    X(FLOAT, muon_wd, "0.0", "decoupled weight decay of the Muon matrices: p *= 1 - lr*wd")     \
    X(FLOAT, embed_wd, "0.0", "decoupled (AdamW) weight decay of tok_emb / lm_head")              \
    X(FLOAT, scalar_wd, "0.0", "decoupled (AdamW) weight decay of the scalar/control tensors")    \
    X(FLOAT, ema_decay, "0.0", "EMA of the weights (e.g. 0.997), evaluated and exported at the end; 0 = off") \
    /* ---- caddie keys (not in train_gpt.py) ---------------------------------------------- */ \
    X(INT, grad_accum_steps, "0", "micro-steps per step; 0 = 8 // world_size as train_gpt.py")    \
    X(FLOAT, dp_bucket_mb, "0.0", "data parallel: all-reduce gradients in buckets of N MiB during the backward; 0 = one after it") \
    X(INT, val_max_tokens, "0", "evaluate only this many val targets (prefix); result partial")   \
    X(INT, eval_stride, "0", "sliding-window final eval, windows every N tokens (records: 64); 0 = off") \
    X(FLOAT, ttt_lr, "0.0", "score-first SGD test-time training on val after the round trip (records: 0.002-0.005); 0 = off") \
    X(INT, ttt_epochs, "3", "TTT passes over each scored chunk")                                   \
    X(INT, ttt_chunk_tokens, "32768", "TTT chunk: scored first, then trained on")                 \
    X(FLOAT, ttt_momentum, "0.9", "TTT SGD momentum")                                              \
    X(INT, ttt_batch_seqs, "32", "TTT sequences (of train_seq_len) per SGD step")                  \
    X(FLOAT, ttt_grad_clip, "1.0", "TTT global grad-norm clip (0 = off)")                          \
    X(STR, ttt_mode, "sgd", "TTT kind: sgd (all weights, chunks of ttt_chunk_tokens) or lora (per-document adapters, Adam)") \
    X(INT, ttt_lora_rank, "8", "LoRA TTT adapter rank")                                           \
    X(LIST, ttt_lora_targets, "q,v,head", "LoRA TTT adapted projections: q, k, v, o, mlp, head")   \
    X(INT, ttt_lora_chunk, "256", "LoRA TTT tokens scored, then trained on, per step (<= eval seq len)") \
    X(INT, threads, "0", "CPU threads (0 = OMP_NUM_THREADS if set, else all cores)")              \
    X(STR, backend, "cpu", "compute backend: cpu, or cuda (binaries built with nvcc; one GPU)")   \
    X(STR, matmul_precision, "fp32", "dense products: fp32, or bf16 operands with fp32 sums (autocast)") \
    X(STR, run_dir, "", "output directory; empty = runs/<run_id>")                                \
    X(STR, init_from, "", "load initial weights from this .safetensors (train_gpt.py names)")     \
    X(STR, save_weights, "", "write final fp32 weights to this .safetensors ('' = none)")         \
    X(LIST, code_files, "engine/*.c,engine/*.cc,engine/*.h,cli/cmd_train.c",                    \
      "globs of the code counted in artifact bytes (relative to the repo root)")                  \
    X(INT, quant_matrix_bits, "8", "artifact bits of the block matrices (per row): 8 = train_gpt.py, records: 6") \
    X(INT, quant_embed_bits, "8", "artifact bits of tok_emb / lm_head rows (records keep 8)")     \
    X(BOOL, quant_clip_search, "0", "GPTQ-lite: per row the clip quantile with the least MSE")    \
    X(FLOAT, quant_sdclip_k, "0.0", "SDClip: block-matrix clip = k*std(row) (records: 12.85 at int6); 0 = off") \
    X(FLOAT, quant_sdclip_embed_k, "0.0", "SDClip for tok_emb/lm_head rows (records: 20 at int8); 0 = off") \
    X(STR, artifact_compressor, "zlib", "artifact compression: zlib (level 9, train_gpt.py), zstd (level 22), lzma (xz preset 9e) or brotli (quality 11)") \
    /* compression and artifact (QAT, GPTQ, compressors) */                                     \
    X(STR, code_compress, "none", "counted code shipped packed as the records do: none, lzma or zlib (+base85 exec wrapper)") \
    X(STR, qat_bits, "0", "QAT (STE): fake-quantise the block matrices in training forwards and export them at 8, 6, 5, 4, 3 or 2 bits or ternary (BitNet b1.58); 0 = off") \
    X(FLOAT, qat_start_frac, "0.0", "switch QAT on at this fraction of training (records' late QAT ~0.85); 1 = never (export at qat_bits only)") \
    X(STR, quant_method, "clip_search", "block-matrix codes: clip_search (round to nearest with the clip rule above) or gptq (Hessian error feedback)") \
    X(INT, gptq_calib_batches, "16", "GPTQ: calibration batches (train_batch_tokens/grad_accum each) from the train stream after training") \
    X(FLOAT, gptq_damp, "0.01", "GPTQ: damping added to diag(H), as a fraction of its mean")            \
    X(BOOL, gptq_act_order, "0", "GPTQ: quantise columns in descending diag(H) order (the records' act-order)") \
    X(STR, gptq_calib, "train", "GPTQ/AWQ calibration sequences: train (the next train batches) or self_generated (sampled from the trained model, seeded, temperature 0.8)") \
    X(LIST, quant_bits_overrides, "", "per-tensor artifact bits 2..8, group:bits (groups tok_emb, lm_head, attn, mlp, or a full tensor name; YAML map or list), also in QAT") \
    X(FLOAT, awq_salient_frac, "0.0", "AWQ-lite: this fraction of each block matrix's input columns (largest calibration x^2) kept at 8 bits; 0 = off") \
    X(INT, lqer_rank, "0", "LQER: rank of the fp16 low-rank correction of each selected matrix's quantisation residual, stored in the artifact; 0 = off") \
    X(LIST, lqer_tensors, "", "LQER: groups (tok_emb, lm_head, attn, mlp) or tensor names corrected; empty = every per-row block matrix") \
    X(INT, checkpoint_every, "0", "write run_dir/checkpoint.bin every N steps (0 = off)")         \
    X(BOOL, resume, "0", "continue from run_dir/checkpoint.bin when it exists")                 \
    /* training techniques (schedules, embeddings, loops) */                                    \
    X(STR, lr_schedule, "linear_warmdown", "lr multiplier: linear_warmdown (train_gpt.py) or cosine over the whole run") \
    X(FLOAT, min_lr_frac, "0.0", "floor of the lr multiplier (records' MIN_LR: 0.10); 0 = none") \
    X(FLOAT, ema_start_frac, "0.0", "EMA averages from this fraction of training; before, it tracks the weights") \
    X(STR, muon_ns, "quintic", "Newton-Schulz coefficients: quintic (train_gpt.py) or polar_express (records, <= 5 steps)") \
    X(INT, eval_seq_len, "0", "sequence length of every evaluation (RoPE tables sized for it); 0 = train_seq_len") \
    X(LIST, seq_len_schedule, "", "progressive context: training sequence lengths T@frac, e.g. [128@0, 256@0.5] (fractions rising from 0; tokens per step stay train_batch_tokens); empty = train_seq_len") \
    X(STR, curriculum, "none", "train stream order: none (train_gpt.py) or length (each curriculum_window tokens of a shard hand out their documents shortest first)") \
    X(INT, curriculum_window, "1048576", "curriculum: window of the length ordering, in tokens of a shard") \
    X(BOOL, recur_loop_scales, "0", "recurrence: own learnable attn/mlp output scales for every extra pass (exported)") \
    /* knowledge distillation (engine/distill.h) */                                             \
    X(STR, distill_from, "", "distillation: the teacher's fp32 weights (.safetensors from a caddie run's save_weights); '' = off") \
    X(STR, distill_teacher_config, "", "distillation: the teacher's caddie config YAML (any model shape; vocab_size must match)") \
    X(FLOAT, distill_alpha, "0.5", "distillation: loss = (1-a)*CE + a*T^2*KL(teacher_T || student_T)") \
    X(FLOAT, distill_temp, "1.0", "distillation: temperature T of both softmaxes in the KL term") \
    X(INT, eval_recur_loops, "0", "passes over recur_layers in every evaluation (val, EMA, final, sliding, TTT); 0 = recur_loops") \
    /* model techniques (embeddings, gates, norms) */                                           \
    X(INT, embed_dim, "0", "factorized embeddings: tok_emb vocab x E + embed_proj E->model_dim, the tied head reads both transposed; 0 = off") \
    X(BOOL, ln_scale, "0", "LN scale: each block's norm outputs times 1/sqrt(layer+1), physical block index (records)") \
    X(INT, bigram_buckets, "0", "BigramHash: rows of the hashed (previous, current) token table added to the embedding (records: 2048-10240); 0 = off") \
    X(INT, bigram_dim, "128", "BigramHash table width, projected to model_dim when different")  \
    X(BOOL, smear_gate, "0", "SmearGate: x_t <- (1-g) x_t + g x_{t-1} after the embedding norm, g = sigmoid(per-channel gate); no mixing across BOS") \
    X(INT, rope_dims, "0", "partial RoPE: rotate only this many dims of each head (records: 16 of 64); 0 = all") \
    X(STR, attn_gate, "none", "attention output gate per head, sigmoid(W x) before the out-projection: none, sparse (12 input dims, zero init: SparseAttnGate) or full (all dims: gated attention)") \
    /* micro-MoE and early exit */                                                              \
    X(INT, mlp_experts, "0", "micro-MoE: every block's MLP becomes E relu^2 experts of hidden mlp_mult*model_dim/E behind a learned top-k router; 0 = dense MLP") \
    X(INT, mlp_top_k, "1", "micro-MoE: experts per token (gates renormalised over them when k >= 2; no token is dropped)") \
    X(FLOAT, moe_aux_weight, "0.01", "micro-MoE: weight of the Switch load-balance loss E*sum_i f_i*P_i (per block, summed)") \
    X(LIST, early_exit_layers, "", "exit heads (final norm + the tied head, softcapped) after these block depths, e.g. [3, 6]; empty = off") \
    X(FLOAT, early_exit_weight, "0.5", "early exit: training loss = main + w * mean of the exit heads' losses") \
    X(FLOAT, early_exit_threshold, "1.0", "early exit at eval: a token is scored by the first head whose max softmax prob >= this; 1 = never (full depth)") \
    /* block types (engine/mamba.h) */                                                           \
    X(LIST, block_type, "attention", "each block's mixer: attention, mamba (Mamba-1 selective SSM in place of attention), or one entry per layer") \
    X(INT, mamba_d_state, "16", "Mamba: state size per channel (power of two <= 32)")             \
    X(INT, mamba_d_conv, "4", "Mamba: causal depthwise conv taps")                                 \
    X(INT, mamba_expand, "2", "Mamba: inner width = mamba_expand * model_dim")                      \
    X(INT, mamba_dt_rank, "0", "Mamba: rank of the dt projection; 0 = ceil(model_dim / 16)")

#define CAD_CONFIG_MAX_KEYS 160 /* room for technique keys; config.c asserts the count */
/* Longest run id + 1 (a run id names a directory and a DB key; sweeps add "-rN" to it). */
#define CAD_RUN_ID_MAX 128

typedef struct cad_config {
#define CAD_CONFIG_FIELD_(type, name, def, doc) CAD_CFIELD_##type name;
    CAD_CONFIG_KEYS(CAD_CONFIG_FIELD_)
#undef CAD_CONFIG_FIELD_
    /* Where each key's value came from: "default", "file:line:col", "env NAME", "--set". */
    char origin[CAD_CONFIG_MAX_KEYS][96];
} cad_config;

typedef struct cad_config_key {
    const char *name;
    cad_key_type type;
    const char *def;  /* default, as text */
    const char *doc;  /* one line */
    size_t offset;    /* of the field in cad_config */
} cad_config_key;

/* The key table (in declaration order). */
int cad_config_key_count(void);
const cad_config_key *cad_config_key_at(int i);
const cad_config_key *cad_config_key_find(const char *name);
/* The known key with the smallest edit distance to name (never NULL). */
const cad_config_key *cad_config_key_closest_key(const char *name);
const char *cad_config_key_closest(const char *name);
const char *cad_config_type_name(cad_key_type t);

/* Fill c with the defaults (strings malloc'd; release with cad_config_free). */
int cad_config_init(cad_config *c, cad_err *e);
void cad_config_free(cad_config *c);

/* Set one key from text (value parsed by the key's type); origin is recorded for messages.
 * Unknown key -> CAD_ECONFIG "unknown key 'x' (did you mean 'y'?)". */
int cad_config_set(cad_config *c, const char *key, const char *value, const char *origin,
                   cad_err *e);
/* Apply "key=value". */
int cad_config_set_assignment(cad_config *c, const char *assignment, cad_err *e);
/* Apply every key of a YAML map file (errors name file:line:col). */
int cad_config_load_yaml(cad_config *c, const char *path, cad_err *e);
/* Apply every key whose upper-case name is set in the environment. */
int cad_config_load_env(cad_config *c, cad_err *e);
/* The full resolution: defaults < file (may be NULL) < env < sets, then validate. */
int cad_config_resolve(cad_config *c, const char *path, int n_sets, char *const *sets, cad_err *e);

/* Range and combination checks (model_dim % num_heads, ...): CAD_ECONFIG naming the keys. */
int cad_config_validate(const cad_config *c, cad_err *e);

/* Derived values. */
int cad_config_grad_accum(const cad_config *c);
/* 1 when key has no effect under c (its switch is off: recur_layers without recur_loops > 1,
 * the ttt_* settings without ttt_lr): run identities leave such keys out. */
int cad_config_key_inert(const cad_config *c, const char *key);
/* recur_layers "a-b" or "a" -> first, last (0-based); "" -> 0, -1. -1 when malformed. */
int cad_config_recur_span(const cad_config *c, int *first, int *last);  /* grad_accum_steps or 8 (world 1) */
long cad_config_local_tokens(const cad_config *c); /* tokens per micro-step */
/* qat_bits as a bit width: 0 (off), 1 (CAD_QUANT_TERNARY, "ternary") or 2..8; -1 when malformed. */
int cad_config_qat_bits(const cad_config *c);
long cad_config_eval_seq_len(const cad_config *c); /* eval_seq_len, or train_seq_len when 0 */
/* seq_len_schedule as up to max (length, start fraction) entries: the count (0 when empty), -1
 * when malformed (cad_config_validate names what was expected). */
#define CAD_SEQ_SCHEDULE_MAX 16
int cad_config_seq_schedule(const cad_config *c, long *lens, double *fracs, int max);
/* The training sequence length at this fraction of training: the last schedule entry whose
 * fraction is <= frac, or train_seq_len without a schedule. */
long cad_config_train_seq_len_at(const cad_config *c, double frac);
/* The longest training sequence length (the schedule's, or train_seq_len). */
long cad_config_train_seq_len_max(const cad_config *c);
/* attn_gate as CAD_ATTN_GATE_* of model.h: 0 none, 1 sparse, 2 full; -1 when malformed. */
int cad_config_attn_gate(const cad_config *c);
/* early_exit_layers as depths (blocks run before the exit, 1..num_layers-1, increasing): the
 * count (0 when off) with up to max of them in depths; -1 when malformed. */
int cad_config_early_exits(const cad_config *c, int *depths, int max);

/* Value of a key as text (as it would be written in config.yaml) into buf. */
void cad_config_format(const cad_config *c, const cad_config_key *k, char *buf, size_t cap);
/* Write every key as flat `key: value` lines (strings quoted), in table order. */
int cad_config_write_yaml(const cad_config *c, FILE *f);

/* Levenshtein distance (exported for the sweep spec's own hints). */
int cad_edit_distance(const char *a, const char *b);

#endif
