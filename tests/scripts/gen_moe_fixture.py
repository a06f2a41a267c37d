"""gen_moe_fixture.py — PyTorch reference for micro-MoE and early exit (engine/moe.c,
engine/early_exit.c), written in plain torch on gen_model_fixture.py's train_gpt.py GPT:

    tests/fixtures/engine/model_parity_moe_v1.bin       4 experts top-2 (renormalised gates), LN scale
    tests/fixtures/engine/model_parity_moe_exit_v1.bin  4 experts top-1 (Switch gate), untied head, exit
                                                        heads after blocks 1 and 3 of 4

Run with Debian's torch 1.13 (CPU, fp32): /usr/bin/python3 tests/scripts/gen_moe_fixture.py.
Each block's MLP is replaced by MoEMLP before the weights are drawn: router = Linear(C, E),
experts.i = the relu^2 MLP at hidden mlp_mult*C/E; p = softmax(router(x)), top-k of p, gates
p_j / sum of the top-k when k >= 2 (p itself when k = 1), out = sum_j g_j expert_{e_j}(x); every
token goes to its k experts (no capacity limit). The Switch load-balance loss per block is
E * sum_i f_i P_i with f_i the share of routing slots (no gradient) and P_i the mean of p_i.
Exit heads: after virtual block d-1 (depth d), final norm + the model's head + softcap.
The fixture's loss/token_loss/logits are the main head's; its gradients are those of the
objective caddie's backward differentiates:
    main CE + early_exit_weight * mean over exits of their CE + moe_aux_weight * sum of the aux.
Format and records as gen_model_fixture.py, plus config.mlp_experts, config.mlp_top_k,
config.moe_aux_weight, config.n_exits, config.exit_depth<i>, config.early_exit_weight, objective.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_fixture as g  # noqa: E402


class Expert(nn.Module):
    def __init__(self, dim, hidden, leaky_slope=0.0):
        super().__init__()
        self.fc = g.CastedLinear(dim, hidden, bias=False)
        self.proj = g.CastedLinear(hidden, dim, bias=False)
        self.proj._zero_init = True
        self.leaky_slope = leaky_slope

    def forward(self, x):
        h = self.fc(x)
        h = F.leaky_relu(h, negative_slope=self.leaky_slope) if self.leaky_slope else torch.relu(h)
        return self.proj(h.square())


class MoEMLP(nn.Module):
    def __init__(self, dim, mlp_mult, experts, top_k, leaky_slope=0.0):
        super().__init__()
        self.router = g.CastedLinear(dim, experts, bias=False)  # registered first: router, experts.0, ...
        self.experts = nn.ModuleList([Expert(dim, mlp_mult * dim // experts, leaky_slope) for _ in range(experts)])
        self.E, self.K = experts, top_k
        self.aux = None

    def forward(self, x):
        shape = x.shape
        xf = x.reshape(-1, shape[-1])
        N = xf.size(0)
        p = torch.softmax(self.router(xf).float(), dim=-1)
        topv, topi = torch.topk(p, self.K, dim=-1)  # descending; distinct values in these fixtures
        gates = topv / topv.sum(dim=-1, keepdim=True) if self.K > 1 else topv
        out = torch.zeros_like(xf)
        for e in range(self.E):
            hit = topi == e  # [N, K]
            rows = hit.any(dim=-1).nonzero().flatten()
            if rows.numel() == 0:
                continue
            ge = (gates * hit).sum(dim=-1)[rows]  # a token picks an expert at most once
            out = out.index_add(0, rows, ge[:, None] * self.experts[e](xf[rows]))
        f = torch.stack([(topi == e).sum() for e in range(self.E)]).float() / (N * self.K)
        self.aux = self.E * (f.detach() * p.mean(dim=0)).sum()
        return out.reshape(shape)


def build(cfg):
    model = g.build_model(cfg)
    for b in model.blocks:
        b.mlp = MoEMLP(cfg["model_dim"], cfg["mlp_mult"], cfg["mlp_experts"], cfg["mlp_top_k"],
                       cfg.get("mlp_leaky_slope", 0.0))
    model._init_weights()
    return model.float()


def head(model, x):
    x = model.final_norm(x).reshape(-1, x.size(-1))
    proj = F.linear(x, model.tok_emb.weight) if model.tie_embeddings else model.lm_head(x)
    return model.logit_softcap * torch.tanh(proj / model.logit_softcap)


def forward_all(model, ids, exits):
    """GPT.logits with the hidden state after every virtual block: main logits and exit logits."""
    x = g.rms_norm(model.tok_emb(ids))
    x0, skips, outs = x, [], []
    for i in range(model.num_encoder_layers):
        x = model.blocks[model.schedule[i]](x, x0, model.passes[i])
        skips.append(x)
        outs.append(x)
    for i in range(model.num_decoder_layers):
        if skips:
            x = x + model.skip_weights[i][None, None, :] * skips.pop()
        v = model.num_encoder_layers + i
        x = model.blocks[model.schedule[v]](x, x0, model.passes[v])
        outs.append(x)
    return head(model, x), [head(model, outs[d - 1]) for d in exits]


def records(cfg, B, T, seed):
    torch.manual_seed(seed)
    model = build(cfg)
    g.deterministic_weights(model, seed)
    x, y = g.deterministic_batch(cfg, B, T, seed + 1)
    exits = cfg.get("exits", [])
    keys = list(g.MODEL_KEYS) + [k for k in g.RECUR_KEYS if k in cfg]
    keys += ["mlp_experts", "mlp_top_k", "moe_aux_weight", "early_exit_weight"]
    recs = [("config." + k, torch.tensor([float(cfg.get(k, 0.0))])) for k in keys]
    recs += [("config.n_exits", torch.tensor([float(len(exits))]))]
    recs += [("config.exit_depth%d" % i, torch.tensor([float(d)])) for i, d in enumerate(exits)]
    recs += [("config.B", torch.tensor([float(B)])), ("config.T", torch.tensor([float(T)]))]
    recs += [(n, p) for n, p in model.state_dict().items()]
    logits, exit_logits = forward_all(model, x, exits)
    yf = y.reshape(-1)
    token_loss = F.cross_entropy(logits.float(), yf, reduction="none")
    loss = token_loss.mean()
    objective = loss + cfg["moe_aux_weight"] * sum(b.mlp.aux for b in model.blocks)
    if exits:
        objective = objective + cfg["early_exit_weight"] * sum(
            F.cross_entropy(z.float(), yf) for z in exit_logits) / len(exits)
    objective.backward()
    recs += [("x", x), ("y", y), ("loss", loss.reshape(1)), ("token_loss", token_loss), ("logits", logits),
             ("objective", objective.reshape(1))]
    recs += [("grad." + n, p.grad) for n, p in model.named_parameters()]
    return recs, float(loss), float(objective)


FIXTURES = {
    "model_parity_moe_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                     mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                     qk_gain_init=1.5, tied_embed_init_std=0.005, ln_scale=1, mlp_experts=4,
                                     mlp_top_k=2, moe_aux_weight=0.05), 2, 12, 3141),
    "model_parity_moe_exit_v1.bin": (dict(vocab_size=48, num_layers=4, model_dim=16, num_heads=2, num_kv_heads=2,
                                          mlp_mult=4, tie_embeddings=0, rope_base=500.0, logit_softcap=15.0,
                                          qk_gain_init=1.5, tied_embed_init_std=0.005, mlp_experts=4, mlp_top_k=1,
                                          moe_aux_weight=0.5, exits=[1, 3], early_exit_weight=0.5), 3, 9, 2718),
}


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_dir = os.path.join(root, "tests", "fixtures", "engine")
    torch.set_num_threads(1)
    for fname in sys.argv[1:] or list(FIXTURES):
        cfg, B, T, seed = FIXTURES[fname]
        recs, loss, obj = records(cfg, B, T, seed)
        path = os.path.join(out_dir, fname)
        g.write_fixture(path, recs)
        print("%s: loss %.6f objective %.6f, %d records, %d bytes" % (path, loss, obj, len(recs),
                                                                     os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
