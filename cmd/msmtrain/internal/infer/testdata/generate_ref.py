"""PyTorch eager reference for BenchmarkGenerate: the same qwen3-shaped model (random weights, float32) with a
preallocated KV cache, greedy decoding, prompts of 32 tokens, 64 new tokens, batch 1 and 16.

    python3 cmd/msmtrain/internal/infer/testdata/generate_ref.py [--threads N]

Prints generated tokens/s per batch size, like the Go benchmark's tokens/s metric.
"""
import argparse
import time

import torch
import torch.nn.functional as F

V, C, I, L, H, KV, D = 1500, 128, 384, 4, 4, 2, 32
EPS, THETA = 1e-6, 10000.0


def rms(x, w):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * w


class Model:
    def __init__(self, g):
        r = lambda *s: torch.randn(*s, generator=g) * 0.02
        self.emb = r(V, C)  # tied with the head
        self.layers = []
        for _ in range(L):
            self.layers.append(dict(
                ln1=torch.ones(C), ln2=torch.ones(C), qn=torch.ones(D), kn=torch.ones(D),
                q=r(H * D, C), k=r(KV * D, C), v=r(KV * D, C), o=r(C, H * D),
                gate=r(I, C), up=r(I, C), down=r(C, I)))
        self.norm = torch.ones(C)
        self.inv_freq = 1.0 / (THETA ** (torch.arange(0, D, 2).float() / D))

    def rope(self, x, pos):  # x (B, h, T, D), pos (B, T)
        f = pos[:, None, :, None].float() * self.inv_freq  # (B, 1, T, D/2)
        cos, sin = torch.cat([f, f], -1).cos(), torch.cat([f, f], -1).sin()
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(self, ids, pos, seg, cache, n):
        B, T = ids.shape
        cache["seg"][:, n:n + T] = seg
        segs = cache["seg"][:, : n + T]
        # causal within a segment: query t (absolute n+t) sees key j <= n+t with seg equal
        qi = torch.arange(n, n + T)[:, None]
        kj = torch.arange(n + T)[None, :]
        mask = (kj <= qi)[None] & (seg[:, :, None] == segs[:, None, :])  # (B, T, n+T)
        x = F.embedding(ids, self.emb)  # (B, T, C)
        for li, w in enumerate(self.layers):
            h = rms(x, w["ln1"])
            q = F.linear(h, w["q"]).view(B, T, H, D).transpose(1, 2)
            k = F.linear(h, w["k"]).view(B, T, KV, D).transpose(1, 2)
            v = F.linear(h, w["v"]).view(B, T, KV, D).transpose(1, 2)
            q, k = self.rope(rms(q, w["qn"]), pos), self.rope(rms(k, w["kn"]), pos)
            cache["k"][li][:, :, n:n + T] = k
            cache["v"][li][:, :, n:n + T] = v
            K = cache["k"][li][:, :, : n + T].repeat_interleave(H // KV, 1)
            Vv = cache["v"][li][:, :, : n + T].repeat_interleave(H // KV, 1)
            a = (q @ K.transpose(-1, -2)) / D ** 0.5  # (B, H, T, n+T)
            a = a.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
            y = (a @ Vv).transpose(1, 2).reshape(B, T, H * D)
            x = x + F.linear(y, w["o"])
            h = rms(x, w["ln2"])
            x = x + F.linear(F.silu(F.linear(h, w["gate"])) * F.linear(h, w["up"]), w["down"])
        return F.linear(rms(x, self.norm), self.emb)  # (B, T, V)


def generate(m, B, prompt_len=32, max_new=64):
    prompts = torch.tensor([[(7 * i + 13 * k + 1) % V for k in range(prompt_len)] for i in range(B)])
    S = prompt_len + max_new
    cache = dict(seg=torch.zeros(B, S, dtype=torch.long),
                 k=[torch.zeros(B, KV, S, D) for _ in range(L)], v=[torch.zeros(B, KV, S, D) for _ in range(L)])
    pos = torch.arange(prompt_len).expand(B, -1)
    seg = torch.ones(B, prompt_len, dtype=torch.long)
    logits = m.forward(prompts, pos, seg, cache, 0)
    nxt = logits[:, -1].argmax(-1)
    n, out = prompt_len, 1
    while out < max_new:
        logits = m.forward(nxt[:, None], torch.full((B, 1), n), torch.ones(B, 1, dtype=torch.long), cache, n)
        nxt = logits[:, -1].argmax(-1).cpu()  # the Go side copies the next tokens to the host too
        n, out = n + 1, out + 1
    return B * max_new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    m = Model(torch.Generator().manual_seed(1))
    with torch.no_grad():
        for B in (1, 16):
            generate(m, B)  # warm-up
            t = time.perf_counter()
            n = sum(generate(m, B) for _ in range(a.reps))
            dt = time.perf_counter() - t
            print(f"pytorch {torch.__version__} eager, threads {torch.get_num_threads()}: batch {B}: {n / dt:.0f} tokens/s")


if __name__ == "__main__":
    main()
