#!/usr/bin/env python3
"""PyTorch peer of Crucible's bf16 folder merges: linear or TIES over Hugging Face folders (sharded
safetensors + model.safetensors.index.json), as mergekit does it: whole tensors, read through numpy
memmap and viewed as torch.bfloat16, merged in float32 (the math is bench/merge/torch_merge.py's),
written back as bf16 safetensors shards laid out as the first folder's (the base's for TIES), each
fsynced, with the index and config.json.

usage:
  /usr/bin/python3 torch_bigmerge.py --method linear --out OUT_DIR a/ b/ c/
  /usr/bin/python3 torch_bigmerge.py --method ties --base a/ --density 0.2 --out OUT_DIR b/ c/

Prints one JSON line: method, tensors, bytes written, wall seconds (after the imports), peak RSS.
Needs only torch and numpy.
"""
import argparse
import json
import os
import resource
import shutil
import struct
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "merge"))
from torch_merge import linear, ties  # noqa: E402  (the same math as the f32 bench's peer)

# Tensors over the read-only memmaps are never written (every merge step makes new tensors).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


class Folder:
    """An HF folder's shards, memory-mapped; a tensor is read when asked for."""

    def __init__(self, path):
        self.path = path
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = list(dict.fromkeys(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.shards = []  # (file name, header dict, memmap of the data section)
        self.where = {}
        for name in files:
            full = os.path.join(path, name)
            with open(full, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
            header.pop("__metadata__", None)
            data = np.memmap(full, dtype=np.uint8, mode="r", offset=8 + length)
            self.shards.append((name, header, data))
            for tensor in header:
                self.where[tensor] = (header[tensor], data)

    def float32(self, name):
        entry, data = self.where[name]
        begin, end = entry["data_offsets"]
        if entry["dtype"] != "BF16":
            raise ValueError(f"{self.path}: tensor {name} is {entry['dtype']}, this peer merges BF16 folders only")
        raw = torch.from_numpy(data[begin:end].view(np.int16))
        return raw.view(torch.bfloat16).float().reshape(entry["shape"])


def write_shard(path, names, header, merge):
    """Writes one shard: the header as the layout folder's, then each merged tensor as bf16."""
    header = {n: header[n] for n in names}
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    written = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in names:
            f.write(merge(name).to(torch.bfloat16).view(torch.int16).numpy())
        f.flush()
        os.fsync(f.fileno())
        written = f.tell()
    return written


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["linear", "ties"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--base")
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--lambda", dest="lam", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    models = [Folder(p) for p in args.models]
    base = Folder(args.base) if args.base else None
    layout = base or models[0]
    weights = [1.0] * len(models)

    def merge(name):
        tensors = [m.float32(name) for m in models]
        if args.method == "linear":
            return linear(tensors, weights)
        return ties(base.float32(name), tensors, weights, args.density, args.lam)

    os.makedirs(args.out, exist_ok=True)
    written, weight_map, tensors = 0, {}, 0
    for file, header, data in layout.shards:
        names = sorted(header, key=lambda n: header[n]["data_offsets"][0])
        written += write_shard(os.path.join(args.out, file), names, header, merge)
        tensors += len(names)
        for n in names:
            weight_map[n] = file
    total = sum(e["data_offsets"][1] - e["data_offsets"][0] for _, h, _ in layout.shards for e in h.values())
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    shutil.copyfile(os.path.join(layout.path, "config.json"), os.path.join(args.out, "config.json"))
    fd = os.open(args.out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    print(json.dumps({
        "method": args.method,
        "tensors": tensors,
        "bytes": written,
        "wall_s": time.perf_counter() - start,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
