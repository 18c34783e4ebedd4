"""PyTorch eager side of BenchmarkTrainStep (torch/models/decoder/bench_test.go): the same Qwen3-shaped model
(the plain-PyTorch reference forward of torch/models/decoder/testdata/ref_decoder.py), the same batch and one
full training step (forward, summed CE / tokens, backward, AdamW), timed as the Go side times it (best of 15
chunks). Prints: ns_per_step peak_rss_bytes.
usage: train_step.py THREADS LAYERS HIDDEN HEADS KV HEAD_DIM INTER VOCAB BATCH SEQ STEPS_PER_CHUNK"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "torch", "models", "decoder", "testdata"))
from ref_decoder import Ref  # noqa: E402

th, L, C, H, KV, D, I, V, B, T, n = map(int, sys.argv[1:12])
torch.set_num_threads(th)
torch.manual_seed(0)
cfg = {"model_type": "qwen3", "num_hidden_layers": L, "hidden_size": C, "num_attention_heads": H,
       "num_key_value_heads": KV, "head_dim": D, "intermediate_size": I, "vocab_size": V, "rms_norm_eps": 1e-6,
       "rope_theta": 1000000.0, "tie_word_embeddings": False}
w = {"model.embed_tokens.weight": torch.randn(V, C) * 0.02, "model.norm.weight": torch.ones(C),
     "lm_head.weight": torch.randn(V, C) * 0.02}
for l in range(L):
    p = "model.layers.%d." % l
    for name, shape in [("self_attn.q_proj", (H * D, C)), ("self_attn.k_proj", (KV * D, C)),
                        ("self_attn.v_proj", (KV * D, C)), ("self_attn.o_proj", (C, H * D)),
                        ("mlp.gate_proj", (I, C)), ("mlp.up_proj", (I, C)), ("mlp.down_proj", (C, I))]:
        w[p + name + ".weight"] = torch.randn(*shape) * 0.02
    for name, d in [("input_layernorm", C), ("post_attention_layernorm", C), ("self_attn.q_norm", D), ("self_attn.k_norm", D)]:
        w[p + name + ".weight"] = torch.ones(d)
for t in w.values():
    t.requires_grad_(True)
m = Ref(cfg, w)
opt = torch.optim.AdamW(list(w.values()), lr=1e-4, weight_decay=0.01)
ids = torch.randint(0, V, (B, T))
pos = torch.arange(T).expand(B, T)
seg = torch.ones(B, T, dtype=torch.int64)
tgt = torch.randint(0, V, (B, T))


def step():
    opt.zero_grad(set_to_none=True)
    logits = m.forward(ids, pos, seg)
    loss = F.cross_entropy(logits.view(-1, V), tgt.view(-1), reduction="sum") / (B * T)
    loss.backward()
    opt.step()


for _ in range(2):
    step()
best = float("inf")
for _ in range(15):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        step()
    best = min(best, (time.perf_counter_ns() - t0) / n)
# VmHWM of this process image (ru_maxrss would include the Go parent's memory at fork).
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(best, int(hwm) * 1024, flush=True)
