#!/usr/bin/env python3
"""gen_gptq_fixture.py — a direct NumPy/PyTorch computation of GPTQ's column sweep for
engine/gptq.c (cad_gptq_sweep), written out as the records' GPTQ (PR #535/#1019) does it with
torch.linalg.cholesky / torch.cholesky_inverse / torch.linalg.cholesky(upper=True), in float64:
dead columns (H_jj = 0 -> H_jj = 1, W_:j = 0), optional act-order (descending diag H), damping
damp * mean(diag H), blocks of `block` columns with in-block error feedback and the lazy update
of the later columns, codes clamp(round_half_even(w / step_r), -qmax, qmax).

Writes tests/fixtures/engine/gptq_ref.txt: one case per line group, numbers in %.17g:
  "case rows cols qmax block act_order damp", then the lines W, H, step, q, W_out.
Two cases on a 6x10 matrix with blocks of 4 (a partial last block) and one dead column: without
and with act-order.

Run from the repo root: /usr/bin/python3 tests/scripts/gen_gptq_fixture.py
Not here: the Hessian collection or scales (model.c, export.c).
"""
from pathlib import Path

import numpy as np
import torch


def gptq(W, H, step, qmax, block, act_order, damp):
    W = torch.tensor(W, dtype=torch.float64).clone()
    H = torch.tensor(H, dtype=torch.float64).clone()
    step = torch.tensor(step, dtype=torch.float64)
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = torch.arange(cols)
    if act_order:
        perm = torch.tensor(sorted(range(cols), key=lambda j: -float(H[j, j])))  # stable on ties
        W = W[:, perm]
        H = H[perm][:, perm]
    H[range(cols), range(cols)] += damp * torch.mean(torch.diag(H))
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    U = torch.linalg.cholesky(Hinv, upper=True)
    Q = torch.zeros(rows, cols, dtype=torch.int64)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros(rows, i2 - i1, dtype=torch.float64)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            d = U1[i, i]
            c = torch.clamp(torch.round(w / step), -qmax, qmax)  # torch.round: half to even
            Q[:, i1 + i] = c.to(torch.int64)
            err = (w - c * step) / d
            W1[:, i:] -= err.unsqueeze(1) @ U1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    inv = torch.argsort(perm)
    return Q[:, inv].numpy(), W[:, inv].numpy()


def main():
    rng = np.random.default_rng(20240601)
    rows, cols, qmax, block, damp = 6, 10, 7, 4, 0.01
    W = rng.normal(0, 0.3, (rows, cols))
    X = rng.normal(0, 1, (40, cols)) * rng.uniform(0.2, 3.0, cols)  # uneven column scales
    X[:, 6] = 0  # a dead input column
    H = X.T @ X
    step = np.abs(W).max(axis=1).astype(np.float32) / qmax  # any positive fp32 steps
    out = []
    for act_order in (0, 1):
        q, w_out = gptq(W, H, step.astype(np.float64), qmax, block, act_order, damp)
        out.append(f"case {rows} {cols} {qmax} {block} {act_order} {damp!r}")
        for arr, fmt in ((W, "%.17g"), (H, "%.17g"), (step, "%.9g"), (q, "%d"), (w_out, "%.17g")):
            out.append(" ".join(fmt % v for v in np.asarray(arr).ravel()))
    path = Path("tests/fixtures/engine/gptq_ref.txt")
    path.write_text("\n".join(out) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
