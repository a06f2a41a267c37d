"""muon_ref.py — the Muon optimizer as caddie's CPU reference runs it, shared by the fixture
generators (gen_optim_fixture.py, gen_train_fixture.py): train_gpt.py's
zeropower_via_newtonschulz5 and Muon class, single rank, with two differences the C engine
shares on purpose: Newton-Schulz runs in fp32 instead of bf16, and the update buffer stays fp32.

Imported, never run; it sets no seed and no thread count (the generators do).
Not here: Adam, the lr / momentum schedules, writing fixtures.
"""
import torch


def ns5_fp32(G, steps=5, eps=1e-7, dtype=torch.float32):
    # train_gpt.py's zeropower_via_newtonschulz5 with .bfloat16() replaced by .to(dtype) (fp32
    # here; torch_bench.py also runs it in bf16 as train_gpt.py does)
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.to(dtype).clone()
    X /= X.norm() + eps
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if transposed else X


class Muon(torch.optim.Optimizer):
    # train_gpt.py's Muon, single rank, fp32 update buffer
    def __init__(self, params, lr, momentum, backend_steps, nesterov=True):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(g)
                if group["nesterov"]:
                    g = g.add(buf, alpha=group["momentum"])
                g = ns5_fp32(g, steps=group["backend_steps"])
                g *= max(1, g.size(0) / g.size(1)) ** 0.5
                p.add_(g.to(p.dtype), alpha=-group["lr"])


# Polar Express (PR #1344, the records' PolarNS): one minimax (a, b, c) per iteration instead of
# NS5's fixed tuple, same normalisation and iteration.
POLAR_EXPRESS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


def ns_polar_express(G, steps=5, eps=1e-7, dtype=torch.float64):
    X = G.to(dtype).clone()
    X /= X.norm() + eps
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    for a, b, c in POLAR_EXPRESS[:steps]:
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if transposed else X
