import { Effect, Result } from "effect"
import { describe, expect, it } from "vitest"
import { decode, type PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as PackedParallel from "../../../src/merge/kernels/PackedParallel.ts"
import * as Select from "../../../src/merge/kernels/Select.ts"
import * as TaskArithmetic from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { normal } from "./helpers.ts"

// 20 blocks and a tail: enough blocks for the scan to guess the cuts' buckets from a sample (8 of them: 1, 3, …, 15).
const BLOCK = 65536
const N = 20 * BLOCK + 321
const TENSOR = "model.layers.0.mlp.down_proj.weight"

const bf16Of = (values: Float32Array): PackedInput => {
  const bits = new Uint32Array(values.buffer)
  const bytes = new Uint8Array(new SharedArrayBuffer(values.length * 2))
  const halves = new Uint16Array(bytes.buffer)
  for (let j = 0; j < values.length; j++) halves[j] = bits[j]! >>> 16
  return { bytes, dtype: "BF16" }
}

const decoded = (input: PackedInput): Float32Array => {
  const out = new Float32Array(N)
  decode(input, 0, N, out)
  return out
}

/** Base + 2 models; with `skewSample`, the task vectors of the sampled blocks are 64× larger, so the sample misguesses the cut. */
const inputsOf = (skewSample: boolean): Array<PackedInput> => {
  const base = normal(3, N, 0.02)
  const models = [0, 1].map((i) => {
    const delta = normal(10 + i, N, 0.002)
    if (skewSample) for (let b = 1; b < 16; b += 2) for (let j = b * BLOCK; j < (b + 1) * BLOCK; j++) delta[j] = delta[j]! * 64
    return bf16Of(Float32Array.from(base, (x, j) => x + delta[j]!))
  })
  return [bf16Of(base), ...models]
}

const run = (inputs: ReadonlyArray<PackedInput>, density: number) => {
  const plan = Result.getOrThrow(TaskArithmetic.plan({ ...TaskArithmetic.presets.ties, weights: [1, 0.6], density }, [N], 2, TENSOR, "ties"))
  const runner = PackedParallel.runner(undefined)
  const scanned = Effect.runSync(PackedParallel.scan(runner, plan, inputs, N))
  const prepared = Effect.runSync(PackedParallel.prepare(runner, plan, inputs, N, scanned))
  const [base, ...models] = inputs.map(decoded)
  const reference = TaskStatistics.prepare(plan, base!, models)
  // Whether the scan's guess held for each model's cut (its bucket among the guessed ones).
  const held = scanned.ranked.map((model, c) => {
    const s = plan.models[model]!.selector as { readonly lo: number; readonly hi: number }
    const g = scanned.low?.[c]
    const buckets = [s.lo, s.hi].filter((r) => r > 0 && r < N).map((r) => Select.locate(scanned.high[c]!, r).bucket)
    return g !== undefined && buckets.every((b) => b >= g.first && b < g.first + g.span)
  })
  return { prepared, reference, held }
}

describe("PackedParallel on bf16", () => {
  for (const density of [0.2, 0.5]) {
    it(`density ${density}: the cuts from the scan's guessed low histograms are the whole-tensor ones`, () => {
      const { prepared, reference, held } = run(inputsOf(false), density)
      expect(held).toEqual([true, true])
      expect(prepared.selectors).toEqual(reference.selectors)
      expect(prepared.factors).toEqual(reference.factors)
    })
  }

  it("a sample that misguesses the buckets falls back to the low pass: the same cuts", () => {
    const { prepared, reference, held } = run(inputsOf(true), 0.2)
    expect(held).toEqual([false, false])
    expect(prepared.selectors).toEqual(reference.selectors)
  })
})
