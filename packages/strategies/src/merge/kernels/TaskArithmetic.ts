/**
 * Generalized task arithmetic — one kernel for task arithmetic, TIES, DARE, breadcrumbs and
 * DELLA (each a {@link presets} entry, as in mergekit):
 * `θ = base + λ·Σᵢ mᵢ·wᵢ·S(τᵢ) / D` with `τᵢ = θᵢ − base`, `S` the sparsify step (`Sparsify.ts`),
 * `mᵢ` the consensus mask (1 where the sign of `wᵢS(τᵢ)` matches the elected sign: by total mass
 * for `sum`, by vote for `count`, ties elect +; zeros never match) and `D` = Σ of the agreeing
 * wᵢ (`normalize` with consensus), Σ wᵢ (`normalize` without), or 1. Negative weights subtract a
 * task. τ is float32, as the inputs; sums are float64, rounded once.
 *
 * Phases: {@link plan} validates and fixes everything that does not need the data;
 * `TaskStatistics.ts` computes the whole-tensor parts (magnitude cuts, L1 norms) into a
 * {@link Prepared}; {@link apply} runs on any element range.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { InvalidMergeParameter, MergeInputMismatch, type MergeKernelError } from "./KernelError.ts"
import * as Prng from "./Prng.ts"
import { applyChunk, ChunkWork, type Rescale, rankWindow, type Selector, type SparsifyMethod } from "./Sparsify.ts"
import * as TaskDiagnostics from "./TaskDiagnostics.ts"
import { overBase, weightedSum } from "./WeightedSum.ts"

/** @category params */
export type Consensus = "none" | "sum" | "count"

/** The method-level switches that distinguish the presets. @category params */
export interface Switches {
  readonly sparsify: SparsifyMethod
  readonly consensus: Consensus
  readonly rescale: Rescale
  readonly normalize: boolean
}

/** A per-model parameter: one value for all models, or one per model. @category params */
export type PerModel = number | ReadonlyArray<number>

/** @category params */
export interface TaskArithmeticParams extends Partial<Switches> {
  /** One weight per model (not counting the base). */
  readonly weights: ReadonlyArray<number>
  /** Scales the merged task vector (default 1). */
  readonly lambda?: number
  /** Fraction of entries kept, in [0, 1] (default 1). */
  readonly density?: PerModel
  /** Breadcrumbs: fraction of the largest entries dropped (default 0.01). */
  readonly gamma?: PerModel
  /** DELLA: spread of the keep probabilities around density (default 0.15). */
  readonly epsilon?: PerModel
  /** Seed of the DARE/DELLA draws (default 0); streams are keyed by (seed, tensor, model index). */
  readonly seed?: number
}

/**
 * The built-in variants, as mergekit defines them: DARE and DELLA rescale survivors so that each
 * task vector keeps its L1 norm (`l1`, mergekit's `rescale: true` since 2025); `unbiased`, the
 * papers' 1/p, stays available as an override.
 *
 * @category presets
 */
export const presets = {
  "task-arithmetic": { sparsify: "none", consensus: "none", rescale: "none", normalize: false },
  ties: { sparsify: "magnitude", consensus: "sum", rescale: "none", normalize: true },
  "dare-linear": { sparsify: "random", consensus: "none", rescale: "l1", normalize: false },
  "dare-ties": { sparsify: "random", consensus: "sum", rescale: "l1", normalize: false },
  breadcrumbs: { sparsify: "breadcrumbs", consensus: "none", rescale: "none", normalize: false },
  "breadcrumbs-ties": { sparsify: "breadcrumbs", consensus: "sum", rescale: "none", normalize: false },
  della: { sparsify: "della", consensus: "sum", rescale: "l1", normalize: true },
  "della-linear": { sparsify: "della", consensus: "none", rescale: "l1", normalize: false }
} as const satisfies Record<string, Switches>

/** @category presets */
export type PresetName = keyof typeof presets

/** What one model contributes before statistics. @category plans */
export interface ModelPlan {
  readonly weight: number
  readonly density: number
  /** The selector when no statistics are needed; for magnitude/breadcrumbs, the rank window to cut. */
  readonly selector: Selector | { readonly kind: "ranks"; readonly lo: number; readonly hi: number }
}

/** @category plans */
export interface TaskArithmeticPlan extends Switches {
  readonly tensor: string
  readonly lambda: number
  readonly models: ReadonlyArray<ModelPlan>
  /** Σ wᵢ, or 1 when not normalizing or when it is (nearly) 0, as mergekit does. */
  readonly divisor: number
  /** True when the data are needed before {@link apply} (cuts or L1 norms). */
  readonly needsStatistics: boolean
}

/** A plan with its statistics: ready for {@link apply} on any range. @category plans */
export interface Prepared {
  readonly plan: TaskArithmeticPlan
  readonly selectors: ReadonlyArray<Selector>
  /** Per model: weight × L1 rescale factor. */
  readonly factors: ReadonlyArray<number>
}

const perModel = (value: PerModel | undefined, fallback: number, models: number): ReadonlyArray<number> | string => {
  if (value === undefined) return Array.from({ length: models }, () => fallback)
  if (typeof value === "number") return Array.from({ length: models }, () => value)
  return value.length === models ? value : `${value.length} values for ${models} models`
}

/**
 * Validates the parameters for a tensor of `shape` and `models` inputs besides the base. The
 * method is `switches` (a preset) overridden by what `params` sets.
 *
 * @category plans
 */
export const plan = (
  params: TaskArithmeticParams,
  shape: ReadonlyArray<number>,
  models: number,
  tensor: string,
  method = "task-arithmetic"
): Result.Result<TaskArithmeticPlan, MergeKernelError> => {
  const bad = (parameter: string, detail: string) => Result.fail(new InvalidMergeParameter({ method, tensor, parameter, detail }))
  const sparsify = params.sparsify ?? "none"
  const consensus = params.consensus ?? "none"
  const rescale = params.rescale ?? "none"
  const normalize = params.normalize ?? false
  const lambda = params.lambda ?? 1
  const seed = params.seed ?? 0
  if (models < 1) return Result.fail(new MergeInputMismatch({ method, tensor, detail: "needs at least one model besides the base" }))
  if (params.weights.length !== models) return bad("weights", `${params.weights.length} weights for ${models} models`)
  if (!params.weights.every(Number.isFinite)) return bad("weights", `must be finite numbers, got [${params.weights.join(", ")}]`)
  if (!Number.isFinite(lambda)) return bad("lambda", `must be a finite number, got ${lambda}`)
  if (!Number.isSafeInteger(seed)) return bad("seed", `must be a safe integer, got ${seed}`)
  if (rescale === "unbiased" && sparsify !== "random" && sparsify !== "della") {
    return bad("rescale", `"unbiased" divides by a keep probability, which only random and della have (use "l1" or "none" with ${sparsify})`)
  }
  const density = perModel(params.density, 1, models)
  const gamma = perModel(params.gamma, 0.01, models)
  const epsilon = perModel(params.epsilon, 0.15, models)
  if (typeof density === "string") return bad("density", density)
  if (typeof gamma === "string") return bad("gamma", gamma)
  if (typeof epsilon === "string") return bad("epsilon", epsilon)
  const n = shape.reduce((a, b) => a * b, 1)
  const rowLength = shape.length >= 2 ? n / shape[0]! : n
  const plans: Array<ModelPlan> = []
  for (let i = 0; i < models; i++) {
    const d = density[i]!, g = gamma[i]!, e = epsilon[i]!
    if (!(d >= 0 && d <= 1)) return bad("density", `must lie in [0, 1], got ${d} for model ${i}`)
    if (sparsify === "breadcrumbs" && !(g >= 0 && g <= 1)) return bad("gamma", `must lie in [0, 1], got ${g} for model ${i}`)
    if (sparsify === "della" && d > 0 && d < 1 && !(e >= 0 && d - e > 0 && d + e < 1)) {
      return bad("epsilon", `must be ≥ 0 with density ± epsilon inside (0, 1), got density ${d}, epsilon ${e} for model ${i}`)
    }
    const key = Prng.key(seed, tensor, i)
    const selector: ModelPlan["selector"] = sparsify === "none" || d >= 1
      ? { kind: "all" }
      : sparsify === "random"
      ? d <= 0 ? { kind: "none" } : { kind: "random", key, density: d }
      : sparsify === "della"
      ? d <= 0 ? { kind: "none" } : { kind: "della", key, density: d, epsilon: e, rowLength }
      : { kind: "ranks", ...rankWindow(sparsify, n, d, g) }
    plans.push({ weight: params.weights[i]!, density: d, selector })
  }
  const total = params.weights.reduce((a, b) => a + b, 0)
  const divisor = normalize && consensus === "none" && Math.abs(total) >= 1e-8 ? total : 1
  const needsStatistics = rescale === "l1" || plans.some((p) => p.selector.kind === "ranks")
  return Result.succeed({ tensor, sparsify, consensus, rescale, normalize, lambda, models: plans, divisor, needsStatistics })
}

/** The plan as {@link Prepared} when it needs no statistics; undefined otherwise. @category plans */
export const withoutStatistics = (p: TaskArithmeticPlan): Prepared | undefined =>
  p.needsStatistics
    ? undefined
    : { plan: p, selectors: p.models.map((m) => m.selector as Selector), factors: p.models.map((m) => m.weight) }

/**
 * Coefficients over `[base, ...models]` when the prepared merge is a plain weighted sum (every
 * entry kept, no consensus): the fast path `apply` takes.
 *
 * @category plans
 */
export const affineCoefficients = (prepared: Prepared): Array<number> | undefined => {
  const { plan: p } = prepared
  if (p.consensus !== "none" || !prepared.selectors.every((s) => s.kind === "all")) return undefined
  return overBase(prepared.factors.map((f) => (p.lambda * f) / p.divisor))
}

const CHUNK = 2048

/**
 * Writes the merge on `[start, end)` of the arrays. `offset` is the tensor index of array
 * element 0 when the arrays hold a window of the tensor (DELLA then needs whole rows in it);
 * `sum` runs the weighted-sum fast path (the SIMD kernel in a pool). Returns the range's
 * diagnostics (`TaskDiagnostics.ts`), gathered on the chunks while they are in cache; the
 * weighted-sum fast path has none.
 *
 * @category kernels
 */
export const apply = (
  prepared: Prepared,
  out: Float32Array,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>,
  start = 0,
  end = out.length,
  offset = 0,
  sum: typeof weightedSum = weightedSum
): TaskDiagnostics.Partial | undefined => {
  const affine = affineCoefficients(prepared)
  if (affine !== undefined) {
    sum(out, [base, ...models], affine, start, end)
    return undefined
  }
  const { plan: p, selectors, factors } = prepared
  const n = models.length
  const unbiased = p.rescale === "unbiased"
  const v = Array.from({ length: n }, () => new Float64Array(CHUNK))
  const work = Array.from({ length: n }, () => new ChunkWork(CHUNK))
  const mixed = new Float64Array(CHUNK)
  const divisor = new Float64Array(CHUNK)
  const sign = new Float64Array(CHUNK)
  const weights = p.models.map((m) => m.weight)
  const diagnostics = TaskDiagnostics.empty(n, start, end)
  for (let j0 = start; j0 < end; j0 += CHUNK) {
    const m = Math.min(CHUNK, end - j0)
    for (let i = 0; i < n; i++) {
      const squares = applyChunk(selectors[i]!, unbiased, factors[i]!, models[i]!, base, j0, m, offset, v[i]!, work[i]!)
      TaskDiagnostics.addChunk(diagnostics, i, j0 - start, squares, selectors[i]!, work[i]!)
    }
    if (p.consensus === "none") mix(v, m, mixed)
    else elect(v, weights, m, p.consensus, mixed, divisor, sign, diagnostics.agree)
    const scale = p.lambda / p.divisor
    if (p.consensus !== "none" && p.normalize) {
      for (let k = 0, j = j0; k < m; k++, j++) out[j] = base[j]! + (p.lambda * mixed[k]!) / divisor[k]!
    } else {
      for (let k = 0, j = j0; k < m; k++, j++) out[j] = base[j]! + scale * mixed[k]!
    }
  }
  return diagnostics
}

const mix = (v: ReadonlyArray<Float64Array>, m: number, mixed: Float64Array): void => {
  mixed.set(v[0]!.subarray(0, m))
  for (let i = 1; i < v.length; i++) {
    const vi = v[i]!
    for (let k = 0; k < m; k++) mixed[k] = mixed[k]! + vi[k]!
  }
}

// The same election by mass for up to 4 models in one pass per element (same operations, same
// order, so the same bits): the multi-pass form walks the chunk eight times.
const electBySum = (v: ReadonlyArray<Float64Array>, weights: ReadonlyArray<number>, m: number, mixed: Float64Array, divisor: Float64Array, agreed: Float64Array): void => {
  const n = v.length
  const a = v[0]!, b = v[n > 1 ? 1 : 0]!, c = v[n > 2 ? 2 : 0]!, d = v[n > 3 ? 3 : 0]!
  const wa = weights[0]!, wb = weights[1] ?? 0, wc = weights[2] ?? 0, wd = weights[3] ?? 0
  // Agreeing entries per model, for the diagnostics: the 0/1 factors are at hand.
  let na = 0, nb = 0, nc = 0, nd = 0
  for (let k = 0; k < m; k++) {
    const xa = a[k]!, xb = n > 1 ? b[k]! : 0, xc = n > 2 ? c[k]! : 0, xd = n > 3 ? d[k]! : 0
    let s = xa
    if (n > 1) s = s + xb
    if (n > 2) s = s + xc
    if (n > 3) s = s + xd
    const sign = 1 - 2 * +(s < 0)
    let agree = +(xa * sign > 0)
    let mix = agree * xa
    let div = agree * wa
    na += agree
    if (n > 1) {
      agree = +(xb * sign > 0)
      mix = mix + agree * xb
      div = div + agree * wb
      nb += agree
    }
    if (n > 2) {
      agree = +(xc * sign > 0)
      mix = mix + agree * xc
      div = div + agree * wc
      nc += agree
    }
    if (n > 3) {
      agree = +(xd * sign > 0)
      mix = mix + agree * xd
      div = div + agree * wd
      nd += agree
    }
    mixed[k] = mix
    divisor[k] = div + +(div === 0)
  }
  agreed[0] = agreed[0]! + na
  if (n > 1) agreed[1] = agreed[1]! + nb
  if (n > 2) agreed[2] = agreed[2]! + nc
  if (n > 3) agreed[3] = agreed[3]! + nd
}

// Sign election: `sign` gets the elected sign (+1/−1, ties +), `mixed` the sum of the entries
// that agree with it, `divisor` the sum of their weights (1 where none agree), `agreed` (per
// model) the count of its entries that agree. Agreement is close to a coin flip, so it is a 0/1
// factor rather than a branch.
const elect = (
  v: ReadonlyArray<Float64Array>,
  weights: ReadonlyArray<number>,
  m: number,
  consensus: "sum" | "count",
  mixed: Float64Array,
  divisor: Float64Array,
  sign: Float64Array,
  agreed: Float64Array
): void => {
  const first = v[0]!
  if (consensus === "sum" && v.length <= 4) return electBySum(v, weights, m, mixed, divisor, agreed)
  if (consensus === "sum") {
    sign.set(first.subarray(0, m))
    for (let i = 1; i < v.length; i++) {
      const vi = v[i]!
      for (let k = 0; k < m; k++) sign[k] = sign[k]! + vi[k]!
    }
  } else {
    for (let k = 0; k < m; k++) sign[k] = Math.sign(first[k]!)
    for (let i = 1; i < v.length; i++) {
      const vi = v[i]!
      for (let k = 0; k < m; k++) sign[k] = sign[k]! + Math.sign(vi[k]!)
    }
  }
  for (let k = 0; k < m; k++) sign[k] = 1 - 2 * +(sign[k]! < 0)
  const w0 = weights[0]!
  let count = 0
  for (let k = 0; k < m; k++) {
    const x = first[k]!
    const agree = +(x * sign[k]! > 0)
    mixed[k] = agree * x
    divisor[k] = agree * w0
    count += agree
  }
  agreed[0] = agreed[0]! + count
  for (let i = 1; i < v.length; i++) {
    const vi = v[i]!
    const w = weights[i]!
    count = 0
    for (let k = 0; k < m; k++) {
      const x = vi[k]!
      const agree = +(x * sign[k]! > 0)
      mixed[k] = mixed[k]! + agree * x
      divisor[k] = divisor[k]! + agree * w
      count += agree
    }
    agreed[i] = agreed[i]! + count
  }
  for (let k = 0; k < m; k++) divisor[k] = divisor[k]! + +(divisor[k] === 0)
}
