"""Reference values for `extract/lora` (packages/strategies/test/extract/Lora.test.ts).

A tiny llama-like base and two fine-tunes, in float32, and what numpy (float64) says about each
decomposed ΔW = W_ft − W_base: its singular values, the rank that keeps 90% (99%) of Σσ², and the
relative Frobenius error ‖ΔW − B·A‖/‖ΔW‖ of the rank-r truncation (B = U_r√S_r, A = √S_r V_rᵀ,
as mergekit's extract_lora splits S). Deterministic: run `python3 lora_reference.py` here to
rewrite lora_reference.json.

- `planted`: every linear layer (and embed_tokens) moved by an exact rank-2 ΔW.
- `decaying`: every linear layer moved by a full-rank ΔW with singular values 0.8^i.
Both also move `input_layernorm.weight` (a 1-D tensor no LoRA captures).
"""
import json
import pathlib

import numpy as np

HIDDEN, INTER, KV, VOCAB = 8, 12, 4, 16
LAYER = "model.layers.0"
LINEAR = {
    f"{LAYER}.self_attn.q_proj.weight": (HIDDEN, HIDDEN),
    f"{LAYER}.self_attn.k_proj.weight": (KV, HIDDEN),
    f"{LAYER}.self_attn.v_proj.weight": (KV, HIDDEN),
    f"{LAYER}.self_attn.o_proj.weight": (HIDDEN, HIDDEN),
    f"{LAYER}.mlp.gate_proj.weight": (INTER, HIDDEN),
    f"{LAYER}.mlp.up_proj.weight": (INTER, HIDDEN),
    f"{LAYER}.mlp.down_proj.weight": (HIDDEN, INTER),
}
OTHER = {
    "model.embed_tokens.weight": (VOCAB, HIDDEN),
    f"{LAYER}.input_layernorm.weight": (HIDDEN,),
    "model.norm.weight": (HIDDEN,),
    "lm_head.weight": (VOCAB, HIDDEN),
}
ENERGIES = [0.9, 0.99]

rng = np.random.default_rng(20261206)
f32 = lambda a: np.asarray(a, dtype=np.float32)


def orthonormal(n, k):
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q


def planted(shape, rank=2):
    m, n = shape
    return orthonormal(m, rank) @ np.diag([1.5, 0.75][:rank]) @ orthonormal(n, rank).T


def decaying(shape):
    m, n = shape
    k = min(m, n)
    return orthonormal(m, k) @ np.diag(0.8 ** np.arange(k)) @ orthonormal(n, k).T


base = {name: f32(0.5 * rng.standard_normal(shape)) for name, shape in {**LINEAR, **OTHER}.items()}


def finetune(delta_of):
    ft = dict(base)
    for name, shape in LINEAR.items():
        ft[name] = f32(base[name] + delta_of(shape))
    ft[f"{LAYER}.input_layernorm.weight"] = f32(base[f"{LAYER}.input_layernorm.weight"] + 0.125)
    return ft


fine_tunes = {"planted": finetune(planted), "decaying": finetune(decaying)}
fine_tunes["planted"]["model.embed_tokens.weight"] = f32(base["model.embed_tokens.weight"] + planted(OTHER["model.embed_tokens.weight"]))


def rank_for_energy(s, energy):
    e = np.cumsum(s**2) / np.sum(s**2)
    return int(np.argmax(e >= energy) + 1)


def truncation_error(delta, r):
    u, s, vh = np.linalg.svd(delta, full_matrices=False)
    b = u[:, :r] * np.sqrt(s[:r])
    a = np.sqrt(s[:r])[:, None] * vh[:r]
    return float(np.linalg.norm(delta - b @ a) / np.linalg.norm(delta))


expected = {}
for key, ft in fine_tunes.items():
    layers = {}
    for name in [*LINEAR, "model.embed_tokens.weight"]:
        delta = ft[name].astype(np.float64) - base[name].astype(np.float64)
        if not delta.any():
            continue
        s = np.linalg.svd(delta, compute_uv=False)
        layers[name] = {
            "singular_values": s.tolist(),
            "rank_for_energy": {str(e): rank_for_energy(s, e) for e in ENERGIES},
            "error_by_rank": [truncation_error(delta, r) for r in range(1, len(s) + 1)],
        }
    expected[key] = layers

out = {
    "energies": ENERGIES,
    "shapes": {name: list(shape) for name, shape in {**LINEAR, **OTHER}.items()},
    "base": {name: t.reshape(-1).tolist() for name, t in base.items()},
    "fine_tunes": {key: {name: t.reshape(-1).tolist() for name, t in ft.items()} for key, ft in fine_tunes.items()},
    "expected": expected,
}
path = pathlib.Path(__file__).with_name("lora_reference.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
