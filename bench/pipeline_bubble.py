"""Pipeline bubble measured from the trace, next to the formula and the
planner's prediction.

  /usr/bin/python3 bench/pipeline_bubble.py [--layers L] [--steps S]

Compiles the byte-level Shakespeare GPT (batch 8 x 128, L layers) for two
pipeline stages under each schedule, runs it under mpirun with --trace, and
for every rank and step after the first measures

  bubble = (step span - busy) / busy

where busy is the time of the rank's kernels in the step (trace category
"compute", the optimizer included) and the span runs from the step's first
event to its last: the time a rank waits for its neighbour (its blocking
receives, the closing reductions) over the time it works. The formula of
shared/reference/formulas.md is (p-1)/m for GPipe and 1F1B, (p-1)/(v m)
interleaved, for equal stages and free communication. Two ranks share two
cores here: expect the measurement above the formula by the sends and the
optimizer, which the formula leaves out.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("LLM_BIN_DIR", os.path.join(ROOT, "build", "bin"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
PLANS = [("gpipe", 1, 4), ("1f1b", 1, 2), ("1f1b", 1, 4), ("1f1b", 1, 8),
         ("interleaved", 2, 4)]


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kw)
    if p.returncode:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def measured_bubble(trace, ranks):
    with open(trace) as f:
        events = json.load(f)["traceEvents"]
    out = []
    for pid in range(ranks):
        steps = sorted(e["ts"] for e in events
                       if e.get("pid") == pid and e.get("ph") == "i")
        work = [e for e in events if e.get("pid") == pid and e.get("ph") == "X"]
        bounds = steps + [float("inf")]
        for k in range(1, len(steps)):  # the first step warms up
            mine = [e for e in work if bounds[k] <= e["ts"] < bounds[k + 1]]
            if not mine:
                continue
            span = max(e["ts"] + e["dur"] for e in mine) - min(e["ts"] for e in mine)
            busy = sum(e["dur"] for e in mine if e["cat"] == "compute")
            out.append((span - busy) / busy)
    return sum(out) / len(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    p = 2
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "t.txt")
        with open(os.path.join(ROOT, "examples", "data", "tinyshakespeare.txt"), "rb") as f:
            data = f.read(200000)
        with open(text, "wb") as f:
            f.write(data)
        tokens = os.path.join(tmp, "train.bin")
        sh([os.path.join(BIN, "llm-tokenize"), text, "-o", tokens])
        mlir = os.path.join(tmp, "m.mlir")
        sh([os.path.join(BIN, "llm-import"), "--hf-config",
            os.path.join(ROOT, "examples", "models", "shakespeare-char-gpt.json"),
            "--batch", "8", "--seq", "128", "--layers", str(args.layers), "-o", mlir])
        cluster = os.path.join(ROOT, "examples", "clusters", "local-cpu.json")
        print("| schedule | p | v | m | formula | planner | measured (trace) |")
        print("|---|---|---|---|---|---|---|")
        for schedule, v, m in PLANS:
            spec = "dp=1,tp=1,sp=0,zero=0,remat=none,pp=%d,vpp=%d,mb=%d,schedule=%s" % (
                p, v, m, schedule)
            plan = json.loads(sh([os.path.join(BIN, "llm-compile"), mlir, "--cluster",
                                  cluster, "--devices", str(p), "--plan", spec,
                                  "--emit=plan"]))
            exe = os.path.join(tmp, "pp.exe")
            sh([os.path.join(BIN, "llm-compile"), mlir, "--devices", str(p),
                "--plan", spec, "-o", exe])
            trace = os.path.join(tmp, "trace.json")
            sh(["mpirun", "-np", str(p), "--oversubscribe", "--bind-to", "none", exe,
                "--data", tokens, "--steps", str(args.steps), "--trace", trace],
               timeout=600)
            formula = (p - 1) / (v * m)
            print("| %s | %d | %d | %d | %.3f | %.3f | %.3f |" % (
                schedule, p, v, m, formula, plan["predicted"]["bubble_fraction"],
                measured_bubble(trace, p)))


if __name__ == "__main__":
    main()
