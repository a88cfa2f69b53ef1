#!/usr/bin/env bash
# Why the kernels that hold GPT-2's step back are as slow as they are: one
# launch of each profiled by Nsight Compute (speed of light, occupancy,
# warp stall reasons, memory), where `ncu` is installed and may read the
# GPU's counters. Each kernel is a separate run of two training steps
# (about 10-20 s each):
#   bash bench/gpu/ncu.sh [BUNDLE] [OUTDIR]   (default .devbundle, /tmp/llm-gpu)
# LLM_NCU_KERNELS: the kernels, as a space-separated list of regular
# expressions over their names (default below); LLM_NCU_ENV: runtime
# switches for the executable (default: none, the runtime's defaults).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/gpu/env.sh" "$@"
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -z "$ncu" ]; then
  echo "ncu.sh: Nsight Compute (ncu) is not installed here: nothing profiled"
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || exit 1
"$ncu" --version | tail -1
read -r -a kernels <<< "${LLM_NCU_KERNELS:-layerNormBwdRegK attnBwdMMA attnFwdAsync crossEntropyFusedRowK adamwBatchK layerNormFwdRegK}"
read -r -a vars <<< "${LLM_NCU_ENV:-}"
status=0
for k in "${kernels[@]}"; do
  rep=$out/ncu-$(printf %s "$k" | tr -c 'A-Za-z0-9' '-').txt
  # The second launch that matches (the first may run while cuBLASLt's
  # candidates are being timed): in the first step for a kernel that runs
  # several times a step, in the second for the loss.
  env "${vars[@]}" "$ncu" -k "regex:$k" --launch-skip 1 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats \
    --section WarpStateStats --section MemoryWorkloadAnalysis \
    "$bundle/bin/gpt2.exe" --data "$bundle/data/train.bin" --steps 2 > "$rep" 2>&1 ||
    {
      if grep -q "ERR_NVGPUCTRPERM" "$rep"; then
        echo "ncu.sh: this machine does not let ncu read the GPU's counters (ERR_NVGPUCTRPERM): nothing profiled"
        exit 0
      fi
      echo "== $k: ncu failed"; grep -E "ERR|error" "$rep" | head -3; status=1; continue
    }
  echo "== $k"
  grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Memory Throughput|L2 Hit Rate|L1/TEX Hit|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Block Limit|Warp Cycles Per Issued|Issue Slots Busy|Grid Size|Block Size|Dynamic Shared" "$rep" | head -40
  # The stall reasons, from the WarpStateStats rules' text.
  grep -E "stall|Stall" "$rep" | head -6
done
exit $status
