#!/usr/bin/env bash
# gpu-check.sh: one command for a machine with an NVIDIA GPU and a pip torch (python3 -c 'import torch' works):
# builds the shim against that torch, checks CUDA logprobs against the CPU on a tiny model, then prints tokens/s
# and MFU of full and LoRA (r64, 7 projections) training steps of a Qwen3-1.7B-shaped model (28 layers, hidden
# 2048, 16 heads / 8 kv of 128, intermediate 6144, vocab 151936) at sequence 4096 in bf16 with random weights.
# Under 8 minutes on an H100. Extra arguments go to both benchmark runs (e.g. -steps 3 -checkpoint=false).
#
#   scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device visible to torch"; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
make shim PYTHON="$PYTHON"
go build -o build/gpubench ./scripts/bench/gpubench
timeout 120 build/gpubench -check
timeout 200 build/gpubench -mode full -seq 4096 "$@"
timeout 200 build/gpubench -mode lora -seq 4096 "$@"
