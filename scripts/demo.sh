#!/usr/bin/env bash
# README command 1: install what is missing, build, run the main job.
#
# The main job: import GPT-2 (124M) and the byte-level Shakespeare GPT from
# their Hugging Face configs and print their stats and graph summary; then
# let the planner choose how to train the Shakespeare GPT (batch 8 x 256
# tokens) on this machine's two cores as two MPI ranks (LLM_DEMO_RANKS),
# print the plan, compile it into one executable and train it on
# tinyshakespeare for a few minutes (LLM_DEMO_STEPS, default 200), with
# validation loss every 50 steps and a checkpoint at the end.
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
echo "== training shakespeare-char-gpt on tinyshakespeare (byte-level)"
"$bin/llm-tokenize" "$root/examples/data/tinyshakespeare.txt" -o "$out/train.bin" \
  --val "$out/val.bin"
ranks=${LLM_DEMO_RANKS:-2}
# The planner searches dp, tp, sequence and pipeline parallelism, ZeRO,
# recomputation and micro-batches.
plan="auto"
cluster=$root/examples/clusters/local-cpu.json
echo "-- the plan for $ranks ranks on this machine ($cluster)"
"$bin/llm-compile" "$out/shakespeare-char-gpt.mlir" --cluster "$cluster" \
  --devices "$ranks" --plan "$plan" --explain | sed -n '/^Plan:/,/^Alternatives:/p' | sed '$d'
"$bin/llm-compile" "$out/shakespeare-char-gpt.mlir" --cluster "$cluster" \
  --devices "$ranks" --plan "$plan" -o "$out/shakespeare.exe"
steps=${LLM_DEMO_STEPS:-200}
rm -rf "$out/ckpt"
launch=()
if [ "$ranks" -gt 1 ]; then
  launch=(mpirun -np "$ranks" --oversubscribe)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
"${launch[@]}" "$out/shakespeare.exe" --data "$out/train.bin" --val "$out/val.bin" \
  --steps "$steps" --lr 1e-3 --warmup 20 --min-lr 1e-4 --weight-decay 0.1 \
  --eval-every 50 --log "$out/train.jsonl" --save "$out/ckpt" 2>&1 |
  awk '/val loss|saved|model:|resumed|error/ {print; fflush(); next}
       /^step/ {split($2, a, "/"); if (a[1] % 10 == 0 || a[1] == 1) {print; fflush()}}'
echo "demo: IR, executable, log (train.jsonl) and checkpoint are in $out"
