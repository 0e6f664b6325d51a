import { Effect, Result } from "effect"
import { describe, expect, it } from "vitest"
import { decode, type PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as PackedParallel from "../../../src/merge/kernels/PackedParallel.ts"
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
  // This thread's runner, recording the ops it runs: whether the guess held shows in the passes run.
  const here = PackedParallel.runner(undefined)
  const ops: Array<string> = []
  const runner: PackedParallel.Runner = {
    split: here.split,
    run: (op, args, ranges) => {
      ops.push(op)
      return here.run(op, args, ranges)
    }
  }
  const scanned = Effect.runSync(PackedParallel.scan(runner, plan, inputs, N))
  const prepared = Effect.runSync(PackedParallel.prepare(runner, plan, inputs, N, scanned))
  const [base, ...models] = inputs.map(decoded)
  const reference = TaskStatistics.prepare(plan, base!, models)
  // Whether the scan kept guessed low histograms for each model (it keeps them only when every cut fell in the guess).
  const held = scanned.ranked.map((_, c) => scanned.low?.[c] !== undefined)
  const count = (op: string) => ops.filter((o) => o === op).length
  return { prepared, reference, held, scans: count("packedScan"), lowPasses: count("packedCountLow") }
}

describe("PackedParallel on bf16", () => {
  for (const density of [0.2, 0.5]) {
    it(`density ${density}: the cuts from the scan's guessed low histograms are the whole-tensor ones`, () => {
      const { prepared, reference, held, scans, lowPasses } = run(inputsOf(false), density)
      expect(held).toEqual([true, true])
      // The sample and the scan; no rescan, no low pass.
      expect([scans, lowPasses]).toEqual([2, 0])
      expect(prepared.selectors).toEqual(reference.selectors)
      expect(prepared.factors).toEqual(reference.factors)
    })
  }

  it("a sample that misguesses the buckets falls back to the low pass: the same cuts", () => {
    const { prepared, reference, held, scans, lowPasses } = run(inputsOf(true), 0.2)
    expect(held).toEqual([false, false])
    // The sample, the guessed scan, the rescan with whole high histograms, and one low pass for all models.
    expect([scans, lowPasses]).toEqual([3, 1])
    expect(prepared.selectors).toEqual(reference.selectors)
    expect(prepared.factors).toEqual(reference.factors)
  })
})
