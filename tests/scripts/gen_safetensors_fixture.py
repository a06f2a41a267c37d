#!/usr/bin/env python3
"""gen_safetensors_fixture.py — safetensors interop between PyTorch and caddie.

  gen_safetensors_fixture.py            write tests/fixtures/engine/torch_written.safetensors
                                        from torch tensors (F32, plus one F16 and one BF16
                                        tensor) under train_gpt.py state_dict names
  gen_safetensors_fixture.py --check F  load F (written by caddie, e.g. by test_engine_safetensors
                                        into tests/fixtures/engine/caddie_written.safetensors) into
                                        torch and compare with the expected tensors; exit 1 on
                                        any difference

The safetensors package is not installed, so the format is written/read by hand with struct +
json (8-byte LE header length, JSON header, raw LE data). Every tensor's values follow a formula
(value(name, i)) that the C test recomputes, so neither side trusts the other's file.
Run from the repo root with /usr/bin/python3.
"""
import json
import math
import struct
import sys
from pathlib import Path

import torch

TENSORS = [  # train_gpt.py names and shapes of a 1-block model with model_dim 16, vocab 64
    ("tok_emb.weight", (64, 16), "F32"),
    ("skip_weights", (0, 16), "F32"),
    ("blocks.0.attn.c_q.weight", (16, 16), "F32"),
    ("blocks.0.attn.q_gain", (2,), "F32"),
    ("blocks.0.attn_scale", (16,), "F16"),
    ("blocks.0.resid_mix", (2, 16), "BF16"),
]
DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def value(k, n):
    # tensor k (index in TENSORS), element i: sin(0.37*i + k) * 0.5 ** k  (the C test's formula)
    return torch.tensor([math.sin(0.37 * i + k) * 0.5 ** k for i in range(n)], dtype=torch.float64)


def expected():
    out = {}
    for k, (name, shape, dt) in enumerate(TENSORS):
        n = math.prod(shape)
        out[name] = value(k, n).float().reshape(shape).to(DT[dt])
    return out


def write(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype]
        b = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        b, e = meta["data_offsets"]
        dt = DT[meta["dtype"]]
        raw = bytearray(body[b:e])
        t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(meta["shape"])
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        got = read(sys.argv[2])
        want = {k: v.float() for k, v in expected().items()}  # caddie writes fp32
        bad = 0
        if set(got) != set(want):
            print(f"names differ: {sorted(set(got) ^ set(want))}")
            bad += 1
        for name, w in want.items():
            g = got.get(name)
            if g is None or g.dtype != torch.float32 or tuple(g.shape) != tuple(w.shape) or not torch.equal(g, w):
                print(f"mismatch: {name}")
                bad += 1
        print("ok: torch reads caddie's file" if not bad else f"{bad} mismatches")
        sys.exit(1 if bad else 0)
    out = Path("tests/fixtures/engine/torch_written.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    write(out, expected())
    back = read(out)
    assert all(torch.equal(back[k], v) for k, v in expected().items())
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
