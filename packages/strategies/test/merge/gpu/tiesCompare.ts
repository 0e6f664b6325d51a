/**
 * The comparison of a GPU task-arithmetic result with the CPU kernel's, element by element, under
 * `GpuTask.bound` (see src/merge/gpu/TaskArithmetic.ts).
 */
import { Result } from "effect"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import * as Prng from "../../../src/merge/kernels/Prng.ts"
import * as Sparsify from "../../../src/merge/kernels/Sparsify.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"

const U = 2 ** -24

/**
 * The GPU result against the CPU kernel's: per element, the CPU's contributions vᵢ = wᵢS(τᵢ) in
 * float64 give the election; where |Σ vᵢ| is within the float32 rounding of the sum
 * ((N + 1)·u·Σ|vᵢ|) the GPU may elect the other sign, and those elements are only counted.
 * Everywhere else the bound `GpuTask.bound` holds. DARE's kept entries are the CPU's draws
 * (`Prng.uniform`), DELLA's the CPU's draws below each row's keep probabilities (`Sparsify.dellaRow`;
 * `unbiased` divides by them), and with `rescale: l1` the GPU's factors are within `GpuTask.factorError` δ of
 * the CPU's, which widens the band around 0 by δ·Σ|vᵢ| and the bound as `GpuTask.bound` states.
 * Returns the elements within rounding of 0.
 */
export const compare = (gpu: Float32Array, cpu: Float32Array, prepared: Kernel.Prepared, base: Float32Array, models: ReadonlyArray<Float32Array>) => {
  const { plan } = prepared
  // DELLA's keep probability of every element, row by row as the CPU computes it.
  const probabilities = prepared.selectors.map((s, i) => {
    if (s.kind !== "della") return undefined
    const p = new Float64Array(base.length)
    const row = new Float64Array(s.rowLength)
    const scratch = Sparsify.rowScratch()
    for (let r = 0; r < base.length; r += s.rowLength) {
      Sparsify.dellaRow(models[i]!, base, r, s.rowLength, s.density, s.epsilon, row, scratch)
      p.set(row, r)
    }
    return p
  })
  const cutOf = (i: number, j: number, tau: number) => {
    const s = prepared.selectors[i]!
    if (s.kind === "all") return true
    if (s.kind === "random") return Prng.uniform(s.key, j) < s.density
    if (s.kind === "della") return Prng.uniform(s.key, j) < probabilities[i]![j]!
    if (s.kind !== "window") return false
    const key = new Uint32Array(Float32Array.of(tau).buffer)[0]! & 0x7fffffff
    const above = (c: { bits: number; index: number }) => key > c.bits || (key === c.bits && j < c.index)
    return above(s.hi) && !above(s.lo)
  }
  const delta = GpuTask.factorError(plan, gpu.length)
  const factors = prepared.selectors.map((s, i) => s.kind === "random" && plan.rescale === "unbiased" ? prepared.factors[i]! / s.density : prepared.factors[i]!)
  let nearZero = 0
  for (let j = 0; j < gpu.length; j++) {
    const v = models.map((x, i) => {
      const tau = Math.fround(x[j]! - base[j]!)
      const factor = prepared.selectors[i]!.kind === "della" && plan.rescale === "unbiased" ? prepared.factors[i]! / probabilities[i]![j]! : factors[i]!
      return cutOf(i, j, tau) ? factor * tau : 0
    })
    let s = 0, abs = 0
    for (const vi of v) {
      s += plan.consensus === "count" ? Math.sign(vi) : vi
      abs += Math.abs(vi)
    }
    if (plan.consensus !== "none" && Math.abs(s) <= ((models.length + 1) * U * (1 + delta) + delta) * abs) {
      nearZero++
      continue
    }
    const sign = s < 0 ? -1 : 1
    let S = 0, T = 0, D = 0
    v.forEach((vi, i) => {
      if (plan.consensus === "none" || vi * sign > 0) {
        S += Math.abs(vi)
        T += Math.abs(plan.models[i]!.weight)
        D += plan.models[i]!.weight
      }
    })
    const normalized = plan.consensus !== "none" && plan.normalize
    const divisor = normalized ? (D === 0 ? 1 : D) : plan.divisor
    const b = GpuTask.bound(models.length, cpu[j]!, plan.lambda, S, normalized ? T : 0, divisor, delta)
    if (!(Math.abs(gpu[j]! - cpu[j]!) <= b)) throw new Error(`element ${j}: gpu ${gpu[j]} vs cpu ${cpu[j]}: ${Math.abs(gpu[j]! - cpu[j]!)} > ${b}`)
  }
  return nearZero
}

export const cpuMerge = (plan: Kernel.TaskArithmeticPlan, base: Float32Array, models: ReadonlyArray<Float32Array>) => {
  const prepared = TaskStatistics.prepare(plan, base, models)
  const out = new Float32Array(base.length)
  Kernel.apply(prepared, out, base, models)
  return { prepared, out }
}

/** The kernel's plan of `params` for a tensor `name` of `shape` and `models` models (a test's plan: it must be valid). */
export const planOf = (params: Kernel.TaskArithmeticParams, shape: ReadonlyArray<number>, models: number, name = "t") =>
  Result.getOrThrow(Kernel.plan(params, shape, models, name))

/** A float32 array's bytes, for exact comparisons. */
export const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
