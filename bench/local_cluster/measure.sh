#!/usr/bin/env bash
# Measures this machine as a cluster file: bench/local_cluster/measure.sh [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../examples/clusters/local-cpu.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpicc -O2 "$here/measure.c" -o "$tmp/measure" -lopenblas -lm
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  mpirun -np 2 --oversubscribe "$tmp/measure" > "$tmp/cluster.json"
mv "$tmp/cluster.json" "$out"
cat "$out"
