#!/usr/bin/env python3
"""PyTorch peer of Crucible's end-to-end merge (file to file): linear or TIES over N safetensors
models, read through numpy memmap, merged tensor by tensor in float32, written as safetensors.

usage:
  /usr/bin/python3 torch_merge.py --method linear --out merged.safetensors [--weights 0.5,0.5] a.safetensors b.safetensors
  /usr/bin/python3 torch_merge.py --method ties --base base.safetensors --density 0.2 --out m.safetensors ft1.safetensors ft2.safetensors

Prints one JSON line: method, tensors, bytes written, wall seconds, peak RSS. Linear is
Σ wᵢθᵢ/Σ wᵢ; TIES is mergekit's (top-k by |τ|, sign election by mass, disjoint mean, λ). The
output dtype of each tensor is the first input's; non-float tensors are copied from it.
Needs only torch and numpy (no safetensors package).
"""
import argparse
import json
import os
import resource
import struct
import time
import warnings

import numpy as np
import torch

NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
FLOAT = {"F64", "F32", "F16", "BF16"}
# Tensors over the read-only memmap are never written (every merge step makes new tensors).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


class SafeTensors:
    """A safetensors file opened with numpy memmap: tensors are read when asked for."""

    def __init__(self, path):
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        self.metadata = header.pop("__metadata__", {})
        self.entries = header
        self.data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)

    def names(self):
        return sorted(self.entries, key=lambda n: self.entries[n]["data_offsets"][0])

    def raw(self, name):
        e = self.entries[name]
        begin, end = e["data_offsets"]
        return e["dtype"], e["shape"], self.data[begin:end]

    def float32(self, name):
        dtype, shape, raw = self.raw(name)
        if dtype == "BF16":
            bits = raw.view(np.uint16).astype(np.uint32) << 16
            return torch.from_numpy(bits.view(np.float32).reshape(shape))
        return torch.from_numpy(np.asarray(raw.view(NUMPY[dtype]), dtype=np.float32).reshape(shape))


def encode(t, dtype):
    """The bytes of `t` in `dtype`, without a copy when it is already a contiguous float32."""
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    a = t.contiguous().numpy()
    return memoryview(a if a.dtype == NUMPY[dtype] else a.astype(NUMPY[dtype])).cast("B")


def linear(tensors, weights):
    out = tensors[0] * weights[0]
    for x, w in zip(tensors[1:], weights[1:]):
        out.add_(x, alpha=w)
    return out / sum(weights)


def ties(base, tensors, weights, density, lam):
    deltas = []
    for x in tensors:
        tau = x - base
        k = int(density * tau.numel())
        if k <= 0:
            tau.zero_()
        elif k < tau.numel():
            mag = tau.abs().view(-1)
            threshold = torch.kthvalue(mag, tau.numel() - k + 1).values
            tau.mul_((tau.abs() >= threshold).to(tau.dtype))
        deltas.append(tau)
    w = torch.tensor(weights).view(-1, *([1] * base.dim()))
    weighted = torch.stack(deltas) * w
    sign = torch.where(weighted.sum(0) >= 0, 1.0, -1.0)
    mask = (weighted.sign() == sign).to(weighted.dtype)
    mixed = (weighted * mask).sum(0)
    divisor = (w * mask).sum(0)
    divisor[divisor == 0] = 1
    return base + lam * mixed / divisor


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["linear", "ties"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--base")
    parser.add_argument("--weights")
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--lambda", dest="lam", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    models = [SafeTensors(p) for p in args.models]
    base = SafeTensors(args.base) if args.base else None
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(models)
    first = models[0]
    names = first.names()
    header, offset = {}, 0
    for name in names:
        dtype, shape, raw = first.raw(name)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + raw.nbytes]}
        offset += raw.nbytes
    header["__metadata__"] = {"merged_by": f"bench/merge/torch_merge.py ({args.method})"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    temp = args.out + ".tmp"
    with open(temp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in names:
            dtype, _, raw = first.raw(name)
            if dtype not in FLOAT:
                f.write(raw.tobytes())
                continue
            tensors = [m.float32(name) for m in models]
            if args.method == "linear":
                merged = linear(tensors, weights)
            else:
                merged = ties(base.float32(name), tensors, weights, args.density, args.lam)
            f.write(encode(merged, dtype))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, args.out)
    wall = time.perf_counter() - start
    print(json.dumps({
        "method": args.method,
        "tensors": len(names),
        "bytes": os.path.getsize(args.out),
        "wall_s": wall,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
