#!/usr/bin/env python3
"""PyTorch peer of bench/merge/kernels.ts: the same math on the same sizes, float32 on the CPU.

usage: /usr/bin/python3 torch_kernels.py <elements> <models> <density> <threads> <repeats>
Prints one JSON object: seconds per run (best of the repeats, after a warm-up) of memcpy, linear
and TIES, and peak RSS.
linear: out = Σ wᵢ xᵢ with in-place adds (no temporaries beyond the output).
TIES: τᵢ = xᵢ − base; keep the k = ⌊density·n⌋ largest |τᵢ| (threshold by kthvalue, a selection,
not a sort); sign election by total mass; disjoint mean; out = base + Σ agreeing / Σ their weights.
"""
import json
import resource
import sys
import time

import torch


def best_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    n, count, density, threads, repeats = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, generator=g)
    models = [base + 0.05 * torch.randn(n, generator=g) for _ in range(count)]
    weights = [1.0 / count] * count
    out = torch.empty(n)

    def memcpy():
        out.copy_(base)

    def linear():
        torch.mul(models[0], weights[0], out=out)
        for x, w in zip(models[1:], weights[1:]):
            out.add_(x, alpha=w)

    k = int(density * n)

    def ties():
        mixed = torch.zeros(n)
        votes = torch.zeros(n)
        kept = []
        for x, w in zip(models, weights):
            tau = x - base
            mag = tau.abs()
            threshold = torch.kthvalue(mag, n - k + 1).values
            tau.mul_((mag >= threshold).to(tau.dtype)).mul_(w)
            votes.add_(tau)
            kept.append(tau)
        sign = torch.where(votes >= 0, 1.0, -1.0)
        divisor = torch.zeros(n)
        for tau, w in zip(kept, weights):
            agree = (torch.sign(tau) == sign).to(tau.dtype)
            mixed.add_(tau * agree)
            divisor.add_(agree, alpha=w)
        divisor[divisor == 0] = 1
        torch.add(base, mixed / divisor, out=out)

    result = {
        "threads": threads,
        "memcpy_s": best_seconds(memcpy, repeats),
        "linear_s": best_seconds(linear, repeats),
        "ties_s": best_seconds(ties, max(1, repeats // 2)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
