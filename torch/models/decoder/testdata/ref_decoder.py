"""Independent reference for torch/models/decoder: Llama / Qwen2 / Qwen3 causal LMs written in plain PyTorch from
the published transformers semantics (modeling_llama, modeling_qwen2, modeling_qwen3, rope_utils' llama3 rule)
and PEFT's LoRA forward, reading checkpoints with torch/testdata/st.py (no transformers, peft or safetensors).

usage: ref_decoder.py MODEL_DIR ADAPTER_DIR|- INPUTS OUT GRADS(full|lora|none)
INPUTS holds ids, pos, seg, targets, weights (B, T). OUT gets logprobs (B, T) (0 where target is -100), loss
(sum of weight * CE), and grad/<name> for every trainable tensor."""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "testdata"))
import st  # noqa: E402


def load_dir(d, single, index):
    p = os.path.join(d, single)
    if os.path.exists(p):
        return st.load(p)
    idx = json.load(open(os.path.join(d, index)))
    out = {}
    for f in sorted(set(idx["weight_map"].values())):
        out.update(st.load(os.path.join(d, f)))
    return out


def inv_freq(cfg, dim):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling") or {}
    if (rs.get("rope_type") or rs.get("type")) == "llama3":  # transformers _compute_llama3_parameters
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def rms_norm(x, w, eps):  # LlamaRMSNorm / Qwen2RMSNorm / Qwen3RMSNorm
    dt = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dt)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Ref:
    def __init__(self, cfg, w, lora_cfg=None, lora=None):
        self.cfg, self.w, self.lora_cfg, self.lora = cfg, w, lora_cfg, lora or {}
        self.mt = cfg["model_type"]
        self.H, self.KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
        hd = cfg.get("head_dim")
        self.D = hd if hd and self.mt != "qwen2" else cfg["hidden_size"] // self.H
        self.eps = cfg.get("rms_norm_eps", 1e-6)

    def proj(self, name, x):
        w = self.w
        y = torch.nn.functional.linear(x, w[name + ".weight"], w.get(name + ".bias"))
        a = self.lora.get("base_model.model." + name + ".lora_A.weight")
        if a is None:
            return y
        b = self.lora["base_model.model." + name + ".lora_B.weight"]
        scale = self.lora_cfg["lora_alpha"] / self.lora_cfg["r"]
        dt = y.dtype
        xl = x.to(a.dtype)
        return (y + (xl @ a.t() @ b.t()) * scale).to(dt)

    def forward(self, ids, pos, seg):
        cfg, w = self.cfg, self.w
        B, T = ids.shape
        x = w["model.embed_tokens.weight"][ids]
        dt = x.dtype
        freqs = pos.float()[:, :, None] * inv_freq(cfg, self.D)[None, None, :]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos().to(dt)[:, None], emb.sin().to(dt)[:, None]  # (B, 1, T, D)
        i = torch.arange(T)
        allowed = (i[None, :] <= i[:, None])[None] & (seg[:, :, None] == seg[:, None, :])  # (B, T, T)
        mask = torch.zeros(B, 1, T, T, dtype=dt).masked_fill(~allowed[:, None], torch.finfo(dt).min)
        rep = self.H // self.KV
        for l in range(cfg["num_hidden_layers"]):
            p = "model.layers.%d." % l
            h = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)
            q = self.proj(p + "self_attn.q_proj", h).view(B, T, self.H, self.D)
            k = self.proj(p + "self_attn.k_proj", h).view(B, T, self.KV, self.D)
            v = self.proj(p + "self_attn.v_proj", h).view(B, T, self.KV, self.D).transpose(1, 2)
            if self.mt == "qwen3":
                q = rms_norm(q, w[p + "self_attn.q_norm.weight"], self.eps)
                k = rms_norm(k, w[p + "self_attn.k_norm.weight"], self.eps)
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k[:, :, None].expand(B, self.KV, rep, T, self.D).reshape(B, self.H, T, self.D)  # repeat_kv
            v = v[:, :, None].expand(B, self.KV, rep, T, self.D).reshape(B, self.H, T, self.D)
            att = q @ k.transpose(2, 3) * self.D ** -0.5 + mask
            att = torch.softmax(att, -1, dtype=torch.float32).to(dt)
            o = (att @ v).transpose(1, 2).reshape(B, T, self.H * self.D)
            x = x + self.proj(p + "self_attn.o_proj", o)
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            g = torch.nn.functional.silu(self.proj(p + "mlp.gate_proj", h)) * self.proj(p + "mlp.up_proj", h)
            x = x + self.proj(p + "mlp.down_proj", g)
        x = rms_norm(x, w["model.norm.weight"], self.eps)
        head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
        return (x @ head.t()).float()


def main():
    model_dir, adapter_dir, inputs, out, grads = sys.argv[1:6]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = {k: v.float() for k, v in load_dir(model_dir, "model.safetensors", "model.safetensors.index.json").items()}
    lora_cfg, lora = None, {}
    if adapter_dir != "-":
        lora_cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
        assert lora_cfg["peft_type"] == "LORA" and lora_cfg["task_type"] == "CAUSAL_LM"
        lora = load_dir(adapter_dir, "adapter_model.safetensors", "adapter_model.safetensors.index.json")
    train = {"full": w, "lora": lora, "none": {}}[grads]
    for t in train.values():
        t.requires_grad_(True)
    x = st.load(inputs)
    m = Ref(cfg, w, lora_cfg, lora)
    logits = m.forward(x["ids"], x["pos"], x["seg"])
    tgt = x["targets"]
    valid = tgt != -100
    lp = torch.log_softmax(logits, -1).gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
    lp = torch.where(valid, lp, torch.zeros_like(lp))
    loss = -(lp * x["weights"].float() * valid).sum()
    res = {"logprobs": lp.detach(), "loss": loss.detach().reshape(1)}
    if train:
        loss.backward()
        for k, t in train.items():
            res["grad/" + k] = t.grad
    st.save(out, res)


if __name__ == "__main__":
    main()
