"""gen_distill_fixture.py — PyTorch reference for the distill_kl op (engine/backend.h, the
distillation term of engine/distill.h):

    tests/fixtures/engine/distill_kl_v1.bin

Run with Debian's torch 1.13 (CPU, fp32 inputs, the reference in float64):
/usr/bin/python3 tests/scripts/gen_distill_fixture.py.
Student raw logits `raw` [N,V] go through the softcap z = cap*tanh(raw/cap); the teacher's
logits `zt` [N,V] are already softcapped. Per row
    loss[n] = alpha * T^2 * KL(softmax(zt/T) || softmax(z/T))
            = alpha * T^2 * F.kl_div(log_softmax(z/T), log_softmax(zt/T), log_target=True).sum(-1)
and `grad` = d sum_n loss[n] / d raw (autograd through the softcap). Records: config.temp,
config.alpha, config.cap, raw, zt, loss, grad (gen_model_fixture.py's format).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_fixture as g  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "engine", "distill_kl_v1.bin")


def main():
    torch.manual_seed(20261205)
    N, V, temp, alpha, cap = 7, 53, 2.0, 0.6, 30.0
    raw = (torch.randn(N, V) * 15).float()
    zt = (cap * torch.tanh(torch.randn(N, V) * 12 / cap)).float()
    r = raw.double().requires_grad_(True)
    z = cap * torch.tanh(r / cap)
    kl = F.kl_div(F.log_softmax(z / temp, dim=-1), F.log_softmax(zt.double() / temp, dim=-1), log_target=True,
                  reduction="none").sum(dim=-1)
    loss = alpha * temp * temp * kl
    loss.sum().backward()
    recs = [("config.temp", torch.tensor([temp])), ("config.alpha", torch.tensor([alpha])),
            ("config.cap", torch.tensor([cap])), ("raw", raw), ("zt", zt), ("loss", loss), ("grad", r.grad)]
    g.write_fixture(OUT, recs)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
