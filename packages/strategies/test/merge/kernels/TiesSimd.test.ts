import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decode, encodeBF16, type PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as PackedTaskArithmetic from "../../../src/merge/kernels/PackedTaskArithmetic.ts"
import type { Selector } from "../../../src/merge/kernels/Sparsify.ts"
import * as TaskArithmetic from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import * as TiesSimd from "../../../src/merge/kernels/TiesSimd.ts"
import { normal, rng } from "./helpers.ts"

// Two blocks and an odd tail: neither a multiple of the block nor of the 4-element SIMD step.
const N = 2 * 65536 + 1237
const TENSOR = "model.layers.0.mlp.up_proj.weight"

/** bf16 bytes (float32 bits, high half) in a SharedArrayBuffer, with specials sprinkled in. */
const bf16Input = (values: Float32Array, seed: number, base?: Float32Array): PackedInput => {
  const r = rng(seed)
  const v = Float32Array.from(values)
  for (let j = 0; j < v.length; j += 97) {
    const pick = Math.floor(r() * 5)
    // τ = 0 (equal to the base), ±0, and a τ that overflows float32 to ±Inf.
    v[j] = pick === 0 && base !== undefined ? base[j]! : pick === 1 ? -0 : pick === 2 ? 0 : pick === 3 ? 3e38 : -3e38
  }
  const bits = new Uint32Array(v.buffer)
  const bytes = new Uint8Array(new SharedArrayBuffer(v.length * 2))
  const halves = new Uint16Array(bytes.buffer)
  for (let j = 0; j < v.length; j++) halves[j] = bits[j]! >>> 16
  return { bytes, dtype: "BF16" }
}

const inputsOf = (models: number, seed: number): Array<PackedInput> => {
  const baseValues = normal(seed, N)
  const base = bf16Input(baseValues, seed + 1)
  const baseF32 = new Float32Array(N)
  decode(base, 0, N, baseF32)
  const ms = Array.from({ length: models }, (_, i) => {
    const delta = normal(seed * 7 + i + 3, N, 0.05)
    return bf16Input(Float32Array.from(baseF32, (b, j) => b + delta[j]!), seed + 11 + i, baseF32)
  })
  return [base, ...ms]
}

const decoded = (input: PackedInput): Float32Array => {
  const out = new Float32Array(N)
  decode(input, 0, N, out)
  return out
}

const prepare = (inputs: ReadonlyArray<PackedInput>, density: number, weights: ReadonlyArray<number>, lambda = 1) => {
  const plan = Result.getOrThrow(TaskArithmetic.plan({ ...TaskArithmetic.presets.ties, weights, density, lambda }, [N], weights.length, TENSOR, "ties"))
  const [base, ...models] = inputs.map(decoded)
  return TaskStatistics.prepare(plan, base!, models)
}

/** The same selectors with each cut's index dropped: the bits alone decide (the SIMD case). */
const withoutTieIndex = (prepared: TaskArithmetic.Prepared): TaskArithmetic.Prepared => ({
  ...prepared,
  selectors: prepared.selectors.map((s): Selector =>
    s.kind === "window" ? { kind: "window", lo: { bits: s.lo.bits, index: 0 }, hi: { bits: s.hi.bits, index: 0 } } : s
  )
})

const both = (prepared: TaskArithmetic.Prepared, inputs: ReadonlyArray<PackedInput>, start: number, end: number) => {
  const run = (simd: boolean) => {
    const out = new Float32Array(end - start)
    const bf16 = new Uint8Array((end - start) * 2)
    const { diagnostics, nonFinite } = PackedTaskArithmetic.apply(prepared, inputs, out, start, start, end, undefined, bf16, simd)
    return { out, bf16, diagnostics, nonFinite }
  }
  return { simd: run(true), js: run(false) }
}

const expectSame = (a: ReturnType<typeof both>["simd"], b: ReturnType<typeof both>["js"]) => {
  const x = new Uint32Array(a.out.buffer), y = new Uint32Array(b.out.buffer)
  let differing = 0
  for (let j = 0; j < x.length; j++) if (x[j] !== y[j] && !(Number.isNaN(a.out[j]) && Number.isNaN(b.out[j]))) differing++
  expect(differing).toBe(0)
  expect(Buffer.from(a.bf16).equals(Buffer.from(b.bf16))).toBe(true)
  expect(a.diagnostics).toEqual(b.diagnostics)
  // Both kernels flag a NaN/±Inf output exactly when the float64 scan of the values finds one.
  const expected = Array.from(a.out).some((v) => !Number.isFinite(v))
  expect(a.nonFinite).toBe(expected)
  expect(b.nonFinite).toBe(expected)
}

describe("TiesSimd", () => {
  for (const models of [1, 2, 3, 4]) {
    for (const density of [0.2, 0.5]) {
      it(`${models} model(s), density ${density}: the SIMD apply has the JavaScript bits and diagnostics`, () => {
        const inputs = inputsOf(models, 40 + models)
        const weights = Array.from({ length: models }, (_, i) => [0.7, -0.4, 1.3, 0.25][i]!)
        const prepared = withoutTieIndex(prepare(inputs, density, weights, 0.9))
        expect(TiesSimd.eligible(prepared)).toBe(true)
        for (const [start, end] of [[0, N], [65536, N], [70001, 100003], [5, 11]] as const) {
          const { simd, js } = both(prepared, inputs, start, end)
          expectSame(simd, js)
        }
      })
    }
  }

  it("matches the whole-tensor float32 kernel (TaskArithmetic.apply) on the merged values", () => {
    const inputs = inputsOf(2, 7)
    const prepared = withoutTieIndex(prepare(inputs, 0.2, [1, 1]))
    const [base, ...models] = inputs.map(decoded)
    const reference = new Float32Array(N)
    TaskArithmetic.apply(prepared, reference, base!, models)
    const { simd } = both(prepared, inputs, 0, N)
    const x = new Uint32Array(simd.out.buffer), y = new Uint32Array(reference.buffer)
    let differing = 0
    for (let j = 0; j < N; j++) if (x[j] !== y[j] && !(Number.isNaN(simd.out[j]) && Number.isNaN(reference[j]))) differing++
    expect(differing).toBe(0)
  })

  for (const models of [2, 3]) {
    for (const density of [0.2, 0.5]) {
      it(`${models} models, density ${density}, cuts inside groups of equal magnitudes (index compares): same bits`, () => {
        const inputs = inputsOf(models, 5 + models)
        const prepared = prepare(inputs, density, Array.from({ length: models }, (_, i) => 1 - 0.3 * i))
        // bf16 task vectors tie a lot: the real cuts fall inside groups of equal |τ|.
        expect(prepared.selectors.some((s) => s.kind === "window" && (s.hi.index !== 0 || s.lo.index !== 0))).toBe(true)
        expect(TiesSimd.eligible(prepared)).toBe(true)
        for (const [start, end] of [[0, N], [65536, N], [70001, 100003]] as const) {
          const { simd, js } = both(prepared, inputs, start, end)
          expectSame(simd, js)
        }
      })
    }
  }

  it("DARE-TIES (random selectors) keeps the JavaScript kernel", () => {
    const inputs = inputsOf(2, 3)
    const plan = Result.getOrThrow(TaskArithmetic.plan({ ...TaskArithmetic.presets["dare-ties"], normalize: true, weights: [1, 1], density: 0.5 }, [N], 2, TENSOR))
    const [base, ...models] = inputs.map(decoded)
    const prepared = TaskStatistics.prepare(plan, base!, models)
    expect(TiesSimd.eligible(prepared)).toBe(false)
    const { simd, js } = both(prepared, inputs, 0, N)
    expectSame(simd, js)
  })

  it("density 0 and 1 (cuts at the ends) keep the bits", () => {
    const inputs = inputsOf(2, 9)
    for (const density of [0, 1]) {
      const prepared = withoutTieIndex(prepare(inputs, density, [0.5, 0.5]))
      const { simd, js } = both(prepared, inputs, 0, N)
      expectSame(simd, js)
    }
  })

  it("widens all 65,536 bf16 patterns as decode does, and encodes float32 as encodeBF16 does", () => {
    const ties = TiesSimd.make(1)
    const bytes = new Uint8Array(new SharedArrayBuffer(65536 * 2))
    const halves = new Uint16Array(bytes.buffer)
    for (let h = 0; h < 65536; h++) halves[h] = h
    const input: PackedInput = { bytes, dtype: "BF16" }
    const expected = new Float32Array(65536)
    decode(input, 0, 65536, expected)
    ties.load(input, 0, 65536, ties.base)
    expect(Buffer.from(ties.base.buffer, ties.base.byteOffset, 65536 * 4).equals(Buffer.from(expected.buffer))).toBe(true)
    // Odd sub-ranges, for the tails after the 8-element steps (3 and 7 left, and no step at all).
    for (const m of [4099, 4103, 5]) {
      ties.load(input, 1001, 1001 + m, ties.base.subarray(0, m))
      expect(Array.from(new Uint32Array(ties.base.buffer, ties.base.byteOffset, m))).toEqual(Array.from(new Uint32Array(expected.buffer, 1001 * 4, m)))
    }

    const r = rng(99)
    const bits = new Uint32Array(ties.out.buffer, ties.out.byteOffset, 65536)
    const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x7f7fffff, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x00000001, 0x807fffff]
    for (let j = 0; j < 65536; j++) bits[j] = j < specials.length ? specials[j]! : Math.floor(r() * 2 ** 32)
    for (const [a, b] of [[0, 65536], [3, 65536 - 5], [17, 30]] as const) {
      const got = new Uint8Array((b - a) * 2)
      const want = new Uint8Array((b - a) * 2)
      ties.encode(a, b, got)
      encodeBF16(ties.out.slice(a, b), want)
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true)
    }
  })

  it("finds NaN and ±Inf in a window wherever they are, and nothing in finite values", () => {
    const ties = TiesSimd.make(1)
    const w = ties.base
    for (let j = 0; j < 200; j++) w[j] = j % 2 === 0 ? 3.4028234663852886e38 : -1e-45
    expect(ties.hasNonFinite(w, 0, 200)).toBe(false)
    for (const special of [NaN, Infinity, -Infinity]) {
      for (const at of [0, 3, 4, 101, 198, 199]) {
        const keep = w[at]!
        w[at] = special
        expect(ties.hasNonFinite(w, 0, 200)).toBe(true)
        expect(ties.hasNonFinite(w, at, at + 1)).toBe(true)
        expect(ties.hasNonFinite(w, at + 1, 200)).toBe(false)
        if (at > 0) expect(ties.hasNonFinite(w, 0, at)).toBe(false)
        w[at] = keep
      }
    }
  })

  it("magnitude keys equal the bits of |f32(x − base)| (Select's keys) on odd ranges", () => {
    const ties = TiesSimd.make(1)
    const x = ties.models[0]!, base = ties.base
    const r = rng(5)
    const xb = new Uint32Array(x.buffer, x.byteOffset, 5000), bb = new Uint32Array(base.buffer, base.byteOffset, 5000)
    for (let j = 0; j < 5000; j++) {
      xb[j] = Math.floor(r() * 2 ** 32)
      bb[j] = j % 3 === 0 ? xb[j]! : Math.floor(r() * 2 ** 32)
    }
    const want = new Uint32Array(new Float32Array(Array.from(x.subarray(0, 5000), (v, j) => v - base[j]!)).buffer).map((k) => k & 0x7fffffff)
    for (const [a, b] of [[0, 5000], [3, 4997], [10, 13]] as const) {
      expect(Array.from(ties.magnitudes(x, base, a, b))).toEqual(Array.from(want.subarray(a, b)))
    }
  })

  it("the statistics passes on bf16 read in place give the float32 windows' non-finite counts, histograms and nth equal", () => {
    const inputs = inputsOf(3, 77)
    // NaN and ±Inf in the base and a model, in SIMD steps and in a tail.
    const halves = (k: number) => new Uint16Array(inputs[k]!.bytes.buffer)
    halves(0)[5] = 0x7fc0
    halves(0)[70000] = 0x7f80
    halves(2)[N - 1] = 0xff80
    halves(3)[65536 + 8] = 0xffc1
    // The same values as float32 bytes: the float32-window path (widened copies, keys_f32, JavaScript counts).
    const asF32 = inputs.map((input): PackedInput => {
      const bytes = new Uint8Array(new SharedArrayBuffer(N * 4))
      bytes.set(new Uint8Array(decoded(input).buffer))
      return { bytes, dtype: "F32" }
    })
    for (const [start, end] of [[0, N], [65536, N], [70001, 100003], [5, 11]] as const) {
      const range = `[${start}, ${end})`
      const bf = PackedTaskArithmetic.scan(inputs, [0, 1, 2], start, end)
      const f32 = PackedTaskArithmetic.scan(asF32, [0, 1, 2], start, end)
      expect(bf.nonFinite, range).toEqual(f32.nonFinite)
      for (const c of [0, 1, 2]) expect(Buffer.from(bf.high[c]!.buffer).equals(Buffer.from(f32.high[c]!.buffer)), range).toBe(true)
      // The two most populated high buckets of model 0, and one of model 2 (all in one pass, as the cuts ask).
      const order = (h: Uint32Array) => Array.from(h.keys()).sort((a, b) => h[b]! - h[a]!)
      const requests = [{ model: 0, highs: order(bf.high[0]!).slice(0, 2) }, { model: 2, highs: order(bf.high[2]!).slice(0, 1) }]
      const lowBf = PackedTaskArithmetic.countLow(inputs, requests, start, end)
      const lowF32 = PackedTaskArithmetic.countLow(asF32, requests, start, end)
      for (const [q, r] of requests.entries()) {
        for (const c of r.highs.keys()) expect(Buffer.from(lowBf[q]![c]!.buffer).equals(Buffer.from(lowF32[q]![c]!.buffer)), range).toBe(true)
      }
      // The scan's guessed low histograms (counted with the high ones) equal the low pass's for the same buckets.
      const [h0, h1] = requests[0]!.highs
      const guessed = PackedTaskArithmetic.scan(inputs, [0, 1, 2], start, end, undefined, [{ first: h0! - 1, span: 3 }, undefined, { first: h1!, span: 1 }])
      expect(guessed.low![1]).toBeUndefined()
      // The scan sends the nonzero counts as (position, count) pairs, positions increasing.
      const lowAt = (pairs: Uint32Array, h: number) => {
        const dense = new Uint32Array(65536)
        for (let p = 0; p < pairs.length; p += 2) {
          if (p > 0) expect(pairs[p]!).toBeGreaterThan(pairs[p - 2]!)
          expect(pairs[p + 1]!).toBeGreaterThan(0)
          if (Math.floor(pairs[p]! / 65536) === h) dense[pairs[p]! % 65536] = pairs[p + 1]!
        }
        return Buffer.from(dense.buffer)
      }
      expect(lowAt(guessed.low![0]!, 1).equals(Buffer.from(lowF32[0]![0]!.buffer)), range).toBe(true)
      const twoPass = PackedTaskArithmetic.countLow(asF32, [{ model: 0, highs: [h0! - 1, h0! + 1] }, { model: 2, highs: [h1!] }], start, end)
      expect(lowAt(guessed.low![0]!, 0).equals(Buffer.from(twoPass[0]![0]!.buffer)), range).toBe(true)
      expect(lowAt(guessed.low![0]!, 2).equals(Buffer.from(twoPass[0]![1]!.buffer)), range).toBe(true)
      expect(lowAt(guessed.low![2]!, 0).equals(Buffer.from(twoPass[1]![0]!.buffer)), range).toBe(true)
      // The guessed models count no high histogram, only the keys above their candidates; the other one its whole histogram.
      expect(Buffer.from(guessed.high[1]!.buffer).equals(Buffer.from(f32.high[1]!.buffer)), range).toBe(true)
      const aboveOf = (h: Uint32Array, top: number) => h.subarray(top + 1).reduce((t, x) => t + x, 0)
      expect(guessed.high[0]!.length + guessed.high[2]!.length).toBe(0)
      expect(guessed.above, range).toEqual([aboveOf(f32.high[0]!, h0! + 1), 0, aboveOf(f32.high[2]!, h1!)])
      // The most repeated key of model 0: its first, second and last occurrences, and one past the last (−1).
      const low = lowBf[0]![0]!
      const bucket = order(low)[0]!
      const bits = ((requests[0]!.highs[0]! << 16) | bucket) >>> 0
      for (const nth of [0, 1, low[bucket]! - 1, low[bucket]!]) {
        const got = PackedTaskArithmetic.nthEqual(inputs, 0, bits, nth, start, end)
        expect(got, `${range} nth ${nth}`).toBe(PackedTaskArithmetic.nthEqual(asF32, 0, bits, nth, start, end))
        if (nth === low[bucket]!) expect(got).toBe(-1)
        else expect(got).toBeGreaterThanOrEqual(start)
      }
    }
  })

  it("keeps the low halves of the keys in one high bucket, in order, as Select.countLow's filter does", () => {
    const ties = TiesSimd.make(1)
    const x = ties.models[0]!, base = ties.base
    const r = rng(8)
    const xb = new Uint32Array(x.buffer, x.byteOffset, 5000), bb = new Uint32Array(base.buffer, base.byteOffset, 5000)
    // Every other element has base 0 and x in [1, 1.0078) (high half 0x3f80, or 0xbf80 negated): τ = x exactly.
    for (let j = 0; j < 5000; j++) {
      const inBucket = j % 2 === 0 || r() < 0.1
      bb[j] = inBucket ? 0 : Math.floor(r() * 2 ** 32)
      xb[j] = inBucket ? ((r() < 0.5 ? 0x3f80 : 0xbf80) << 16 | Math.floor(r() * 65536)) >>> 0 : Math.floor(r() * 2 ** 32)
    }
    const keys = new Uint32Array(new Float32Array(Array.from(x.subarray(0, 5000), (v, j) => v - base[j]!)).buffer).map((k) => k & 0x7fffffff)
    for (const high of [0x3f80, 0x7f80, 0x1234]) {
      for (const [a, b] of [[0, 5000], [3, 4997], [10, 13], [1, 2]] as const) {
        const want = Array.from(keys.subarray(a, b)).filter((k) => k >>> 16 === high).map((k) => k & 0xffff)
        if (high === 0x3f80 && b - a > 100) expect(want.length).toBeGreaterThan((b - a) / 2)
        expect(Array.from(ties.lowKeys(x, base, a, b, high)), `high ${high}, [${a}, ${b})`).toEqual(want)
      }
    }
  })
})
