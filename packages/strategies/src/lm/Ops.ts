/**
 * The differentiable ops of the transformers, each a `tf.customGrad` whose backward pass is
 * written out with forward ops (Node's tfjs-core registers no gradients; see models/README.md).
 * On wasm a transposed matMul is ~100× slower than a plain one, so these backwards transpose
 * explicitly (`linear` is models/Layers.ts `dense`, which asks the threaded GEMM for transposed
 * products when it is attached). The taping is models/CustomOp.ts.
 *
 * Conventions: token activations are 2-D `[N, C]` with `N = B·T` (batch-major); attention works
 * on `[B, heads, T, headDim]`; projection weights are on the device as `[in, out]`. Anything a
 * backward pass needs goes through `save` (constants too: the forward pass runs in its own
 * `tidy`, and saved tensors are released with the tape).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { customOp as op, savedAt as at } from "../models/CustomOp.ts"
import { add, dense } from "../models/Layers.ts"
import type { LmConfig } from "./LmConfig.ts"

const lastAxis = (x: tf.Tensor): number => x.rank - 1

/** `x·W + b`, `x` `[N, in]`, `W` `[in, out]` (models/Layers.ts `dense`). */
export const linear = (x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D => dense(x, w, b)

/** `a + b` of equal shapes (a residual connection). */
export const residual = <T extends tf.Tensor>(a: T, b: T): T => add(a, b)

/**
 * Rows `ids` of the embedding `w` `[V, H]` → `[N, H]`. The backward pass scatters `dy` back onto
 * the rows, summing repeats (`scatterND` sums duplicate indices on every backend; wasm has no
 * `unsortedSegmentSum`, and a one-hot matMul would cost N·V·H).
 */
export const embedding = (ids: tf.Tensor1D, w: tf.Tensor2D): tf.Tensor2D =>
  op<tf.Tensor2D>(
    (ins, save) => {
      const wi = ins[0] as tf.Tensor2D
      const [V, H] = wi.shape
      save([ids])
      return {
        value: tf.gather(wi, ids),
        gradFunc: (dy, saved) => [tf.scatterND(tf.reshape(at(saved, 0), [-1, 1]), dy, [V, H])]
      }
    },
    [w]
  )

/**
 * Learned positions `start … start + T − 1` of `wpe` `[P, H]`, repeated for `B` sequences → `[B·T, H]`
 * (`start` 0 for a whole sequence; more in incremental decoding: the new tokens of a sequence whose
 * first `start` are cached). The gradient lands on those rows.
 */
export const positionsFrom = (wpe: tf.Tensor2D, start: number, B: number, T: number): tf.Tensor2D =>
  op<tf.Tensor2D>(
    (ins) => {
      const w = ins[0] as tf.Tensor2D
      const [P, H] = w.shape
      if (start + T > P) throw new RangeError(`positions ${start} … ${start + T - 1} exceed the model's ${P} positions (n_positions)`)
      return {
        value: tf.tile(tf.slice(w, [start, 0], [T, H]), [B, 1]),
        gradFunc: (dy) => [tf.pad(tf.sum(tf.reshape(dy, [B, T, H]), 0), [[start, P - start - T], [0, 0]])]
      }
    },
    [wpe]
  )

/** `nn.LayerNorm` over the last axis of `x` `[N, H]` (biased variance, as PyTorch). */
export const layerNorm = (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D =>
  op<tf.Tensor2D>(
    (ins, save) => {
      const [xi, g, b] = ins as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D]
      const mean = tf.mean(xi, 1, true)
      const centered = tf.sub(xi, mean)
      const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), 1, true), eps))
      const xhat = tf.mul(centered, rstd)
      save([xhat, rstd, g])
      return {
        value: tf.add(tf.mul(xhat, g), b),
        gradFunc: (dy, saved) => {
          const xh = at(saved, 0)
          const r = at(saved, 1)
          const gs = at(saved, 2)
          const dxhat = tf.mul(dy, gs)
          const dx = tf.mul(r, tf.sub(tf.sub(dxhat, tf.mean(dxhat, 1, true)), tf.mul(xh, tf.mean(tf.mul(dxhat, xh), 1, true))))
          return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)]
        }
      }
    },
    [x, gamma, beta]
  )

/** RMSNorm over the last axis of `x` (any rank): `x / √(mean(x²) + eps) · γ`, as transformers' LlamaRMSNorm. */
export const rmsNorm = <T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, eps: number): T =>
  op<T>(
    (ins, save) => {
      const [xi, g] = ins as [T, tf.Tensor1D]
      const axis = lastAxis(xi)
      const r = tf.rsqrt(tf.add(tf.mean(tf.square(xi), axis, true), eps))
      const xhat = tf.mul(xi, r)
      save([xhat, r, g])
      return {
        value: tf.mul(xhat, g) as T,
        gradFunc: (dy, saved) => {
          const xh = at(saved, 0)
          const rs = at(saved, 1)
          const gs = at(saved, 2)
          const dxhat = tf.mul(dy, gs)
          const dx = tf.mul(rs, tf.sub(dxhat, tf.mul(xh, tf.mean(tf.mul(dxhat, xh), axis, true))))
          const dg = tf.sum(tf.reshape(tf.mul(dy, xh), [-1, gs.shape[0]!]), 0)
          return [dx, dg]
        }
      }
    },
    [x, gamma]
  )

/**
 * Columns `offset … offset + h·D` of `x` `[B·T, C]` as heads `[B, h, T, D]` (a projection's
 * output split into heads; gpt2's fused q/k/v takes three).
 */
export const splitHeads = (x: tf.Tensor2D, offset: number, B: number, T: number, h: number, D: number): tf.Tensor4D =>
  op<tf.Tensor4D>(
    (ins) => {
      const xi = ins[0] as tf.Tensor2D
      const C = xi.shape[1]
      const cols = offset === 0 && C === h * D ? xi : tf.slice(xi, [0, offset], [B * T, h * D])
      return {
        value: tf.transpose(tf.reshape(cols, [B, T, h, D]), [0, 2, 1, 3]),
        gradFunc: (dy) => {
          const back = tf.reshape(tf.transpose(dy, [0, 2, 1, 3]), [B * T, h * D])
          return [C === h * D ? back : tf.pad(back, [[0, 0], [offset, C - offset - h * D]])]
        }
      }
    },
    [x]
  )

/** Heads `[B, h, T, D]` back to tokens `[B·T, h·D]`. */
export const mergeHeads = (x: tf.Tensor4D): tf.Tensor2D => {
  const [B, h, T, D] = x.shape
  return op<tf.Tensor2D>(
    (ins) => ({
      value: tf.reshape(tf.transpose(ins[0]!, [0, 2, 1, 3]), [B * T, h * D]),
      gradFunc: (dy) => [tf.transpose(tf.reshape(dy, [B, T, h, D]), [0, 2, 1, 3])]
    }),
    [x]
  )
}

/**
 * RoPE on `x` `[B, h, T, D]`: `x·cos + rotate_half(x)·sin` with tables `[T, D]` (see
 * {@link ropeTables}). transformers' rotate_half (`[x1, x2]` → `[−x2, x1]`) is the signed
 * permutation `x·M`, done as a small matMul (faster on wasm than splitting and concatenating);
 * the backward pass is `dy·cos + (dy·sin)·Mᵀ`.
 */
export const rope = (x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D =>
  op<tf.Tensor4D>(
    (ins, save) => {
      const xi = ins[0] as tf.Tensor4D
      const [B, h, T, D] = xi.shape
      const m = rotateHalfMatrix(D)
      const mt = tf.transpose(m)
      save([cos, sin, mt])
      const rotated = tf.reshape(tf.matMul(tf.reshape(xi, [-1, D]), m), [B, h, T, D])
      return {
        value: tf.add(tf.mul(xi, cos), tf.mul(rotated, sin)),
        gradFunc: (dy, saved) => {
          const back = tf.reshape(tf.matMul(tf.reshape(tf.mul(dy, at(saved, 1)), [-1, D]), at(saved, 2) as tf.Tensor2D), [B, h, T, D])
          return [tf.add(tf.mul(dy, at(saved, 0)), back)]
        }
      }
    },
    [x]
  )

/** `M` `[D, D]` with `x·M = rotate_half(x)`: output `i < D/2` is `−x[i + D/2]`, output `i ≥ D/2` is `x[i − D/2]`. */
const rotateHalfMatrix = (D: number): tf.Tensor2D => {
  const half = D / 2
  const m = new Float32Array(D * D)
  for (let i = 0; i < half; i++) {
    m[(i + half) * D + i] = -1
    m[i * D + i + half] = 1
  }
  return tf.tensor2d(m, [D, D])
}

/**
 * RoPE's inverse frequencies `1 / θ^(2i/D)` rescaled as the config's `rope_scaling` says
 * (transformers' `_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
 * `_compute_llama3_parameters`), in float64.
 */
const inverseFrequencies = (config: LmConfig): Float64Array => {
  const D = config.headDim
  const inv = Float64Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(config.ropeTheta, (2 * i) / D))
  const s = config.ropeScaling
  if (s.type === "linear") return inv.map((f) => f / s.factor)
  if (s.type === "llama3") {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor
    const highWavelen = s.originalMaxPositions / s.highFreqFactor
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f
      if (wavelen < highWavelen) return f
      if (wavelen > lowWavelen) return f / s.factor
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
      return ((1 - smooth) * f) / s.factor + smooth * f
    })
  }
  return inv
}

/**
 * `cos` and `sin` of positions `start … start + T − 1` (0 for a whole sequence; more in incremental
 * decoding) times the inverse frequencies, each `[T, D]` (halves repeated), host float32: row `t`
 * is the same float64 angle, rounded once, whatever `start`.
 */
export const ropeTablesFrom = (config: LmConfig, start: number, T: number): { readonly cos: Float32Array; readonly sin: Float32Array } => {
  const inv = inverseFrequencies(config)
  const D = config.headDim
  const half = D / 2
  const cos = new Float32Array(T * D)
  const sin = new Float32Array(T * D)
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const angle = (start + t) * inv[i]!
      cos[t * D + i] = cos[t * D + i + half] = Math.cos(angle)
      sin[t * D + i] = sin[t * D + i + half] = Math.sin(angle)
    }
  return { cos, sin }
}

/** A value added to masked attention scores: exp of it (after the max is subtracted) is exactly 0 in float32. */
const MASKED = -1e9

/**
 * The additive causal mask `[T, start + T]` of `T` new queries at positions `start … start + T − 1`
 * against every key so far (`start` cached, then the new ones; 0 for a whole sequence): 0 where
 * query `i` may see key `j` (`j ≤ start + i` and, with a sliding window, `start + i − j < window`),
 * else a large negative.
 */
export const causalMaskFrom = (start: number, T: number, window?: number): Float32Array => {
  const keys = start + T
  const mask = new Float32Array(T * keys)
  for (let i = 0; i < T; i++) {
    const at = start + i
    for (let j = 0; j < keys; j++) if (j > at || (window !== undefined && at - j >= window)) mask[i * keys + j] = MASKED
  }
  return mask
}

/**
 * Causal scaled dot-product attention with grouped-query heads: `q` `[B, h, T, D]`, `k`, `v`
 * `[B, kv, T, D]` (`h` a multiple of `kv`), `mask` `[T, T]` additive → `[B, h, T, D]` (or `Tq`
 * queries against `Tk` keys, `mask` `[Tq, Tk]`: a decoding step's new queries against its cache). Query head
 * `j` reads kv head `⌊j/g⌋` (transformers' repeat_kv), done without repeating k and v: the `g`
 * query heads of a kv head are stacked as `[B, kv, g·T, D]`, so one matMul per kv head scores them
 * all and `dK`, `dV` sum over the group by themselves. Scores and softmax in float32. Backward:
 * `dP = dO·Vᵀ`, `dV = Pᵀ·dO`, `dS = P ⊙ (dP − Σ dP⊙P)`, `dQ = s·dS·K`, `dK = s·dSᵀ·Q` — every
 * transpose explicit.
 */
export const attention = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D, scale: number): tf.Tensor4D =>
  op<tf.Tensor4D>(
    (ins, save) => {
      const [qi, ki, vi] = ins as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D]
      const [B, h, T, D] = qi.shape
      const kv = ki.shape[1]
      const g = h / kv
      const qg = g === 1 ? qi : tf.reshape(qi, [B, kv, g * T, D])
      // the mask repeats for each of the g stacked query heads
      const maskG = g === 1 ? mask : tf.tile(mask, [g, 1])
      const scores = tf.add(tf.mul(tf.matMul(qg, tf.transpose(ki, [0, 1, 3, 2])), scale), maskG)
      const p = tf.softmax(scores)
      save([qg, ki, vi, p])
      const out = tf.matMul(p, vi)
      return {
        value: (g === 1 ? out : tf.reshape(out, [B, h, T, D])) as tf.Tensor4D,
        gradFunc: (dy, saved) => {
          const qs = at(saved, 0) as tf.Tensor4D
          const ks = at(saved, 1) as tf.Tensor4D
          const vs = at(saved, 2) as tf.Tensor4D
          const ps = at(saved, 3) as tf.Tensor4D
          const dyg = g === 1 ? dy : tf.reshape(dy, [B, kv, g * T, D])
          const dp = tf.matMul(dyg, tf.transpose(vs, [0, 1, 3, 2]))
          const dv = tf.matMul(tf.transpose(ps, [0, 1, 3, 2]), dyg)
          const ds = tf.mul(tf.mul(ps, tf.sub(dp, tf.sum(tf.mul(dp, ps), -1, true))), scale) as tf.Tensor4D
          const dq = tf.matMul(ds, ks)
          const dk = tf.matMul(tf.transpose(ds, [0, 1, 3, 2]), qs)
          return [g === 1 ? dq : tf.reshape(dq, [B, h, T, D]), dk, dv]
        }
      }
    },
    [q, k, v]
  )

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI)

/** GELU, tanh approximation (gpt2's `gelu_new`): `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`. */
export const geluNew = <T extends tf.Tensor>(x: T): T =>
  op<T>(
    (ins, save) => {
      const xi = ins[0] as T
      const t = tf.tanh(tf.mul(tf.add(xi, tf.mul(tf.pow(xi, 3), 0.044715)), SQRT_2_OVER_PI))
      save([xi, t])
      return {
        value: tf.mul(tf.mul(xi, 0.5), tf.add(t, 1)) as T,
        gradFunc: (dy, saved) => {
          const xs = at(saved, 0)
          const ts = at(saved, 1)
          // d/dx = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)
          const inner = tf.mul(tf.add(tf.mul(tf.square(xs), 3 * 0.044715), 1), SQRT_2_OVER_PI)
          const d = tf.add(tf.mul(tf.add(ts, 1), 0.5), tf.mul(tf.mul(tf.mul(xs, 0.5), tf.sub(1, tf.square(ts))), inner))
          return [tf.mul(dy, d)]
        }
      }
    },
    [x]
  )

/** The gated MLP's `silu(gate) ⊙ up` (`silu(x) = x·σ(x)`). */
export const swiglu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D =>
  op<tf.Tensor2D>(
    (ins, save) => {
      const [g, u] = ins as [tf.Tensor2D, tf.Tensor2D]
      const sig = tf.sigmoid(g)
      const silu = tf.mul(g, sig)
      save([g, u, sig, silu])
      return {
        value: tf.mul(silu, u),
        gradFunc: (dy, saved) => {
          const gs = at(saved, 0)
          const us = at(saved, 1)
          const ss = at(saved, 2)
          const sl = at(saved, 3)
          // silu'(x) = σ(x)(1 + x(1 − σ(x)))
          const dsilu = tf.mul(ss, tf.add(1, tf.mul(gs, tf.sub(1, ss))))
          return [tf.mul(tf.mul(dy, us), dsilu), tf.mul(dy, sl)]
        }
      }
    },
    [gate, up]
  )

/**
 * The tied output `x·Eᵀ`, `x` `[N, H]`, embedding `E` `[V, H]` → `[N, V]`: `Eᵀ` is made explicitly
 * (no transposed matMul); `dx = dy·E`, `dE = (xᵀ·dy)ᵀ`.
 */
export const tiedHead = (x: tf.Tensor2D, e: tf.Tensor2D): tf.Tensor2D =>
  op<tf.Tensor2D>(
    (ins, save) => {
      const [xi, ei] = ins as [tf.Tensor2D, tf.Tensor2D]
      save([xi, ei])
      return {
        value: tf.matMul(xi, tf.transpose(ei)),
        // dE = (xᵀ·dy)ᵀ: transposes x [N, H] and the [H, V] product, not dy [N, V]
        gradFunc: (dy, saved) => [tf.matMul(dy, at(saved, 1) as tf.Tensor2D), tf.transpose(tf.matMul(tf.transpose(at(saved, 0) as tf.Tensor2D), dy))]
      }
    },
    [x, e]
  )

/** A reshape (the gradient is reshaped back). */
export const reshape = <T extends tf.Tensor>(x: tf.Tensor, shape: ReadonlyArray<number>): T =>
  op<T>(
    (ins) => {
      const from = ins[0]!.shape
      return { value: tf.reshape(ins[0]!, [...shape]) as T, gradFunc: (dy) => [tf.reshape(dy, from)] }
    },
    [x]
  )

/** `log softmax` over the last axis; backward `dy − softmax·Σdy`. */
export const logSoftmax = <T extends tf.Tensor>(x: T): T =>
  op<T>(
    (ins, save) => {
      const xi = ins[0] as T
      const axis = lastAxis(xi)
      const y = tf.sub(xi, tf.logSumExp(xi, axis, true)) as T
      save([y])
      return {
        value: y,
        gradFunc: (dy, saved) => [tf.sub(dy, tf.mul(tf.exp(at(saved, 0)), tf.sum(dy, axis, true)))]
      }
    },
    [x]
  )

/**
 * Per row of `flat` `[N, V]` and its target id: `−log softmax(z)[y] = log Σ exp(z − max) − (z_y − max)`,
 * with the shifted logits' `exp` and their row sums (the backward pass's softmax). The target's
 * shifted logit is gathered by flat index, so no `[N, V]` log-softmax or one-hot is made.
 */
export const tokenLosses = (flat: tf.Tensor2D, targets: tf.Tensor1D): { readonly e: tf.Tensor2D; readonly sums: tf.Tensor1D; readonly losses: tf.Tensor1D } => {
  const [N, V] = flat.shape
  const shifted = tf.sub(flat, tf.max(flat, 1, true))
  const e = tf.exp(shifted) as tf.Tensor2D
  const sums = tf.sum(e, 1) as tf.Tensor1D
  const index = tf.add(tf.mul(tf.range(0, N, 1, "int32"), tf.scalar(V, "int32")), targets)
  const picked = tf.gather(tf.reshape(shifted, [-1]), index)
  return { e, sums, losses: tf.sub(tf.log(sums), picked) as tf.Tensor1D }
}

/**
 * Mean cross-entropy of `logits` `[B, T, V]` against `targets` `[B, T]` (int32); targets below 0
 * are ignored (PyTorch's `ignore_index=-100`), the mean is over the others. The forward pass keeps
 * the unnormalised `exp(z − max)` so the backward pass, `(softmax − onehot)/count` on the counted
 * rows, needs no second exp over `[B·T, V]`; the targets' logits are gathered, not picked by a
 * one-hot product.
 */
export const crossEntropy = (logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar =>
  op<tf.Scalar>(
    (ins, save) => {
      const x = ins[0] as tf.Tensor3D
      const V = x.shape[2]
      const flat = tf.reshape(x, [-1, V]) as tf.Tensor2D
      const t = tf.reshape(targets, [-1]) as tf.Tensor1D
      const keep = tf.cast(tf.greaterEqual(t, 0), "float32")
      const safe = tf.maximum(t, tf.zerosLike(t)) as tf.Tensor1D
      const { e, sums, losses } = tokenLosses(flat, safe)
      const weights = tf.div(keep, tf.maximum(tf.sum(keep), 1))
      save([e, sums, safe, weights])
      return {
        value: tf.sum(tf.mul(losses, weights)),
        gradFunc: (dy, saved) => {
          const [es, ss, ts, ws] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D]
          const softmax = tf.div(es, tf.reshape(ss, [-1, 1]))
          const d = tf.mul(tf.sub(softmax, tf.oneHot(ts, V)), tf.mul(tf.reshape(ws, [-1, 1]), dy))
          return [tf.reshape(d, x.shape)]
        }
      }
    },
    [logits]
  )
