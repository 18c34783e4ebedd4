#!/usr/bin/env bash
# libtorch.sh: find the libtorch msmtrain builds against, and print what it uses as KEY=VALUE lines (make syntax).
#
# Order: $LIBTORCH (an unpacked libtorch, or the torch/ folder of a pip install); else the torch of a Python
# ($PYTHON, python3, /usr/bin/python3); else Debian's libtorch-dev. With --install, a missing Debian libtorch is
# installed with apt (libtorch-dev libopenblas0-pthread libgloo-dev) when running as root.
#
#   third_party/libtorch.sh            # print the choice
#   third_party/libtorch.sh --install  # also install Debian's packages when nothing is found
set -euo pipefail

install=0
[ "${1:-}" = "--install" ] && install=1
tried=()

# check DIR INCLUDE_DIR LIB_DIR: accept when the headers and libraries are there.
check() {
  local what=$1 inc=$2 lib=$3
  if [ -f "$inc/torch/csrc/api/include/torch/version.h" ] && [ -e "$lib/libtorch.so" ] && [ -e "$lib/libc10.so" ]; then
    return 0
  fi
  tried+=("$what: no torch/csrc/api/include/torch/version.h under $inc or no libtorch.so/libc10.so in $lib")
  return 1
}

# The compiler's own include directories (e.g. /usr/include). Passing one of them as -isystem reorders the search
# path and breaks libstdc++'s #include_next <stdlib.h>, so include_flags leaves them out.
system_includes() {
  "${CXX:-g++}" -xc++ -E -v /dev/null 2>&1 >/dev/null |
    sed -n '/^#include <...> search starts here:/,/^End of search list./p' | sed '1d;$d' |
    while read -r d; do (cd "$d" 2>/dev/null && pwd -P); done
}

# include_flags DIR...: -isystem for each directory that exists, is not a compiler default, and is not repeated.
include_flags() {
  local sys out=() seen=" " d real
  sys=" $(system_includes | tr '\n' ' ') "
  for d in "$@"; do
    real=$(cd "$d" 2>/dev/null && pwd -P) || continue
    case "$sys$seen" in *" $real "*) continue ;; esac
    seen+="$real "
    out+=("-isystem $real")
  done
  echo "${out[*]}"
}

emit() {
  local source=$1 inc=$2 lib=$3
  local ver abi=0 cuda=0 gloo=0 nccl=0 libdir
  ver=$(sed -n 's/^#define TORCH_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
    "$inc/torch/csrc/api/include/torch/version.h" | paste -sd. -)
  libdir=$(cd "$lib" && pwd -P)
  # The C++ ABI of the library decides ours: new-ABI builds export std::__cxx11 symbols.
  if [ "$(nm -D --defined-only "$lib/libc10.so" 2>/dev/null | grep -c '__cxx11' || true)" -gt 0 ]; then abi=1; fi
  if [ -e "$lib/libtorch_cuda.so" ]; then cuda=1; fi
  if [ -e "$inc/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp" ] &&
    { [ -d "$inc/gloo" ] || [ -d /usr/include/gloo ]; }; then gloo=1; fi
  if [ "$cuda" = 1 ] && [ -e "$inc/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp" ]; then nccl=1; fi
  # Include flags: libtorch's two include roots and, for CUDA builds, the CUDA runtime and NCCL headers (a pip
  # install keeps them under site-packages/nvidia/*/include; a system CUDA under $CUDA_HOME or /usr/local/cuda).
  local incs=("$inc" "$inc/torch/csrc/api/include") d
  if [ "$cuda" = 1 ]; then
    for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
      [ -n "$d" ] && [ -f "$d/include/cuda_runtime_api.h" ] && { incs+=("$d/include"); break; }
    done
    # pip wheels: <site-packages>/torch/include -> <site-packages>/nvidia/<pkg>/include (CUDA 12) and
    # nvidia/cu13/include (CUDA 13).
    local site
    site=$(cd "$inc/../.." 2>/dev/null && pwd -P) || site=
    if [ -n "$site" ] && [ -d "$site/nvidia" ]; then
      for d in "$site"/nvidia/*/include "$site"/nvidia/*/*/include; do
        [ -d "$d" ] && incs+=("$(cd "$d" && pwd -P)")
      done
    fi
  fi
  echo "LIBTORCH_CXXFLAGS=$(include_flags "${incs[@]}")"
  echo "LIBTORCH_SOURCE=$source"
  echo "LIBTORCH_VERSION=$ver"
  echo "LIBTORCH_INCLUDE=$inc"
  echo "LIBTORCH_LIB=$libdir"
  echo "LIBTORCH_CXX11_ABI=$abi"
  echo "LIBTORCH_CUDA=$cuda"
  echo "LIBTORCH_GLOO=$gloo"
  echo "LIBTORCH_NCCL=$nccl"
  exit 0
}

if [ -n "${LIBTORCH:-}" ]; then
  check "LIBTORCH=$LIBTORCH" "$LIBTORCH/include" "$LIBTORCH/lib" && emit "LIBTORCH" "$LIBTORCH/include" "$LIBTORCH/lib"
  echo "libtorch.sh: LIBTORCH=$LIBTORCH is not a libtorch: ${tried[*]}" >&2
  exit 1
fi

debian() { check "Debian libtorch-dev" /usr/include /usr/lib/x86_64-linux-gnu; }

for py in ${PYTHON:-} python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  dir=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null) || {
    tried+=("$py: no torch module")
    continue
  }
  # Debian's python3-torch links the libtorch of libtorch-dev: when both are there, take libtorch-dev (PYTHON
  # unset), so installing the test references does not change the build.
  if [ -z "${PYTHON:-}" ] && [ "$dir" = /usr/lib/python3/dist-packages/torch ] && debian 2>/dev/null; then
    continue
  fi
  check "$py torch at $dir" "$dir/include" "$dir/lib" && emit "python:$py" "$dir/include" "$dir/lib"
done

if debian; then emit debian /usr/include /usr/lib/x86_64-linux-gnu; fi

if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "libtorch.sh: no libtorch found; installing Debian's libtorch-dev (CPU) with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq libtorch-dev libopenblas0-pthread libgloo-dev >&2
  tried=()
  if debian; then emit debian /usr/include /usr/lib/x86_64-linux-gnu; fi
fi

{
  echo "libtorch.sh: no libtorch found. Tried:"
  for t in "${tried[@]}"; do echo "  - $t"; done
  echo "Point the build at one with LIBTORCH=/path/to/libtorch (an unpacked libtorch or a pip install's torch/ folder),"
  echo "or PYTHON=/path/to/python with torch installed, or on Debian/Ubuntu as root: apt-get install libtorch-dev"
  echo "libopenblas0-pthread libgloo-dev (or run with --install)."
} >&2
exit 1
