#!/usr/bin/env bash
# The device scripts' part that runs without a GPU (issue 7: "until a
# device is lent, runs its CPU-side part and says so"): bench/gpu's shell
# scripts parse, its Python files parse, prepare.sh builds a bundle that
# fits what a device call carries (64 MiB), and run.sh and ncu.sh, given it
# on a machine without a GPU, say so and exit 0; run.sh's loss comparison
# (compare_losses.py) judges passing and failing logs. Where a GPU is visible
# run.sh would run the device checks themselves: skipped there (77).
#   bash test/integration/gpu_scripts.sh WORKDIR   (LLM_BUILD_DIR: the build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: gpu_scripts.sh WORKDIR}
if nvidia-smi -L > /dev/null 2>&1; then
  echo "a GPU is visible: bench/gpu/run.sh runs the device checks there (skipped)"
  exit 77
fi
for s in "$root"/bench/gpu/*.sh; do
  bash -n "$s" || { echo "FAIL: $s does not parse"; exit 1; }
done
/usr/bin/python3 -c 'import ast, sys
for f in sys.argv[1:]:
    ast.parse(open(f).read(), f)' "$root"/bench/gpu/*.py
rm -rf "$work"
mkdir -p "$work"
# run.sh's loss comparison: a pass, and each way to fail.
/usr/bin/python3 - "$work" <<'PY'
import json, os, sys
d = sys.argv[1]
def log(name, xs):
    with open(os.path.join(d, name), "w") as f:
        f.writelines(json.dumps({"step": i + 1, "loss": x}) + "\n" for i, x in enumerate(xs))
log("a.jsonl", [2.0 - 0.1 * i for i in range(10)])
log("b.jsonl", [2.0 - 0.1 * i + 1e-5 for i in range(10)])
log("short.jsonl", [2.0] * 9)
for name, text in [("ran.txt", "cuda: function 0 runs as one CUDA graph\n"),
                   ("warned.txt", "warning: rank 0: LLMRT_CUDA_GRAPH: not captured\n"
                                  "cuda: function 1 runs as one CUDA graph\n"),
                   ("silent.txt", "model: gpt2\n")]:
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
PY
cmp() { /usr/bin/python3 "$root/bench/gpu/compare_losses.py" "$@" > /dev/null; }
graph=(--require "one CUDA graph" --forbid LLMRT_CUDA_GRAPH)
cmp "$work/a.jsonl" "$work/b.jsonl" x --tol 1e-4 &&
  cmp "$work/a.jsonl" "$work/b.jsonl" x --tol 1e-4 --log "$work/ran.txt" "${graph[@]}" &&
  ! cmp "$work/a.jsonl" "$work/b.jsonl" x --tol 1e-6 &&
  ! cmp "$work/short.jsonl" "$work/b.jsonl" x --tol 1 &&
  ! cmp "$work/a.jsonl" "$work/none.jsonl" x --tol 1 &&
  ! cmp "$work/a.jsonl" "$work/b.jsonl" x --tol 1e-4 --log "$work/warned.txt" "${graph[@]}" &&
  ! cmp "$work/a.jsonl" "$work/b.jsonl" x --tol 1e-4 --log "$work/silent.txt" "${graph[@]}" ||
  { echo "FAIL: bench/gpu/compare_losses.py judged a case wrongly"; exit 1; }
bash "$root/bench/gpu/prepare.sh" "$work/bundle" > "$work/prepare.log" 2>&1 ||
  { cat "$work/prepare.log"; echo "FAIL: prepare.sh"; exit 1; }
mib=$(du -sm "$work/bundle" | cut -f1)
[ "$mib" -le 60 ] || { echo "FAIL: the bundle is $mib MiB: a device call carries 64 MiB in all"; exit 1; }
for f in bin.tar.gz data/train.bin data/hyper.txt data/gpt2.plan.json data/gpt2.plan-h200.json \
  data/gpt2.memory.json; do
  [ -s "$work/bundle/$f" ] || { echo "FAIL: the bundle has no $f"; exit 1; }
done
out=$(bash "$root/bench/gpu/run.sh" "$work/bundle" "$work/out" 2>&1) ||
  { echo "$out"; echo "FAIL: run.sh without a GPU"; exit 1; }
grep -q "no GPU visible: the bundle is complete" <<< "$out" ||
  { echo "$out"; echo "FAIL: run.sh did not say that it needs a GPU"; exit 1; }
out=$(bash "$root/bench/gpu/ncu.sh" "$work/bundle" "$work/out" 2>&1) ||
  { echo "$out"; echo "FAIL: ncu.sh without a GPU"; exit 1; }
echo "PASS: bench/gpu's scripts parse; compare_losses.py judges right; the bundle ($mib MiB) is complete; run.sh and ncu.sh say what they need"
