#!/usr/bin/env bash
# Installs the Debian packages the project needs that are not installed yet
# (as root, Debian 12). Idempotent: with everything present it only checks.
set -euo pipefail

packages=(
  cmake ninja-build ccache g++ git
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  openmpi-bin libopenmpi-dev libopenblas-dev
  libabsl-dev libgtest-dev nlohmann-json3-dev libbenchmark-dev
  python3 python3-numpy python3-torch
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: error: missing packages and not root; run as root or install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
