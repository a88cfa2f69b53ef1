#!/usr/bin/env python3
"""Per-rank memory of compiled programs against the planner's prediction and
the ZeRO formulas, for the byte-level Shakespeare GPT (batch 8 x 256) on this
machine's cluster file, under several plans.

  /usr/bin/python3 bench/memory_vs_predicted.py [--pipelines | --collectives | --cuda]

For each plan: the program's per-rank bytes of parameters and of AdamW
moments (its buffer table, from `llm-compile --emit=mlir`) against the ZeRO
formulas for fp32 (4 bytes of weights and 8 of moments per parameter, split
by tp, and by dp where ZeRO shards them); the program's arena (its static
peak: everything a rank holds for a step) against the planner's predicted
memory per device for the same plan. Measured = compile-time numbers the
runtime allocates exactly (the executor allocates the arena and nothing else
inside a step).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("LLM_BIN_DIR", os.path.join(ROOT, "build", "bin"))
# This machine's cluster, with as many (shared) cores as ranks.
CLUSTER = None
PLANS = [("1 rank", 1, "dp=1"), ("dp=2", 2, "dp=2"), ("tp=2", 2, "tp=2"),
         ("dp=2 zero=1", 2, "dp=2,zero=1"), ("dp=2 zero=2", 2, "dp=2,zero=2"),
         ("dp=2 zero=3", 2, "dp=2,zero=3"), ("dp=2 tp=2", 4, "dp=2,tp=2"), ("dp=2 tp=2 zero=1", 4, "dp=2,tp=2,zero=1"),
         ("1 rank remat=full", 1, "dp=1,remat=full"),
         ("tp=2 remat=full", 2, "tp=2,remat=full"),
         ("tp=2 sp", 2, "tp=2,sp=1"), ("dp=2 tp=2 sp zero=1", 4, "dp=2,tp=2,sp=1,zero=1"),
         ("1 rank mb=4", 1, "dp=1,mb=4"), ("dp=2 mb=2", 2, "dp=2,mb=2"),
         ("1 rank remat=budget:3", 1, "dp=1,remat=budget:3")]
FIXED = "pp=1"


def sh(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr))
    return p.stdout


def measure(tmp, mlir, devices, spec):
    """(param bytes, moment bytes, arena bytes, predicted bytes) per rank."""
    prog = sh([os.path.join(BIN, "llm-compile"), mlir, "--cluster", CLUSTER,
               "--devices", str(devices), "--plan", spec, "--emit=mlir"])
    arena = int(re.search(r"llmrt.arena_bytes = (\d+)", prog).group(1))
    sizes = {"param": 0, "adam_m": 0, "adam_v": 0}
    seen = set()
    for m in re.finditer(r'llmrt.buffer "([^"]*)" \{[^}]*offset = (\d+)'
                         r'[^}]*role = "(param|adam_m|adam_v)"[^}]*\} : '
                         r'memref<([0-9x]+)xf32>', prog):
        key = (m.group(1), m.group(3))
        if key in seen:
            continue
        seen.add(key)
        n = 1
        for d in m.group(4).split("x"):
            n *= int(d)
        sizes[m.group(3)] += 4 * n
    predicted = json.loads(sh([os.path.join(BIN, "llm-compile"), mlir,
                               "--cluster", CLUSTER, "--devices", str(devices),
                               "--plan", spec, "--emit=plan"]))["predicted"][
                                   "memory_bytes_per_device"]
    return sizes["param"], sizes["adam_m"] + sizes["adam_v"], arena, predicted


def measure_stages(tmp, mlir, devices, spec):
    """[(arena bytes, predicted bytes)] per pipeline stage: each stage's
    program (`llm-compile --emit=mlir` prints them in stage order) against
    the planner's prediction for that pipeline rank."""
    prog = sh([os.path.join(BIN, "llm-compile"), mlir, "--cluster", CLUSTER,
               "--devices", str(devices), "--plan", spec, "--emit=mlir"])
    arenas = [int(a) for a in re.findall(r"llmrt.arena_bytes = (\d+)", prog)]
    plan = json.loads(sh([os.path.join(BIN, "llm-compile"), mlir,
                          "--cluster", CLUSTER, "--devices", str(devices),
                          "--plan", spec, "--emit=plan"]))
    predicted = [s["memory_bytes"] for s in plan["per_stage"]]
    if len(arenas) != len(predicted):
        sys.exit("%s: %d stage programs, %d predicted stages" % (
            spec, len(arenas), len(predicted)))
    return list(zip(arenas, predicted))


def setup(tmp):
    global CLUSTER
    cl = json.load(open(os.path.join(ROOT, "examples", "clusters", "local-cpu.json")))
    cl["devices_per_node"] = 4
    CLUSTER = os.path.join(tmp, "cluster.json")
    json.dump(cl, open(CLUSTER, "w"))
    mlir = os.path.join(tmp, "m.mlir")
    sh([os.path.join(BIN, "llm-import"), "--hf-config",
        os.path.join(ROOT, "examples", "models", "shakespeare-char-gpt.json"),
        "--batch", "8", "--seq", "256", "-o", mlir])
    P = json.loads(sh([os.path.join(BIN, "llm-compile"), mlir,
                       "--emit=stats"]))["params"]
    return mlir, P


def spec_of(plan):
    spec = plan + "," + FIXED + ("" if "zero" in plan else ",zero=0")
    if "mb=" not in plan:
        spec += ",mb=1"
    if "remat" not in plan:
        spec += ",remat=none"
    if "sp" not in plan:
        spec += ",sp=0"
    if "tp" not in plan:
        spec += ",tp=1"
    return spec


def main():
    with tempfile.TemporaryDirectory() as tmp:
        mlir, P = setup(tmp)
        print("| plan | params bytes/rank (formula) | moments bytes/rank (formula) "
              "| arena bytes/rank | planner predicted | arena / predicted |")
        print("|---|---|---|---|---|---|")
        for name, devices, plan in PLANS:
            spec = spec_of(plan)
            tp = int(re.search(r"tp=(\d)", spec).group(1))
            dp = devices // tp
            zero = int(re.search(r"zero=(\d)", spec).group(1))
            pw = 4 * P / tp / (dp if zero >= 3 else 1)
            po = 8 * P / tp / (dp if zero >= 1 else 1)
            params, moments, arena, predicted = measure(tmp, mlir, devices, spec)
            print("| %s | %d (%d) | %d (%d) | %d | %d | %.2f |" % (
                name, params, pw, moments, po, arena, predicted,
                arena / predicted))


PIPELINES = [("pp=2 1f1b mb=4", 2, "dp=1,tp=1,sp=0,pp=2,zero=0,mb=4,schedule=1f1b,remat=none"),
             ("pp=2 gpipe mb=4", 2, "dp=1,tp=1,sp=0,pp=2,zero=0,mb=4,schedule=gpipe,remat=none"),
             ("pp=2 1f1b mb=4 remat=full", 2, "dp=1,tp=1,sp=0,pp=2,zero=0,mb=4,schedule=1f1b,remat=full"),
             ("pp=2 1f1b mb=4 remat=budget:1", 2, "dp=1,tp=1,sp=0,pp=2,zero=0,mb=4,schedule=1f1b,remat=budget:1"),
             ("pp=2 1f1b mb=4 remat=selective", 2, "dp=1,tp=1,sp=0,pp=2,zero=0,mb=4,schedule=1f1b,remat=selective"),
             ("pp=2 interleaved vpp=3 mb=4", 2, "dp=1,tp=1,sp=0,pp=2,vpp=3,zero=0,mb=4,schedule=interleaved,remat=none"),
             ("pp=4 (uneven: 1, 2, 2, 1 layers) 1f1b mb=4", 4, "dp=1,tp=1,sp=0,pp=4,zero=0,mb=4,schedule=1f1b,remat=none"),
             ("pp=4 (uneven) gpipe mb=8", 4, "dp=1,tp=1,sp=0,pp=4,zero=0,mb=8,schedule=gpipe,remat=none"),
             ("pp=2 x tp=2 1f1b mb=4", 4, "dp=1,tp=2,sp=0,pp=2,zero=0,mb=4,schedule=1f1b,remat=none"),
             ("pp=2 x dp=2 zero=1 mb=2", 4, "dp=2,tp=1,sp=0,pp=2,zero=1,mb=2,schedule=1f1b,remat=none")]


def main_pipelines():
    with tempfile.TemporaryDirectory() as tmp:
        mlir, _ = setup(tmp)
        print("| plan | stage | arena bytes | planner predicted | arena / predicted |")
        print("|---|---|---|---|---|")
        for name, devices, spec in PIPELINES:
            for s, (arena, predicted) in enumerate(measure_stages(tmp, mlir, devices, spec)):
                print("| %s | %d | %d | %d | %.3f |" % (name, s, arena, predicted,
                                                      arena / predicted))


if __name__ == "__main__" and "--pipelines" in sys.argv:
    main_pipelines()
elif __name__ == "__main__" and "--collectives" not in sys.argv and "--cuda" not in sys.argv:
    main()


def collective_bytes(tmp, mlir, devices, spec):
    """(tp bytes, dp bytes) one rank contributes per training step, from the
    program's @train kernels, and the cost model's figures."""
    prog = sh([os.path.join(BIN, "llm-compile"), mlir, "--cluster", CLUSTER,
               "--devices", str(devices), "--plan", spec, "--emit=mlir"])
    train = prog[prog.index("func.func @train()"):prog.index("func.func @eval()")]
    tp = dp = 0
    for m in re.finditer(r'kernel "all_reduce(?:_start)?".*ints = array<i64: (\d+), (\d), \d',
                         train):
        n, group = int(m.group(1)), int(m.group(2))
        if group == 2:
            tp += 4 * n
        elif n > 1:  # the loss scalar is not gradient traffic
            dp += 4 * n
    # Sequence parallelism's all-gathers and reduce-scatters over tp, in
    # all-reduce payloads (each moves half of one): the whole tensor's bytes
    # over 2. The kernels' first integer is this rank's part.
    ranks = int(re.search(r"tp=(\d+)", spec).group(1))
    for m in re.finditer(r'kernel "(?:all_gather|reduce_scatter)".*ints = '
                         r'array<i64: (\d+), 2\b', train):
        tp += 4 * int(m.group(1)) * ranks // 2
    plan = json.loads(sh([os.path.join(BIN, "llm-compile"), mlir, "--cluster",
                          CLUSTER, "--devices", str(devices), "--plan", spec,
                          "--emit=plan"]))["predicted"]
    return tp, dp, plan["tp_bytes_per_step"], plan["dp_bytes_per_step"]


def collectives_table():
    with tempfile.TemporaryDirectory() as tmp:
        mlir, _ = setup(tmp)
        print("| plan | TP bytes/step/rank (model) | DP bytes/step/rank (model) |")
        print("|---|---|---|")
        for name, devices, plan in [("tp=2", 2, "tp=2"), ("dp=2", 2, "dp=2"),
                                    ("dp=2 tp=2", 4, "dp=2,tp=2"),
                                    ("tp=2 sp", 2, "tp=2,sp=1")]:
            tp, dp, mtp, mdp = collective_bytes(tmp, mlir, devices, spec_of(plan))
            print("| %s | %d (%d) | %d (%d) |" % (name, tp, mtp, dp, mdp))


# --target cuda on one H100 (examples/clusters/h100-1gpu.json): the
# planner's memory against what the CUDA runtime allocates for the same
# executable (llmrt-memory's device total: the arena packed with its 16-bit
# tensors, the workspace with the GEMM weights' 16-bit copies and the
# 16-bit values kept beside their buffers, cuBLAS's scratch), both
# computed here.
CUDA_CASES = [("GPT-2 2 layers, B 4 x 256", "gpt2", 4, 256, 2),
              ("GPT-2 4 layers, B 8 x 512", "gpt2", 8, 512, 4),
              ("GPT-2 124M, B 16 x 1024", "gpt2", 16, 1024, 12),
              ("tiny Llama (GQA), B 8 x 64", "tiny-llama-gqa", 8, 64, 2)]


def cuda_arena(tmp, model, batch, seq, layers):
    """(predicted bytes, runtime bytes, llmrt-memory's JSON) for `model`
    compiled with --target cuda for one device."""
    mlir = os.path.join(tmp, "cuda.mlir")
    exe = os.path.join(tmp, "cuda.exe")
    sh([os.path.join(BIN, "llm-import"), "--hf-config",
        os.path.join(ROOT, "examples", "models", model + ".json"), "--batch", str(batch),
        "--seq", str(seq), "--layers", str(layers), "-o", mlir])
    sh([os.path.join(BIN, "llm-compile"), mlir, "--target", "cuda", "-o", exe])
    cluster = os.path.join(ROOT, "examples", "clusters", "h100-1gpu.json")
    plan = json.loads(sh([os.path.join(BIN, "llm-compile"), mlir, "--target", "cuda",
                          "--emit=plan", "--cluster", cluster, "--devices", "1"]))
    rt = json.loads(sh([os.path.join(BIN, "llmrt-memory"), exe, "--json",
                        "--verify"]).splitlines()[0])
    return plan["predicted"]["memory_bytes_per_device"], rt["device_bytes"], rt


def cuda_table():
    print("| model | compiled arena | runtime's device total (llmrt-memory) | planner | "
          "runtime / planner |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, batch, seq, layers in CUDA_CASES:
            predicted, runtime, rt = cuda_arena(tmp, model, batch, seq, layers)
            gib = 1 << 30
            print("| %s | %.3f GiB | %.3f GiB | %.3f GiB | %.3f |" % (
                name, rt["compiled_arena_bytes"] / gib, runtime / gib, predicted / gib,
                runtime / predicted))


if __name__ == "__main__" and "--collectives" in sys.argv:
    collectives_table()
elif __name__ == "__main__" and "--cuda" in sys.argv:
    cuda_table()
