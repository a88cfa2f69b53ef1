"""Multi-rank executables under mpirun (Open MPI, shared memory): the loss
of each of 20 steps equals the one-rank run's within 1e-5 relative; the
data-parallel ranks together see the one-rank batch; a world of the wrong
size is refused on every rank; a checkpoint written by a data-parallel run
resumes on one rank."""
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
                       text=True, env=ENV, timeout=600)
    if check and p.returncode != 0:
        raise RuntimeError("mpirun failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def compile_for(tmp, model, devices, name, batch=8, seq=32, layers=2):
    mlir = os.path.join(tmp, name + ".mlir")
    exe = os.path.join(tmp, name + ".exe")
    run([os.path.join(BIN, "llm-import"), "--hf-config",
         os.path.join(MODELS, model + ".json"), "--batch", str(batch),
         "--seq", str(seq), "--layers", str(layers), "-o", mlir])
    run([os.path.join(BIN, "llm-compile"), mlir, "--devices", str(devices),
         "-o", exe])
    return exe


@unittest.skipUnless(MPIRUN, "mpirun is not installed")
class DistributedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempdir()
        cls.tmp = cls.tmpdir.name
        cls.data = token_file(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def parity(self, model, devices):
        one = compile_for(self.tmp, model, 1, model + "-1")
        many = compile_for(self.tmp, model, devices, "%s-%d" % (model, devices))
        ref_log = os.path.join(self.tmp, "%s-ref.jsonl" % model)
        log = os.path.join(self.tmp, "%s-%d.jsonl" % (model, devices))
        run([one, "--data", self.data, "--log", ref_log] + HYPER)
        mpirun(devices, [many, "--data", self.data, "--log", log] + HYPER)
        ref, got = losses(ref_log), losses(log)
        self.assertEqual(len(ref), 20)
        self.assertEqual(len(got), 20)
        for step, (a, b) in enumerate(zip(got, ref), 1):
            self.assertLessEqual(abs(a - b) / abs(b), 1e-5,
                                 "%s dp=%d step %d: %.9g vs one rank %.9g"
                                 % (model, devices, step, a, b))

    def test_gpt2_dp2(self):
        self.parity("shakespeare-char-gpt", 2)

    def test_gpt2_dp4(self):
        self.parity("shakespeare-char-gpt", 4)

    def test_llama_gqa_dp2(self):
        self.parity("tiny-llama-gqa", 2)

    def test_llama_gqa_dp4(self):
        self.parity("tiny-llama-gqa", 4)

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

    def test_checkpoint_resumes_on_one_rank(self):
        # Parameters and moments are replicated under data parallelism: the
        # checkpoint of a 2-rank run continues on one rank exactly as the
        # 2-rank run would (constant learning rate).
        hyper = ["--lr", "1e-3", "--min-lr", "1e-3", "--seed", "9"]
        two = compile_for(self.tmp, "tiny-llama-gqa", 2, "ck2")
        one = compile_for(self.tmp, "tiny-llama-gqa", 1, "ck1")
        ckpt = os.path.join(self.tmp, "dp-ckpt")
        full = os.path.join(self.tmp, "dp-full.jsonl")
        tail = os.path.join(self.tmp, "dp-tail.jsonl")
        mpirun(2, [two, "--data", self.data, "--steps", "8", "--log", full]
               + hyper)
        mpirun(2, [two, "--data", self.data, "--steps", "4", "--save", ckpt]
               + hyper)
        run([one, "--data", self.data, "--steps", "8", "--resume", ckpt,
             "--log", tail] + hyper)
        for a, b in zip(losses(tail), losses(full)[4:]):
            self.assertLessEqual(abs(a - b) / abs(b), 1e-6)
        self.assertEqual(len(losses(tail)), 4)


if __name__ == "__main__":
    unittest.main()
