#!/usr/bin/env bash
# gpu-check.sh: the checks that need an NVIDIA GPU, in one command, for a machine with a pip torch with CUDA
# (python3 -c 'import torch' works), transformers and peft. Go is not needed there: build the Go binaries on any
# Linux x86-64 machine first (`make gpu-bundle`: ./msmtrain and build/gpubench), copy the tree, then run this.
# The binaries only know the shim's C ABI: this script builds the shim against the local CUDA torch
# (build/libmsmtorch.so), and the binaries load it from build/ next to them (rpath $ORIGIN/build).
#
# It prints every figure it measures:
#   1. the shim build and `msmtrain version` (libtorch, CUDA devices);
#   2. CUDA vs CPU log-probabilities of a tiny model (fp32 and bf16);
#   3. a two-stage LoRA run of `msmtrain --config` (MSM then AFT) on a small random Qwen3 in bf16 on cuda:
#      prep, training, checkpoints, SIGTERM -> exit 3, resume, compared with an uninterrupted run; then PEFT
#      parity: transformers + peft load the base and msmtrain's adapter and give the log-probabilities of
#      `msmtrain score` (scripts/gpu/lora_check.py);
#   4. tokens/s, MFU and peak memory of full and LoRA (r64, 7 projections) training steps of a
#      Qwen3-1.7B-shaped model at sequence 4096 in bf16 (random weights).
# About 5 minutes on an H100/H200; each part has its own time limit so the whole stays under 8.
#
#   scripts/gpu-check.sh                       # everything
#   GPU_CHECK_PARTS="check lora" scripts/gpu-check.sh   # a subset of: check lora bench
#   PYTHON=/path/to/python scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PARTS=${GPU_CHECK_PARTS:-check lora bench}
WORK=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/msmtrain-gpu-check}
failed=()
start=$SECONDS

part() { # part NAME LIMIT CMD...: run one part under a time limit, record a failure, never stop the script
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout --signal=TERM --kill-after=10 "$limit" "$@"
  rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0))s"
  [ $rc = 0 ] || failed+=("$name")
}

"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device visible to torch"; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))' || exit 1

# The Go binaries: prebuilt ones, or built here when Go is installed.
if command -v go >/dev/null 2>&1; then
  make gpu-bundle >/dev/null || exit 1
fi
for b in msmtrain build/gpubench; do
  [ -x "$b" ] || { echo "gpu-check: $b is missing: run 'make gpu-bundle' on a machine with Go and copy it here" >&2; exit 1; }
done

echo "== shim against $PYTHON's torch"
t0=$SECONDS
make shim PYTHON="$PYTHON" || exit 1
echo "shim built in $((SECONDS - t0))s"
./msmtrain version || exit 1

for p in $PARTS; do
  case $p in
  check) part "CUDA vs CPU logprobs" 120 build/gpubench -check ;;
  lora)
    mkdir -p "$WORK"
    part "two-stage LoRA run, resume and PEFT parity" 200 "$PYTHON" scripts/gpu/lora_check.py --msmtrain ./msmtrain --work "$WORK" --device cuda
    ;;
  bench)
    part "Qwen3-1.7B shape, full fine-tuning step" 100 build/gpubench -mode full -seq 4096
    part "Qwen3-1.7B shape, LoRA r64 step" 100 build/gpubench -mode lora -seq 4096
    ;;
  *) echo "gpu-check: unknown part $p (check, lora, bench)" >&2; exit 2 ;;
  esac
done

echo "== gpu-check: $((SECONDS - start))s, ${#failed[@]} part(s) failed${failed[*]:+: ${failed[*]}}"
[ ${#failed[@]} = 0 ]
