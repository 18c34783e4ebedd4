"""PyTorch eager side of torch/bench_test.go: the same small op and small-MLP training step, timed the same way.
Prints one line per benchmark: name ns_per_op. usage: bench_ops.py THREADS"""
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)


def bench(name, fn, n):
    for _ in range(min(n // 10 + 1, 200)):
        fn()
    best = float("inf")
    for _ in range(15):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    print(name, best, flush=True)


a, b = torch.randn(4, 4), torch.randn(4, 4)
bench("add", lambda: a + b, 5000)

x, y = torch.randn(32, 64), torch.randn(32, 16)
w1 = torch.randn(256, 64).mul_(0.05).requires_grad_()
w2 = torch.randn(16, 256).mul_(0.05).requires_grad_()
opt = torch.optim.AdamW([w1, w2], lr=1e-3, weight_decay=0.01, foreach=False)


def step():
    opt.zero_grad(set_to_none=True)
    loss = ((F.linear(F.silu(F.linear(x, w1)), w2) - y) ** 2).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([w1, w2], 1.0)
    opt.step()


bench("mlp_step", step, 300)
