"""Pipeline parallelism under mpirun (CPU, fp32): one program per stage in
one executable, activations and their gradients sent between stages by the
compiler's schedule (GPipe, 1F1B, interleaved 1F1B). The loss of each of 20
steps equals the one-rank run's (with the same micro-batches) within 1e-5
relative, for PP=2, PP=4, PP=2 x TP=2 (with and without sequence
parallelism), PP=2 x DP=2 with ZeRO-1, interleaved with vpp=2 on PP=2, and
under every recomputation mode; the trace of a PP=2 x TP=2 run has one row
per rank with its sends and receives, and the bubble measured from it is
printed next to the formula."""
import json
import os
import unittest

from common import BIN, losses, run, tempdir, token_file
from test_distributed import HYPER, MPIRUN, compile_for, mpirun

LAYERS = 4


@unittest.skipUnless(MPIRUN, "mpirun is not installed")
class PipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempdir()
        cls.tmp = cls.tmpdir.name
        cls.data = token_file(cls.tmp)
        cls.refs = {}

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def reference(self, model, mb, layers):
        """One rank, the same micro-batches (the same sums, in the same
        order but for GPipe's reversed backwards)."""
        key = (model, mb, layers)
        if key not in self.refs:
            tag = "%s-pp-ref-mb%d-l%d" % (model, mb, layers)
            one = compile_for(self.tmp, model, 1, tag, layers=layers,
                              plan="dp=1,remat=none,mb=%d" % mb)
            log = os.path.join(self.tmp, tag + ".jsonl")
            run([one, "--data", self.data, "--log", log] + HYPER)
            self.refs[key] = losses(log)
        return self.refs[key]

    def parity(self, model, devices, plan, layers=LAYERS):
        tag = "%s-%d-%s-l%d" % (model, devices, plan.replace(",", "_").replace("=", "").replace(":", ""), layers)
        exe = compile_for(self.tmp, model, devices, tag, layers=layers, plan=plan)
        log = os.path.join(self.tmp, tag + ".jsonl")
        mpirun(devices, [exe, "--data", self.data, "--log", log] + HYPER)
        mb = int(plan.split("mb=")[1].split(",")[0])
        ref, got = self.reference(model, mb, layers), losses(log)
        self.assertEqual(len(ref), 20)
        self.assertEqual(len(got), 20)
        worst = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
        if os.environ.get("LLM_TEST_VERBOSE"):
            print("\n%s %s: worst relative difference %.2e" % (model, plan, worst))
        for step, (a, b) in enumerate(zip(got, ref), 1):
            self.assertLessEqual(abs(a - b) / abs(b), 1e-5,
                                 "%s %s on %d ranks, step %d: %.9g vs one "
                                 "rank %.9g" % (model, plan, devices, step, a, b))

    # The runs.
    def test_gpt2_pp2_1f1b(self):
        self.parity("shakespeare-char-gpt", 2, "dp=1,pp=2,mb=4,schedule=1f1b,remat=none")

    def test_gpt2_pp4_1f1b(self):
        self.parity("shakespeare-char-gpt", 4, "dp=1,pp=4,mb=4,schedule=1f1b,remat=none")

    def test_gpt2_pp3_uneven_stages(self):
        # 4 layers on 3 stages: the planner balances the chunks (the first
        # and last also hold the embedding and the head).
        self.parity("shakespeare-char-gpt", 3, "dp=1,pp=3,mb=4,schedule=1f1b,remat=none")

    def test_gpt2_pp2_tp2(self):
        # Two layers, one per stage: with four, tensor parallelism alone
        # (no pipeline) drifts to 1.1e-5 of one rank by step 16 (its
        # vocabulary-parallel sums); the pipeline adds nothing to that.
        self.parity("shakespeare-char-gpt", 4, "dp=1,tp=2,pp=2,mb=4,schedule=1f1b,remat=none",
                    layers=2)

    def test_gpt2_pp2_tp2_sp(self):
        # Sequence parallelism: each tensor-parallel rank sends its own
        # tokens of the residual stream (half the bytes).
        self.parity("shakespeare-char-gpt", 4, "dp=1,tp=2,sp=1,pp=2,mb=4,schedule=1f1b,remat=none",
                    layers=2)

    def test_gpt2_pp2_tp2_sp_padded_vocabulary(self):
        # A vocabulary of 251 on tp=2: both ends hold 126 rows each (the
        # tied table and its copy, one padding row on tp rank 1).
        self.parity("gpt2-v251", 4, "dp=1,tp=2,sp=1,pp=2,mb=4,schedule=1f1b,remat=none",
                    layers=2)

    def test_llama_pp2_tp2_sp_interleaved(self):
        self.parity("tiny-llama-gqa", 4, "dp=1,tp=2,sp=1,pp=2,vpp=2,mb=4,schedule=interleaved,remat=none")

    def test_gpt2_pp2_dp2_zero1(self):
        self.parity("shakespeare-char-gpt", 4, "dp=2,pp=2,zero=1,mb=2,schedule=1f1b,remat=none")

    def test_gpt2_pp2_interleaved_vpp2(self):
        self.parity("shakespeare-char-gpt", 2, "dp=1,pp=2,vpp=2,mb=4,schedule=interleaved,remat=none")

    # The other schedule and models.
    def test_gpt2_pp2_gpipe(self):
        self.parity("shakespeare-char-gpt", 2, "dp=1,pp=2,mb=4,schedule=gpipe,remat=none")

    def test_llama_gqa_pp2_1f1b(self):
        # Untied LM head: nothing shared between the end stages.
        self.parity("tiny-llama-gqa", 2, "dp=1,pp=2,mb=2,schedule=1f1b,remat=none")

    # Every recomputation mode gives the losses of none.
    def test_gpt2_pp2_remat_full(self):
        self.parity("shakespeare-char-gpt", 2, "dp=1,pp=2,mb=4,schedule=1f1b,remat=full")

    def test_gpt2_pp2_remat_selective(self):
        self.parity("shakespeare-char-gpt", 2, "dp=1,pp=2,mb=4,schedule=1f1b,remat=selective")

    def test_gpt2_pp2_remat_budget(self):
        # budget:1 recomputes the first layer each stage holds.
        self.parity("shakespeare-char-gpt", 2, "dp=1,pp=2,mb=4,schedule=1f1b,remat=budget:1")

    def test_checkpoint_resumes_on_one_rank_and_pp2_dp2(self):
        # Saved by PP=2 after 10 steps (each stage writes its own layers,
        # the tied embedding once); resumed on one rank and on PP=2 x DP=2,
        # the last 10 steps equal the uninterrupted PP=2 run's.
        model, plan = "shakespeare-char-gpt", "dp=1,pp=2,mb=2,schedule=1f1b,remat=none"
        # A constant learning rate: the schedule does not depend on the
        # run's length.
        hyper = ["--lr", "1e-3", "--min-lr", "1e-3", "--warmup", "0", "--seed", "7"]
        exe = compile_for(self.tmp, model, 2, "ckpt-pp2", layers=LAYERS, plan=plan)
        full = os.path.join(self.tmp, "ckpt-full.jsonl")
        mpirun(2, [exe, "--data", self.data, "--log", full, "--steps", "20"] + hyper)
        ckpt = os.path.join(self.tmp, "ckpt-pp2")
        mpirun(2, [exe, "--data", self.data, "--save", ckpt, "--steps", "10"] + hyper)
        with open(os.path.join(ckpt, "step-00000010", "index.json")) as f:
            index = json.load(f)
        self.assertEqual(index["plan"]["pp"], 2)
        self.assertEqual([p["file"] for p in index["tensors"]["wte.weight"]["pieces"]],
                         ["rank-00000.safetensors"])
        self.assertEqual([p["file"] for p in index["tensors"]["ln_f.weight"]["pieces"]],
                         ["rank-00001.safetensors"])
        one = compile_for(self.tmp, model, 1, "ckpt-one", layers=LAYERS,
                          plan="dp=1,mb=2,remat=none")
        four = compile_for(self.tmp, model, 4, "ckpt-pp2dp2", layers=LAYERS,
                           plan="dp=2,pp=2,zero=1,mb=1,schedule=1f1b,remat=none")
        ref = losses(full)[10:]
        for name, cmd in (("one rank", [one]), ("pp=2 x dp=2", None)):
            log = os.path.join(self.tmp, "resumed-%s.jsonl" % name.replace(" ", ""))
            args = ["--data", self.data, "--log", log, "--resume", ckpt,
                    "--steps", "20"] + hyper
            if cmd:
                run(cmd + args)
            else:
                mpirun(4, [four] + args)
            got = losses(log)
            self.assertEqual(len(got), 10, name)
            for step, (a, b) in enumerate(zip(got, ref), 11):
                self.assertLessEqual(abs(a - b) / abs(b), 1e-5,
                                     "resumed on %s, step %d: %.9g vs %.9g" % (name, step, a, b))

    def test_trace_pp2_tp2_one_row_per_rank(self):
        exe = compile_for(self.tmp, "shakespeare-char-gpt", 4, "trace-pp2-tp2",
                          layers=LAYERS,
                          plan="dp=1,tp=2,pp=2,mb=4,schedule=1f1b,remat=none")
        trace = os.path.join(self.tmp, "trace-pp.json")
        mpirun(4, [exe, "--data", self.data, "--trace", trace, "--steps", "3"])
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
        names = {e["pid"]: e["args"]["name"] for e in events
                 if e.get("name") == "process_name"}
        self.assertEqual(sorted(names), [0, 1, 2, 3])
        for pid in range(4):
            self.assertIn("pp %d" % (pid // 2), names[pid])
            mine = [e for e in events if e.get("pid") == pid and e.get("ph") == "X"]
            kinds = {e["name"] for e in mine}
            self.assertIn("attention_bwd", kinds)
            self.assertIn("all_reduce", kinds)  # tensor parallel
            # Sends, and receives posted an action early then waited for.
            self.assertTrue({"send", "recv_start", "recv_wait"} <= kinds, kinds)
            # The schedule track: each step's forwards (F) and backwards
            # (B) of the 4 micro-batches in 1F1B order for the rank's stage.
            phases = [e["name"] for e in events
                      if e.get("pid") == pid and e.get("cat") == "phase"]
            order = (["F0", "F1", "B0", "F2", "B1", "F3", "B2", "B3"] if pid < 2
                     else ["F0", "B0", "F1", "B1", "F2", "B2", "F3", "B3"])
            self.assertEqual(phases, order * 3, "rank %d" % pid)
            self.assertTrue(all(e["tid"] == 1 for e in events
                                if e.get("pid") == pid and e.get("cat") == "phase"))


if __name__ == "__main__":
    unittest.main()
