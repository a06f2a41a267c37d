#!/usr/bin/env python3
"""gen_optim_fixture.py — PyTorch reference values for engine/optim.c and engine/export.c.

Writes tests/fixtures/engine/optim_ref.safetensors (a safetensors file written by hand with
struct + json, since the safetensors package is not installed):
  - Newton-Schulz 5 of a wide and a tall matrix (train_gpt.py's zeropower_via_newtonschulz5, but
    in fp32: caddie's CPU reference runs NS in fp32, not bf16);
  - 6 steps of train_gpt.py's optimizer split on small tensors with given gradients: Muon
    (train_gpt.py's class, fp32 NS and fp32 update buffer) for two matrices, torch.optim.Adam
    for an "embedding" and a "scalar" group, grad clipping and per-step lr_mul / momentum;
  - int8 quantization of a matrix and a long vector by train_gpt.py's quantize_float_tensor
    (torch.quantile percentile clip, fp16 row scales), and fp16 rounding of tricky values.
Tensor "fixture_version" = [1]; bump it (and the C test) when the layout changes.

Run from the repo root: /usr/bin/python3 tests/scripts/gen_optim_fixture.py
Not here: the model (see the model parity fixture).
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from muon_ref import Muon, ns5_fp32  # noqa: E402

torch.manual_seed(1234)
torch.set_num_threads(1)
OUT = Path("tests/fixtures/engine/optim_ref.safetensors")


def quantize_float_tensor(t):
    # train_gpt.py, verbatim
    INT8_CLIP_Q = 99.99984 / 100.0
    t32 = t.float()
    if t32.ndim == 2:
        clip_abs = torch.quantile(t32.abs(), INT8_CLIP_Q, dim=1)
        clipped = torch.maximum(torch.minimum(t32, clip_abs[:, None]), -clip_abs[:, None])
        scale = (clip_abs / 127.0).clamp_min(1.0 / 127.0)
        q = torch.clamp(torch.round(clipped / scale[:, None]), -127, 127).to(torch.int8).contiguous()
        return q, scale.to(dtype=torch.float16).contiguous()
    clip_abs = float(torch.quantile(t32.abs().flatten(), INT8_CLIP_Q).item()) if t32.numel() else 0.0
    scale = torch.tensor(clip_abs / 127.0 if clip_abs > 0 else 1.0, dtype=torch.float32)
    q = torch.clamp(torch.round(torch.clamp(t32, -clip_abs, clip_abs) / scale), -127, 127).to(torch.int8).contiguous()
    return q, scale


def write_safetensors(path, tensors):
    header = {"__metadata__": {"fixture": "optim_ref", "generator": "tests/scripts/gen_optim_fixture.py"}}
    blobs, off = [], 0
    for name, arr in tensors.items():
        # integer-valued tensors (int8 codes) are exact in F16: half the bytes
        f16 = name.endswith("_q")
        arr = np.ascontiguousarray(arr.astype("<f2" if f16 else "<f4"))
        b = arr.tobytes()
        header[name] = {"dtype": "F16" if f16 else "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    out = {"fixture_version": np.array([1.0])}
    # ---- Newton-Schulz -------------------------------------------------------------------
    for tag, shape in (("wide", (12, 20)), ("tall", (20, 12))):
        G = torch.randn(*shape)
        out[f"ns_in_{tag}"] = G.numpy()
        out[f"ns_out_{tag}"] = ns5_fp32(G).numpy()

    # ---- optimizer steps -------------------------------------------------------------------
    W1 = torch.randn(16, 24) * 0.1
    W2 = torch.randn(24, 16) * 0.1
    emb = torch.randn(32, 16) * 0.005
    sc = torch.ones(16) + 0.1 * torch.randn(16)
    params = [torch.nn.Parameter(t.clone()) for t in (W1, W2, emb, sc)]
    for name, p in zip(("W1", "W2", "emb", "sc"), params):
        out[f"init_{name}"] = p.detach().numpy().copy()
    muon = Muon(params[:2], lr=0.04, momentum=0.95, backend_steps=5)
    for g in muon.param_groups:
        g["base_lr"] = 0.04
    adam_emb = torch.optim.Adam([{"params": [params[2]], "lr": 0.05, "base_lr": 0.05}], betas=(0.9, 0.95), eps=1e-8)
    adam_sc = torch.optim.Adam([{"params": [params[3]], "lr": 0.04, "base_lr": 0.04}], betas=(0.9, 0.95), eps=1e-8)
    opts = [adam_emb, muon, adam_sc]
    n_steps = 6
    lr_muls = [1.0, 1.0, 0.8, 0.6, 0.4, 0.2]
    moms = [0.85 + 0.1 * min(s / 4, 1.0) for s in range(n_steps)]
    clip = 0.5
    norms = []
    for s in range(n_steps):
        for name, p in zip(("W1", "W2", "emb", "sc"), params):
            g = torch.randn_like(p) * (0.3 if name != "sc" else 0.05)
            p.grad = g
            out[f"grad{s}_{name}"] = g.numpy().copy()
        for g in muon.param_groups:
            g["momentum"] = moms[s]
        for opt in opts:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * lr_muls[s]
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip)))
        for opt in opts:
            opt.step()
        for name, p in zip(("W1", "W2", "emb", "sc"), params):
            out[f"after{s}_{name}"] = p.detach().numpy().copy()
    out["lr_muls"] = np.array(lr_muls)
    out["momentums"] = np.array(moms)
    out["clip_norms"] = np.array(norms)

    # ---- int8 quantization -------------------------------------------------------------------
    M = torch.randn(100, 257) * 0.02
    M[5, 7] = 1.5  # an outlier that the percentile clip must cut
    M[9] = 0.0     # an all-zero row: scale clamps to 1/127
    q, s = quantize_float_tensor(M)
    out["q_mat"] = M.numpy()
    out["q_mat_q"] = q.numpy().astype(np.float32)
    out["q_mat_scale"] = s.float().numpy()
    V = torch.randn(65600) * 0.03
    V[123] = -2.0
    qv, sv = quantize_float_tensor(V)
    out["q_vec"] = V.numpy()
    out["q_vec_q"] = qv.numpy().astype(np.float32)
    out["q_vec_scale"] = np.array([float(sv)])
    tricky = torch.tensor([0.0, -0.0, 1.0, 65504.0, 65520.0, 1e-8, 6.1e-5, 5.96e-8, 2.98e-8, 0.1, -3.14159, 1e5,
                           0.00012345, 2049.0, 2051.0, 1.0009765625])
    out["f16_in"] = tricky.numpy()
    out["f16_out"] = tricky.to(torch.float16).float().numpy()
    write_safetensors(OUT, out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(out)} tensors)", file=sys.stderr)


if __name__ == "__main__":
    main()
