#!/usr/bin/env python3
"""The PyTorch/numpy side of bench/io/run.ts (run with /usr/bin/python3, torch 1.13, numpy).

    peer.py make-pt PATH GIB          torch.save a state dict of GIB GiB of f32 (64 tensors per GiB)
    peer.py read FILE                 read every tensor of a safetensors file (header + readinto)
    peer.py write FILE GIB            write GIB GiB of f32 as safetensors (f.write, sha256, fsync)
    peer.py convert PT OUT            torch.load a checkpoint and write it as safetensors
    peer.py torch-load PT             torch.load, for reference

Each prints one JSON line: seconds, bytes and peak RSS (ru_maxrss) of this process.
"""
import hashlib
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

TENSOR_ELEMENTS = 4 * 1024 * 1024  # 16 MiB of f32, as run.ts uses


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def report(**fields):
    fields["peakRss"] = peak_rss()
    print(json.dumps(fields))


def header_of(file):
    with open(file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return 8 + n, {k: v for k, v in header.items() if k != "__metadata__"}


def read(file):
    start = time.perf_counter()
    data_start, header = header_of(file)
    total = 0
    check = 0
    with open(file, "rb", buffering=0) as f:
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            buffer = np.empty(end - begin, dtype=np.uint8)
            f.seek(data_start + begin)
            f.readinto(buffer)
            check ^= int(buffer[-1])
            total += end - begin
    report(mode="read", seconds=time.perf_counter() - start, bytes=total, check=check)


def write_safetensors(path, tensors, hashed=True):
    """tensors: list of (name, numpy array). Streams the arrays; sha256 as Crucible's writer computes it."""
    header, offset = {}, 0
    for name, a in tensors:
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for chunk in (struct.pack("<Q", len(encoded)), encoded):
            f.write(chunk)
            digest.update(chunk)
        for _, a in tensors:
            view = memoryview(np.ascontiguousarray(a)).cast("B")
            f.write(view)
            if hashed:
                digest.update(view)
        f.flush()
        os.fsync(f.fileno())
    return offset


def write(file, gib):
    pattern = np.arange(TENSOR_ELEMENTS, dtype=np.float32)
    count = int(gib * 1024**3 / pattern.nbytes)
    start = time.perf_counter()
    total = write_safetensors(file, [(f"layer.{i}.weight", pattern) for i in range(count)])
    report(mode="write", seconds=time.perf_counter() - start, bytes=total)


def make_pt(path, gib):
    torch.manual_seed(0)
    count = int(gib * 1024**3 / (TENSOR_ELEMENTS * 4))
    state = {f"layer.{i}.weight": torch.randn(TENSOR_ELEMENTS // 1024, 1024) for i in range(count)}
    start = time.perf_counter()
    torch.save(state, path)
    report(mode="torch-save", seconds=time.perf_counter() - start, bytes=count * TENSOR_ELEMENTS * 4)


def convert(pt, out):
    start = time.perf_counter()
    state = torch.load(pt)
    total = write_safetensors(out, [(k, v.numpy()) for k, v in state.items()])
    report(mode="convert", seconds=time.perf_counter() - start, bytes=total)


def torch_load(pt):
    start = time.perf_counter()
    state = torch.load(pt)
    total = sum(t.numel() * t.element_size() for t in state.values())
    report(mode="torch-load", seconds=time.perf_counter() - start, bytes=total)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, *args = sys.argv[1:]
    {"make-pt": lambda: make_pt(args[0], float(args[1])), "read": lambda: read(args[0]), "write": lambda: write(args[0], float(args[1])),
     "convert": lambda: convert(args[0], args[1]), "torch-load": lambda: torch_load(args[0])}[mode]()
