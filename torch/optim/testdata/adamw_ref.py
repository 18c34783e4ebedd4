"""Reference for adamw_test.go: 20 steps of torch.optim.AdamW with parameter groups (weight decay on matrices
only), clip_grad_norm_ and a warmup+cosine LambdaLR, on a tiny MLP with the data and initial weights Go wrote.
usage: adamw_ref.py in.safetensors out.safetensors"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
import st  # noqa: E402

d = st.load(sys.argv[1])
w1 = d["w1"].clone().requires_grad_(True)
b1 = d["b1"].clone().requires_grad_(True)
w2 = d["w2"].clone().requires_grad_(True)
x, y = d["x"], d["y"]
steps, warmup, min_ratio, peak = 20, 3, 0.1, 0.05

opt = torch.optim.AdamW([{"params": [w1, w2], "weight_decay": 0.1}, {"params": [b1], "weight_decay": 0.0}],
                        lr=peak, betas=(0.9, 0.95), eps=1e-8)


def lam(s):
    if s < warmup:
        return s / warmup
    p = min(1.0, (s - warmup) / (steps - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
norms = []
for i in range(steps):
    opt.zero_grad(set_to_none=True)
    loss = ((F.linear(F.silu(F.linear(x, w1, b1)), w2) - y) ** 2).mean()
    loss.backward()
    norms.append(float(torch.nn.utils.clip_grad_norm_([w1, b1, w2], 0.5)))
    opt.step()
    sched.step()
st.save(sys.argv[2], {"w1": w1, "b1": b1, "w2": w2, "norms": torch.tensor(norms, dtype=torch.float64)})
