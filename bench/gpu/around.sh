#!/usr/bin/env bash
# Around one combination of runtime switches (GPT-2 124M from the bundle,
# 12 steps each, median step after 4): the combination, then with each of
# the changes below on top, then one traced step of the combination per
# instruction kind. Session 8 ran it with run.sh's best combination
# (docs/benchmarks.md).
#
#   LLM_GPU_BASE="LLMRT_CUDA_ATTN_ASYNC=3 ..." bash bench/gpu/around.sh [BUNDLE] [OUTDIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/gpu/env.sh" "$@"
read -r -a base <<< "${LLM_GPU_BASE:-}"
run() {
  local name=$1 exe=$2
  shift 2
  env "${base[@]}" "$@" "$bundle/bin/$exe" --data "$bundle/data/train.bin" --steps 12 \
    --lr 3e-4 --warmup 5 --log "$out/$name.jsonl" > "$out/$name.txt" 2>&1 ||
    { echo "  $name failed"; tail -2 "$out/$name.txt"; return; }
  "$py" - "$out/$name.jsonl" "$name ($exe $*)" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if "step_time_s" in l][4:]
t = sorted(x["step_time_s"] for x in r)[len(r) // 2]
tf = sorted(x["model_tflops_per_device"] for x in r)[len(r) // 2]
print(f"  {sys.argv[2]}: {t*1e3:.1f} ms/step  MFU {100*tf/989.0:.1f}%  last loss {r[-1]['loss']:.4f}")
PY
}
echo "base: ${base[*]:-(the defaults)}"
run base gpt2.exe
run tune2 gpt2.exe LLMRT_CUDA_GEMM_TUNE=2
run fusenorms gpt2-fusenorms.exe
run nofwd8 gpt2.exe LLMRT_CUDA_ATTN_FWD8=0
run noaddnorm gpt2.exe LLMRT_CUDA_FUSE_ADD_NORM=0
run bwd8 gpt2.exe LLMRT_CUDA_ATTN_BWD8=1
run nostream gpt2.exe LLMRT_CUDA_WGRAD_STREAM=0
run lossgeneric gpt2.exe LLMRT_CUDA_LOSS_ROW=0
run lossrowtwice gpt2.exe LLMRT_CUDA_LOSS_ROW=1
run adamwscalar gpt2.exe LLMRT_CUDA_ADAMW_VEC=0
run nograph gpt2.exe LLMRT_CUDA_GRAPH=0
run noweight16 gpt2.exe LLMRT_CUDA_WEIGHT16=0
run lnasync gpt2.exe LLMRT_CUDA_LN_BWD_ASYNC=1
env "${base[@]}" "$bundle/bin/gpt2.exe" --data "$bundle/data/train.bin" --steps 3 \
  --trace "$out/around.trace.json" > "$out/around-trace.txt" 2>&1 &&
  "$py" "$root/bench/gpu/trace_summary.py" "$out/around.trace.json" --top 24
