"""The torch peer of bench/lm/run.ts: the same tiny LLaMA (HF config.json: RMSNorm, RoPE, grouped-query
attention, SwiGLU, tied embeddings), plain PyTorch float32 on the CPU, trained with AdamW on the blocks
run.ts wrote (int32, rows of seq_len + 1 tokens). Prints one JSON line: tokens/s over the timed steps.

  python3 torch_peer.py --config CONFIG --blocks FILE --seq 128 --batch 16 --steps 20 --warmup 3 --threads 1
"""
import argparse, json, math, os, resource, sys, time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from blas import blas_info  # noqa: E402  (bench/support/blas.py: shared with bench/train)

p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--blocks", required=True)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = json.load(open(a.config))
H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
NH, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
D = cfg.get("head_dim") or H // NH
I = cfg["intermediate_size"]
EPS = cfg["rms_norm_eps"]
THETA = cfg.get("rope_theta", 10000.0)
STD = cfg.get("initializer_range", 0.02)


def lin(o, i):
    return torch.nn.Parameter(torch.randn(o, i) * STD)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(V, H) * STD)
        self.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            m.q, m.k, m.v, m.o = lin(NH * D, H), lin(KV * D, H), lin(KV * D, H), lin(H, NH * D)
            m.gate, m.up, m.down = lin(I, H), lin(I, H), lin(H, I)
            m.n1, m.n2 = torch.nn.Parameter(torch.ones(H)), torch.nn.Parameter(torch.ones(H))
            self.layers.append(m)
        self.norm = torch.nn.Parameter(torch.ones(H))
        inv = 1.0 / (THETA ** (torch.arange(0, D, 2).float() / D))
        ang = torch.outer(torch.arange(a.seq).float(), inv)
        emb = torch.cat([ang, ang], -1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1))

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w

    def rope(self, x):
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * self.cos + rot * self.sin

    def forward(self, ids):
        B, T = ids.shape
        x = self.embed[ids]
        for m in self.layers:
            h = self.rms(x, m.n1)
            q = (h @ m.q.t()).view(B, T, NH, D).transpose(1, 2)
            k = (h @ m.k.t()).view(B, T, KV, D).transpose(1, 2)
            v = (h @ m.v.t()).view(B, T, KV, D).transpose(1, 2)
            q, k = self.rope(q), self.rope(k)
            k = k.repeat_interleave(NH // KV, 1)
            v = v.repeat_interleave(NH // KV, 1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D) + self.mask
            y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, NH * D)
            x = x + y @ m.o.t()
            h = self.rms(x, m.n2)
            x = x + (F.silu(h @ m.gate.t()) * (h @ m.up.t())) @ m.down.t()
        return self.rms(x, self.norm) @ self.embed.t()


model = Model()
params = sum(p.numel() for p in model.parameters())
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
blocks = torch.from_numpy(np.fromfile(a.blocks, dtype=np.int32).astype(np.int64)).view(-1, a.seq + 1)


def step(i):
    rows = torch.arange(i * a.batch, (i + 1) * a.batch) % blocks.shape[0]
    b = blocks[rows]
    logits = model(b[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, V), b[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


for i in range(a.warmup):
    step(i)
start = time.perf_counter()
losses = [step(a.warmup + i) for i in range(a.steps)]
seconds = time.perf_counter() - start


print(json.dumps({
    "tokens_per_s": a.steps * a.batch * a.seq / seconds,
    "steps_per_s": a.steps / seconds,
    "mean_loss": sum(losses) / len(losses),
    "threads": torch.get_num_threads(),
    "params": params,
    "torch": torch.__version__,
    "blas": blas_info(),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
