#!/usr/bin/python3
"""gen_model_fixture.py — PyTorch reference for the engine's model parity test.

Builds train_gpt.py's GPT (openai/parameter-golf, train_gpt.py: GPT, Block, CausalSelfAttention,
MLP, Rotary, CastedLinear) in Debian's torch 1.13 on the CPU in fp32, loads deterministic
weights, runs forward + backward on a fixed batch and writes a versioned binary fixture that
tests/unit/test_engine_model.c loads:

    tests/fixtures/engine/model_parity_v1.bin         tied embeddings, 3 layers (odd: U-Net skip), GQA 4/2
    tests/fixtures/engine/model_parity_untied_v1.bin  untied lm_head, 4 layers, MHA 2/2
    tests/fixtures/engine/model_parity_recur_v1.bin   depth recurrence: blocks 1-2 of 4 run 3x (8 virtual)
    tests/fixtures/engine/model_parity_leaky_v1.bin   MLP leaky_relu(x, 0.5)^2
    tests/fixtures/engine/model_parity_xsa_v1.bin     XSA in the last 2 of 3 blocks
    tests/fixtures/engine/model_parity_parallel_v1.bin  parallel residual in the last 2 of 4 blocks
    tests/fixtures/engine/model_parity_recur_scales_v1.bin  recurrence with per-pass attn/mlp scales
    tests/fixtures/engine/model_parity_embed_v1.bin   factorized embedding (E=12 < 32) + LN scale, tied
    tests/fixtures/engine/model_parity_bigram_v1.bin  BigramHash (projected 8 -> 32) + SmearGate with BOS rows
    tests/fixtures/engine/model_parity_bigram_same_v1.bin  BigramHash at bigram_dim = model_dim (no proj), untied
    tests/fixtures/engine/model_parity_rope_v1.bin    partial RoPE (4 of 8 head dims) in caddie's pairing
    tests/fixtures/engine/model_parity_gate_v1.bin    sparse attention output gate (12 dims) + XSA + LN scale
    tests/fixtures/engine/model_parity_gate_full_v1.bin  full attention output gate over recurrence, untied

torch 1.13 has neither F.rms_norm nor scaled_dot_product_attention(enable_gqa=...), so both are
written out here exactly as torch 2.x computes them (rms_norm: x * rsqrt(mean(x^2) + eps) with
eps = finfo(float32).eps; SDPA: softmax(q k^T / sqrt(HD) + causal mask) v with the kv heads
repeat_interleave'd).

The pieces are functions so other fixtures can reuse them (the trainer's Muon+Adam trajectory
fixture builds on build_model / deterministic_weights / write_fixture).

Fixture format (little-endian):
    int32 magic 0x43414450 ("CADP"), int32 version 1, int32 n_records
    per record: int32 name_len, name bytes (no NUL), int32 dtype (0 float32, 1 int32),
                int32 ndim, int32 shape[ndim], raw data
Records: "config.<key>" scalars (float32) for every model key and B, T; every parameter under its
state_dict name; "x", "y" (int32 [B,T]); "loss" [1]; "token_loss" [B*T]; "logits" [B*T,V]
(softcapped); "grad.<name>" for every parameter.

Regenerate (from the repo root):  /usr/bin/python3 tests/scripts/gen_model_fixture.py [FIXTURE.bin ...]
Not here: anything the C test decides (tolerances live in test_engine_model.c).
"""
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC = 0x43414450
VERSION = 1

CONTROL_TENSOR_NAME_PATTERNS = ("attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix",
                                "resid_mixes", "q_gain", "skip_weight", "skip_weights",
                                "attn_gate_w")  # + the records' attention output gate


def rms_norm(x):
    """F.rms_norm(x, (x.size(-1),)) with eps=None, as torch 2.x decomposes it."""
    eps = torch.finfo(x.dtype).eps
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class RMSNorm(nn.Module):
    def forward(self, x):
        return rms_norm(x)


class CastedLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, self.weight.to(x.dtype))


class Rotary(nn.Module):
    def __init__(self, dim, base=10000.0, rope_dims=0):
        super().__init__()
        # partial RoPE: the records' Rotary(rope_dims) frequencies on the first rope_dims/2 pairs;
        # caddie pairs dim i with i + dim/2, so the other pairs get cos 1, sin 0 (no rotation)
        rd = rope_dims or dim
        inv_freq = 1.0 / (base ** (torch.arange(0, rd, 2, dtype=torch.float32) / rd))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.pad = dim // 2 - rd // 2

    def forward(self, seq_len, dtype):
        t = torch.arange(seq_len, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)
        cos, sin = freqs.cos(), freqs.sin()
        if self.pad:
            cos = torch.cat((cos, torch.ones(seq_len, self.pad)), dim=-1)
            sin = torch.cat((sin, torch.zeros(seq_len, self.pad)), dim=-1)
        return cos[None, None, :, :].to(dtype), sin[None, None, :, :].to(dtype)


def apply_rotary_emb(x, cos, sin):
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1)


def records_partial_rope(x, cos, sin, rope_dims):
    """The records' partial RoPE: rotate x[..., :rope_dims] half-split within those dims."""
    xr, xp = x[..., :rope_dims], x[..., rope_dims:]
    return torch.cat((apply_rotary_emb(xr, cos, sin), xp), dim=-1)


def rope_perm(head_dim, rope_dims):
    """caddie's cad_model_rope_perm: perm[j] = the caddie dim that holds the records' dim j."""
    hh, rh = head_dim // 2, (rope_dims or head_dim) // 2
    perm = []
    for j in range(head_dim):
        if j < rh:
            perm.append(j)
        elif j < 2 * rh:
            perm.append(j - rh + hh)
        elif j - 2 * rh < hh - rh:
            perm.append(j - rh)
        else:
            perm.append(j)
    return perm


def check_rope_perm(head_dim, rope_dims, base, T, seed):
    """caddie's pairing on permuted q/k equals the records' partial RoPE: the per-head scores
    q.k agree (the permutation is a fixed relabelling of each head's dims)."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, 1, T, head_dim, generator=g), torch.randn(1, 1, T, head_dim, generator=g)
    cr, sr = Rotary(rope_dims, base)(T, torch.float32)  # the records' Rotary(rope_dims)
    ref = records_partial_rope(q, cr, sr, rope_dims) @ records_partial_rope(k, cr, sr, rope_dims).transpose(-2, -1)
    perm = torch.tensor(rope_perm(head_dim, rope_dims))
    assert sorted(perm.tolist()) == list(range(head_dim))
    qc, kc = torch.empty_like(q), torch.empty_like(k)
    qc[..., perm], kc[..., perm] = q, k
    cc, sc = Rotary(head_dim, base, rope_dims)(T, torch.float32)
    got = apply_rotary_emb(qc, cc, sc) @ apply_rotary_emb(kc, cc, sc).transpose(-2, -1)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5), (got - ref).abs().max()
    ident = torch.tensor(rope_perm(head_dim, 0))  # without the permutation the models differ
    assert not torch.allclose(apply_rotary_emb(q, cc, sc) @ apply_rotary_emb(k, cc, sc).transpose(-2, -1), ref,
                              rtol=1e-3, atol=1e-3) and ident.tolist() == list(range(head_dim))


def sdpa_causal_gqa(q, k, v):
    """F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True) written out."""
    nh, kv = q.size(1), k.size(1)
    if nh != kv:
        k = k.repeat_interleave(nh // kv, dim=1)
        v = v.repeat_interleave(nh // kv, dim=1)
    T = q.size(2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, num_heads, num_kv_heads, rope_base, qk_gain_init, rope_dims=0, attn_gate=0):
        super().__init__()
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        self.c_q = CastedLinear(dim, dim, bias=False)
        self.c_k = CastedLinear(dim, kv_dim, bias=False)
        self.c_v = CastedLinear(dim, kv_dim, bias=False)
        self.proj = CastedLinear(dim, dim, bias=False)
        self.proj._zero_init = True
        self.q_gain = nn.Parameter(torch.full((num_heads,), qk_gain_init, dtype=torch.float32))
        # attention output gate (PR #1787's SparseAttnGate: the first 12 input dims, zero init;
        # attn_gate 2: PR #1736's gated attention over all dims): y_h *= sigmoid(W x[:w])
        self.gate_window = (min(12, dim) if attn_gate == 1 else dim) if attn_gate else 0
        if attn_gate:
            self.attn_gate_w = nn.Parameter(torch.zeros(num_heads, self.gate_window, dtype=torch.float32))
        self.rotary = Rotary(self.head_dim, base=rope_base, rope_dims=rope_dims)
        self.xsa = False  # exclusive self-attention (set by GPT for its last xsa_last blocks)

    def forward(self, x):
        bsz, seqlen, dim = x.shape
        q = self.c_q(x).reshape(bsz, seqlen, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.c_k(x).reshape(bsz, seqlen, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.c_v(x).reshape(bsz, seqlen, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = rms_norm(q)
        k = rms_norm(k)
        cos, sin = self.rotary(seqlen, q.dtype)
        q = apply_rotary_emb(q, cos, sin)
        k = apply_rotary_emb(k, cos, sin)
        q = q * self.q_gain.to(dtype=q.dtype)[None, :, None, None]
        y = sdpa_causal_gqa(q, k, v)
        if self.xsa:  # y - (y.u)u, u = the token's own value direction (its kv head)
            u = v.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
            u = u / u.norm(dim=-1, keepdim=True)
            y = y - (y * u).sum(dim=-1, keepdim=True) * u
        if self.gate_window:
            g = torch.sigmoid(F.linear(x[..., :self.gate_window], self.attn_gate_w))  # [B, T, NH]
            y = y * g.transpose(1, 2)[..., None]
        y = y.transpose(1, 2).contiguous().reshape(bsz, seqlen, dim)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, dim, mlp_mult, leaky_slope=0.0):
        super().__init__()
        self.fc = CastedLinear(dim, mlp_mult * dim, bias=False)
        self.proj = CastedLinear(mlp_mult * dim, dim, bias=False)
        self.proj._zero_init = True
        self.leaky_slope = leaky_slope  # 0: train_gpt.py's relu^2; the records use 0.5

    def forward(self, x):
        if self.leaky_slope:
            return self.proj(F.leaky_relu(self.fc(x), negative_slope=self.leaky_slope).square())
        return self.proj(torch.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, dim, num_heads, num_kv_heads, mlp_mult, rope_base, qk_gain_init, leaky_slope=0.0,
                 ln_scale_factor=1.0, rope_dims=0, attn_gate=0):
        super().__init__()
        self.attn_norm = RMSNorm()
        self.mlp_norm = RMSNorm()
        self.ln_scale_factor = ln_scale_factor  # the records' LN scale: 1/sqrt(layer + 1)
        self.attn = CausalSelfAttention(dim, num_heads, num_kv_heads, rope_base, qk_gain_init, rope_dims, attn_gate)
        self.mlp = MLP(dim, mlp_mult, leaky_slope)
        self.attn_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.mlp_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))).float())
        self.parallel = False  # GPT-J parallel residual (set by GPT for its last blocks)

    def add_pass_scales(self, extra_passes, dim):
        """recur_loop_scales: own attn/mlp output scales for passes 1..extra_passes (registered after
        resid_mix, so they follow it in the state_dict)."""
        self.attn_scales = nn.Parameter(torch.ones(extra_passes, dim, dtype=torch.float32))
        self.mlp_scales = nn.Parameter(torch.ones(extra_passes, dim, dtype=torch.float32))

    def forward(self, x, x0, rpass=0):
        mix = self.resid_mix
        a, s = self.attn_scale, self.mlp_scale
        if rpass > 0 and hasattr(self, "attn_scales"):
            a, s = self.attn_scales[rpass - 1], self.mlp_scales[rpass - 1]
        x = mix[0][None, None, :] * x + mix[1][None, None, :] * x0
        f = self.ln_scale_factor
        if self.parallel:  # x + a Attn(n x) + s MLP(n x)
            return (x + a[None, None, :] * self.attn(self.attn_norm(x) * f)
                    + s[None, None, :] * self.mlp(self.mlp_norm(x) * f))
        x = x + a[None, None, :] * self.attn(self.attn_norm(x) * f)
        x = x + s[None, None, :] * self.mlp(self.mlp_norm(x) * f)
        return x


BOS_ID = 1


class BigramHashEmbedding(nn.Module):
    """The records' BigramHash: a zero-init table of hashed (previous, current) token pairs,
    projected to the model width when narrower, times a learned scalar (init 0.05)."""

    def __init__(self, buckets, bigram_dim, model_dim):
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, bigram_dim)
        self.proj = CastedLinear(bigram_dim, model_dim, bias=False) if bigram_dim != model_dim else None
        self.scale = nn.Parameter(torch.tensor(0.05, dtype=torch.float32))

    def bigram_hash(self, tokens):
        t = tokens.to(torch.int32)
        mod = self.buckets - 1
        out = torch.empty_like(t)
        out[..., 0] = mod
        out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
        return out.long()

    def forward(self, token_ids):
        h = self.embed(self.bigram_hash(token_ids))
        if self.proj is not None:
            h = self.proj(h)
        return h * self.scale.to(dtype=h.dtype)


class SmearGate(nn.Module):
    """The records' v1 SmearGate, x_t <- (1-g) x_t + g x_{t-1}, g = sigmoid(gate), with the
    previous row zeroed at the first position and at BOS (no mixing across documents)."""

    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim, dtype=torch.float32))

    def forward(self, x, token_ids):
        g = torch.sigmoid(self.gate.to(dtype=x.dtype))[None, None, :]
        x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        x_prev = x_prev * (token_ids != BOS_ID).to(x.dtype)[:, :, None]
        return (1 - g) * x + g * x_prev


class GPT(nn.Module):
    def __init__(self, vocab_size, num_layers, model_dim, num_heads, num_kv_heads, mlp_mult, tie_embeddings,
                 tied_embed_init_std, logit_softcap, rope_base, qk_gain_init, recur=None, mlp_leaky_slope=0.0,
                 xsa_last=0, parallel_last=0, recur_loop_scales=0, embed_dim=0, ln_scale=0, bigram_buckets=0,
                 bigram_dim=0, smear_gate=0, rope_dims=0, attn_gate=0):
        super().__init__()
        self.tie_embeddings = tie_embeddings
        self.tied_embed_init_std = tied_embed_init_std
        self.logit_softcap = logit_softcap
        # factorized embedding: tok_emb [V, E] and embed_proj = Linear(E, model_dim); the tied head
        # reads both transposed
        self.tok_emb = nn.Embedding(vocab_size, embed_dim or model_dim)
        self.embed_proj = CastedLinear(embed_dim, model_dim, bias=False) if embed_dim else None
        self.bigram = BigramHashEmbedding(bigram_buckets, bigram_dim, model_dim) if bigram_buckets else None
        self.smear = SmearGate(model_dim) if smear_gate else None
        # depth recurrence (the records' looped blocks, shared weights): recur = (first, last, loops)
        # runs blocks first..last `loops` times in a row; the U-Net split applies to this sequence
        self.schedule = list(range(num_layers))
        if recur is not None and recur[2] > 1:
            first, last, loops = recur
            self.schedule = (list(range(last + 1)) + list(range(first, last + 1)) * (loops - 1)
                             + list(range(last + 1, num_layers)))
        self.num_encoder_layers = len(self.schedule) // 2
        self.num_decoder_layers = len(self.schedule) - self.num_encoder_layers
        self.num_skip_weights = min(self.num_encoder_layers, self.num_decoder_layers)
        self.skip_weights = nn.Parameter(torch.ones(self.num_skip_weights, model_dim, dtype=torch.float32))
        self.blocks = nn.ModuleList([Block(model_dim, num_heads, num_kv_heads, mlp_mult, rope_base, qk_gain_init,
                                           mlp_leaky_slope, 1.0 / math.sqrt(i + 1) if ln_scale else 1.0, rope_dims,
                                           attn_gate)
                                     for i in range(num_layers)])
        for i in range(num_layers - xsa_last, num_layers) if xsa_last else ():
            self.blocks[i].attn.xsa = True
        for i in range(num_layers - parallel_last, num_layers) if parallel_last else ():
            self.blocks[i].parallel = True
        # the pass of each virtual block over its physical block (0 = first use)
        self.passes = [self.schedule[:v].count(b) for v, b in enumerate(self.schedule)]
        if recur_loop_scales and recur is not None and recur[2] > 1:
            for i in range(recur[0], recur[1] + 1):
                self.blocks[i].add_pass_scales(recur[2] - 1, model_dim)
        self.final_norm = RMSNorm()
        self.lm_head = None if tie_embeddings else CastedLinear(model_dim, vocab_size, bias=False)
        if self.lm_head is not None:
            self.lm_head._zero_init = True
        self._init_weights()

    def _init_weights(self):
        if self.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.tied_embed_init_std)
        for module in self.modules():
            if isinstance(module, nn.Linear) and getattr(module, "_zero_init", False):
                nn.init.zeros_(module.weight)

    def logits(self, input_ids):
        """Softcapped logits [B*T, V] (train_gpt.py's forward up to the loss)."""
        x = self.tok_emb(input_ids)
        if self.embed_proj is not None:
            x = self.embed_proj(x)
        if self.bigram is not None:
            x = x + self.bigram(input_ids)
        x = rms_norm(x)
        if self.smear is not None:
            x = self.smear(x, input_ids)
        x0 = x
        skips = []
        for i in range(self.num_encoder_layers):
            x = self.blocks[self.schedule[i]](x, x0, self.passes[i])
            skips.append(x)
        for i in range(self.num_decoder_layers):
            if skips:
                x = x + self.skip_weights[i][None, None, :] * skips.pop()
            v = self.num_encoder_layers + i
            x = self.blocks[self.schedule[v]](x, x0, self.passes[v])
        x = self.final_norm(x).reshape(-1, x.size(-1))
        if self.tie_embeddings and self.embed_proj is not None:  # (x W) tok_emb^T
            proj = F.linear(x @ self.embed_proj.weight, self.tok_emb.weight)
        else:
            proj = F.linear(x, self.tok_emb.weight) if self.tie_embeddings else self.lm_head(x)
        return self.logit_softcap * torch.tanh(proj / self.logit_softcap)

    def forward(self, input_ids, target_ids):
        return F.cross_entropy(self.logits(input_ids).float(), target_ids.reshape(-1), reduction="mean")


MODEL_KEYS = ("vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_mult", "tie_embeddings",
              "rope_base", "logit_softcap", "qk_gain_init", "tied_embed_init_std")


# technique keys, recorded only by the fixtures that set them
RECUR_KEYS = ("recur_first", "recur_last", "recur_loops", "mlp_leaky_slope", "xsa_last", "parallel_last",
              "recur_loop_scales", "embed_dim", "ln_scale", "bigram_buckets", "bigram_dim", "smear_gate", "rope_dims",
              "attn_gate")


def build_model(cfg):
    """GPT from a dict with MODEL_KEYS (train_gpt.py names), fp32 on the CPU."""
    return GPT(vocab_size=cfg["vocab_size"], num_layers=cfg["num_layers"], model_dim=cfg["model_dim"],
               num_heads=cfg["num_heads"], num_kv_heads=cfg["num_kv_heads"], mlp_mult=cfg["mlp_mult"],
               tie_embeddings=bool(cfg["tie_embeddings"]), tied_embed_init_std=cfg["tied_embed_init_std"],
               logit_softcap=cfg["logit_softcap"], rope_base=cfg["rope_base"],
               qk_gain_init=cfg["qk_gain_init"],
               recur=(cfg["recur_first"], cfg["recur_last"], cfg["recur_loops"]) if "recur_loops" in cfg else None,
               mlp_leaky_slope=cfg.get("mlp_leaky_slope", 0.0), xsa_last=cfg.get("xsa_last", 0),
               parallel_last=cfg.get("parallel_last", 0),
               recur_loop_scales=cfg.get("recur_loop_scales", 0), embed_dim=cfg.get("embed_dim", 0),
               ln_scale=cfg.get("ln_scale", 0), bigram_buckets=cfg.get("bigram_buckets", 0),
               bigram_dim=cfg.get("bigram_dim", 0), smear_gate=cfg.get("smear_gate", 0),
               rope_dims=cfg.get("rope_dims", 0), attn_gate=cfg.get("attn_gate", 0)).float()


def deterministic_weights(model, seed):
    """Overwrite every parameter with seeded values near its train_gpt.py init, but with the
    zero-initialised projections made non-zero so every gradient is non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name == "tok_emb.weight":
                p.copy_(0.5 * noise)
            elif "attn_gate_w" in name:  # gates spread over (0, 1), not the init's constant 0.5
                p.copy_(2.0 * noise / math.sqrt(p.shape[1]))
            elif p.ndim == 2 and not any(k in name for k in CONTROL_TENSOR_NAME_PATTERNS):
                p.copy_(noise / math.sqrt(p.shape[1]))
            elif "resid_mix" in name:
                base = torch.stack((torch.ones(p.shape[1]), torch.zeros(p.shape[1])))
                p.copy_(base + 0.2 * noise)
            elif "q_gain" in name:
                p.copy_(1.5 + 0.3 * noise)
            elif name == "bigram.embed.weight":
                p.copy_(0.5 * noise)
            elif name == "bigram.scale":
                p.copy_(0.05 + 0.5 * noise)
            elif name == "smear.gate":
                p.copy_(noise)
            else:  # attn_scale, mlp_scale, skip_weights
                p.copy_(1.0 + 0.2 * noise)


def deterministic_batch(cfg, B, T, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg["vocab_size"], (B, T), generator=g, dtype=torch.int64)
    y = torch.randint(0, cfg["vocab_size"], (B, T), generator=g, dtype=torch.int64)
    if cfg.get("smear_gate"):  # documents start inside the rows (BOS mid-row and at a row start)
        x[0, 4] = BOS_ID
        x[-1, 0] = BOS_ID
        x[-1, T - 3] = BOS_ID
    return x, y


def write_fixture(path, records):
    """records: list of (name, tensor); float tensors stored float32, integer tensors int32."""
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<iii", MAGIC, VERSION, len(records)))
        for name, t in records:
            t = t.detach().contiguous()
            is_int = not t.is_floating_point()
            arr = t.to(torch.int32 if is_int else torch.float32).numpy()
            nb = name.encode()
            f.write(struct.pack("<i", len(nb)) + nb)
            f.write(struct.pack("<ii", 1 if is_int else 0, arr.ndim))
            f.write(struct.pack("<%di" % arr.ndim, *arr.shape))
            f.write(arr.astype("<i4" if is_int else "<f4").tobytes())
    os.replace(path + ".tmp", path)


def parity_records(cfg, B, T, seed):
    torch.manual_seed(seed)
    model = build_model(cfg)
    deterministic_weights(model, seed)
    x, y = deterministic_batch(cfg, B, T, seed + 1)
    recs = [("config." + k, torch.tensor([float(cfg[k])])) for k in MODEL_KEYS]
    recs += [("config." + k, torch.tensor([float(cfg[k])])) for k in RECUR_KEYS if k in cfg]
    recs += [("config.B", torch.tensor([float(B)])), ("config.T", torch.tensor([float(T)]))]
    recs += [(n, p) for n, p in model.state_dict().items()]
    logits = model.logits(x)
    token_loss = F.cross_entropy(logits.float(), y.reshape(-1), reduction="none")
    loss = model(x, y)
    loss.backward()
    recs += [("x", x), ("y", y), ("loss", loss.reshape(1)), ("token_loss", token_loss), ("logits", logits)]
    recs += [("grad." + n, p.grad) for n, p in model.named_parameters()]
    return recs, float(loss)


FIXTURES = {
    "model_parity_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                 mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                 qk_gain_init=1.5, tied_embed_init_std=0.005), 2, 13, 1234),
    "model_parity_untied_v1.bin": (dict(vocab_size=48, num_layers=4, model_dim=16, num_heads=2, num_kv_heads=2,
                                        mlp_mult=3, tie_embeddings=0, rope_base=500.0, logit_softcap=15.0,
                                        qk_gain_init=1.5, tied_embed_init_std=0.005), 3, 9, 99),
    # blocks 1..2 of 4 run 3x: 8 virtual blocks 0 1 2 1 2 1 2 3, 4 skips
    "model_parity_recur_v1.bin": (dict(vocab_size=64, num_layers=4, model_dim=32, num_heads=4, num_kv_heads=2,
                                       mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                       qk_gain_init=1.5, tied_embed_init_std=0.005, recur_first=1, recur_last=2,
                                       recur_loops=3), 2, 11, 4321),
    # the records' MLP activation leaky_relu(x, 0.5)^2
    "model_parity_leaky_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                       mlp_mult=3, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                       qk_gain_init=1.5, tied_embed_init_std=0.005, mlp_leaky_slope=0.5),
                                  2, 12, 777),
    # XSA in the last 2 of 3 blocks, GQA 4/2 (two heads project against each value)
    "model_parity_xsa_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                     mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                     qk_gain_init=1.5, tied_embed_init_std=0.005, xsa_last=2), 2, 10, 555),
    # GPT-J parallel residual in the last 2 of 4 blocks (decoder side of the U-Net)
    "model_parity_parallel_v1.bin": (dict(vocab_size=64, num_layers=4, model_dim=32, num_heads=4, num_kv_heads=2,
                                          mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                          qk_gain_init=1.5, tied_embed_init_std=0.005, parallel_last=2), 2, 9, 808),
    # recurrence with per-pass scales: blocks 1..2 of 4 run 3x, passes 1 and 2 with their own
    # attn/mlp scales (rows of blocks.N.attn_scales / mlp_scales)
    "model_parity_recur_scales_v1.bin": (dict(vocab_size=64, num_layers=4, model_dim=32, num_heads=4,
                                              num_kv_heads=2, mlp_mult=2, tie_embeddings=1, rope_base=10000.0,
                                              logit_softcap=30.0, qk_gain_init=1.5, tied_embed_init_std=0.005,
                                              recur_first=1, recur_last=2, recur_loops=3, recur_loop_scales=1),
                                         2, 11, 2468),
    # factorized embedding E=12 < 32, tied head through embed_proj, with LN scale
    "model_parity_embed_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                       mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                       qk_gain_init=1.5, tied_embed_init_std=0.005, embed_dim=12, ln_scale=1),
                                  2, 10, 1357),
    # BigramHash 40 buckets x 8, projected to 32, and SmearGate (BOS inside rows)
    "model_parity_bigram_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                        mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                        qk_gain_init=1.5, tied_embed_init_std=0.005, bigram_buckets=40, bigram_dim=8,
                                        smear_gate=1), 2, 11, 9753),
    # BigramHash at bigram_dim = model_dim (no proj), untied head, with ln_scale over recurrence
    "model_parity_bigram_same_v1.bin": (dict(vocab_size=48, num_layers=4, model_dim=16, num_heads=2,
                                             num_kv_heads=2, mlp_mult=3, tie_embeddings=0, rope_base=500.0,
                                             logit_softcap=15.0, qk_gain_init=1.5, tied_embed_init_std=0.005,
                                             bigram_buckets=29, bigram_dim=16, recur_first=1, recur_last=2,
                                             recur_loops=2, ln_scale=1), 3, 9, 8642),
    # sparse attention output gate (12 of 32 input dims) on every block, after XSA, with LN scale
    "model_parity_gate_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                      mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                      qk_gain_init=1.5, tied_embed_init_std=0.005, attn_gate=1, xsa_last=2,
                                      ln_scale=1), 2, 10, 3141),
    # full gate (all 16 dims) over recurrence (blocks 1-2 of 4 x2: shared gates), untied, GQA 2/1
    "model_parity_gate_full_v1.bin": (dict(vocab_size=48, num_layers=4, model_dim=16, num_heads=2, num_kv_heads=1,
                                           mlp_mult=2, tie_embeddings=0, rope_base=500.0, logit_softcap=15.0,
                                           qk_gain_init=1.5, tied_embed_init_std=0.005, attn_gate=2, recur_first=1,
                                           recur_last=2, recur_loops=2), 3, 9, 2718),
    # partial RoPE: 4 of 8 head dims rotate (caddie's pairing; check_rope_perm ties it to the records')
    "model_parity_rope_v1.bin": (dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2,
                                      mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
                                      qk_gain_init=1.5, tied_embed_init_std=0.005, rope_dims=4), 2, 12, 2025),
}


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_dir = os.path.join(root, "tests", "fixtures", "engine")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    # names on the command line regenerate only those (another torch build changes the last bits
    # of every fixture, so adding one should not rewrite the others)
    wanted = sys.argv[1:] or list(FIXTURES)
    check_rope_perm(16, 4, 10000.0, 9, 5)  # caddie's pairing is the records' up to the permutation
    check_rope_perm(64, 16, 10000.0, 7, 6)
    for fname in wanted:
        cfg, B, T, seed = FIXTURES[fname]
        recs, loss = parity_records(cfg, B, T, seed)
        path = os.path.join(out_dir, fname)
        write_fixture(path, recs)
        print("%s: loss %.6f, %d records, %d bytes" % (path, loss, len(recs), os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
