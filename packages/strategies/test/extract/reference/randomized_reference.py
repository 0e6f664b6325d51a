"""Reference values for the randomized truncated SVD (packages/strategies/test/extract/RandomizedSvd.test.ts).

The matrices are not stored: both sides rebuild them from a 32-bit LCG (x ← 1664525·x + 1013904223
mod 2³², value x/2³² − 0.5) with the same float64 formulas, and numpy (LAPACK, float64) gives their
exact singular values. Each matrix is H_u·D·H_v (Householder reflections H = I − 2wwᵀ, w a unit
LCG vector, D = diag(σ)), written out elementwise so no BLAS rounding enters:

    A[i,j] = [i<k]·σ_i·(δ_ij − 2·wv_i·wv_j) − 2·wu_i·([j<k]·wu_j·σ_j − 2·wv_j·γ),  γ = Σ_c wu_c·σ_c·wv_c

- `decaying`: 1024×1024, σ_i = exp(−i/16), full rank.
- `planted`: 512×2048, a rank-16 signal σ_c = 4·0.85^c (c < 16) plus 0.01 × an LCG noise matrix.

Stored: ‖A‖²_F, the 40 leading singular values, the optimal relative truncation error
√(Σ_{i>r} σ_i²)/‖A‖_F for r in RANKS, and the rank keeping each share of ENERGIES.
Run `/usr/bin/python3 randomized_reference.py` here to rewrite randomized_reference.json.
"""
import json
import pathlib

import numpy as np

RANKS = [8, 16, 32]
ENERGIES = [0.9, 0.99]
TOP = 40


def lcg(seed, count):
    out = np.empty(count)
    x = seed
    for i in range(count):
        x = (1664525 * x + 1013904223) % 4294967296
        out[i] = x / 4294967296 - 0.5
    return out


def unit(seed, n):
    w = lcg(seed, n)
    return w / np.sqrt(np.sum(w * w))


def reflected(m, n, sigma, seed):
    k = len(sigma)  # k ≤ min(m, n)
    wu = unit(seed, m)
    wv = unit(seed + 1, n)
    gamma = 0.0
    for c in range(k):  # sequential, as the TypeScript sums it
        gamma += wu[c] * sigma[c] * wv[c]
    # s_j = [j<k]·wu_j·σ_j − 2·wv_j·γ
    s = -2.0 * wv * gamma
    s[:k] = wu[:k] * sigma - 2.0 * wv[:k] * gamma
    a = -2.0 * wu[:, None] * s[None, :]
    eye = np.zeros((k, n))
    eye[np.arange(k), np.arange(k)] = 1.0
    a[:k] = sigma[:, None] * (eye - 2.0 * wv[:k, None] * wv[None, :]) + a[:k]
    return a


def decaying():
    m = n = 1024
    return reflected(m, n, np.exp(-np.arange(min(m, n)) / 16.0), 11)


def planted():
    m, n = 512, 2048
    signal = reflected(m, n, 4.0 * 0.85 ** np.arange(16), 23)
    return signal + 0.01 * lcg(29, m * n).reshape(m, n)


def describe(a):
    s = np.linalg.svd(a, compute_uv=False)
    total = float(np.sum(a * a))
    tail = np.cumsum((s**2)[::-1])[::-1]  # tail[r] = Σ_{i≥r} σ_i²
    energy = np.cumsum(s**2) / np.sum(s**2)
    return {
        "shape": list(a.shape),
        "total": total,
        "singular_values": s[:TOP].tolist(),
        "error_by_rank": {str(r): float(np.sqrt(tail[r] / total)) for r in RANKS},
        "rank_for_energy": {str(e): int(np.argmax(energy >= e) + 1) for e in ENERGIES},
    }


out = {"ranks": RANKS, "energies": ENERGIES, "matrices": {"decaying": describe(decaying()), "planted": describe(planted())}}
path = pathlib.Path(__file__).with_name("randomized_reference.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
