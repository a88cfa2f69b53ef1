#!/usr/bin/python3
"""PyTorch reference training loop (fp32, CPU) for checking the compiler.

Train:
  /usr/bin/python3 python/llm_ref/train_ref.py --config CFG.json --batch B --seq S
      [--layers L] --data train.bin --steps N [--lr 3e-4] [--warmup 0] [--min-lr 0]
      [--weight-decay 0.1] [--grad-clip 1.0] [--seed 1337] --init INIT.safetensors
      [--log out.jsonl] [--save FINAL.safetensors] [--threads 1] [--bench]
      [--device cpu|cuda]   (cuda: fp32 on the GPU, TF32 off, for GPU-scale parity)
Make an initial checkpoint and exit:
  /usr/bin/python3 python/llm_ref/train_ref.py --config CFG.json [--layers L]
      --make-init INIT.safetensors --init-seed K [--init-style gpt2|random]

Semantics of one update t (0-based), exactly:
  batch   = data.sample_batch (splitmix64 seeded with --seed once, B draws/step)
  zero grads; loss = model(inputs, targets) (mean cross-entropy); backward
  total   = clip_grad_norm_(params, grad_clip) if grad_clip > 0 else the global
            L2 norm of the gradients (no clipping). torch's clipping multiplies
            every gradient by min(1, grad_clip / (total + 1e-6)).
  lr      = max_lr*(t+1)/warmup if t < warmup else
            min_lr + 0.5*(max_lr-min_lr)*(1+cos(pi*(t-warmup)/max(1, steps-warmup)))
  AdamW(betas=(0.9, 0.95), eps=1e-8, foreach=False), weight decay wd on params
  with dim >= 2, 0 on 1-D params; each group's lr set, then optimizer.step().
  Log line: {"step": t+1, "loss": loss before the update, "lr": lr, "grad_norm": total}
"""
import argparse
import json
import math
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data  # noqa: E402
import model as llm_model  # noqa: E402
import safetensors_io  # noqa: E402

BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8


def lr_at(t, max_lr, min_lr, warmup, steps):
    """Learning rate of update t (0-based)."""
    if t < warmup:
        return max_lr * (t + 1) / warmup
    progress = (t - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def _is_residual_proj(name):
    return name.endswith(llm_model.RESIDUAL_PROJECTIONS)


def init_params(model, seed, style="gpt2"):
    """Initialise in place, deterministically from `seed`, in parameter order.
    gpt2: matrices/embeddings N(0, 0.02), residual output projections
    N(0, 0.02/sqrt(2*layers)), biases 0, norm weights 1.
    random: as gpt2 but norm weights 1 + 0.1*N(0,1), biases 0.02*N(0,1)."""
    if style not in ("gpt2", "random"):
        raise ValueError(f"unknown init style {style!r} (gpt2, random)")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    layers = model.config.layers
    with torch.no_grad():
        for name, p in llm_model.named_params(model):
            if p.dim() == 1 and name.endswith(".bias"):
                if style == "gpt2":
                    p.zero_()
                else:
                    p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:  # norm weight
                if style == "gpt2":
                    p.fill_(1.0)
                else:
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                std = 0.02 / math.sqrt(2 * layers) if _is_residual_proj(name) else 0.02
                p.copy_(std * torch.randn(p.shape, generator=g))


def state_arrays(model):
    """Ordered {hf_name: float32 np.ndarray} of the parameters."""
    return {n: p.detach().cpu().numpy().astype(np.float32)
            for n, p in llm_model.named_params(model)}


def _checkpoint_metadata(model, **extra):
    md = {"format": "pt", "producer": "llm_ref",
          "config": json.dumps(model.config.raw, sort_keys=True),
          "layers": str(model.config.layers)}
    md.update({k: str(v) for k, v in extra.items()})
    return md


def load_checkpoint(model, path):
    """Copy a safetensors checkpoint into the model. Accepts the names of
    named_params(); also tolerates a `transformer.` prefix (GPT2LMHeadModel),
    GPT-2's attention-mask buffers, an lm_head.weight when tied, and layers
    beyond the model's (--layers truncation). Missing tensors or shape
    mismatches are errors."""
    tensors, _ = safetensors_io.load(path)
    params = dict(llm_model.named_params(model))
    L = model.config.layers
    seen = set()
    unexpected = []
    for raw_name, arr in tensors.items():
        name = raw_name[len("transformer."):] if raw_name.startswith("transformer.") else raw_name
        if name in params:
            p = params[name]
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"{path}: tensor '{raw_name}' has shape {list(arr.shape)}, "
                                 f"the model expects {list(p.shape)}")
            with torch.no_grad():
                p.copy_(torch.from_numpy(np.ascontiguousarray(arr)))
            seen.add(name)
            continue
        parts = name.split(".")
        if name.endswith((".attn.bias", ".attn.masked_bias")) or \
                (name == "lm_head.weight" and model.config.tie):
            continue
        idx = None
        if parts[0] == "h" and len(parts) > 1 and parts[1].isdigit():
            idx = int(parts[1])
        elif parts[:2] == ["model", "layers"] and len(parts) > 2 and parts[2].isdigit():
            idx = int(parts[2])
        if idx is not None and idx >= L:
            continue
        unexpected.append(raw_name)
    missing = [n for n in params if n not in seen]
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match the model: missing {missing[:8]}"
                         f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                         f"{'...' if len(unexpected) > 8 else ''}")


def make_optimizer(model, lr, weight_decay):
    decay = [p for _, p in llm_model.named_params(model) if p.dim() >= 2]
    no_decay = [p for _, p in llm_model.named_params(model) if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=ADAM_EPS, foreach=False)


def global_grad_norm(params):
    grads = [p.grad.detach() for p in params if p.grad is not None]
    return torch.norm(torch.stack([torch.norm(g, 2.0) for g in grads]), 2.0)


def train(model, tokens, args, log=None, on_step=None):
    """Run args.steps updates; returns the list of log records."""
    params = [p for _, p in llm_model.named_params(model)]
    opt = make_optimizer(model, args.lr, args.weight_decay)
    sampler = data.BatchSampler(tokens, args.batch, args.seq, args.seed)
    records = []
    for t in range(args.steps):
        t0 = time.perf_counter()
        inputs, targets = sampler.next()
        inputs, targets = torch.from_numpy(inputs), torch.from_numpy(targets)
        dev = next(model.parameters()).device
        if dev.type != "cpu":
            inputs, targets = inputs.to(dev), targets.to(dev)
        opt.zero_grad(set_to_none=True)
        loss = model(inputs, targets)
        loss.backward()
        if args.grad_clip > 0:
            total = torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        else:
            total = global_grad_norm(params)
        lr = lr_at(t, args.lr, args.min_lr, args.warmup, args.steps)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        dt = time.perf_counter() - t0
        rec = {"step": t + 1, "loss": loss.item(), "lr": lr, "grad_norm": float(total)}
        records.append(rec)
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        print(f"step {t + 1}/{args.steps} loss {rec['loss']:.6f} lr {lr:.6g} "
              f"grad_norm {rec['grad_norm']:.6g} ({dt * 1e3:.1f} ms)", file=sys.stderr)
        if on_step is not None:
            on_step(t, dt)
    return records


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="Hugging Face config.json")
    ap.add_argument("--layers", type=int, default=None, help="override the number of layers")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--data", help="llm.c token file")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--min-lr", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1337, help="data sampling seed (uint64)")
    ap.add_argument("--init", help="initial checkpoint (safetensors, HF names)")
    ap.add_argument("--log", help="JSON lines, one per step")
    ap.add_argument("--save", help="write the final parameters (F32 safetensors)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda)")
    ap.add_argument("--bench", action="store_true",
                    help="time the steps after 2 warm-up steps; print one JSON line")
    ap.add_argument("--make-init", metavar="PATH", help="write an initial checkpoint and exit")
    ap.add_argument("--init-seed", type=int, default=None)
    ap.add_argument("--init-style", choices=("gpt2", "random"), default="gpt2")
    args = ap.parse_args(argv)
    if args.make_init:
        if args.init_seed is None:
            ap.error("--make-init needs --init-seed")
    else:
        missing = [f"--{k.replace('_', '-')}" for k in ("batch", "seq", "data", "steps", "init")
                   if getattr(args, k) is None]
        if missing:
            ap.error("training needs " + ", ".join(missing) + " (or --make-init)")
        for k in ("batch", "seq", "steps"):
            if getattr(args, k) <= 0:
                ap.error(f"--{k} must be positive")
        if args.warmup < 0:
            ap.error("--warmup must be >= 0")
        if args.bench and args.steps <= 2:
            ap.error("--bench needs --steps > 2 (2 warm-up steps are not timed)")
        if not 0 <= args.seed < 2 ** 64:
            ap.error("--seed must fit in uint64")
    if args.threads <= 0:
        ap.error("--threads must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        cfg = llm_model.load_config(args.config, args.layers)
        model = llm_model.build_model(cfg)
        if args.make_init:
            init_params(model, args.init_seed, args.init_style)
            safetensors_io.save(args.make_init, state_arrays(model), _checkpoint_metadata(
                model, init_seed=args.init_seed, init_style=args.init_style))
            n = sum(p.numel() for p in model.parameters())
            print(f"wrote {args.make_init}: {len(state_arrays(model))} tensors, {n} parameters",
                  file=sys.stderr)
            return 0
        if args.seq > cfg.max_positions:
            raise ValueError(f"--seq {args.seq} exceeds the model's {cfg.max_positions} positions")
        load_checkpoint(model, args.init)
        if args.device != "cpu":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            model.to(args.device)
        tokens = data.read_tokens(args.data, cfg.vocab)
        if len(tokens) <= args.seq:
            raise ValueError(f"{args.data}: {len(tokens)} tokens; --seq {args.seq} needs at "
                             f"least {args.seq + 1}")
    except (OSError, ValueError) as e:
        print(f"train_ref: error: {e}", file=sys.stderr)
        return 1

    timing = {"t0": None}

    def on_step(t, dt):
        if t == 1:  # end of the 2 warm-up steps
            timing["t0"] = time.perf_counter()

    log = open(args.log, "w") if args.log else None
    try:
        train(model, tokens, args, log, on_step if args.bench else None)
    finally:
        if log is not None:
            log.close()
    if args.bench:
        elapsed = time.perf_counter() - timing["t0"]
        timed = args.steps - 2
        print(json.dumps({
            "tokens_per_s": args.batch * args.seq * timed / elapsed,
            "step_time_s": elapsed / timed,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
    if args.save:
        safetensors_io.save(args.save, state_arrays(model), _checkpoint_metadata(
            model, steps=args.steps, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
