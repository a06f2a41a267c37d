#!/usr/bin/python3
"""torch_bench.py — the PyTorch side of `make bench`'s train-step figures, measured on this
machine instead of quoted: tokens/s of a full train step (zero_grad, forward, backward, Muon on
the block matrices + Adam on the rest) of train_gpt.py's GPT in Debian's torch 1.13 on the CPU,
for the two bench configs, in fp32 and under torch.autocast("cpu", bfloat16) with the bf16
Newton-Schulz train_gpt.py uses — the two settings of caddie's matmul_precision.

Usage (repo root):  /usr/bin/python3 tests/scripts/torch_bench.py [threads] [a|b ...]
Prints one line per (config, precision). A benchmark: nothing is checked.
Not here: caddie's figures (tests/bench_train.c), correctness (the parity fixtures).
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_model_fixture import build_model, deterministic_batch  # noqa: E402
from muon_ref import ns5_fp32  # noqa: E402

CONFIGS = {
    "a": dict(num_layers=4, model_dim=256, num_heads=4, num_kv_heads=2, T=256, steps=4),
    "b": dict(num_layers=9, model_dim=512, num_heads=8, num_kv_heads=4, T=1024, steps=2),
}
TOKENS = 8192


def bench(name, bf16):
    c = CONFIGS[name]
    cfg = dict(vocab_size=1024, mlp_mult=2, tie_embeddings=1, rope_base=10000.0, logit_softcap=30.0,
               qk_gain_init=1.5, tied_embed_init_std=0.005, **{k: c[k] for k in ("num_layers", "model_dim",
                                                                                 "num_heads", "num_kv_heads")})
    model = build_model(cfg)
    mats = [p for n, p in model.named_parameters() if p.ndim == 2 and "blocks." in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "blocks." in n)]
    adam = torch.optim.Adam(rest, lr=0.05, betas=(0.9, 0.95), eps=1e-8)
    bufs = [torch.zeros_like(p) for p in mats]
    x, y = deterministic_batch(cfg, TOKENS // c["T"], c["T"], 1)
    times = []
    for step in range(c["steps"] + 1):
        t = time.perf_counter()
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, y)
        loss.backward()
        with torch.no_grad():
            for p, buf in zip(mats, bufs):
                buf.mul_(0.95).add_(p.grad)
                g = ns5_fp32(p.grad.add(buf, alpha=0.95), 5, dtype=torch.bfloat16 if bf16 else torch.float32).float()
                p.add_(g * max(1, g.size(0) / g.size(1)) ** 0.5, alpha=-0.04)
        adam.step()
        if step > 0:  # the first step allocates and warms caches
            times.append(time.perf_counter() - t)
    mean = sum(times) / len(times)
    print(f"torch {torch.__version__} ({name}) {'bf16 autocast' if bf16 else 'fp32':13s} "
          f"{TOKENS / mean:8.0f} tok/s  step {mean:.3f} s ({len(times)} steps, loss {loss.item():.4f})", flush=True)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for name in sys.argv[2:] or ["a", "b"]:
        for bf16 in (False, True):
            bench(name, bf16)


if __name__ == "__main__":
    main()
