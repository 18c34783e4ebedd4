"""Reference results for torch/ops_ref_test.go: evaluates each case's PyTorch expression on the inputs Go wrote
and writes the outputs and input gradients. usage: ref_ops.py cases.json inputs.safetensors outputs.safetensors"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


# Reference semantics written from the published Hugging Face transformers code (Llama/Qwen), independently of
# msmtrain's C++ shim.
def rms_norm(x, w, eps):
    dt = x.dtype
    h = x.to(torch.float32)
    var = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(var + eps)
    return w * h.to(dt)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_table(pos, inv_freq, dtype=torch.float32):
    inv = inv_freq[None, :, None].float().expand(pos.shape[0], -1, 1)
    p = pos[:, None, :].float()
    freqs = (inv @ p).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rope(x, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + rotate_half(x) * sin


def repeat_kv(h, n):
    b, kv, s, d = h.shape
    return h[:, :, None, :, :].expand(b, kv, n, s, d).reshape(b, kv * n, s, d)


def attention(q, k, v, seg=None, causal=True, scale=0.0):
    B, H, T, D = q.shape
    S = k.shape[2]
    if scale <= 0:
        scale = 1 / math.sqrt(D)
    k = repeat_kv(k, H // k.shape[1])
    v = repeat_kv(v, H // v.shape[1])
    mask = torch.ones(B, T, S, dtype=torch.bool)
    for b in range(B):
        for i in range(T):
            for j in range(S):
                ok = (not causal) or j <= i + S - T
                if seg is not None:
                    ok = ok and bool(seg[b, S - T + i] == seg[b, j])
                mask[b, i, j] = ok
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    p = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return p @ v


def cross_entropy(logits, target, weight=None, ignore=-100, reduction=0):
    lf = logits.float()
    l = F.cross_entropy(lf, target, ignore_index=ignore, reduction="none")
    valid = (target != ignore).float()
    w = valid if weight is None else weight.float() * valid
    l = l * w
    if reduction == 0:
        return l
    if reduction == 1:
        return l.sum()
    return l.sum() / w.sum()


def main():
    cases = json.load(open(sys.argv[1]))
    ins = st.load(sys.argv[2])
    env = dict(torch=torch, F=F, math=math, rms_norm=rms_norm, rope_table=rope_table, rope=rope,
               attention=attention, cross_entropy=cross_entropy)
    out = {}
    for c in cases:
        name = c["name"]
        xs = []
        for i, g in enumerate(c["grad"]):
            t = ins[f"{name}/in{i}"]
            if g:
                t = t.clone().requires_grad_(True)
            xs.append(t)
        y = eval(c["py"], env, {"x": xs})
        out[f"{name}/out"] = y.detach()
        if any(c["grad"]):
            (y.float() * ins[f"{name}/g"].float()).sum().backward()
            for i, g in enumerate(c["grad"]):
                if g:
                    out[f"{name}/grad{i}"] = xs[i].grad
    st.save(sys.argv[3], out)


if __name__ == "__main__":
    main()
