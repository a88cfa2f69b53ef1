#!/usr/bin/env bash
# Where GPT-2 124M's step goes on this GPU, per instruction and shape, next
# to what PyTorch's kernels do at the same shapes (a shorter companion of
# run.sh's section 4, for kernel work):
#   bash bench/gpu/profile.sh [BUNDLE] [OUTDIR]   (default .devbundle, /tmp/llm-gpu)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/gpu/env.sh" "$@"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || exit 1
# The kernels first (bf16 GEMMs and every tensor-core attention): failures
# and the count.
"$bundle/bin/llmrt-cuda-check" --gemm bf16 > "$out/kernels-bf16.txt" 2>&1
grep -E "FAIL|checks pass|attention_bwd dq fa2" "$out/kernels-bf16.txt"
"$bundle/bin/gpt2.exe" --data "$bundle/data/train.bin" --steps 3 --trace "$out/gpt2.trace.json" \
  > "$out/gpt2-trace.txt" 2>&1 || { echo "traced run failed"; tail -5 "$out/gpt2-trace.txt"; exit 1; }
grep -E "^model:" "$out/gpt2-trace.txt"
"$py" "$root/bench/gpu/trace_summary.py" "$out/gpt2.trace.json" --top ${LLM_PROFILE_TOP:-40}
"$py" "$root/bench/gpu/torch_kernels.py"
