#!/usr/bin/env bash
# Builds, on a machine without a GPU, everything bench/gpu/run.sh needs on a
# GPU machine that has CUDA and PyTorch but no LLVM, MPI or OpenBLAS, into
# one folder (default .devbundle, which git ignores):
#   bin/    llmrt-cuda-check, and the executables compiled with --target cuda:
#           gpt2.exe (GPT-2 124M, batch $LLM_GPU_BATCH x 1024) and two tiny
#           parity models (GPT-2 style and Llama with grouped-query attention),
#           with variants (-copies, -fusenorms: other compiler flags)
#   lib/    the shared libraries they need beyond glibc, libstdc++ and CUDA
#   (bin/ is packed as bin.tar.gz, which env.sh unpacks on the device)
#   data/   tinyshakespeare tokens, GPT-2's planner predictions (gpt2.plan.json;
#           gpt2.plan-h200.json), its runtime memory computed offline
#           (gpt2.memory.json, llmrt-memory) and the training hyper-parameters of the
#           parity runs (run.sh makes their initial weights and PyTorch
#           reference losses there: they would not fit the 64 MiB carry)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${LLM_BUILD_DIR:-$root/build}
out=${1:-$root/.devbundle}
batch=${LLM_GPU_BATCH:-16}
bin=$build/bin
if [ ! -x "$bin/llmrt-runner-cuda" ]; then
  echo "prepare: $bin/llmrt-runner-cuda is missing: build with a CUDA toolkit (LLM_ENABLE_CUDA=ON)" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/data"
cp "$bin/llmrt-cuda-check" "$out/bin/"
# Its symbols are a megabyte of the 64 MiB a device call carries (the
# compiled executables are not stripped: their program follows the ELF).
command -v strip > /dev/null && strip "$out/bin/llmrt-cuda-check"

"$bin/llm-tokenize" "$root/examples/data/tinyshakespeare.txt" -o "$out/data/train.bin" \
  --val "$out/data/val.bin" > /dev/null
"$bin/llm-import" --hf-config "$root/examples/models/gpt2.json" --batch "$batch" --seq 1024 \
  -o "$out/data/gpt2.mlir"
"$bin/llm-compile" "$out/data/gpt2.mlir" --target cuda -o "$out/bin/gpt2.exe"
# What the CUDA runtime will allocate for it, computed here (its arena
# packed with the 16-bit sizes, the weights' copies): run.sh prints it
# beside the measured peak.
"$bin/llmrt-memory" "$out/bin/gpt2.exe" --json > "$out/data/gpt2.memory.json"
# The same with the column copies of q, k, v and of their gradients
# (--target cuda reads and writes them in place by default; run.sh
# compares the two). The kept log-sum-exp's variant (--keep-attention-lse=
# false, measured slower on H100 and H200) left the bundle for it.
"$bin/llm-compile" "$out/data/gpt2.mlir" --target cuda --attention-column-views=false \
  -o "$out/bin/gpt2-copies.exe"
# The compiler's add + layer norm kernels (--fuse-norms: each residual add
# and the norm after it one generated kernel; off by default until a GPU
# has measured it).
"$bin/llm-compile" "$out/data/gpt2.mlir" --target cuda --fuse-norms -o "$out/bin/gpt2-fusenorms.exe"
# The planner's prediction for that executable, on the device's cluster
# file (LLM_GPU_CLUSTER; run.sh prints it next to the measurement).
"$bin/llm-compile" "$out/data/gpt2.mlir" --target cuda --emit=plan \
  --cluster "${LLM_GPU_CLUSTER:-$root/examples/clusters/h100-1gpu.json}" \
  --devices 1 -o "$out/data/gpt2.plan.json"
# And on the H200 (LLM_GPU_CLUSTER unset): run.sh takes the plan of the GPU
# it finds.
[ -z "${LLM_GPU_CLUSTER:-}" ] && "$bin/llm-compile" "$out/data/gpt2.mlir" --target cuda \
  --emit=plan --cluster "$root/examples/clusters/h200-1gpu.json" --devices 1 \
  -o "$out/data/gpt2.plan-h200.json"

# Parity: the reference trains from the same initial weights and batches.
hyper=(--steps 10 --lr 1e-3 --warmup 2 --min-lr 1e-4 --weight-decay 0.1 --grad-clip 1.0 --seed 3)
for model in shakespeare-char-gpt tiny-llama-gqa; do
  cfg=$root/examples/models/$model.json
  "$bin/llm-import" --hf-config "$cfg" --batch 4 --seq 64 --layers 2 -o "$out/data/$model.mlir"
  "$bin/llm-compile" "$out/data/$model.mlir" --target cuda -o "$out/bin/$model.exe"
  "$bin/llm-compile" "$out/data/$model.mlir" --target cuda --fuse-norms \
    -o "$out/bin/$model-fusenorms.exe"
done
printf '%s\n' "${hyper[@]}" > "$out/data/hyper.txt"

# Multi-GPU (NCCL) parity: the tiny Llama on 2 GPUs under three plans,
# against the one-GPU run (run.sh, where 2 GPUs and mpirun are present).
# LLM_GPU_MULTI=0 leaves them out (a one-GPU machine skips them anyway;
# packed, the whole bundle is about 27 MB of the 64 MiB a call carries).
if [ -x "$bin/llmrt-runner-cuda-mpi" ] && [ "${LLM_GPU_MULTI:-1}" = 1 ]; then
  for plan in dp=2,zero=1 tp=2,sp=1 pp=2,schedule=1f1b,mb=2; do
    name=tiny-llama-gqa-$(echo "$plan" | cut -d, -f1 | tr -d =)
    "$bin/llm-compile" "$out/data/tiny-llama-gqa.mlir" --target cuda --devices 2 --plan "$plan" \
      -o "$out/bin/$name.exe"
  done
fi

# Shared libraries beyond the system's and CUDA's (absl; OpenMP for the check).
for exe in "$out/bin/llmrt-cuda-check" "$out/bin/gpt2.exe"; do
  ldd "$exe" | awk '/=> \// {print $3}' |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/cuda' |
    xargs -r -I{} cp -L {} "$out/lib/"
done
# The executables packed (gzip: about 3.5x smaller, the runner each one
# embeds compresses well): a device call carries 64 MiB in all. env.sh
# unpacks them there. LLM_GPU_PACK=0 leaves bin/ as it is.
if [ "${LLM_GPU_PACK:-1}" = 1 ]; then
  tar -C "$out" -czf "$out/bin.tar.gz" bin
  rm -rf "$out/bin"
fi
du -sh "$out"
