#!/usr/bin/python3
"""gen_polar_express_ref.py — the expected outputs of test_engine_optim.c's
test_newton_schulz_polar_express: Polar Express Newton-Schulz (muon_ref.ns_polar_express, float64)
of two small exact matrices, G[i][j] = ((7 i + 3 j) % 11 - 5) / 4, wide 3x5 and tall 5x3, printed
as the C arrays the test embeds.

Run (from the repo root):  /usr/bin/python3 tests/scripts/gen_polar_express_ref.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from muon_ref import ns_polar_express  # noqa: E402


def main():
    for name, (r, c) in (("pe_wide", (3, 5)), ("pe_tall", (5, 3))):
        G = torch.tensor([[((7 * i + 3 * j) % 11 - 5) / 4.0 for j in range(c)] for i in range(r)], dtype=torch.float64)
        X = ns_polar_express(G, steps=5)
        vals = ", ".join("%.9g" % v for v in X.reshape(-1).tolist())
        print("static const double %s[%d] = {%s};" % (name, r * c, vals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
