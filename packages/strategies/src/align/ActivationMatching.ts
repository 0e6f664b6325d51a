/**
 * Git Re-Basin activation matching (Ainsworth et al. 2022, §3.1; Li et al. 2016 before them): run
 * both models on the same inputs, correlate every unit of A's layer with every unit of B's, and
 * pair units by one linear assignment per layer maximising the summed Pearson correlation.
 * Unlike weight matching, the layers are independent: no coordinate descent.
 *
 * Activations are keyed by permutation name (the spec's), so the result feeds `Permute.apply`
 * directly. Rows are samples, columns units; for conv feature maps every spatial position is a
 * sample (rows = N·H·W, columns = channels).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { InvalidActivations } from "./AlignError.ts"
import * as Gemm from "./internal/Gemm.ts"
import * as Lap from "./Lap.ts"
import type { Permutation, Permutations } from "./Permute.ts"

/** One layer's activations over a batch: row-major `samples × units`. @category models */
export interface Activations {
  readonly samples: number
  readonly units: number
  readonly data: Float32Array
}

/** The same layer of both models on the same inputs, in the same row order. @category models */
export interface LayerActivations {
  readonly a: Activations
  readonly b: Activations
}

/** Mean correlation of paired units, before (unit i with unit i) and after matching. @category models */
export interface LayerReport {
  readonly before: number
  readonly after: number
}

/** @category models */
export interface Result {
  /** Applied to model B with `Permute.apply`, these pair B's units with A's. */
  readonly permutations: Permutations
  readonly layers: ReadonlyMap<string, LayerReport>
}

const check = (layer: string, model: string, x: Activations): InvalidActivations | undefined => {
  const fail = (detail: string) => new InvalidActivations({ layer, model, detail })
  if (!Number.isInteger(x.samples) || x.samples < 2) return fail(`needs at least 2 samples to correlate, got ${x.samples}`)
  if (!Number.isInteger(x.units) || x.units < 1) return fail(`needs at least 1 unit, got ${x.units}`)
  if (x.data.length !== x.samples * x.units) {
    return fail(`${x.samples} samples × ${x.units} units need ${x.samples * x.units} values, the data has ${x.data.length}`)
  }
  const bad = x.data.findIndex((v) => !Number.isFinite(v))
  if (bad !== -1) return fail(`value ${bad} (sample ${Math.floor(bad / x.units)}, unit ${bad % x.units}) is ${x.data[bad]}`)
  return undefined
}

/**
 * Each unit's activations, centred and scaled to unit norm, as a `units × samples` float32 matrix,
 * so one product gives all correlations. A unit that never varies (a dead ReLU) becomes zeros:
 * its correlation with anything is taken as 0.
 */
const standardize = ({ samples, units, data }: Activations): Float32Array => {
  const out = new Float32Array(units * samples)
  const mean = new Float64Array(units)
  for (let s = 0; s < samples; s++) for (let u = 0; u < units; u++) mean[u] = mean[u]! + data[s * units + u]!
  for (let u = 0; u < units; u++) mean[u] = mean[u]! / samples
  // Two passes (mean, then squared deviations): the one-pass formula cancels catastrophically.
  const norm = new Float64Array(units)
  for (let s = 0; s < samples; s++) {
    for (let u = 0; u < units; u++) {
      const d = data[s * units + u]! - mean[u]!
      norm[u] = norm[u]! + d * d
    }
  }
  for (let u = 0; u < units; u++) {
    const scale = norm[u]! > 0 ? 1 / Math.sqrt(norm[u]!) : 0
    for (let s = 0; s < samples; s++) out[u * samples + s] = (data[s * units + u]! - mean[u]!) * scale
  }
  return out
}

const correlate = (gemm: Gemm.Gemm, { a, b }: LayerActivations): Float64Array => {
  const out = new Float64Array(a.units * b.units)
  gemm.addABt(standardize(a), standardize(b), a.units, b.units, a.samples, out)
  return out
}

const validate = (layer: string, { a, b }: LayerActivations): Effect.Effect<void, InvalidActivations> => {
  const error = check(layer, "a", a) ?? check(layer, "b", b)
  if (error !== undefined) return Effect.fail(error)
  if (a.samples !== b.samples) {
    return Effect.fail(new InvalidActivations({ layer, model: "b", detail: `has ${b.samples} samples, model a has ${a.samples}; run both on the same inputs` }))
  }
  if (a.units !== b.units) {
    return Effect.fail(new InvalidActivations({ layer, model: "b", detail: `has ${b.units} units, model a has ${a.units}; only equal widths can be permuted onto each other` }))
  }
  return Effect.void
}

/**
 * The Pearson cross-correlation `C[i, j] = corr(A unit i, B unit j)`, row-major `units × units`.
 * Accurate to ~1e-7 (activations are rounded to float32 once standardised; products are summed
 * in float64).
 *
 * @category matching
 */
export const correlation = (layer: string, activations: LayerActivations): Effect.Effect<Float64Array, InvalidActivations> =>
  Effect.map(validate(layer, activations), () => correlate(Gemm.make(), activations))

/**
 * One assignment per layer: `p[i]` is the unit of B most correlated with A's unit i, jointly over
 * the layer. Fails with `InvalidActivations` naming the layer and model when a matrix is
 * malformed, holds NaN/±Infinity, or does not pair up with the other model's.
 *
 * @category matching
 */
export const match = Effect.fn("ActivationMatching.match")(function* (
  layers: ReadonlyMap<string, LayerActivations>
): Effect.fn.Return<Result, InvalidActivations> {
  for (const [layer, activations] of layers) yield* validate(layer, activations)
  const gemm = Gemm.make()
  const permutations = new Map<string, Permutation>()
  const reports = new Map<string, LayerReport>()
  for (const [layer, activations] of layers) {
    const n = activations.a.units
    const scores = correlate(gemm, activations)
    const { columnOf, score } = Lap.maximizeUnchecked(scores, n)
    let diagonal = 0
    for (let i = 0; i < n; i++) diagonal += scores[i * n + i]!
    permutations.set(layer, columnOf)
    reports.set(layer, { before: diagonal / n, after: score / n })
    yield* Effect.yieldNow
  }
  yield* Effect.annotateCurrentSpan("crucible.align.layers", layers.size)
  return { permutations, layers: reports }
})
