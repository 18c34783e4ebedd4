#!/usr/bin/env bash
# deps.sh: install what msmtrain's build (`deps.sh build`) or its tests (`deps.sh test`) need and a machine lacks.
# Debian packages are installed with apt when running as root; otherwise the missing ones are named.
set -euo pipefail
what=${1:-build}

pkgs=(libtorch-dev libopenblas0-pthread libgloo-dev)
if [ "$what" = test ]; then pkgs+=(python3-torch python3-numpy python3-jinja2 python3-protobuf nodejs npm); fi

missing=()
for p in "${pkgs[@]}"; do
  # nodejs/npm count as present when the commands exist (a Node install outside Debian is fine)
  case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# libtorch may come from elsewhere (LIBTORCH, a pip torch): then Debian's is not needed.
if [ -n "${LIBTORCH:-}" ]; then
  missing=("${missing[@]/libtorch-dev/}")
fi

want=()
for p in "${missing[@]}"; do [ -n "$p" ] && want+=("$p"); done
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${want[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  else
    echo "deps: missing Debian packages: ${want[*]} (run as root, or install them: apt-get install ${want[*]})" >&2
    exit 1
  fi
fi

if [ "$what" = test ] && [ -x scripts/testdeps-npm.sh ]; then
  scripts/testdeps-npm.sh
fi
