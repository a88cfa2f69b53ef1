"""Multi-rank executables under mpirun (Open MPI, shared memory): the loss
of each of 20 steps equals the one-rank run's within 1e-5 relative (also
with full recomputation); the
data-parallel ranks together see the one-rank batch; a world of the wrong
size is refused on every rank; a checkpoint written by a data-parallel run
resumes on one rank."""
import json
import os
import shutil
import unittest

from common import (BIN, MODELS, compile_model, losses, run, subprocess,
                    tempdir, token_file)

MPIRUN = shutil.which("mpirun")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
HYPER = ["--steps", "20", "--lr", "1e-3", "--warmup", "3", "--min-lr", "1e-4",
         "--seed", "7"]


def mpirun(np, cmd, check=True):
    p = subprocess.run([MPIRUN, "-np", str(np), "--oversubscribe",
                        "--bind-to", "none"] + cmd, capture_output=True,
                       text=True, env=ENV, timeout=240)
    if check and p.returncode != 0:
        raise RuntimeError("mpirun failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def config(model):
    local = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "Inputs", model + ".json")
    return local if os.path.exists(local) else os.path.join(MODELS, model + ".json")


def compile_for(tmp, model, devices, name, batch=8, seq=32, layers=2,
                plan=None, flags=()):
    mlir = os.path.join(tmp, name + ".mlir")
    exe = os.path.join(tmp, name + ".exe")
    run([os.path.join(BIN, "llm-import"), "--hf-config", config(model),
         "--batch", str(batch), "--seq", str(seq), "--layers", str(layers),
         "-o", mlir])
    if plan and "tp=" in plan and "sp=" not in plan:
        plan += ",sp=0"  # plain tensor parallelism unless the test asks
    run([os.path.join(BIN, "llm-compile"), mlir, "--devices", str(devices),
         "-o", exe] + (["--plan", plan] if plan else []) + list(flags))
    return exe


class WithData(unittest.TestCase):
    """A temporary folder with a token file, for the class's tests."""

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempdir()
        cls.tmp = cls.tmpdir.name
        cls.data = token_file(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()


@unittest.skipUnless(MPIRUN, "mpirun is not installed")
class DistributedTest(WithData):
    def parity(self, model, devices, plan=None, flags=()):
        plan = plan or "dp=%d,zero=0" % devices
        one = compile_for(self.tmp, model, 1, model + "-1")
        tag = "%s-%d-%s%s" % (model, devices, (plan or "dp").replace(",", "_").replace("=", ""),
                              "".join(f.strip("-").replace(".", "") for f in flags))
        many = compile_for(self.tmp, model, devices, tag, plan=plan, flags=flags)
        ref_log = os.path.join(self.tmp, "%s-ref.jsonl" % model)
        log = os.path.join(self.tmp, tag + ".jsonl")
        run([one, "--data", self.data, "--log", ref_log] + HYPER)
        mpirun(devices, [many, "--data", self.data, "--log", log] + HYPER)
        ref, got = losses(ref_log), losses(log)
        self.assertEqual(len(ref), 20)
        self.assertEqual(len(got), 20)
        for step, (a, b) in enumerate(zip(got, ref), 1):
            self.assertLessEqual(abs(a - b) / abs(b), 1e-5,
                                 "%s %s on %d ranks, step %d: %.9g vs one "
                                 "rank %.9g" % (model, plan or "dp", devices,
                                                step, a, b))

    def test_runtime_packed_arena_on_several_ranks(self):
        # LLMRT_ARENA_REPACK=1 on several ranks: the runtime's packing
        # (ArenaPack.h) with ZeRO's rank-dependent views (a share read
        # through another buffer than the gradient it views), the
        # collectives left running to their waits, sequence parallelism
        # and a pipeline's sends and receives, over arenas of NaNs: the
        # same losses, bit for bit.
        # The GPT of hidden size 40 (Inputs/) pads its bucket's gradients
        # to the arena's alignment: a share of the bucket is covered by
        # gradients with gaps between.
        env = dict(ENV, LLMRT_ARENA_REPACK="1")
        for model, plan in (("tiny-llama-gqa", "dp=2,zero=1"),
                            ("tiny-llama-gqa", "dp=2,zero=2"),
                            ("tiny-llama-gqa", "dp=2,zero=3"),
                            ("tiny-llama-gqa", "tp=2,sp=1"),
                            ("tiny-llama-gqa", "pp=2,schedule=1f1b,mb=2"),
                            ("gpt-odd", "dp=2,zero=1")):
            tag = "repack-%s-%s" % (model, plan.replace(",", "_").replace("=", ""))
            exe = compile_for(self.tmp, model, 2, tag, plan=plan)
            la, lb = (os.path.join(self.tmp, tag + s + ".jsonl") for s in ("-a", "-b"))
            args = ["--data", self.data, "--steps", "4", "--seed", "7"]
            mpirun(2, [exe] + args + ["--log", la])
            p = subprocess.run([MPIRUN, "-np", "2", "--oversubscribe", "--bind-to", "none",
                                "-x", "LLMRT_ARENA_REPACK", exe] + args + ["--log", lb],
                               capture_output=True, text=True, env=env, timeout=240)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len(losses(lb)), 4, plan)
            self.assertEqual(losses(la), losses(lb), plan)

    def test_gpt2_dp2(self):
        self.parity("shakespeare-char-gpt", 2)

    def test_gpt2_dp4(self):
        self.parity("shakespeare-char-gpt", 4)

    def test_llama_gqa_dp2(self):
        self.parity("tiny-llama-gqa", 2)

    def test_llama_gqa_dp4(self):
        self.parity("tiny-llama-gqa", 4)

    # Data-parallel gradient buckets: the default (25 MiB: one or two
    # buckets here) runs in every dp test above; small buckets make many,
    # each started while the backward goes on; 0 is one synchronous
    # all-reduce per gradient.
    def test_gpt2_dp2_small_buckets(self):
        self.parity("shakespeare-char-gpt", 2, flags=["--dp-bucket-mb", "0.25"])

    def test_llama_zero1_dp4_small_buckets(self):
        self.parity("tiny-llama-gqa", 4, "dp=4,zero=1", flags=["--dp-bucket-mb", "0.1"])

    def test_gpt2_dp2_tp2_small_buckets(self):
        self.parity("shakespeare-char-gpt", 4, "dp=2,tp=2", flags=["--dp-bucket-mb", "0.25"])

    def test_gpt2_dp2_unbucketed(self):
        self.parity("shakespeare-char-gpt", 2, flags=["--dp-bucket-mb", "0"])

    # Gradient accumulation over micro-batches (llm-microbatch): the same
    # numbers as the whole batch at once.
    def test_gpt2_one_rank_4_microbatches(self):
        self.parity("shakespeare-char-gpt", 1, "dp=1,mb=4")

    def test_llama_dp2_2_microbatches(self):
        self.parity("tiny-llama-gqa", 2, "dp=2,mb=2")

    def test_llama_zero2_dp2_2_microbatches(self):
        # Each micro-batch's gradients are reduce-scattered as computed and
        # the shares summed.
        self.parity("tiny-llama-gqa", 2, "dp=2,zero=2,mb=2")

    def test_gpt2_zero2_dp2_tp2_4_microbatches(self):
        self.parity("shakespeare-char-gpt", 4, "dp=2,tp=2,zero=2,mb=4")

    def test_gpt2_zero3_dp2_tp2_2_microbatches(self):
        self.parity("shakespeare-char-gpt", 4, "dp=2,tp=2,zero=3,mb=2")

    # Recomputation under a budget (the first K layers): the same numbers.
    def test_gpt2_remat_budget(self):
        self.parity("shakespeare-char-gpt", 1, "dp=1,remat=budget:1")

    def test_llama_dp2_remat_budget_2_microbatches(self):
        self.parity("tiny-llama-gqa", 2, "dp=2,remat=budget:1,mb=2")

    def test_trace_has_one_row_per_rank(self):
        # DP2 x TP2: one process row per rank, labeled with its groups,
        # each with its kernels and collectives (TP all-reduces, the
        # data-parallel buckets); Perfetto and chrome://tracing open it.
        exe = compile_for(self.tmp, "shakespeare-char-gpt", 4, "trace-22",
                          plan="dp=2,tp=2,zero=0")
        trace = os.path.join(self.tmp, "trace.json")
        mpirun(4, [exe, "--data", self.data, "--trace", trace] +
               ["--steps", "2"])
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
        names = {e["pid"]: e["args"]["name"] for e in events
                 if e.get("name") == "process_name"}
        self.assertEqual(names, {0: "rank 0 (dp 0, tp 0)", 1: "rank 1 (dp 0, tp 1)",
                                 2: "rank 2 (dp 1, tp 0)", 3: "rank 3 (dp 1, tp 1)"})
        for pid in range(4):
            mine = [e for e in events if e.get("pid") == pid and e.get("ph") == "X"]
            kinds = {e["name"] for e in mine}
            self.assertIn("attention_bwd", kinds)
            self.assertIn("all_reduce", kinds)        # tensor parallel
            self.assertIn("all_reduce_start", kinds)  # data-parallel bucket
            self.assertIn("collective", {e["cat"] for e in mine})
        self.assertFalse([f for f in os.listdir(self.tmp) if ".rank-" in f],
                         "the per-rank parts are removed")

    def test_gpt2_tp2(self):
        self.parity("shakespeare-char-gpt", 2, "tp=2")

    def test_gpt2_tp3(self):
        self.parity("shakespeare-char-gpt", 3, "tp=3")

    def test_llama_gqa_tp2(self):
        self.parity("tiny-llama-gqa", 2, "tp=2")

    def test_llama_tp4(self):
        self.parity("llama-8h", 4, "tp=4")

    def test_gpt2_dp2_tp2(self):
        self.parity("shakespeare-char-gpt", 4, "dp=2,tp=2")

    def test_llama_dp2_tp2(self):
        self.parity("llama-8h", 4, "dp=2,tp=2")

    def test_gpt2_zero1_dp4(self):
        self.parity("shakespeare-char-gpt", 4, "dp=4,zero=1")

    def test_llama_zero1_dp4(self):
        self.parity("tiny-llama-gqa", 4, "dp=4,zero=1")

    def test_llama_zero1_dp2_tp2(self):
        self.parity("llama-8h", 4, "dp=2,tp=2,zero=1")

    def test_gpt2_zero2_dp4(self):
        self.parity("shakespeare-char-gpt", 4, "dp=4,zero=2")

    def test_llama_zero2_dp4(self):
        self.parity("tiny-llama-gqa", 4, "dp=4,zero=2")

    def test_gpt2_zero3_dp4(self):
        self.parity("shakespeare-char-gpt", 4, "dp=4,zero=3")

    def test_llama_zero3_dp4(self):
        self.parity("tiny-llama-gqa", 4, "dp=4,zero=3")

    def test_llama_zero3_dp2_tp2(self):
        self.parity("llama-8h", 4, "dp=2,tp=2,zero=3")

    # Sequence parallelism: norms and residuals on 1/tp of the tokens.
    def test_gpt2_tp2_sp(self):
        self.parity("shakespeare-char-gpt", 2, "tp=2,sp=1")

    def test_llama_gqa_tp2_sp(self):
        self.parity("tiny-llama-gqa", 2, "tp=2,sp=1")

    def test_llama_dp2_tp2_sp_zero3(self):
        self.parity("llama-8h", 4, "dp=2,tp=2,sp=1,zero=3")

    def test_gpt2_tp2_sp_remat_full(self):
        self.parity("shakespeare-char-gpt", 2, "tp=2,sp=1,remat=full")

    # The kept log-sum-exp (--keep-attention-lse) on each rank's heads:
    # grouped-query heads split by tp, recomputed forwards.
    def test_llama_gqa_tp2_sp_remat_full_kept_lse(self):
        self.parity("tiny-llama-gqa", 2, "tp=2,sp=1,remat=full",
                    flags=["--keep-attention-lse"])

    # Full recomputation (llm-rematerialize): the same losses as keeping
    # every activation, alone and with tensor parallelism.
    def test_gpt2_remat_full(self):
        self.parity("shakespeare-char-gpt", 1, "dp=1,remat=full")

    def test_llama_gqa_tp2_remat_full(self):
        self.parity("tiny-llama-gqa", 2, "tp=2,remat=full")

    def test_gpt2_zero3_dp2_remat_full(self):
        self.parity("shakespeare-char-gpt", 2, "dp=2,zero=3,remat=full")

    def resumes_on_one_rank(self, model, devices, plan, tag, seed):
        # A run's 4-step checkpoint continues on one rank as the run itself
        # does (constant learning rate: the schedule does not depend on the
        # run's length).
        hyper = ["--lr", "1e-3", "--min-lr", "1e-3", "--seed", str(seed)]
        many = compile_for(self.tmp, model, devices, tag + "-n", plan=plan)
        one = compile_for(self.tmp, model, 1, tag + "-1")
        ckpt = os.path.join(self.tmp, tag + "-ckpt")
        full = os.path.join(self.tmp, tag + "-full.jsonl")
        tail = os.path.join(self.tmp, tag + "-tail.jsonl")
        mpirun(devices, [many, "--data", self.data, "--steps", "8", "--log",
                         full] + hyper)
        mpirun(devices, [many, "--data", self.data, "--steps", "4", "--save",
                         ckpt] + hyper)
        run([one, "--data", self.data, "--steps", "8", "--resume", ckpt,
             "--log", tail] + hyper)
        got, want = losses(tail), losses(full)[4:]
        self.assertEqual(len(got), 4)
        for a, b in zip(got, want):
            self.assertLessEqual(abs(a - b) / abs(b), 1e-6)

    # Megatron's vocabulary padding: 251 tokens, which tp does not divide.
    def test_padded_vocabulary_gpt2_tp2_sp(self):
        self.parity("gpt2-v251", 2, "tp=2,sp=1")

    def test_padded_vocabulary_gpt2_tp3(self):
        self.parity("gpt2-v251", 3, "tp=3")

    def test_padded_vocabulary_llama_dp2_tp2_sp_zero3(self):
        # Untied: the table and the head's own matrix are both padded; the
        # ZeRO-3 shares cut the padded shards.
        self.parity("llama-v251", 4, "dp=2,tp=2,sp=1,zero=3")

    # The vocabulary padded to an alignment (--vocab-align, Megatron's
    # --make-vocab-size-divisible-by) without tensor parallelism: the same
    # losses as the unpadded one-rank run, with the tied copy of the table on
    # the last pipeline stage, and with the ZeRO shares of the padded tensors.
    def test_vocab_align_gpt2_pp2(self):
        self.parity("gpt2-v251", 2, "pp=2,schedule=1f1b,mb=2",
                    flags=["--vocab-align", "64"])

    def test_vocab_align_llama_dp2_zero3(self):
        self.parity("llama-v251", 2, "dp=2,zero=3", flags=["--vocab-align", "64"])

    def test_vocab_align_llama_dp2_tp2_sp_zero1(self):
        # 251 -> 2 x 128 rows; ZeRO-1's moments are dp shares of them.
        self.parity("llama-v251", 4, "dp=2,tp=2,sp=1,zero=1",
                    flags=["--vocab-align", "64"])

    def test_vocab_align_checkpoint_resumes(self):
        # Saved on one rank with --vocab-align 64 (251 -> 256 rows), the
        # checkpoint has the model's [251, h] tensors and the padding's
        # length; it resumes as the uninterrupted run goes on: under the same
        # padding, without padding, and on TP=2 (2 x 128 rows). A checkpoint
        # saved without padding resumes under it.
        import json
        hyper = ["--lr", "1e-3", "--min-lr", "1e-3", "--seed", "6"]
        padded = compile_for(self.tmp, "llama-v251", 1, "va-pad",
                             flags=["--vocab-align", "64"])
        plain = compile_for(self.tmp, "llama-v251", 1, "va-plain")
        tp2 = compile_for(self.tmp, "llama-v251", 2, "va-tp2", plan="tp=2",
                          flags=["--vocab-align", "64"])
        full = os.path.join(self.tmp, "va-full.jsonl")
        run([padded, "--data", self.data, "--steps", "8", "--log", full] + hyper)
        want = losses(full)[4:]
        for saver, tag in ((padded, "pad"), (plain, "plain")):
            ckpt = os.path.join(self.tmp, "va-ckpt-" + tag)
            run([saver, "--data", self.data, "--steps", "4", "--save", ckpt] + hyper)
            if saver == padded:
                with open(os.path.join(ckpt, "step-00000004", "index.json")) as f:
                    index = json.load(f)
                for name in ("model.embed_tokens.weight", "lm_head.weight",
                             "exp_avg_sq.lm_head.weight"):
                    self.assertEqual(index["tensors"][name]["shape"], [251, 128])
                    self.assertEqual(index["tensors"][name]["tp_padded"], 256)
            resumers = ((plain, "plain", run), (tp2, "tp2", lambda c: mpirun(2, c))) \
                if saver == padded else ((padded, "pad", run),)
            for exe, name, launch in resumers:
                tail = os.path.join(self.tmp, "va-%s-%s.jsonl" % (tag, name))
                launch([exe, "--data", self.data, "--steps", "8", "--resume",
                        ckpt, "--log", tail] + hyper)
                got = losses(tail)
                self.assertEqual(len(got), 4, (tag, name))
                for a, b in zip(got, want):
                    self.assertLessEqual(abs(a - b) / abs(b), 1e-6, (tag, name))

    def saved_like_one_rank(self, model, plan, tag):
        """Saves a 4-rank run under `plan` and the one-rank run after 3
        steps; returns the 4-rank checkpoint's step directory after checking
        that, read in Python (llm_ref.checkpoint), it holds the one-rank
        run's parameters and moments, with their shapes."""
        import numpy as np
        from llm_ref import checkpoint
        hyper = ["--lr", "1e-3", "--min-lr", "1e-3", "--seed", "4",
                 "--steps", "3"]
        four = compile_for(self.tmp, model, 4, tag + "-22", plan=plan)
        one = compile_for(self.tmp, model, 1, tag + "-1")
        c4 = os.path.join(self.tmp, tag + "-ckpt4")
        c1 = os.path.join(self.tmp, tag + "-ckpt1")
        mpirun(4, [four, "--data", self.data, "--save", c4] + hyper)
        run([one, "--data", self.data, "--save", c1] + hyper)
        for optimizer in (False, True):
            mine = checkpoint.load_checkpoint(
                os.path.join(c4, "step-00000003"), optimizer)
            ref = checkpoint.load_checkpoint(
                os.path.join(c1, "step-00000003"), optimizer)
            self.assertEqual(sorted(mine), sorted(ref))
            for name in ref:
                a, b = mine[name], ref[name]
                self.assertEqual(a.shape, b.shape, name)
                err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
                self.assertLessEqual(err, 1e-4, name)
        return os.path.join(c4, "step-00000003")

    def test_padded_vocabulary_checkpoint(self):
        # The pieces cut the padded tensors; resumed on one rank the run
        # continues, and read in Python the tensors have the model's shape
        # (251 rows) and the one-rank run's values.
        import json
        self.resumes_on_one_rank("llama-v251", 4, "dp=2,tp=2,zero=1", "pad", 8)
        step = self.saved_like_one_rank("llama-v251", "dp=2,tp=2,zero=1", "pad")
        with open(os.path.join(step, "index.json")) as f:
            index = json.load(f)
        for name in ("model.embed_tokens.weight", "lm_head.weight",
                     "exp_avg.lm_head.weight"):
            self.assertEqual(index["tensors"][name]["shape"], [251, 128])
            self.assertEqual(index["tensors"][name]["tp_padded"], 252)

    def test_zero3_checkpoint_resumes_on_one_rank(self):
        # ZeRO-3 parameters and moments are dp shares in the checkpoint.
        self.resumes_on_one_rank("tiny-llama-gqa", 4, "dp=4,zero=3", "z3", 6)

    def test_zero1_checkpoint_resumes_on_one_rank(self):
        # ZeRO-1 moments are dp shares of tp shards in the checkpoint.
        self.resumes_on_one_rank("llama-8h", 4, "dp=2,tp=2,zero=1", "z1", 4)

    def test_reshard_tp2_dp2_to_tp4_and_one_rank(self):
        # Each rank saves its shards; loading assembles the whole tensors
        # from the index and cuts them again, so a run saved under TP=2 x
        # DP=2 continues under TP=4 and on one rank. Constant learning
        # rate: the schedule does not depend on the run's length.
        hyper = ["--lr", "1e-3", "--min-lr", "1e-3", "--seed", "5"]
        four = compile_for(self.tmp, "llama-8h", 4, "rs-22", plan="dp=2,tp=2")
        tp4 = compile_for(self.tmp, "llama-8h", 4, "rs-4", plan="tp=4")
        one = compile_for(self.tmp, "llama-8h", 1, "rs-1")
        ckpt = os.path.join(self.tmp, "rs-ckpt")
        full = os.path.join(self.tmp, "rs-full.jsonl")
        mpirun(4, [four, "--data", self.data, "--steps", "8", "--log", full]
               + hyper)
        mpirun(4, [four, "--data", self.data, "--steps", "4", "--save", ckpt]
               + hyper)
        for name, cmd in (("tp=4", lambda l: mpirun(4, [tp4, "--data", self.data,
                                "--steps", "8", "--resume", ckpt, "--log", l] + hyper)),
                          ("1 rank", lambda l: run([one, "--data", self.data,
                                "--steps", "8", "--resume", ckpt, "--log", l] + hyper))):
            log = os.path.join(self.tmp, "rs-%s.jsonl" % name.replace(" ", "").replace("=", ""))
            cmd(log)
            got, want = losses(log), losses(full)[4:]
            self.assertEqual(len(got), 4, name)
            for a, b in zip(got, want):
                self.assertLessEqual(abs(a - b) / abs(b), 1e-6, name)

    def test_sharded_checkpoint_layout(self):
        # Every rank writes its own shards (no gather); index.json maps each
        # global tensor to its pieces. Read back independently in Python
        # (llm_ref.checkpoint), the TP=2 x DP=2 ZeRO-1 checkpoint holds the
        # parameters and moments of the one-rank run at the same step.
        import json
        import numpy as np
        from llm_ref import safetensors_io
        step = self.saved_like_one_rank("llama-8h", "dp=2,tp=2,zero=1", "sh")
        c4 = os.path.dirname(step)
        self.assertEqual(sorted(os.listdir(c4)), ["LATEST", "step-00000003"])
        self.assertEqual(sorted(os.listdir(step)),
                         ["COMPLETE", "index.json"] +
                         ["rank-%05d.safetensors" % r for r in range(4)] +
                         ["state.json"])
        with open(os.path.join(step, "index.json")) as f:
            index = json.load(f)
        self.assertEqual(index["plan"]["tp"], 2)
        self.assertEqual(index["plan"]["dp"], 2)
        # No element is written twice: the files hold exactly the
        # parameters and moments once.
        stored = sum(a.size for r in range(4) for a in safetensors_io.load(
            os.path.join(step, "rank-%05d.safetensors" % r))[0].values())
        whole = sum(int(np.prod(t["shape"]))
                    for t in index["tensors"].values())
        self.assertEqual(stored, whole)

    def test_wrong_world_size_every_rank(self):
        exe = compile_for(self.tmp, "tiny-llama-gqa", 2, "world2")
        p = mpirun(4, [exe, "--data", self.data, "--steps", "2"], check=False)
        self.assertNotEqual(p.returncode, 0)
        for rank in range(4):
            self.assertIn("error: rank %d: this executable was compiled for 2 "
                          "rank(s) but is running in a world of 4" % rank,
                          p.stderr)

    def test_failure_on_all_ranks_ends_the_job(self):
        exe = compile_for(self.tmp, "tiny-llama-gqa", 2, "fail2")
        p = mpirun(2, [exe, "--data", os.path.join(self.tmp, "missing.bin")],
                   check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("missing.bin: cannot open", p.stderr)

    def test_stalled_rank_ends_the_job(self):
        # Rank 1 stalls before its first step (fault injection): rank 0 waits
        # in the gradient all-reduce until its watchdog names it and ends
        # the job, instead of hanging.
        import time
        exe = compile_for(self.tmp, "tiny-llama-gqa", 2, "stall2",
                          plan="dp=2,zero=0")
        env = dict(ENV, LLMRT_WATCHDOG_S="2", LLMRT_TEST_STALL_RANK="1")
        start = time.time()
        p = subprocess.run([MPIRUN, "-np", "2", "--oversubscribe", "-x",
                            "LLMRT_WATCHDOG_S", "-x", "LLMRT_TEST_STALL_RANK",
                            exe, "--data", self.data, "--steps", "3"],
                           capture_output=True, text=True, env=env, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertLess(time.time() - start, 60)
        self.assertIn("error: rank 0: no progress for 2 s in 'all_reduce'",
                      p.stderr)

    def test_checkpoint_resumes_on_one_rank(self):
        # Parameters and moments are replicated under data parallelism.
        self.resumes_on_one_rank("tiny-llama-gqa", 2, "dp=2,zero=0", "dp", 9)


def gpu_visible():
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@unittest.skipUnless(MPIRUN, "mpirun is not installed")
@unittest.skipUnless(os.path.exists(os.path.join(BIN, "llmrt-runner-cuda-mpi")),
                     "this build has no multi-GPU runner")
@unittest.skipIf(gpu_visible(), "a GPU is visible: bench/gpu runs GPU jobs")
class MultiGpuExecutablesWithoutGpu(WithData):
    """Multi-GPU executables (--target cuda --devices N: NCCL between the
    GPUs, MPI on the hosts) build for every kind of plan; launched where no
    GPU is visible, every rank ends with the reason, after the check that
    the pipeline's sends and receives pair in order on each link (what
    NCCL needs), and nothing hangs."""

    def test_plans_build_and_every_rank_says_why_it_stops(self):
        for name, model, devices, plan in [
                ("dp2tp2", "tiny-llama-gqa", 4, "dp=2,tp=2,zero=1"),
                ("zero3", "tiny-llama-gqa", 2, "dp=2,zero=3"),
                ("pp2", "shakespeare-char-gpt", 2, "pp=2,schedule=1f1b,mb=4"),
                ("pp2v2", "shakespeare-char-gpt", 2, "pp=2,vpp=2,schedule=interleaved,mb=4"),
                ("pp2tp2sp", "tiny-llama-gqa", 4, "pp=2,tp=2,sp=1,mb=2")]:
            with self.subTest(plan=plan):
                layers = 4 if "vpp=2" in plan else 2
                exe = compile_for(self.tmp, model, devices, "cuda-" + name,
                                  layers=layers, plan=plan,
                                  flags=["--target", "cuda"])
                p = mpirun(devices, [exe, "--data", self.data, "--steps", "1"],
                           check=False)
                self.assertNotEqual(p.returncode, 0)
                for rank in range(devices):
                    self.assertIn("error: rank %d: no CUDA device is visible"
                                  % rank, p.stderr)


if __name__ == "__main__":
    unittest.main()
