#!/usr/bin/python3
"""gen_mamba_fixture.py — PyTorch reference for caddie's Mamba blocks (block_type: mamba).

A plain-PyTorch Mamba-1 block (mamba_simple.Mamba's structure and parameter names, written out
here with a sequential selective scan; no mamba_ssm package) replaces the attention module of
chosen blocks of gen_model_fixture.py's train_gpt.py GPT, keeping the block's resid_mix, norms,
attn_scale, MLP and U-Net skips. Forward + backward in fp32 on the CPU; the fixture holds the
loss, logits and every gradient for tests/unit/test_engine_mamba.c:

    tests/fixtures/engine/mamba_parity_v1.bin         all 3 blocks Mamba (tied, d_state 4, d_conv 3, expand 2)
    tests/fixtures/engine/mamba_parity_hybrid_v1.bin  4 blocks mamba, attention, mamba, attention; untied,
                                                       d_state 8, d_conv 4, dt_rank 3, T 40 > CAD_SCAN_CHUNK

The block (per sequence, E = expand * C, R = dt_rank, S = d_state, K = d_conv):
    x, z = in_proj(xn).chunk(2);  u = silu(conv1d(x)[..., :T] + bias)   (depthwise, padding K-1)
    dt, B, C = split(x_proj(u), [R, S, S]);  delta = softplus(dt_proj.weight dt + dt_proj.bias)
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  A = -exp(A_log);  y_t = C_t . h_t + D u_t
    out = out_proj(y * silu(z))
caddie stores conv1d.weight as [E, K] (torch's [E, 1, K] without the 1); the fixture writes it
(and its gradient) in caddie's shape. Format and config records: gen_model_fixture.py, plus
config.mamba_mask (bit l: block l is Mamba), config.mamba_d_state, _d_conv, _expand, _dt_rank.

Regenerate (from the repo root):  /usr/bin/python3 tests/scripts/gen_mamba_fixture.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_fixture as gm  # noqa: E402


class Mamba(nn.Module):
    def __init__(self, d_model, d_state, d_conv, expand, dt_rank):
        super().__init__()
        E = expand * d_model
        self.E, self.S, self.R = E, d_state, dt_rank
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(E, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, E, bias=True)
        self.out_proj = nn.Linear(E, d_model, bias=False)

    def forward(self, xn):
        Bsz, T, _ = xn.shape
        x, z = self.in_proj(xn).chunk(2, dim=-1)
        u = F.silu(self.conv1d(x.transpose(1, 2))[..., :T]).transpose(1, 2)
        dt, Bm, Cm = torch.split(self.x_proj(u), [self.R, self.S, self.S], dim=-1)
        delta = F.softplus(F.linear(dt, self.dt_proj.weight) + self.dt_proj.bias)
        A = -torch.exp(self.A_log)
        h = torch.zeros(Bsz, self.E, self.S)
        ys = []
        for t in range(T):  # the sequential selective scan
            h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * Bm[:, t, None, :] * u[:, t, :, None]
            ys.append((h * Cm[:, t, None, :]).sum(-1))
        y = torch.stack(ys, dim=1) + u * self.D
        return self.out_proj(y * F.silu(z))


class MambaBlock(gm.Block):
    """gm.Block with self.mamba where self.attn was (same residual structure)."""

    def forward(self, x, x0, rpass=0):
        mix = self.resid_mix
        a, s = self.attn_scale, self.mlp_scale
        x = mix[0][None, None, :] * x + mix[1][None, None, :] * x0
        f = self.ln_scale_factor
        x = x + a[None, None, :] * self.mamba(self.attn_norm(x) * f)
        return x + s[None, None, :] * self.mlp(self.mlp_norm(x) * f)


def mamba_model(cfg):
    model = gm.build_model(cfg)
    R = cfg["mamba_dt_rank"] or math.ceil(cfg["model_dim"] / 16)
    for i, blk in enumerate(model.blocks):
        if not (cfg["mamba_mask"] >> i) & 1:
            continue
        del blk.attn
        mlp = blk.mlp  # re-registered after mamba: the state_dict lists mamba.* before mlp.*
        del blk.mlp
        blk.mamba = Mamba(cfg["model_dim"], cfg["mamba_d_state"], cfg["mamba_d_conv"], cfg["mamba_expand"], R)
        blk.mlp = mlp
        blk.__class__ = MambaBlock
    return model


def mamba_weights(model, seed):
    """gm's deterministic weights, then Mamba-like values for the Mamba tensors: A_log near log(1..S),
    dt bias so that softplus gives ~0.02-0.2, every projection non-zero."""
    gm.deterministic_weights(model, seed)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".mamba." not in name:
                continue
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.arange(1, p.shape[1] + 1, dtype=torch.float32)).repeat(p.shape[0], 1)
                       + 0.1 * noise)
            elif name.endswith(".D"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("dt_proj.bias"):
                p.copy_(-3.0 + 0.7 * noise)
            elif name.endswith("conv1d.weight"):
                p.copy_(0.5 * noise)
            elif name.endswith("conv1d.bias"):
                p.copy_(0.2 * noise)
            else:  # the four projections
                p.copy_(noise / math.sqrt(p.shape[1]))


MAMBA_KEYS = ("mamba_mask", "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank")


def caddie_shape(name, t):
    return t.reshape(t.shape[0], t.shape[2]) if name.endswith("conv1d.weight") else t


def records(cfg, B, T, seed):
    torch.manual_seed(seed)
    model = mamba_model(cfg)
    mamba_weights(model, seed)
    x, y = gm.deterministic_batch(cfg, B, T, seed + 1)
    recs = [("config." + k, torch.tensor([float(cfg[k])])) for k in gm.MODEL_KEYS + MAMBA_KEYS]
    recs += [("config.B", torch.tensor([float(B)])), ("config.T", torch.tensor([float(T)]))]
    recs += [(n, caddie_shape(n, p)) for n, p in model.state_dict().items()]
    logits = model.logits(x)
    token_loss = F.cross_entropy(logits.float(), y.reshape(-1), reduction="none")
    loss = model(x, y)
    loss.backward()
    recs += [("x", x), ("y", y), ("loss", loss.reshape(1)), ("token_loss", token_loss), ("logits", logits)]
    recs += [("grad." + n, caddie_shape(n, p.grad)) for n, p in model.named_parameters()]
    return recs, float(loss)


BASE = dict(vocab_size=64, model_dim=32, num_heads=4, num_kv_heads=2, mlp_mult=2, rope_base=10000.0,
            logit_softcap=30.0, qk_gain_init=1.5, tied_embed_init_std=0.005)

FIXTURES = {
    "mamba_parity_v1.bin": (dict(BASE, num_layers=3, tie_embeddings=1, mamba_mask=0b111, mamba_d_state=4,
                                 mamba_d_conv=3, mamba_expand=2, mamba_dt_rank=0), 2, 13, 3141),
    "mamba_parity_hybrid_v1.bin": (dict(BASE, num_layers=4, tie_embeddings=0, mamba_mask=0b0101, mamba_d_state=8,
                                        mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=3), 2, 40, 2718),
}


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_dir = os.path.join(root, "tests", "fixtures", "engine")
    torch.set_num_threads(1)
    for fname in sys.argv[1:] or list(FIXTURES):
        cfg, B, T, seed = FIXTURES[fname]
        recs, loss = records(cfg, B, T, seed)
        path = os.path.join(out_dir, fname)
        gm.write_fixture(path, recs)
        print("%s: loss %.6f, %d records, %d bytes" % (path, loss, len(recs), os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
