#!/usr/bin/env python3
"""Training throughput of a compiled executable against PyTorch training the
same model on the same batches, measured in one run on the same cores.

  /usr/bin/python3 bench/train_throughput.py [--model shakespeare-char-gpt]
      [--batch 8] [--seq 256] [--steps 12] [--rounds 2] [--torch-threads 1]

Prints one JSON line per measurement and a final line with the ratio
ours/PyTorch of tokens per second (median over rounds, the first two steps
of each run left out as warm-up) and both peak resident sizes. PyTorch gets
its fastest setting on 2-core machines: one intra-op thread (its GEMMs still
use OpenBLAS's threads); pass --torch-threads to try others.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("LLM_BIN_DIR", os.path.join(ROOT, "build", "bin"))
REF = os.path.join(ROOT, "python", "llm_ref", "train_ref.py")
TEXT = os.path.join(ROOT, "examples", "data", "tinyshakespeare.txt")


def sh(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="shakespeare-char-gpt")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, default=1)
    a = ap.parse_args()

    cfg = os.path.join(ROOT, "examples", "models", a.model + ".json")
    layers = ["--layers", str(a.layers)] if a.layers else []
    with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp:
        data = os.path.join(tmp, "train.bin")
        sh([os.path.join(BIN, "llm-tokenize"), TEXT, "-o", data])
        init = os.path.join(tmp, "init.safetensors")
        sh(["/usr/bin/python3", REF, "--config", cfg, "--make-init", init,
            "--init-seed", "1"] + layers)
        mlir, exe = os.path.join(tmp, "m.mlir"), os.path.join(tmp, "m.exe")
        sh([os.path.join(BIN, "llm-import"), "--hf-config", cfg, "--batch",
            str(a.batch), "--seq", str(a.seq), "-o", mlir] + layers)
        sh([os.path.join(BIN, "llm-compile"), mlir, "-o", exe])
        common = ["--data", data, "--init", init, "--steps", str(a.steps),
                  "--lr", "3e-4", "--seed", "1"]

        ours, theirs, ours_rss, theirs_rss, ours_arena = [], [], [], [], 0
        for r in range(a.rounds):
            log = os.path.join(tmp, "ours.jsonl")
            sh([exe, "--log", log] + common)
            recs = [json.loads(l) for l in open(log)][2:]
            tps = statistics.median(x["tokens_per_s"] for x in recs)
            ours.append(tps)
            ours_rss.append(max(x["peak_rss_bytes"] for x in recs))
            ours_arena = recs[-1]["peak_mem_bytes"]
            print(json.dumps({"round": r, "who": "llm", "tokens_per_s": tps,
                              "peak_rss_bytes": ours_rss[-1],
                              "arena_bytes": ours_arena}))
            p = sh(["/usr/bin/python3", REF, "--config", cfg, "--batch",
                    str(a.batch), "--seq", str(a.seq), "--bench", "--threads",
                    str(a.torch_threads)] + layers + common)
            rec = json.loads(p.stdout.strip().splitlines()[-1])
            theirs.append(rec["tokens_per_s"])
            theirs_rss.append(rec["peak_rss_bytes"])
            print(json.dumps({"round": r, "who": "pytorch",
                              "tokens_per_s": rec["tokens_per_s"],
                              "peak_rss_bytes": rec["peak_rss_bytes"]}))
        o, t = statistics.median(ours), statistics.median(theirs)
        print(json.dumps({
            "model": a.model, "batch": a.batch, "seq": a.seq,
            "llm_tokens_per_s": round(o, 1),
            "pytorch_tokens_per_s": round(t, 1),
            "ratio": round(o / t, 3),
            "llm_peak_rss_bytes": max(ours_rss),
            "llm_arena_bytes": ours_arena,
            "pytorch_peak_rss_bytes": max(theirs_rss)}))


if __name__ == "__main__":
    main()
