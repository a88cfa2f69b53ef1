#!/usr/bin/env python3
"""Where a traced step's time goes, per instruction and shape.

  python3 bench/gpu/trace_summary.py TRACE.json [--top 30] [--flops]

Reads a Chrome trace written by an executable's --trace (each instruction
waited for, its integer operands in args.ints) and prints, for the last
step, the time per instruction kind and per (kind, operands): which GEMM,
which attention, which copy. For GEMM instructions (linear_*) it also prints
the achieved TFLOP/s, from the operands [rows, in, out, ...].
"""
import argparse
import collections
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    ev = json.load(open(a.trace))["traceEvents"]
    marks = sorted(e["ts"] for e in ev if e.get("ph") == "i")
    last = marks[-1] if marks else 0
    kinds = collections.Counter()
    kcount = collections.Counter()
    shapes = collections.Counter()
    scount = collections.Counter()
    for e in ev:
        if e.get("ph") != "X" or e["ts"] < last or e.get("cat") == "phase":
            continue
        ints = tuple(e.get("args", {}).get("ints", []))
        kinds[e["name"]] += e["dur"]
        kcount[e["name"]] += 1
        shapes[(e["name"], ints)] += e["dur"]
        scount[(e["name"], ints)] += 1
    total = sum(kinds.values())
    print(f"step: {total/1e3:.2f} ms in {sum(kcount.values())} instructions")
    print("per kind:")
    for name, t in kinds.most_common():
        print(f"  {name:28s} {t/1e3:8.2f} ms {100*t/total:5.1f}%  x{kcount[name]}")
    print(f"per kind and operands (top {a.top}):")
    for (name, ints), t in shapes.most_common(a.top):
        n = scount[(name, ints)]
        extra = ""
        if name.startswith("linear") and len(ints) >= 3:
            flops = 2.0 * ints[0] * ints[1] * ints[2] * n
            extra = f"  {flops / (t * 1e-6) / 1e12:6.1f} TFLOP/s"
        print(f"  {name:24s} {str(list(ints)):36s} {t/1e3:8.2f} ms  x{n}  "
              f"{t/n/1e3:7.3f} ms each{extra}")


if __name__ == "__main__":
    main()
