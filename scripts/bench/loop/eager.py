"""The PyTorch side of `make bench-loop` (scripts/bench/loop/main.go): an idiomatic eager training step of the same
Qwen3-shaped model msmtrain trains there, written to be as fast as plain PyTorch 1.13 on a CPU allows: it is the
anchor, not a straw man. Weights are nn.Parameters used through F.linear; RMSNorm is written out (1.13 has no
F.rms_norm); attention is one batched matmul per side with the causal mask added in baddbmm, the query heads of a
kv group stacked so keys and values are never copied; F.cross_entropy over the full logits; torch.optim.AdamW
(1.13 has no fused CPU AdamW); clip_grad_norm_; zero_grad(set_to_none=True). No torch.compile (1.13 has none).
Tried on the 2-core build machine, all within +-3% (noise) at 1 thread: repeat_interleave'd keys and values with
an added mask; 1.13's private F._scaled_dot_product_attention(is_causal=True); AdamW foreach=False; q/k/v and
gate/up fused into one projection each.
LoRA: the base frozen, A and B fp32 on all seven projections, y = x W^T + (alpha / r) (x A^T) B^T as PEFT
computes it, AdamW over the adapter only.

usage: eager.py THREADS full|lora STEPS [R ALPHA]
Prints one JSON object: {"step_seconds": [...], "tokens_per_step": N}.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

L, C, H, KV, D, I, V = 4, 256, 4, 2, 64, 768, 4096  # layers, hidden, heads, kv heads, head_dim, ffn, vocab
B, T = 4, 256  # rows per step, tokens per row
EPS, THETA = 1e-6, 1000000.0

threads, mode, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
r, alpha = (int(sys.argv[4]), float(sys.argv[5])) if len(sys.argv) > 5 else (16, 32.0)
torch.set_num_threads(threads)
torch.manual_seed(0)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


class Linear(nn.Module):
    """A projection y = x W^T, with an optional LoRA branch (the base then frozen)."""

    def __init__(self, n_in, n_out, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) * 0.02, requires_grad=not lora)
        self.lora = lora
        if lora:
            self.A = nn.Parameter(torch.randn(r, n_in) / math.sqrt(n_in))
            self.B = nn.Parameter(torch.randn(n_out, r) * 0.02)  # PEFT starts B at zero; nonzero is the same work
            self.scale = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + self.scale * F.linear(F.linear(x, self.A), self.B)
        return y


class Block(nn.Module):
    def __init__(self, lora):
        super().__init__()
        self.input_layernorm = nn.Parameter(torch.ones(C), requires_grad=not lora)
        self.post_attention_layernorm = nn.Parameter(torch.ones(C), requires_grad=not lora)
        self.q_norm = nn.Parameter(torch.ones(D), requires_grad=not lora)
        self.k_norm = nn.Parameter(torch.ones(D), requires_grad=not lora)
        self.q_proj, self.k_proj = Linear(C, H * D, lora), Linear(C, KV * D, lora)
        self.v_proj, self.o_proj = Linear(C, KV * D, lora), Linear(H * D, C, lora)
        self.gate_proj, self.up_proj, self.down_proj = Linear(C, I, lora), Linear(C, I, lora), Linear(I, C, lora)

    def forward(self, x, cos, sin, mask):
        G = H // KV
        h = rms_norm(x, self.input_layernorm)  # (B, T, C)
        q = rms_norm(self.q_proj(h).view(B, T, H, D), self.q_norm).transpose(1, 2)  # (B, H, T, D)
        k = rms_norm(self.k_proj(h).view(B, T, KV, D), self.k_norm).transpose(1, 2)  # (B, KV, T, D)
        v = self.v_proj(h).view(B, T, KV, D).transpose(1, 2)  # (B, KV, T, D)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        # The G query heads of each kv head stacked along time: (B*KV, G*T, D) against (B*KV, T, D).
        q = q.reshape(B * KV, G * T, D)
        k, v = k.reshape(B * KV, T, D), v.reshape(B * KV, T, D)
        att = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=1 / math.sqrt(D)).softmax(-1)  # (B*KV, G*T, T)
        y = torch.bmm(att, v).view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.o_proj(y)
        h = rms_norm(x, self.post_attention_layernorm)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Model(nn.Module):
    def __init__(self, lora):
        super().__init__()
        self.embed_tokens = nn.Parameter(torch.randn(V, C) * 0.02, requires_grad=not lora)
        self.layers = nn.ModuleList(Block(lora) for _ in range(L))
        self.norm = nn.Parameter(torch.ones(C), requires_grad=not lora)
        self.lm_head = nn.Parameter(torch.randn(V, C) * 0.02, requires_grad=not lora)
        inv = 1.0 / THETA ** (torch.arange(0, D, 2).float() / D)
        ang = torch.outer(torch.arange(T).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)  # (T, D)
        self.cos, self.sin = ang.cos(), ang.sin()
        causal = torch.full((T, T), float("-inf")).triu(1)
        self.mask = causal.repeat(H // KV, 1)  # (G*T, T)

    def forward(self, ids):
        x = F.embedding(ids, self.embed_tokens)  # (B, T, C)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return F.linear(rms_norm(x, self.norm), self.lm_head)  # (B, T, V)


model = Model(mode == "lora")
params = [p for p in model.parameters() if p.requires_grad]
decay = [p for p in params if p.dim() >= 2]
no_decay = [p for p in params if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-4, foreach=True)
batches = [torch.randint(0, V, (B, T + 1)) for _ in range(steps)]

times = []
for ids in batches:
    t0 = time.perf_counter()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.view(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss.item()
    times.append(time.perf_counter() - t0)
print(json.dumps({"step_seconds": times, "tokens_per_step": B * T}))
