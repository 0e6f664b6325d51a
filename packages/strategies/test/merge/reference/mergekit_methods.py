"""Reference values for merge/nuslerp, merge/karcher, merge/sce, merge/nearswap, merge/arcee-fusion.

Each method is written here in numpy float64 from mergekit's definitions (commit a6e4028:
mergekit/merge_methods/nuslerp.py, karcher.py, sce.py, nearswap.py, arcee_fusion.py), on small
seeded float32 tensors. Run from anywhere:

    /usr/bin/python3 packages/strategies/test/merge/reference/mergekit_methods.py

It writes mergekit_methods.json beside itself; test/merge/MergekitMethods.test.ts reads it.
"""
import json
import os

import numpy as np

SHAPES = {"w": (12, 16), "v": (7,)}


def tensors(rng, around=None, scale=1.0):
    """Float32-representable values (as float64): a model, or a fine-tune around one."""
    out = {}
    for name, shape in SHAPES.items():
        noise = rng.standard_normal(shape)
        values = noise if around is None else around[name] + scale * noise * np.abs(noise)
        out[name] = values.astype(np.float32).astype(np.float64)
    return out


# --- nuslerp.py: nuslerp(t, v0, v1, dim, flatten), t = w1 / (w0 + w1) -------------------------
def nuslerp(t, v0, v1, row_wise, flatten, eps=1e-8):
    shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif row_wise:
        v0, v1 = np.swapaxes(v0, 0, -1), np.swapaxes(v1, 0, -1)

    def normalize(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-7)

    cos = np.sum(normalize(v0) * normalize(v1), axis=-1, keepdims=True)
    theta = np.arccos(np.clip(cos, -1, 1))
    sin = np.sin(theta)
    colinear = np.abs(sin) < eps
    safe = np.where(colinear, 1.0, sin)
    res = np.where(colinear, (1 - t) * v0 + t * v1, (np.sin((1 - t) * theta) * v0 + np.sin(t * theta) * v1) / safe)
    if row_wise and not flatten:
        res = np.swapaxes(res, 0, -1)
    return res.reshape(shape)


def nuslerp_merge(models, base, weight, row_wise=False, flatten=True):
    total = weight[0] + weight[1]
    t = 0.5 if abs(total) < 1e-6 else weight[1] / total
    if base is None:
        return nuslerp(t, models[0], models[1], row_wise, flatten)
    return base + nuslerp(t, models[0] - base, models[1] - base, row_wise, flatten)


# --- karcher.py: karcher_merge_tensors with equal alphas ---------------------------------------
def karcher_merge(models, max_iter=10, tol=1e-5):
    alphas = [1.0 / len(models)] * len(models)
    norms = [float(np.linalg.norm(m)) for m in models]
    units = [m / n if n != 0 else np.zeros_like(m) for m, n in zip(models, norms)]
    valid = [i for i, n in enumerate(norms) if n > tol]
    if not valid:
        return np.zeros_like(models[0])
    a = [alphas[i] for i in valid]
    a = [x / sum(a) for x in a]
    us = [units[i] for i in valid]
    u = sum(x * ui for x, ui in zip(a, us))
    norm_u = np.linalg.norm(u)
    u = us[0].copy() if norm_u < tol else u / norm_u
    for _ in range(max_iter):
        T = np.zeros_like(u)
        for x, ui in zip(a, us):
            dot = np.clip(np.dot(u.ravel(), ui.ravel()), -1.0, 1.0)
            theta = np.arccos(dot)
            if theta < tol:
                continue
            T += x * (theta / np.sin(theta)) * (ui - dot * u)
        norm_T = np.linalg.norm(T)
        if norm_T < tol:
            break
        u = np.cos(norm_T) * u + np.sin(norm_T) * (T / norm_T)
        u_norm = np.linalg.norm(u)
        if u_norm > tol:
            u = u / u_norm
    return sum(x * n for x, n in zip(alphas, norms)) * u


# --- sce.py: select (variance top-k), calculate (mean τ² weights), erase (sign consensus) -------
def sce_merge(models, base, select_topk=1.0):
    tvs = np.stack([m - base for m in models])
    if select_topk < 1:
        if select_topk <= 0:
            mask = np.zeros_like(base)
        else:
            var = np.var(tvs, axis=0)
            k = int(np.count_nonzero(var) * select_topk)
            mask = np.zeros(var.size)
            if k > 0:
                # Stable: equal variances keep the lower index (none occur in these inputs).
                order = np.argsort(-np.abs(var).ravel(), kind="stable")
                mask[order[:k]] = 1
            mask = mask.reshape(var.shape)
        tvs = tvs * mask[None]
    majority = np.where(tvs.sum(axis=0) >= 0, 1.0, -1.0)
    erase = (np.sign(tvs) == majority[None]).astype(np.float64)
    weights = np.mean(tvs**2, axis=tuple(range(1, tvs.ndim)))
    weights = np.full_like(weights, 1 / len(weights)) if abs(weights.sum()) < 1e-6 else weights / weights.sum()
    erased = weights.reshape((-1,) + (1,) * (tvs.ndim - 1)) * erase
    return base + (tvs * erased).sum(axis=0) / np.maximum(erased.sum(axis=0), 1e-6)


# --- nearswap.py -------------------------------------------------------------------------------
def nearswap_merge(model, base, t):
    weight = np.clip(t / np.maximum(np.abs(base - model), 1e-6), 0, 1)
    return weight * model + (1 - weight) * base


# --- arcee_fusion.py: importance = |Δ|·KL(softmax(θ) ‖ softmax(base)) per row; median + 1.5 IQR --
def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def arcee_fusion_merge(model, base):
    p = softmax(model) + 1e-8
    q = softmax(base) + 1e-8
    kl = np.sum(p * np.log(p / q), axis=-1)
    importance = np.abs(model - base) * np.expand_dims(kl, -1)
    ranked = np.sort(importance.ravel())
    quantile = lambda q: ranked[int(q * (ranked.size - 1))]
    threshold = quantile(0.5) + 1.5 * (quantile(0.75) - quantile(0.25))
    return base + (model - base) * (importance >= threshold)


def main():
    rng = np.random.default_rng(20260514)
    base = tensors(rng)
    inputs = {
        "base": base,
        "a": tensors(rng, base, 0.08),
        "b": tensors(rng, base, 0.08),
        "c": tensors(rng, base, 0.08),
        # Unrelated models: slerps and the Karcher mean between far-apart directions.
        "x": tensors(rng),
        "y": tensors(rng),
    }
    cases = [
        ("merge/nuslerp", {"weight": [0.3, 0.7]}, None, ["x", "y"], lambda m, b: nuslerp_merge(m, b, [0.3, 0.7])),
        ("merge/nuslerp", {"weight": [0.3, 0.7], "nuslerp_flatten": False}, None, ["x", "y"], lambda m, b: nuslerp_merge(m, b, [0.3, 0.7], flatten=False)),
        ("merge/nuslerp", {"weight": [2, 1], "nuslerp_flatten": False, "nuslerp_row_wise": True}, None, ["x", "y"], lambda m, b: nuslerp_merge(m, b, [2, 1], row_wise=True, flatten=False)),
        ("merge/nuslerp", {"weight": [1, 2], "nuslerp_flatten": False}, "base", ["a", "b"], lambda m, b: nuslerp_merge(m, b, [1, 2], flatten=False)),
        ("merge/karcher", {}, None, ["x", "y", "a"], lambda m, b: karcher_merge(m)),
        ("merge/karcher", {"max_iter": 2, "tol": 1e-5}, None, ["x", "y"], lambda m, b: karcher_merge(m, 2, 1e-5)),
        ("merge/sce", {}, "base", ["a", "b", "c"], lambda m, b: sce_merge(m, b)),
        ("merge/sce", {"select_topk": 0.5}, "base", ["a", "b", "c"], lambda m, b: sce_merge(m, b, 0.5)),
        ("merge/nearswap", {"t": 0.02}, "base", ["a"], lambda m, b: nearswap_merge(m[0], b, 0.02)),
        ("merge/arcee-fusion", {}, "base", ["a"], lambda m, b: arcee_fusion_merge(m[0], b)),
    ]
    out = {
        "shapes": {k: list(v) for k, v in SHAPES.items()},
        "inputs": {m: {k: v.ravel().tolist() for k, v in ts.items()} for m, ts in inputs.items()},
        "cases": [],
    }
    for kind, params, base_name, models, merge in cases:
        expected = {}
        for name in SHAPES:
            b = None if base_name is None else inputs[base_name][name]
            expected[name] = merge([inputs[m][name] for m in models], b).ravel().tolist()
        out["cases"].append({"kind": kind, "params": params, "base": base_name, "models": models, "expected": expected})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mergekit_methods.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
