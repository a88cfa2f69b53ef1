"""Measured against predicted memory: the per-rank bytes of parameters and
AdamW moments in compiled programs equal the ZeRO formulas (fp32: 4 bytes of
weights, 8 of moments per parameter; ZeRO-1/2 shard the moments over dp,
ZeRO-3 the weights too), and each program's arena (its static per-rank peak)
is within 5% of the planner's prediction for this machine's cluster."""
import json
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "bench"))
import memory_vs_predicted as mem  # noqa: E402


class MemoryTest(unittest.TestCase):
    def test_zero_formulas_and_arena_vs_prediction(self):
        with tempfile.TemporaryDirectory() as tmp:
            mlir, P = mem.setup(tmp)
            for name, devices, plan, zero in (("1 rank", 1, "dp=1", 0),
                                              ("dp=2", 2, "dp=2", 0),
                                              ("zero1", 2, "dp=2,zero=1", 1),
                                              ("zero2", 2, "dp=2,zero=2", 2),
                                              ("zero3", 4, "dp=4,zero=3", 3),
                                              ("4 micro-batches", 1, "dp=1,mb=4", 0),
                                              ("dp=2 x 2 micro-batches", 2, "dp=2,mb=2", 0),
                                              ("remat budget 3 of 6", 1, "dp=1,remat=budget:3", 0),
                                              ("zero2 x 2 micro-batches", 2, "dp=2,zero=2,mb=2", 2),
                                              ("zero3 x 2 micro-batches", 2, "dp=2,zero=3,mb=2", 3)):
                dp = devices
                params, moments, arena, predicted = mem.measure(
                    tmp, mlir, devices, mem.spec_of(plan))
                self.assertEqual(params, 4 * P // (dp if zero >= 3 else 1), name)
                self.assertEqual(moments, 8 * P // (dp if zero >= 1 else 1), name)
                self.assertLess(abs(arena / predicted - 1), 0.05,
                                "%s: arena %d vs predicted %d" % (name, arena,
                                                                  predicted))
            # Under TP the matrices are split, the embeddings, norms and the
            # LM head replicated: the program holds between P/tp and P.
            params, moments, arena, predicted = mem.measure(
                tmp, mlir, 2, mem.spec_of("tp=2"))
            self.assertGreater(params, 4 * P // 2)
            self.assertLess(params, 4 * P)
            self.assertEqual(moments, 2 * params)
            self.assertLess(abs(arena / predicted - 1), 0.05)
            # Full recomputation keeps each layer's input only: the arena
            # shrinks, and stays within 10% of the prediction (Korthikanti's
            # 2sbh per layer plus one layer's working set).
            # Sequence parallelism keeps the norms' and residuals'
            # activations on 1/tp of the tokens.
            _, _, tp_arena, _ = mem.measure(tmp, mlir, 2, mem.spec_of("tp=2"))
            _, _, arena, predicted = mem.measure(tmp, mlir, 2,
                                                 mem.spec_of("tp=2,sp=1"))
            self.assertLess(arena, 0.95 * tp_arena)
            self.assertLess(abs(arena / predicted - 1), 0.05,
                            "tp=2 sp: arena %d vs predicted %d" % (arena,
                                                                 predicted))
            for devices, plan in ((1, "dp=1"), (2, "tp=2")):
                _, _, kept, _ = mem.measure(tmp, mlir, devices,
                                            mem.spec_of(plan))
                _, _, arena, predicted = mem.measure(
                    tmp, mlir, devices, mem.spec_of(plan + ",remat=full"))
                self.assertLess(arena, 0.7 * kept, plan)
                self.assertLess(abs(arena / predicted - 1), 0.10,
                                "%s remat=full: arena %d vs predicted %d" % (
                                    plan, arena, predicted))


    def test_pipeline_stages_arena_vs_prediction_and_split(self):
        # One program per pipeline stage: each stage's arena within 5% of
        # the planner's prediction for that rank (GPipe, 1F1B, interleaved,
        # full recomputation, with TP and with DP + ZeRO-1), and each stage
        # holds exactly the layers of the planner's split.
        with tempfile.TemporaryDirectory() as tmp:
            mlir, _ = mem.setup(tmp)
            for name, devices, spec in mem.PIPELINES:
                for s, (arena, predicted) in enumerate(
                        mem.measure_stages(tmp, mlir, devices, spec)):
                    self.assertLess(abs(arena / predicted - 1), 0.05,
                                    "%s stage %d: arena %d vs predicted %d" % (
                                        name, s, arena, predicted))
                plan = json.loads(mem.sh([os.path.join(mem.BIN, "llm-compile"), mlir,
                                          "--cluster", mem.CLUSTER, "--devices",
                                          str(devices), "--plan", spec, "--emit=plan"]))
                prog = mem.sh([os.path.join(mem.BIN, "llm-compile"), mlir, "--cluster",
                               mem.CLUSTER, "--devices", str(devices), "--plan", spec,
                               "--emit=mlir"])
                stages = prog.split("// pipeline stage ")[1:]
                pp, chunks = plan["pp"], plan["stages"]
                self.assertEqual(len(stages), pp, name)
                for r, text in enumerate(stages):
                    held = {int(n) for n in re.findall(r'llmrt.buffer "h\.(\d+)\.', text)}
                    want = {l for c, (b, e) in enumerate(chunks) if c % pp == r
                            for l in range(b, e)}
                    self.assertEqual(held, want, "%s stage %d" % (name, r))

    def test_cuda_runtime_arena_vs_prediction(self):
        # --target cuda: what the CUDA runtime will allocate (llmrt-memory,
        # the runtime's own 16-bit plan and packing, computed without a GPU)
        # against the planner's memory model for the same executable. The
        # model counts the 16-bit tensors per op kind (Profile.cpp) where
        # the runtime plans them per instruction: within 15% (on GPT-2 124M
        # the planner without the 16-bit arena is 41% off, the runtime
        # without the packing 50%).
        with tempfile.TemporaryDirectory() as tmp:
            for name, model, batch, seq, layers in mem.CUDA_CASES:
                if layers > 4:
                    continue  # (GPT-2 124M: bench/memory_vs_predicted.py --cuda)
                predicted, runtime, rt = mem.cuda_arena(tmp, model, batch, seq, layers)
                self.assertLess(abs(runtime / predicted - 1), 0.15,
                                "%s: runtime %d vs predicted %d" % (name, runtime, predicted))
                self.assertTrue(rt["packed"], "%s: %s" % (name, rt["why_not_packed"]))
                # Run offline in both layouts, every read saw the same writes.
                self.assertTrue(rt["verified"], name)
                self.assertLess(rt["arena_bytes"], rt["compiled_arena_bytes"], name)
                self.assertGreater(rt["tensors_16bit"], 0, name)
            # Several ranks, each stage's first rank: packed where smaller,
            # and then every read sees the same writes (views of ZeRO
            # shares, buckets, collectives, pipeline sends and receives).
            mlir = os.path.join(tmp, "multi.mlir")
            mem.sh([os.path.join(mem.BIN, "llm-import"), "--hf-config",
                    os.path.join(mem.ROOT, "examples", "models", "gpt2.json"), "--batch", "8",
                    "--seq", "512", "--layers", "2", "-o", mlir])
            packed = 0
            for plan, devices in (("dp=2,zero=1", 2), ("dp=2,zero=3", 2),
                                  ("tp=2,sp=1", 2), ("tp=2,sp=0", 2),
                                  ("pp=2,schedule=1f1b,mb=2", 2),
                                  ("dp=2,tp=2,sp=1,zero=1", 4)):
                exe = os.path.join(tmp, "multi.exe")
                mem.sh([os.path.join(mem.BIN, "llm-compile"), mlir, "--target", "cuda",
                        "--devices", str(devices), "--plan", plan, "-o", exe])
                stages = [json.loads(l) for l in mem.sh(
                    [os.path.join(mem.BIN, "llmrt-memory"), exe, "--json", "--verify"]).splitlines()]
                self.assertEqual(len(stages), 2 if "pp=2" in plan else 1, plan)
                for st in stages:
                    self.assertEqual(st["verified"], st["packed"], plan)
                    self.assertLessEqual(st["arena_bytes"], st["compiled_arena_bytes"], plan)
                    packed += st["packed"]
            self.assertGreaterEqual(packed, 5)
            # An executable for the CPU: its compiled arena, said so.
            cpu = os.path.join(tmp, "cpu.exe")
            mem.sh([os.path.join(mem.BIN, "llm-compile"), mlir, "-o", cpu])
            st = json.loads(mem.sh([os.path.join(mem.BIN, "llmrt-memory"), cpu, "--json"]))
            self.assertEqual(st["target"], "cpu")
            self.assertEqual(st["arena_bytes"], st["compiled_arena_bytes"])
            # Bad input: a clear error, a non-zero exit.
            tool = os.path.join(mem.BIN, "llmrt-memory")
            for args, says in (([os.path.join(tmp, "missing.exe")], "missing.exe"),
                               ([os.path.join(tmp, "cuda.exe"), "--frobnicate"],
                                "unknown flag '--frobnicate'"),
                               ([], "no executable given")):
                p = mem.subprocess.run([tool] + args, capture_output=True, text=True)
                self.assertNotEqual(p.returncode, 0, args)
                self.assertIn(says, p.stderr, args)

    def test_collective_bytes_match_the_cost_model(self):
        # Bytes one rank puts into TP all-reduces and DP gradient reductions
        # per step: counted in the compiled program, predicted by the model.
        with tempfile.TemporaryDirectory() as tmp:
            mlir, _ = mem.setup(tmp)
            for devices, plan in ((2, "tp=2"), (2, "dp=2"), (4, "dp=2,tp=2")):
                tp, dp, mtp, mdp = mem.collective_bytes(tmp, mlir, devices,
                                                        mem.spec_of(plan))
                self.assertEqual(tp, mtp, plan)
                self.assertEqual(dp, mdp, plan)
            # Sequence parallelism: all-gathers and reduce-scatters instead
            # of all-reduces, and the backward's re-gathers; the model leaves
            # out only the norms' partial-gradient sums (0.06%).
            tp, _, mtp, _ = mem.collective_bytes(tmp, mlir, 2,
                                                 mem.spec_of("tp=2,sp=1"))
            self.assertLess(abs(tp / mtp - 1), 0.005, "%d vs %d" % (tp, mtp))


if __name__ == "__main__":
    unittest.main()
