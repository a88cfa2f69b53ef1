"""Self-checks of the PyTorch reference.

  /usr/bin/python3 -m unittest python/llm_ref/test_ref.py
  /usr/bin/python3 -m unittest discover -s python/llm_ref
"""
import io
import json
import math
import os
import struct
import sys
import tempfile
import types
import unittest
from contextlib import redirect_stderr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils import stateless  # noqa: E402

import data  # noqa: E402
import model as M  # noqa: E402
import safetensors_io as st  # noqa: E402
import train_ref  # noqa: E402

TINY_GPT2 = {"model_type": "gpt2", "n_embd": 16, "n_head": 4, "n_layer": 1,
             "n_positions": 8, "vocab_size": 11, "n_inner": 24}
TINY_LLAMA = {"model_type": "llama", "hidden_size": 16, "num_attention_heads": 4,
              "num_key_value_heads": 2, "num_hidden_layers": 1, "intermediate_size": 24,
              "max_position_embeddings": 8, "vocab_size": 11, "rms_norm_eps": 1e-5,
              "rope_theta": 100.0}


class SafetensorsTest(unittest.TestCase):
    def test_round_trip(self):
        rng = np.random.default_rng(0)
        tensors = {"b.weight": rng.standard_normal((3, 5)).astype(np.float32),
                   "a.bias": rng.standard_normal(7).astype(np.float32),
                   "scalar": np.array(2.5, dtype=np.float32),
                   "empty": np.zeros((0, 4), dtype=np.float32)}
        with tempfile.TemporaryDirectory() as d:
            for dtype, tol in (("F32", 0), ("BF16", 2 ** -8), ("F16", 2 ** -11)):
                p = os.path.join(d, f"t_{dtype}.safetensors")
                st.save(p, tensors, {"k": "v"}, dtype=dtype)
                raw = open(p, "rb").read()
                (n,) = struct.unpack("<Q", raw[:8])
                self.assertEqual(n % 8, 0)
                header = json.loads(raw[8:8 + n])
                self.assertEqual(header["__metadata__"], {"k": "v"})
                self.assertEqual(list(header)[1:], list(tensors))  # order kept
                self.assertEqual(header["b.weight"]["dtype"], dtype)
                self.assertEqual(header["b.weight"]["shape"], [3, 5])
                self.assertEqual(header["b.weight"]["data_offsets"][0], 0)
                self.assertEqual(len(raw), 8 + n + header["empty"]["data_offsets"][1])
                out, md = st.load(p)
                self.assertEqual(md, {"k": "v"})
                self.assertEqual(list(out), list(tensors))
                for k, v in tensors.items():
                    self.assertEqual(out[k].dtype, np.float32)
                    self.assertEqual(out[k].shape, v.shape)
                    np.testing.assert_allclose(out[k], v, rtol=tol, atol=0)

    def test_bf16_bits(self):
        bits = st.f32_to_bf16_bits(np.array([1.0, -2.0, 0.0, np.inf], dtype=np.float32))
        self.assertEqual([int(b) for b in bits], [0x3F80, 0xC000, 0x0000, 0x7F80])
        # round to nearest even: 1 + 2^-8 is a tie -> 1.0; 1 + 3*2^-8 -> 1 + 2^-6
        bits = st.f32_to_bf16_bits(np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=np.float32))
        self.assertEqual([int(b) for b in bits], [0x3F80, 0x3F82])
        self.assertTrue(np.isnan(st.bf16_bits_to_f32(st.f32_to_bf16_bits(np.float32("nan")))))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "one.safetensors")
            st.save(p, {"x": np.ones(2, np.float32)}, dtype="BF16")
            raw = open(p, "rb").read()
            self.assertEqual(raw[-4:], bytes([0x80, 0x3F, 0x80, 0x3F]))

    def test_load_rejects_bad_offsets(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "bad.safetensors")
            h = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
            h += b" " * (-len(h) % 8)
            open(p, "wb").write(struct.pack("<Q", len(h)) + h + bytes(16))
            with self.assertRaises(ValueError):
                st.load(p)


class DataTest(unittest.TestCase):
    def test_splitmix64_reference(self):
        r = data.SplitMix64(0)
        self.assertEqual([r.next() for _ in range(3)],
                         [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F])
        r = data.SplitMix64(2 ** 64 - 1)  # wraparound of the state
        self.assertLess(r.next(), 2 ** 64)

    def test_token_file_and_batches(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.bin")
            toks = (np.arange(50) * 7 % 256).astype(np.uint16)
            data.write_tokens(p, toks)
            self.assertEqual(os.path.getsize(p), 1024 + 100)
            head = np.fromfile(p, dtype="<i4", count=3)
            self.assertEqual(list(head), [20240520, 1, 50])
            got = data.read_tokens(p, 256)
            np.testing.assert_array_equal(got, toks)
            with self.assertRaisesRegex(ValueError, "offset 1026"):
                data.read_tokens(p, 7)  # token 7 at index 1
            open(p, "ab").write(b"\0")
            with self.assertRaisesRegex(ValueError, "declares 50 tokens"):
                data.read_tokens(p)
        B, S, N = 3, 4, 50
        x, y = data.sample_batch(toks, B, S, data.SplitMix64(0))
        offs = [0xE220A8397B1DCDAF % (N - S), 0x6E789E6AA1B965F4 % (N - S),
                0x06C45D188009454F % (N - S)]
        for b, off in enumerate(offs):
            np.testing.assert_array_equal(x[b], toks[off:off + S])
            np.testing.assert_array_equal(y[b], toks[off + 1:off + S + 1])
        self.assertEqual(x.dtype, np.int64)


class LrScheduleTest(unittest.TestCase):
    def test_points(self):
        f = lambda t: train_ref.lr_at(t, 3e-4, 3e-5, 2, 10)  # noqa: E731
        self.assertAlmostEqual(f(0), 1.5e-4, delta=1e-18)
        self.assertAlmostEqual(f(1), 3e-4, delta=1e-18)
        self.assertAlmostEqual(f(2), 3e-4, delta=1e-18)        # progress 0
        self.assertAlmostEqual(f(6), 1.65e-4, delta=1e-18)     # progress 1/2
        self.assertAlmostEqual(f(9), 4.0276263111e-05, delta=1e-15)  # progress 7/8: cos(7pi/8)
        self.assertAlmostEqual(train_ref.lr_at(0, 1e-3, 0, 0, 1), 1e-3, delta=1e-18)
        self.assertAlmostEqual(train_ref.lr_at(3, 1e-3, 0, 0, 4), 1.4644660940672625e-04,
                               delta=1e-18)  # (1 + cos(3pi/4)) / 2 * 1e-3


# ---------------------------------------------------------------------------
# Independent numpy (float64) forward passes written from the specification,
# with per-head loops and the runtime's pairwise rotary formula.


def _np_layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _np_attention(q, k, v, H, KV):
    B, S, _ = q.shape
    D = q.shape[-1] // H
    out = np.zeros_like(q)
    for b in range(B):
        for h in range(H):
            g = h // (H // KV)
            qh, kh, vh = q[b, :, h * D:(h + 1) * D], k[b, :, g * D:(g + 1) * D], v[b, :, g * D:(g + 1) * D]
            s = qh @ kh.T / math.sqrt(D)
            s[np.triu_indices(S, 1)] = -np.inf
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[b, :, h * D:(h + 1) * D] = p @ vh
    return out


def _np_xent(logits, targets):
    l2 = logits.reshape(-1, logits.shape[-1])
    m = l2.max(-1, keepdims=True)
    lse = np.log(np.exp(l2 - m).sum(-1)) + m[:, 0]
    return float(np.mean(lse - l2[np.arange(len(l2)), targets.reshape(-1)]))


def np_gpt2_loss(P, c, ids, targets):
    S = ids.shape[1]
    x = P["wte.weight"][ids] + P["wpe.weight"][:S]
    for i in range(c.layers):
        p = lambda n: P[f"h.{i}.{n}"]  # noqa: E731
        a = _np_layernorm(x, p("ln_1.weight"), p("ln_1.bias"), c.eps)
        qkv = a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")
        h = c.hidden
        y = _np_attention(qkv[..., :h], qkv[..., h:2 * h], qkv[..., 2 * h:], c.heads, c.heads)
        x = x + y @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        m = _np_layernorm(x, p("ln_2.weight"), p("ln_2.bias"), c.eps)
        u = m @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias")
        u = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
        x = x + u @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    x = _np_layernorm(x, P["ln_f.weight"], P["ln_f.bias"], c.eps)
    W = P["wte.weight"] if c.tie else P["lm_head.weight"]
    return _np_xent(x @ W.T, targets)


def _np_rope(x, H, D, theta):
    B, S, _ = x.shape
    y = np.empty_like(x)
    d = D // 2
    for h in range(H):
        for i in range(d):
            f = theta ** (-2.0 * i / D)
            a = np.arange(S) * f
            x0, x1 = x[:, :, h * D + i], x[:, :, h * D + i + d]
            y[:, :, h * D + i] = x0 * np.cos(a) - x1 * np.sin(a)
            y[:, :, h * D + i + d] = x1 * np.cos(a) + x0 * np.sin(a)
    return y


def np_llama_loss(P, c, ids, targets):
    rms = lambda x, w: x / np.sqrt((x ** 2).mean(-1, keepdims=True) + c.eps) * w  # noqa: E731
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731
    D = c.head_dim
    x = P["model.embed_tokens.weight"][ids]
    for i in range(c.layers):
        p = lambda n: P[f"model.layers.{i}.{n}"]  # noqa: E731
        a = rms(x, p("input_layernorm.weight"))
        q = _np_rope(a @ p("self_attn.q_proj.weight").T, c.heads, D, c.rope_theta)
        k = _np_rope(a @ p("self_attn.k_proj.weight").T, c.kv_heads, D, c.rope_theta)
        v = a @ p("self_attn.v_proj.weight").T
        x = x + _np_attention(q, k, v, c.heads, c.kv_heads) @ p("self_attn.o_proj.weight").T
        m = rms(x, p("post_attention_layernorm.weight"))
        g = silu(m @ p("mlp.gate_proj.weight").T) * (m @ p("mlp.up_proj.weight").T)
        x = x + g @ p("mlp.down_proj.weight").T
    x = rms(x, P["model.norm.weight"])
    W = P["model.embed_tokens.weight"] if c.tie else P["lm_head.weight"]
    return _np_xent(x @ W.T, targets)


def _tiny(cfg, seed=0):
    m = M.build_model(dict(cfg))
    train_ref.init_params(m, seed, "random")
    with torch.no_grad():  # larger weights so the check is not near-linear
        for n, p in m.named_parameters():
            if p.dim() >= 2:
                p.mul_(10.0)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (2, 5), generator=g)
    tg = torch.randint(0, cfg["vocab_size"], (2, 5), generator=g)
    return m, ids, tg


EXPECTED_NAMES = {
    "gpt2": ["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias",
             "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight",
             "h.0.attn.c_proj.bias", "h.0.ln_2.weight", "h.0.ln_2.bias",
             "h.0.mlp.c_fc.weight", "h.0.mlp.c_fc.bias", "h.0.mlp.c_proj.weight",
             "h.0.mlp.c_proj.bias", "ln_f.weight", "ln_f.bias"],
    "llama": ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
              "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
              "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
              "model.layers.0.post_attention_layernorm.weight",
              "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
              "model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"],
}


class ModelTest(unittest.TestCase):
    def test_names_and_shapes(self):
        g = M.build_model(dict(TINY_GPT2))
        self.assertEqual([n for n, _ in M.named_params(g)], EXPECTED_NAMES["gpt2"])
        shapes = dict((n, tuple(p.shape)) for n, p in M.named_params(g))
        self.assertEqual(shapes["h.0.attn.c_attn.weight"], (16, 48))
        self.assertEqual(shapes["h.0.mlp.c_fc.weight"], (16, 24))
        self.assertEqual(shapes["h.0.mlp.c_proj.weight"], (24, 16))
        g2 = M.build_model(dict(TINY_GPT2, tie_word_embeddings=False, n_inner=None))
        self.assertEqual(M.named_params(g2)[-1][0], "lm_head.weight")
        self.assertEqual(dict(M.named_params(g2))["h.0.mlp.c_fc.weight"].shape, (16, 64))
        l = M.build_model(dict(TINY_LLAMA))
        self.assertEqual([n for n, _ in M.named_params(l)], EXPECTED_NAMES["llama"])
        shapes = dict((n, tuple(p.shape)) for n, p in M.named_params(l))
        self.assertEqual(shapes["model.layers.0.self_attn.k_proj.weight"], (8, 16))
        self.assertEqual(shapes["model.layers.0.self_attn.q_proj.weight"], (16, 16))
        self.assertEqual(shapes["model.layers.0.mlp.down_proj.weight"], (16, 24))
        l2 = M.build_model(dict(TINY_LLAMA, tie_word_embeddings=True))
        self.assertNotIn("lm_head.weight", dict(M.named_params(l2)))

    def test_example_configs_parse(self):
        d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "models")
        if not os.path.isdir(d):
            self.skipTest("examples/models not found")
        got = {f: M.load_config(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".json")}
        if "gpt2.json" in got:
            c = got["gpt2.json"]
            self.assertEqual((c.hidden, c.heads, c.layers, c.ffn, c.vocab, c.tie),
                             (768, 12, 12, 3072, 50257, True))
        if "llama-2-7b.json" in got:
            c = got["llama-2-7b.json"]
            self.assertEqual((c.hidden, c.kv_heads, c.ffn, c.eps, c.tie), (4096, 32, 11008, 1e-5, False))

    def _check_forward(self, cfg, np_loss):
        m, ids, tg = _tiny(cfg)
        m = m.double()
        P = {n: p.detach().numpy() for n, p in M.named_params(m)}
        ref = np_loss(P, m.config, ids.numpy(), tg.numpy())
        got = m(ids, tg).item()
        self.assertAlmostEqual(got, ref, delta=1e-10 * abs(ref))
        self.assertGreater(abs(got - math.log(cfg["vocab_size"])), 1e-3)  # not trivial

    def test_forward_gpt2_matches_numpy(self):
        self._check_forward(TINY_GPT2, np_gpt2_loss)
        self._check_forward(dict(TINY_GPT2, tie_word_embeddings=False, n_layer=2), np_gpt2_loss)

    def test_forward_llama_matches_numpy(self):
        self._check_forward(TINY_LLAMA, np_llama_loss)
        self._check_forward(dict(TINY_LLAMA, tie_word_embeddings=True, num_hidden_layers=2,
                                 num_key_value_heads=1), np_llama_loss)

    def _gradcheck(self, cfg):
        m, ids, tg = _tiny(cfg)
        m = m.double()
        names = [n for n, _ in M.named_params(m)]
        params = tuple(p.detach().clone().requires_grad_(True) for _, p in M.named_params(m))

        def f(*ps):
            return stateless.functional_call(m, dict(zip(names, ps)), (ids, tg))

        self.assertTrue(torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-7, rtol=1e-5))

    def test_gradcheck_gpt2(self):
        self._gradcheck(TINY_GPT2)

    def test_gradcheck_llama_gqa(self):
        self._gradcheck(TINY_LLAMA)


class TrainTest(unittest.TestCase):
    def test_cli_make_init_train_save(self):
        with tempfile.TemporaryDirectory() as d:
            cfgp = os.path.join(d, "cfg.json")
            with open(cfgp, "w") as f:
                json.dump(dict(TINY_LLAMA, max_position_embeddings=16), f)
            toks = os.path.join(d, "t.bin")
            data.write_tokens(toks, np.arange(200) % 11)
            init, final, log = (os.path.join(d, n) for n in ("i.st", "f.st", "log.jsonl"))
            err = io.StringIO()
            with redirect_stderr(err):
                self.assertEqual(train_ref.main(["--config", cfgp, "--make-init", init,
                                                 "--init-seed", "3", "--init-style", "random"]), 0)
                self.assertEqual(train_ref.main([
                    "--config", cfgp, "--batch", "2", "--seq", "6", "--data", toks, "--steps", "3",
                    "--warmup", "1", "--init", init, "--log", log, "--save", final]), 0)
            w0, md = st.load(init)
            self.assertEqual(list(w0), EXPECTED_NAMES["llama"])
            self.assertEqual(md["init_seed"], "3")
            # norm weights randomised around 1 in style "random"
            self.assertGreater(np.abs(w0["model.norm.weight"] - 1).max(), 0.01)
            with open(log) as f:
                recs = [json.loads(line) for line in f]
            self.assertEqual([r["step"] for r in recs], [1, 2, 3])
            # warmup 1 of 3 steps: (0+1)/1, then progress 0 and 1/2
            self.assertEqual([r["lr"] for r in recs], [3e-4, 3e-4, 1.5e-4])
            w1, _ = st.load(final)
            self.assertEqual(list(w1), list(w0))
            self.assertTrue(all(np.isfinite(v).all() for v in w1.values()))
            self.assertGreater(np.abs(w1["lm_head.weight"] - w0["lm_head.weight"]).max(), 0)

    def test_one_step_by_hand(self):
        """One update reproduced with explicit AdamW math (decay only on >=2-D)."""
        m, ids, tg = _tiny(TINY_GPT2)
        before = {n: p.detach().clone() for n, p in M.named_params(m)}
        m.zero_grad()
        m(ids, tg).backward()
        grads = {n: p.grad.clone() for n, p in M.named_params(m)}
        total = torch.norm(torch.stack([g.norm() for g in grads.values()]))
        clip = 0.5
        coef = min(1.0, clip / (float(total) + 1e-6))
        lr, wd = 1e-2, 0.1
        opt = train_ref.make_optimizer(m, lr, wd)
        torch.nn.utils.clip_grad_norm_([p for _, p in M.named_params(m)], clip)
        opt.step()
        for n, p in M.named_params(m):
            g = grads[n] * coef
            mhat = 0.1 * g / (1 - 0.9)
            vhat = 0.05 * g * g / (1 - 0.95)
            decay = wd if p.dim() >= 2 else 0.0
            want = before[n] * (1 - lr * decay) - lr * mhat / (vhat.sqrt() + 1e-8)
            torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-7)


if __name__ == "__main__":
    unittest.main()
