#!/usr/bin/env python3
"""Two training runs' losses, step by step: run.sh's parity checks.

  python3 bench/gpu/compare_losses.py OURS.jsonl REF.jsonl LABEL --tol T
      [--steps 10] [--ref-name PyTorch]
      [--log OURS.txt --require TEXT --forbid TEXT]

PASS (exit 0) where both logs have --steps losses and every step's
relative difference is at most --tol; with --log, also where that run's
output holds --require and no line with --forbid (a line with it is
printed). A missing or unreadable log is a FAIL, never a traceback.
"""
import argparse
import json
import sys


def losses(path):
    with open(path) as f:
        return [json.loads(line)["loss"] for line in f if '"loss"' in line]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("ref")
    ap.add_argument("label")
    ap.add_argument("--tol", type=float, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ref-name", default="the reference")
    ap.add_argument("--log", help="the output of OURS's run")
    ap.add_argument("--require", help="text --log must hold")
    ap.add_argument("--forbid", help="text no line of --log may hold")
    a = ap.parse_args()
    try:
        ours, ref = losses(a.ours), losses(a.ref)
        text = open(a.log).read().splitlines() if a.log else []
    except (OSError, ValueError, KeyError) as e:
        print(f"{a.label}: FAIL  {e}")
        return 1
    notes = [line.strip() for line in text if a.forbid and a.forbid in line]
    if a.log and a.require and not any(a.require in line for line in text):
        notes.append(f"no line says '{a.require}'")
    worst = max((abs(x - y) / abs(y) for x, y in zip(ours, ref)), default=float("inf"))
    ok = len(ours) == len(ref) == a.steps and worst <= a.tol and not notes
    span = (f"; losses {ours[0]:.5f} .. {ours[-1]:.5f} ({a.ref_name} {ref[0]:.5f} .. "
            f"{ref[-1]:.5f})" if ours and ref else f"; {len(ours)} and {len(ref)} losses")
    print(f"{a.label}: {'PASS' if ok else 'FAIL'}  worst step loss rel diff {worst:.2e} "
          f"(tol {a.tol:g}){span}{'; ' + notes[0] if notes else ''}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
