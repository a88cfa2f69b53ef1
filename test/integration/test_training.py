"""The compiled executable on its own: resume continues bit for bit, an
incomplete checkpoint is never loaded, bad inputs give clear errors, logs
and traces have the contract's fields."""
import json
import os
import shutil
import struct
import unittest

from common import compile_model, losses, run, subprocess, tempdir, token_file
from llm_ref import checkpoint  # noqa: E402

CONST_LR = ["--lr", "1e-3", "--min-lr", "1e-3", "--warmup", "0", "--seed", "5"]


def fails(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return p.returncode, p.stderr


class TrainingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempdir()
        cls.tmp = cls.tmpdir.name
        cls.data = token_file(cls.tmp)
        cls.exe = compile_model(cls.tmp, "tiny-llama-gqa", 2, 16, 1)

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_bf16_model_trains_as_f32_on_the_cpu(self):
        # A bf16 model (llm-import --dtype bf16) is mixed-precision training:
        # the runtime keeps f32 master weights and storage, and the CPU
        # computes in f32, so its losses are the f32 model's, bit for bit;
        # the program says the matrix products' precision (bf16 on GPUs).
        from common import BIN, MODELS
        mlir, exe = self.path("bf16.mlir"), self.path("bf16.exe")
        run([os.path.join(BIN, "llm-import"), "--hf-config",
             os.path.join(MODELS, "tiny-llama-gqa.json"), "--batch", "2",
             "--seq", "16", "--layers", "1", "--dtype", "bf16", "-o", mlir])
        run([os.path.join(BIN, "llm-compile"), mlir, "-o", exe])
        a, b = self.path("f32.jsonl"), self.path("bf16.jsonl")
        run([self.exe, "--data", self.data, "--steps", "5", "--log", a])
        run([exe, "--data", self.data, "--steps", "5", "--log", b])
        self.assertEqual(losses(a), losses(b))
        self.assertEqual(len(losses(b)), 5)
        plan = subprocess.run(
            [os.path.join(BIN, "llm-compile"), mlir, "--target", "cuda",
             "--explain", "--devices", "1", "--cluster",
             os.path.join(MODELS, "..", "clusters", "dgx-h100-80g.json")],
            capture_output=True, text=True)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertIn("bf16 matrix products on fp32 storage", plan.stdout)

    def test_kept_attention_lse_trains_identically(self):
        # --keep-attention-lse: attention_fwd gets the log-sum-exp output and
        # attention_bwd the forward's output and it (9 operands); the CPU
        # writes the statistics and its backward still recomputes, so the
        # losses are the default program's, bit for bit. Micro-batches and
        # full recomputation pair each gradient with its own forward.
        for plan in ("mb=1,remat=none", "mb=2,remat=full"):
            flags = ["--plan", "dp=1,tp=1,pp=1,zero=0,sp=0," + plan]
            tag = plan.replace(",", "-").replace("=", "")
            a = compile_model(self.tmp, "tiny-llama-gqa", 2, 16, 2, "plain-" + tag, flags)
            b = compile_model(self.tmp, "tiny-llama-gqa", 2, 16, 2, "lse-" + tag,
                              flags + ["--keep-attention-lse", "--emit=mlir"])
            with open(b) as f:
                ir = f.read()
            # Two layers, and with recomputation the recomputed forwards.
            self.assertGreaterEqual(ir.count('llmrt.kernel "attention_bwd"'), 2)
            for line in ir.splitlines():
                if 'llmrt.kernel "attention_bwd"' in line:
                    self.assertEqual(line.split("(")[1].split(")")[0].count("%"), 9, line)
            b = compile_model(self.tmp, "tiny-llama-gqa", 2, 16, 2, "lse-" + tag,
                              flags + ["--keep-attention-lse"])
            la, lb = self.path("plain-%s.jsonl" % tag), self.path("lse-%s.jsonl" % tag)
            run([a, "--data", self.data, "--steps", "4", "--log", la])
            run([b, "--data", self.data, "--steps", "4", "--log", lb])
            self.assertEqual(len(losses(lb)), 4)
            self.assertEqual(losses(la), losses(lb))

    def test_runtime_packed_arena_trains_identically(self):
        # LLMRT_ARENA_REPACK=1: the temporaries packed anew by the runtime
        # (runtime/include/llmrt/ArenaPack.h, the layout the CUDA executor
        # packs with its 16-bit tensors' sizes) over an arena of NaNs. A
        # temporary placed over one still live, or read before it is
        # written, changes the losses; the same layout must give the same
        # bits. Micro-batches with full recomputation, the compiler's fused
        # norms, and the eval function over the same region.
        val = self.path("val.bin")
        shutil.copy(self.data, val)
        for tag, flags in (("plain", []),
                           ("mb2-remat", ["--plan", "dp=1,tp=1,pp=1,zero=0,sp=0,mb=2,remat=full"]),
                           ("fuse-norms", ["--fuse-norms"])):
            exe = compile_model(self.tmp, "shakespeare-char-gpt", 2, 32, 2, "repack-" + tag, flags)
            la, lb = self.path("repack-a-%s.jsonl" % tag), self.path("repack-b-%s.jsonl" % tag)
            args = ["--data", self.data, "--val", val, "--eval-every", "2", "--steps", "4"]
            run([exe] + args + ["--log", la])
            env = dict(os.environ, LLMRT_ARENA_REPACK="1")
            run([exe] + args + ["--log", lb], env=env)
            self.assertEqual(len(losses(lb)), 4, tag)
            self.assertEqual(losses(la), losses(lb), tag)
            self.assertEqual(losses(la, "val_loss"), losses(lb, "val_loss"), tag)
            self.assertEqual(len(losses(lb, "val_loss")), 2, tag)
        env = dict(os.environ, LLMRT_ARENA_REPACK="2")
        code, err = fails([exe, "--data", self.data, "--steps", "1"], env=env)
        self.assertNotEqual(code, 0)
        self.assertIn("LLMRT_ARENA_REPACK='2' is not 0 or 1", err)

    def test_loss_scaling(self):
        # A static power-of-two scale changes no bit: the backward starts
        # from 1024 x the loss gradient, the norm and the update divide it
        # out exactly.
        plain, scaled = self.path("ls-plain.jsonl"), self.path("ls-1024.jsonl")
        run([self.exe, "--data", self.data, "--steps", "5", "--log", plain] + CONST_LR)
        run([self.exe, "--data", self.data, "--steps", "5", "--log", scaled,
             "--loss-scale", "1024"] + CONST_LR)
        self.assertEqual(losses(plain), losses(scaled))
        self.assertEqual(losses(plain, "grad_norm"), losses(scaled, "grad_norm"))
        # Dynamic scaling: an overflow (injected in the third step's
        # gradients) skips that update and halves the scale; the parameters
        # are then those of the two-step run (constant learning rate), and
        # the optimizer has taken two steps.
        dyn, two = self.path("ls-dyn.jsonl"), self.path("ls-two.jsonl")
        ck_dyn, ck_two = self.path("ls-dyn-ckpt"), self.path("ls-two-ckpt")
        env = dict(os.environ, LLMRT_TEST_OVERFLOW_RUN="3")
        p = subprocess.run([self.exe, "--data", self.data, "--steps", "3", "--log", dyn,
                            "--loss-scale", "dynamic", "--save", ck_dyn] + CONST_LR,
                           env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("step     3: gradient overflow at loss scale 65536: update "
                      "skipped, scale halved", p.stderr)
        with open(dyn) as f:
            recs = [json.loads(l) for l in f]
        self.assertEqual([r["skipped"] for r in recs], [False, False, True])
        self.assertEqual([r["loss_scale"] for r in recs], [65536, 65536, 65536])
        self.assertEqual([r["optimizer_step"] for r in recs], [1, 2, 2])
        run([self.exe, "--data", self.data, "--steps", "2", "--save", ck_two] + CONST_LR)
        a = checkpoint.load_checkpoint(os.path.join(ck_dyn, "step-00000003"))
        b = checkpoint.load_checkpoint(os.path.join(ck_two, "step-00000002"))
        for name in b:
            self.assertTrue((a[name] == b[name]).all(), name)
        with open(os.path.join(ck_dyn, "step-00000003", "state.json")) as f:
            state = json.load(f)
        self.assertEqual((state["loss_scale"], state["optimizer_step"]), (32768, 2))
        # Bad values are refused by name.
        p = subprocess.run([self.exe, "--data", self.data, "--loss-scale", "0"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("flag --loss-scale: '0' is not 'dynamic' or a positive scale",
                      p.stderr)
        # A checkpoint saved without scaling resumes a dynamic run at 2^16,
        # not at its scale of 1.
        plain_ck, res = self.path("ls-plain-ckpt"), self.path("ls-res.jsonl")
        run([self.exe, "--data", self.data, "--steps", "2", "--save", plain_ck] + CONST_LR)
        run([self.exe, "--data", self.data, "--steps", "3", "--resume", plain_ck,
             "--loss-scale", "dynamic", "--log", res] + CONST_LR)
        with open(res) as f:
            self.assertEqual([json.loads(l)["loss_scale"] for l in f], [65536])
        # An overflow under a static scale is an error, not a silent skip.
        p = subprocess.run([self.exe, "--data", self.data, "--steps", "3",
                            "--loss-scale", "1024"] + CONST_LR,
                           env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("the gradient norm is not finite at step 3 under the static "
                      "loss scale 1024", p.stderr)

    def test_resume_is_bit_exact(self):
        # With a constant learning rate the first 10 steps of a 20-step run
        # are the same run as a 10-step one.
        full, first, second = (self.path(n) for n in ("full.jsonl",
                                                       "a.jsonl", "b.jsonl"))
        ckpt = self.path("resume-ckpt")
        run([self.exe, "--data", self.data, "--steps", "20", "--log", full]
            + CONST_LR)
        run([self.exe, "--data", self.data, "--steps", "10", "--log", first,
             "--save", ckpt] + CONST_LR)
        run([self.exe, "--data", self.data, "--steps", "20", "--log", second,
             "--resume", ckpt, "--save", ckpt, "--save-every", "5"] + CONST_LR)
        self.assertEqual(losses(full), losses(first) + losses(second))
        self.assertEqual(len(losses(full)), 20)
        with open(os.path.join(ckpt, "LATEST")) as f:
            self.assertEqual(f.read().strip(), "step-00000020")
        for step in (10, 15, 20):
            self.assertTrue(os.path.exists(os.path.join(
                ckpt, "step-%08d" % step, "COMPLETE")))

    def test_incomplete_checkpoint_is_not_loaded(self):
        ckpt = self.path("broken-ckpt")
        run([self.exe, "--data", self.data, "--steps", "2", "--save", ckpt]
            + CONST_LR)
        os.remove(os.path.join(ckpt, "step-00000002", "COMPLETE"))
        code, err = fails([self.exe, "--data", self.data, "--steps", "4",
                           "--resume", ckpt] + CONST_LR)
        self.assertNotEqual(code, 0)
        self.assertIn("incomplete checkpoint (no COMPLETE marker)", err)
        # Without the LATEST pointer the newest complete one is used; here
        # there is none.
        os.remove(os.path.join(ckpt, "LATEST"))
        code, err = fails([self.exe, "--data", self.data, "--steps", "4",
                           "--resume", ckpt] + CONST_LR)
        self.assertIn("no complete checkpoint to resume from", err)

    def test_latest_pointing_at_a_missing_step_falls_back(self):
        # A crash while a step's directory was being replaced leaves LATEST
        # naming a directory that is gone: the newest complete one is used.
        ckpt = self.path("gone-ckpt")
        run([self.exe, "--data", self.data, "--steps", "2", "--save", ckpt,
             "--save-every", "1"] + CONST_LR)
        shutil.rmtree(os.path.join(ckpt, "step-00000002"))
        p = run([self.exe, "--data", self.data, "--steps", "3", "--resume",
                 ckpt] + CONST_LR)
        self.assertIn("resumed from %s/step-00000001 at step 1" % ckpt,
                      p.stderr)

    def test_damaged_sharded_checkpoint_is_refused(self):
        import json
        ckpt = self.path("damaged-ckpt")
        run([self.exe, "--data", self.data, "--steps", "2", "--save", ckpt]
            + CONST_LR)
        step = os.path.join(ckpt, "step-00000002")
        index_path = os.path.join(step, "index.json")
        with open(index_path) as f:
            good = f.read()
        resume = [self.exe, "--data", self.data, "--steps", "4", "--resume",
                  ckpt] + CONST_LR

        def damaged(edit):
            index = json.loads(good)
            edit(index)
            with open(index_path, "w") as f:
                json.dump(index, f)
            code, err = fails(resume)
            self.assertNotEqual(code, 0)
            return err

        name = "model.layers.0.self_attn.q_proj.weight"
        err = damaged(lambda i: i["tensors"].pop(name))
        self.assertIn("index.json: missing tensor '%s'" % name, err)
        err = damaged(lambda i: i["tensors"][name].update(shape=[3, 5]))
        self.assertIn("tensor '%s': has shape [3x5], the model needs" % name,
                      err)
        err = damaged(lambda i: i["tensors"][name].update(pieces=[]))
        self.assertIn("tensor '%s': no piece for tp rank 0, dp rank 0" % name,
                      err)
        err = damaged(lambda i: i["tensors"][name]["pieces"][0].update(
            file="../x.safetensors"))
        self.assertIn("is not a rank-R.safetensors name", err)
        err = damaged(lambda i: i["plan"].update(tp=0))
        self.assertIn("the plan's tp and dp must be positive", err)
        with open(index_path, "w") as f:
            f.write(good)
        os.remove(os.path.join(step, "rank-00000.safetensors"))
        code, err = fails(resume)
        self.assertNotEqual(code, 0)
        self.assertIn("rank-00000.safetensors", err)

    def test_log_and_trace_fields(self):
        log, trace = self.path("fields.jsonl"), self.path("trace.json")
        val = self.path("val.bin")
        shutil.copy(self.data, val)
        run([self.exe, "--data", self.data, "--val", val, "--eval-every", "2",
             "--steps", "3", "--log", log, "--trace", trace] + CONST_LR)
        with open(log) as f:
            recs = [json.loads(l) for l in f]
        steps = [r for r in recs if "loss" in r]
        self.assertEqual(len(steps), 3)
        for key in ("step", "loss", "lr", "grad_norm", "step_time_s",
                    "tokens_per_s", "model_tflops_per_device",
                    "peak_mem_bytes"):
            self.assertIn(key, steps[0])
        self.assertEqual([r["step"] for r in recs if "val_loss" in r], [2, 3])
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
        names = {e["name"] for e in events}
        self.assertIn("attention_bwd", names)
        self.assertIn("adamw", names)
        # Each kernel carries its integer operands: the attention's are
        # {B, S, Hq, Hkv, D, causal} of this model (tiny Llama: 4 query
        # heads of 32 (hidden 128) over 2 key/value heads, batch 2 x 16,
        # causal).
        attn = [e for e in events if e["name"] == "attention_fwd"]
        self.assertTrue(attn)
        for e in attn:
            self.assertEqual(e["args"]["ints"], [2, 16, 4, 2, 32, 1])

    def test_bad_inputs(self):
        bad = self.path("bad.bin")
        with open(bad, "wb") as f:
            f.write(struct.pack("<256i", 1234, 1, 3, *([0] * 253)))
            f.write(b"\x01\x00\x02\x00\x03\x00")
        code, err = fails([self.exe, "--data", bad])
        self.assertEqual(code, 1)
        self.assertIn("offset 0: bad magic 1234", err)
        self.assertIn("rank 0", err)

        big = self.path("vocab.bin")
        with open(big, "wb") as f:
            f.write(struct.pack("<256i", 20240520, 1, 40, *([0] * 253)))
            f.write(struct.pack("<40H", *([7] * 39 + [300])))
        code, err = fails([self.exe, "--data", big])
        self.assertIn("offset 1102: token 300 (index 39) is outside the "
                      "vocabulary of 256", err)

        code, err = fails([self.exe, "--data", self.data, "--lr", "fast"])
        self.assertEqual(code, 2)
        self.assertIn("flag --lr: 'fast' is not a number", err)
        code, err = fails([self.exe, "--steps", "3"])
        self.assertIn("flag --data is required", err)
        code, err = fails([self.exe, "--data", self.data, "--bogus", "1"])
        self.assertIn("unknown flag --bogus", err)

        env = dict(os.environ, OMPI_COMM_WORLD_SIZE="4")
        code, err = fails([self.exe, "--data", self.data], env=env)
        self.assertEqual(code, 1)
        self.assertIn("compiled for 1 rank(s) but is running in a world of 4",
                      err)

    def test_init_file_errors(self):
        # An init from another model: the first missing tensor is named.
        init = self.path("wrong.safetensors")
        header = json.dumps({"wte.weight": {"dtype": "F32", "shape": [2, 2],
                                            "data_offsets": [0, 16]}}).encode()
        header += b" " * (-len(header) % 8)
        with open(init, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + b"\0" * 16)
        code, err = fails([self.exe, "--data", self.data, "--init", init])
        self.assertEqual(code, 1)
        self.assertIn("missing tensors 'lm_head.weight', 'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight'", err)


if __name__ == "__main__":
    unittest.main()
