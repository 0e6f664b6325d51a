/**
 * mergekit's Karcher merge: the Riemannian (Karcher) mean of the models' directions on the unit
 * sphere, scaled by their mean norm: `θ = (Σ αᵢ‖θᵢ‖)·u`, `u = argmin Σ αᵢ d(u, θᵢ/‖θᵢ‖)²` with
 * equal αᵢ = 1/N, each tensor flattened to one vector. `u` starts at the normalized mean of the
 * unit vectors and moves along the exponential map of the mean log map,
 * `T = Σ αᵢ·(ϑᵢ / sin ϑᵢ)·(uᵢ − cos ϑᵢ·u)`, `u ← cos‖T‖·u + sin‖T‖·T/‖T‖`, at most `maxIter`
 * times, until `‖T‖ < tol`. Models of norm ≤ `tol` take no part in the direction. Float64 throughout.
 *
 * Written as passes ({@link passes}): every norm and dot product is a blockwise sum
 * (`BlockSums.ts`) and every update elementwise, so the pool form (`Parallel.karcher`) runs the
 * same passes on ranges of the tensor and gives the same bytes for any number of workers.
 *
 * @since 0.1.0
 */
import * as BlockSums from "./BlockSums.ts"
import type { Passes } from "./Passes.ts"
import { runInThread } from "./Passes.ts"
import type { Range } from "./Pool.ts"

/** @category params */
export interface KarcherParams {
  readonly maxIter: number
  readonly tol: number
}

/** What the iteration did, for the tensor's diagnostics. @category models */
export interface KarcherResult {
  readonly out: Float32Array
  /** Update steps taken. */
  readonly iterations: number
  /** Whether ‖T‖ fell below `tol` before `maxIter` steps. */
  readonly converged: boolean
}

type F32 = Float32Array

/**
 * One pass over `[start, end)`. The float64 vectors `u` (the mean) and `tangent` (the step) cross
 * to workers as Float32Array views of their bytes (`Transfer.ts` moves Float32Arrays only):
 * {@link float64} reads them back.
 *
 * @category models
 */
export type Step =
  /** Per block: Σ θᵢ² for each model. */
  | { readonly pass: "squares"; readonly models: ReadonlyArray<F32> }
  /** `u = Σ w·θᵢ/‖θᵢ‖` over the valid models; per block: Σ u². */
  | { readonly pass: "start"; readonly u: F32; readonly models: ReadonlyArray<F32>; readonly inverses: ReadonlyArray<number>; readonly weight: number }
  /** `u = u / divisor`, or the first valid model's unit vector (`first`), or u unchanged (`keep`); per block: ⟨u, θᵢ⟩. */
  | { readonly pass: "normalize"; readonly u: F32; readonly models: ReadonlyArray<F32>; readonly inverses: ReadonlyArray<number>; readonly divisor: number | "keep" | "first" }
  /** `T = Σ cᵢ·(θᵢ/‖θᵢ‖ − cos ϑᵢ·u)` over the moving models; per block: Σ T². */
  | { readonly pass: "tangent"; readonly u: F32; readonly tangent: F32; readonly models: ReadonlyArray<F32>; readonly inverses: ReadonlyArray<number>; readonly coefficients: ReadonlyArray<number>; readonly cosines: ReadonlyArray<number> }
  /** `u = cos‖T‖·u + (sin‖T‖/‖T‖)·T`; per block: Σ u². */
  | { readonly pass: "move"; readonly u: F32; readonly tangent: F32; readonly cosT: number; readonly sinT: number }
  /** `out = scale·u` (0 without `u`). */
  | { readonly pass: "write"; readonly out: F32; readonly u: F32 | undefined; readonly scale: number }

/** A float64 vector as the Float32Array view that crosses to workers. @category models */
export const asFloat32 = (x: Float64Array): F32 => new Float32Array(x.buffer, x.byteOffset, x.length * 2)
/** The float64 vector behind {@link asFloat32}'s view. @category models */
export const float64 = (x: F32): Float64Array => new Float64Array(x.buffer, x.byteOffset, x.length / 2)

/** Runs one pass on `[start, end)` (start a multiple of `Gram.BLOCK` for the sums to line up). @category kernels */
export const step = (a: Step, start: number, end: number): Float64Array | undefined => {
  switch (a.pass) {
    case "squares":
      return BlockSums.partials(start, end, a.models.length, (b0, b1, sums) => {
        for (const [i, m] of a.models.entries()) {
          let s = 0
          for (let j = b0; j < b1; j++) s += m[j]! * m[j]!
          sums[i] = s
        }
      })
    case "start": {
      const u = float64(a.u)
      return BlockSums.partials(start, end, 1, (b0, b1, sums) => {
        let s = 0
        for (let j = b0; j < b1; j++) {
          let x = 0
          for (let i = 0; i < a.models.length; i++) x = x + a.weight * (a.models[i]![j]! * a.inverses[i]!)
          u[j] = x
          s += x * x
        }
        sums[0] = s
      })
    }
    case "normalize": {
      const u = float64(a.u)
      const divisor = a.divisor
      return BlockSums.partials(start, end, a.models.length, (b0, b1, sums) => {
        if (divisor === "first") for (let j = b0; j < b1; j++) u[j] = a.models[0]![j]! * a.inverses[0]!
        else if (divisor !== "keep") for (let j = b0; j < b1; j++) u[j] = u[j]! / divisor
        for (const [i, m] of a.models.entries()) {
          let s = 0
          for (let j = b0; j < b1; j++) s += u[j]! * m[j]!
          sums[i] = s
        }
      })
    }
    case "tangent": {
      const u = float64(a.u), tangent = float64(a.tangent)
      return BlockSums.partials(start, end, 1, (b0, b1, sums) => {
        let s = 0
        for (let j = b0; j < b1; j++) {
          let t = 0
          for (let i = 0; i < a.models.length; i++) t = t + a.coefficients[i]! * (a.models[i]![j]! * a.inverses[i]! - a.cosines[i]! * u[j]!)
          tangent[j] = t
          s += t * t
        }
        sums[0] = s
      })
    }
    case "move": {
      const u = float64(a.u), tangent = float64(a.tangent)
      return BlockSums.partials(start, end, 1, (b0, b1, sums) => {
        let s = 0
        for (let j = b0; j < b1; j++) {
          const x = a.cosT * u[j]! + a.sinT * tangent[j]!
          u[j] = x
          s += x * x
        }
        sums[0] = s
      })
    }
    case "write": {
      const u = a.u === undefined ? undefined : float64(a.u)
      for (let j = start; j < end; j++) a.out[j] = u === undefined ? 0 : a.scale * u[j]!
      return undefined
    }
  }
}

/**
 * The merge as passes on `ranges` (block-aligned, covering the tensor), writing `out`; `allocate`
 * gives the two float64 vectors (shared memory for a pool).
 *
 * @category kernels
 */
export function* passes(
  params: KarcherParams,
  models: ReadonlyArray<F32>,
  out: F32,
  ranges: ReadonlyArray<Range>,
  allocate: (length: number) => Float64Array
): Passes<Step, Omit<KarcherResult, "out">> {
  const n = out.length
  const alpha = 1 / models.length
  // A pass's block sums, added up: `width` totals.
  const run = function* (args: Step, width = 1): Passes<Step, Float64Array> {
    return BlockSums.combine((yield { args, ranges }) as ReadonlyArray<Float64Array>, width)
  }
  const norms = Array.from(yield* run({ pass: "squares", models }, models.length), Math.sqrt)
  // The global scale counts every model, zero ones included (as mergekit).
  const scale = norms.reduce((s, v) => s + alpha * v, 0)
  const valid = models.flatMap((m, i) => (norms[i]! > params.tol ? [{ m, inverse: 1 / norms[i]! }] : []))
  if (valid.length === 0) {
    yield { args: { pass: "write", out, u: undefined, scale }, ranges }
    return { iterations: 0, converged: true }
  }
  const weight = 1 / valid.length
  const vm = valid.map((v) => v.m), inverses = valid.map((v) => v.inverse)
  const u = asFloat32(allocate(n)), tangent = asFloat32(allocate(n))
  const mean = Math.sqrt((yield* run({ pass: "start", u, models: vm, inverses, weight }))[0]!)
  let dots = yield* run({ pass: "normalize", u, models: vm, inverses, divisor: mean < params.tol ? "first" : mean }, vm.length)
  let iterations = 0
  let converged = false
  for (let s = 0; s < params.maxIter; s++) {
    const moving: Array<number> = [], coefficients: Array<number> = [], cosines: Array<number> = []
    for (const [i, v] of valid.entries()) {
      const cos = Math.min(1, Math.max(-1, dots[i]! * v.inverse))
      const angle = Math.acos(cos)
      if (angle < params.tol) continue
      moving.push(i)
      coefficients.push((weight * angle) / Math.sin(angle))
      cosines.push(cos)
    }
    const length = Math.sqrt((yield* run({ pass: "tangent", u, tangent, models: moving.map((i) => vm[i]!), inverses: moving.map((i) => inverses[i]!), coefficients, cosines }))[0]!)
    if (length < params.tol) {
      converged = true
      break
    }
    const norm = Math.sqrt((yield* run({ pass: "move", u, tangent, cosT: Math.cos(length), sinT: Math.sin(length) / length }))[0]!)
    iterations++
    dots = yield* run({ pass: "normalize", u, models: vm, inverses, divisor: norm > params.tol ? norm : "keep" }, vm.length)
  }
  yield { args: { pass: "write", out, u, scale }, ranges }
  return { iterations, converged }
}

/**
 * Memory: the mean `u` and the step `T` in float64 beside the inputs; the unit vectors are read
 * from the float32 models with their 1/‖θᵢ‖, never copied.
 *
 * @category kernels
 */
export const apply = (params: KarcherParams, models: ReadonlyArray<F32>): KarcherResult => {
  const out = new Float32Array(models[0]!.length)
  const done = runInThread(passes(params, models, out, [{ start: 0, end: out.length }], (n) => new Float64Array(n)), step)
  return { out, ...done }
}
