#!/usr/bin/python3
"""gen_train_fixture.py — PyTorch reference for the trainer: a 10-step Muon + Adam loss
trajectory and a small eval_val on the tiny parity model of gen_model_fixture.py.

Writes tests/fixtures/engine/train_parity_v1.bin (tied model) and train_parity_untied_v1.bin
(untied lm_head: embed_lr / head_lr groups), in gen_model_fixture.py's record format, read by
tests/unit/test_engine_eval.c and test_engine_optim.c:
  - config.* (model keys, B, T), every parameter's initial value under its state_dict name;
  - hp.* : the optimizer / schedule settings used (train_gpt.py names);
  - x.<s>, y.<s> for the 10 steps; traj_loss [10] (the loss of each step before its update);
    final.<name> after the 10 steps;
  - val_tokens (int32), lut.base_bytes / lut.has_leading_space / lut.is_boundary (int32, a
    synthetic 64-entry table), val.seq_len, val.batch_tokens, and val_loss / val_bpb computed
    by train_gpt.py's eval_val at the initial weights (fp64 sums, LUT bytes).

The training step is train_gpt.py's: optimizer split (tok_emb Adam tied_embed_lr, block
matrices Muon matrix_lr, scalars Adam scalar_lr), lr_mul by iterations, Muon momentum warmup,
grad clipping; with two differences the C engine shares on purpose: Newton-Schulz runs in fp32
instead of bf16 and the Muon update is not rounded to bf16 (caddie's CPU reference is fp32).
Run from the repo root: /usr/bin/python3 tests/scripts/gen_train_fixture.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_fixture as gm  # noqa: E402
from muon_ref import Muon  # noqa: E402

HP = dict(iterations=10, warmdown_iters=4, muon_momentum=0.95, muon_momentum_warmup_start=0.85,
          muon_momentum_warmup_steps=5, matrix_lr=0.04, scalar_lr=0.04, tied_embed_lr=0.05, embed_lr=0.6,
          head_lr=0.008, beta1=0.9, beta2=0.95, adam_eps=1e-8, grad_clip_norm=1.0, muon_backend_steps=5)


def lr_mul(step):
    it, wd = HP["iterations"], HP["warmdown_iters"]
    start = max(it - wd, 0)
    return max((it - step) / max(wd, 1), 0.0) if start <= step < it else 1.0


def eval_val(model, val_tokens, seq_len, batch_tokens, base_bytes, has_space, is_boundary):
    # train_gpt.py eval_val, world 1, grad_accum 1 (batch_tokens = local batch)
    local_batch_seqs = batch_tokens // seq_len
    total_seqs = (val_tokens.numel() - 1) // seq_len
    loss_sum = torch.zeros((), dtype=torch.float64)
    tok = torch.zeros((), dtype=torch.float64)
    byt = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for s in range(0, total_seqs, local_batch_seqs):
            e = min(s + local_batch_seqs, total_seqs)
            local = val_tokens[s * seq_len : e * seq_len + 1].to(torch.int64)
            x = local[:-1].reshape(-1, seq_len)
            y = local[1:].reshape(-1, seq_len)
            batch_loss = model(x, y).detach()
            n = float(y.numel())
            loss_sum += batch_loss.to(torch.float64) * n
            tok += n
            prev, tgt = x.reshape(-1), y.reshape(-1)
            tb = base_bytes[tgt].to(torch.int16)
            tb += (has_space[tgt] & ~is_boundary[prev]).to(torch.int16)
            byt += tb.to(torch.float64).sum()
    val_loss = loss_sum / tok
    return float(val_loss.item()), float(val_loss.item() / math.log(2.0) * (tok.item() / byt.item()))


def make(model_fixture, out_name):
    cfg, B, T, seed = gm.FIXTURES[model_fixture]
    torch.manual_seed(seed)
    model = gm.build_model(cfg)
    gm.deterministic_weights(model, seed)
    recs = [("config." + k, torch.tensor([float(cfg[k])])) for k in gm.MODEL_KEYS]
    recs += [("config.B", torch.tensor([float(B)])), ("config.T", torch.tensor([float(T)]))]
    recs += [("hp." + k, torch.tensor([float(v)])) for k, v in HP.items()]
    recs += [(n, p.detach().clone()) for n, p in model.state_dict().items()]

    # ---- eval_val at the initial weights on a synthetic stream and LUT ----
    V = cfg["vocab_size"]
    g = torch.Generator().manual_seed(7)
    val_tokens = torch.randint(0, V, (5 * T + 1,), generator=g)
    val_tokens[::11] = 1  # BOS-like boundary tokens: their targets count 0 bytes
    base_bytes = torch.randint(1, 5, (V,), generator=g).to(torch.int16)
    base_bytes[0:4] = 0
    has_space = torch.rand(V, generator=g) < 0.4
    has_space[0:4] = False
    is_boundary = torch.zeros(V, dtype=torch.bool)
    is_boundary[0:4] = True
    batch_tokens = 2 * T  # two windows per val batch: 5 windows -> batches of 2, 2, 1
    vl, vb = eval_val(model, val_tokens, T, batch_tokens, base_bytes, has_space, is_boundary)
    recs += [("val_tokens", val_tokens.to(torch.int32)), ("lut.base_bytes", base_bytes.to(torch.int32)),
             ("lut.has_leading_space", has_space.to(torch.int32)), ("lut.is_boundary", is_boundary.to(torch.int32)),
             ("val.seq_len", torch.tensor([float(T)])), ("val.batch_tokens", torch.tensor([float(batch_tokens)])),
             ("val_loss", torch.tensor([vl], dtype=torch.float64)), ("val_bpb", torch.tensor([vb], dtype=torch.float64))]

    # ---- 10 training steps ----
    named = dict(model.named_parameters())
    block = list(model.blocks.named_parameters())
    matrix = [p for n, p in block if p.ndim == 2 and not any(k in n for k in gm.CONTROL_TENSOR_NAME_PATTERNS)]
    scalar = [p for n, p in block if p.ndim < 2 or any(k in n for k in gm.CONTROL_TENSOR_NAME_PATTERNS)]
    if model.skip_weights.numel() > 0:
        scalar.append(model.skip_weights)
    token_lr = HP["tied_embed_lr"] if cfg["tie_embeddings"] else HP["embed_lr"]
    opt_tok = torch.optim.Adam([{"params": [named["tok_emb.weight"]], "lr": token_lr,
                                 "base_lr": token_lr}], betas=(HP["beta1"], HP["beta2"]), eps=HP["adam_eps"])
    opt_muon = Muon(matrix, lr=HP["matrix_lr"], momentum=HP["muon_momentum"], backend_steps=HP["muon_backend_steps"])
    for gr in opt_muon.param_groups:
        gr["base_lr"] = HP["matrix_lr"]
    opt_sc = torch.optim.Adam([{"params": scalar, "lr": HP["scalar_lr"], "base_lr": HP["scalar_lr"]}],
                              betas=(HP["beta1"], HP["beta2"]), eps=HP["adam_eps"])
    opts = [opt_tok, opt_muon, opt_sc]
    if not cfg["tie_embeddings"]:
        opts.insert(1, torch.optim.Adam([{"params": [named["lm_head.weight"]], "lr": HP["head_lr"],
                                          "base_lr": HP["head_lr"]}], betas=(HP["beta1"], HP["beta2"]),
                                        eps=HP["adam_eps"]))
    losses = []
    for step in range(HP["iterations"]):
        x, y = gm.deterministic_batch(cfg, B, T, 1000 + step)
        recs += [("x.%d" % step, x), ("y.%d" % step, y)]
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        losses.append(float(loss))
        frac = min(step / HP["muon_momentum_warmup_steps"], 1.0)
        for gr in opt_muon.param_groups:
            gr["momentum"] = (1 - frac) * HP["muon_momentum_warmup_start"] + frac * HP["muon_momentum"]
        scale = lr_mul(step)
        for o in opts:
            for gr in o.param_groups:
                gr["lr"] = gr["base_lr"] * scale
        torch.nn.utils.clip_grad_norm_(model.parameters(), HP["grad_clip_norm"])
        for o in opts:
            o.step()
    recs += [("traj_loss", torch.tensor(losses, dtype=torch.float32))]
    recs += [("final." + n, p.detach().clone()) for n, p in model.state_dict().items()]
    path = os.path.join("tests", "fixtures", "engine", out_name)
    gm.write_fixture(path, recs)
    print("%s: val_loss %.6f val_bpb %.6f, losses %s" % (path, vl, vb, " ".join("%.4f" % l for l in losses)))


def main():
    torch.set_num_threads(1)
    make("model_parity_v1.bin", "train_parity_v1.bin")
    make("model_parity_untied_v1.bin", "train_parity_untied_v1.bin")


if __name__ == "__main__":
    main()
