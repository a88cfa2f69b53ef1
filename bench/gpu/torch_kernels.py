#!/usr/bin/env python3
"""What the GPU can do on GPT-2 124M's kernels (B 16 x S 1024), through
PyTorch: the peers of our GEMMs and attention, per call.

  python3 bench/gpu/torch_kernels.py [--batch 16]

GEMMs in bf16 (bf16 out) at GPT-2's shapes, including the vocabulary head
at 50257 columns and padded to 50304; fp32-to-bf16 conversion; flash
attention (SDPA) forward and backward, causal.
"""
import argparse

import torch
import torch.nn.functional as F


def bench(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps  # ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    dev = torch.device("cuda")
    M = a.batch * 1024
    print(f"GEMMs, bf16 in and out, M = {M} rows:")
    for K, N in [(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50257), (768, 50304),
                 (50257, 768), (50304, 768)]:
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        w = torch.randn(K, N, device=dev, dtype=torch.bfloat16)
        t = bench(lambda: x @ w)
        print(f"  [{M} x {K}] @ [{K} x {N}]   {t:7.3f} ms  {2*M*K*N/t/1e9:6.1f} TFLOP/s")
    for K, N in [(768, 2304), (3072, 768), (768, 50257)]:
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        dy = torch.randn(M, N, device=dev, dtype=torch.bfloat16)
        t = bench(lambda: x.t() @ dy)
        print(f"  weight grad [{K} x {M}] @ [{M} x {N}]   {t:7.3f} ms  {2*M*K*N/t/1e9:6.1f} TFLOP/s")
    x32 = torch.randn(M, 3072, device=dev)
    t = bench(lambda: x32.to(torch.bfloat16))
    print(f"fp32 -> bf16 of [{M} x 3072]: {t:.3f} ms  {x32.numel()*6/t/1e9:.0f} GB/s")
    q, k, v = (torch.randn(a.batch, 12, 1024, 64, device=dev, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    t = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    g = torch.randn_like(o)
    tb = bench(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                           (q, k, v), g))
    flops = 4 * a.batch * 12 * 1024 * 1024 * 64 / 2
    print(f"SDPA causal B {a.batch} H 12 S 1024 D 64: forward {t:.3f} ms ({flops/t/1e9:.0f} TFLOP/s), "
          f"forward+backward {tb:.3f} ms")


if __name__ == "__main__":
    main()
