#!/usr/bin/env bash
# README command 1: install what is missing, build, run the main job.
#
# The main job today: import GPT-2 (124M) and the byte-level Shakespeare GPT
# from their Hugging Face configs, print their stats (parameters, FLOPs and
# tokens per training step) and a summary of the imported graph.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LLM_BUILD_DIR:-$root/build}
bash "$root/scripts/deps.sh"
bash "$root/scripts/build.sh"

out=${LLM_DEMO_DIR:-$build/demo}
mkdir -p "$out"
bin=$build/bin
for model in gpt2 shakespeare-char-gpt; do
  cfg=$root/examples/models/$model.json
  case $model in
    gpt2) args=(--batch 8 --seq 1024) ;;
    *) args=(--batch 8 --seq 256) ;;
  esac
  echo "== $model (${args[*]})"
  "$bin/llm-import" --hf-config "$cfg" "${args[@]}" -o "$out/$model.mlir"
  echo "-- stats (llm-compile --emit=stats)"
  "$bin/llm-compile" "$out/$model.mlir" --emit=stats
  echo "-- graph (ops by kind)"
  "$bin/llm-opt" "$out/$model.mlir" --print-op-stats -o /dev/null 2>&1 | sed -n '/Operations encountered/,$p'
done
echo "demo: imported IR is in $out"
