// Test models written as real safetensors files by Crucible's writer, from a seeded generator.
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"

/** mulberry32: a small seeded PRNG, so fixtures are the same on every machine. */
export const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export interface Spec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly dtype?: DType.WritableDType
}

/** Values of each tensor (as float64, exactly what was written after dtype rounding). */
export type Values = Map<string, Float64Array>

/** Writes a model of random normal-ish values; returns the values as stored. */
export const writeModel = async (file: string, specs: ReadonlyArray<Spec>, seed: number): Promise<Values> => {
  const next = rng(seed)
  const values: Values = new Map()
  const tensors = specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1)
    const data = new Float64Array(n)
    for (let i = 0; i < n; i++) data[i] = (next() + next() + next() - 1.5) * 2
    const bytes = DType.fromNumbers(data, s.dtype ?? "F32")
    values.set(s.name, DType.toFloat64(bytes, s.dtype ?? "F32"))
    return TensorRef.fromBytes(s.name, s.dtype ?? "F32", s.shape, bytes)
  })
  await Effect.runPromise(Safetensors.write(file, Model.make(file, tensors)))
  return values
}

/** Writes a model of F32 tensors every element of which is `value` (NaN for a merge that fails when run). */
export const writeFilled = (file: string, specs: ReadonlyArray<Spec>, value: number): Promise<void> =>
  Effect.runPromise(Safetensors.write(file, Model.make(file, specs.map((s) =>
    TensorRef.fromBytes(s.name, "F32", s.shape, DType.fromNumbers(new Float64Array(s.shape.reduce((a, b) => a * b, 1)).fill(value), "F32"))
  ))).pipe(Effect.asVoid))

/** Reads every tensor of a safetensors file as float64. */
export const readModel = (file: string): Promise<Map<string, { dtype: string; shape: ReadonlyArray<number>; values: Float64Array }>> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const model = yield* Safetensors.read(file)
        const out = new Map<string, { dtype: string; shape: ReadonlyArray<number>; values: Float64Array }>()
        for (const t of model.tensors.values()) out.set(t.name, { dtype: t.dtype, shape: t.shape, values: DType.toFloat64(yield* t.read(), t.dtype) })
        return out
      })
    )
  )
