#!/usr/bin/env python3
"""The PyTorch peer of bench/gpu/run.sh: trains the same model and batch as
our executable, eagerly, on the same GPU, and prints tokens/s. It draws
the executable's batches (the runtime's sampler, seeded as --seed) and
follows its learning-rate schedule, so that the two loss curves differ by
the initialization (drawn alike, from other generators) and the
arithmetic only.

The model is python/llm_ref's (the parity reference), with attention through
torch's fused scaled_dot_product_attention (flash attention on Hopper),
bf16 autocast and a fused AdamW: PyTorch eager as people run it.

  python3 bench/gpu/torch_gpt2.py --config gpt2.json --batch 16 --seq 1024
      --data train.bin --steps 30 [--warmup-steps 5] [--json OUT]
      [--vocab-multiple 128] [--lr 3e-4] [--lr-warmup 5] [--seed 1337]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "llm_ref"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import model as llm_model  # noqa: E402


def sdpa(q, k, v, sliding_window=None):
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--data", required=True, help="llm.c token file (uint16 or int32 per its header)")
    ap.add_argument("--steps", type=int, default=30, help="steps in all")
    ap.add_argument("--warmup-steps", type=int, default=5,
                    help="the first steps, left out of the timing")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lr-warmup", type=int, default=5,
                    help="the executable's --warmup: linear warm-up, then cosine to 0")
    ap.add_argument("--seed", type=int, default=1337, help="the executable's --seed")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--vocab-multiple", type=int, default=1,
                    help="pad the vocabulary to a multiple of this, as nanoGPT and "
                         "Megatron-LM do for speed (the extra logits stay in the "
                         "softmax, as theirs do)")
    a = ap.parse_args()

    llm_model.causal_attention = sdpa
    torch.backends.cuda.matmul.allow_tf32 = True
    dev = torch.device("cuda")
    cfg = llm_model.load_config(a.config)
    if a.vocab_multiple > 1:
        cfg.vocab = (cfg.vocab + a.vocab_multiple - 1) // a.vocab_multiple * a.vocab_multiple
    m = llm_model.build_model(cfg)
    import train_ref  # python/llm_ref: GPT-2's initialization, as our executables use
    train_ref.init_params(m, 1337, "gpt2")
    m = m.to(dev)
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1, fused=True)
    import data as llm_data  # python/llm_ref/data.py
    toks = np.asarray(llm_data.read_tokens(a.data), dtype=np.int64)
    sampler = llm_data.BatchSampler(toks, a.batch, a.seq, a.seed)
    B, S = a.batch, a.seq

    def batch():
        x, y = sampler.next()
        return (torch.from_numpy(np.asarray(x, dtype=np.int64)).to(dev, non_blocking=True),
                torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev, non_blocking=True))

    times, losses = [], []
    for step in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = train_ref.lr_at(step, a.lr, 0.0, a.lr_warmup, a.steps)
        x, y = batch()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))  # synchronizes
        dt = time.perf_counter() - t0
        if step >= a.warmup_steps:
            times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
           "batch": B, "seq": S, "vocab": cfg.vocab,
           "step_time_s": med, "tokens_per_s": B * S / med,
           "first_loss": losses[0], "last_loss": losses[-1], "losses": losses,
           "peak_mem_bytes": torch.cuda.max_memory_allocated()}
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
