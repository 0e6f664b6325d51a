// Large task-arithmetic groups merged range-wise (inputs packed in their dtype, statistics over
// block ranges, the output range by range) give the whole-tensor path's bytes, for 1 and 2
// workers, on odd sizes; the diagnostics are the same numbers; non-finite inputs still fail.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect, Result } from "effect"
import { describe, expect, it } from "vitest"
import { decode, encodeBF16, f16ToF32Bits, type PackedInput } from "../../src/merge/kernels/PackedInput.ts"
import * as PackedParallel from "../../src/merge/kernels/PackedParallel.ts"
import * as Pool from "../../src/merge/kernels/Pool.ts"
import * as Kernel from "../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskDiagnostics from "../../src/merge/kernels/TaskDiagnostics.ts"
import * as TaskStatistics from "../../src/merge/kernels/TaskStatistics.ts"
import * as RangeWise from "../../src/merge/RangeWise.ts"
import { Breadcrumbs, DareTies, Della, TaskArithmetic, Ties } from "../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../decodeParams.ts"

// Odd sizes: neither is a multiple of the 65,536-element block.
const SHAPES: Record<string, Array<number>> = { "layers.0.weight": [301, 777], "embed.weight": [517, 256] }
const numel = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)

const wave = (seed: number, n: number, around?: Float32Array) =>
  Float32Array.from({ length: n }, (_, i) => (around?.[i] ?? 0) + Math.sin(seed * 7919 + i * 0.013) * (around === undefined ? 1 : 0.05))

const modelOf = (name: string, data: Record<string, Float32Array>, dtype: "BF16" | "F16" | "F32" = "BF16") =>
  Model.make(name, Object.entries(data).map(([t, v]) => TensorRef.fromBytes(t, dtype, SHAPES[t]!, DType.fromNumbers(v, dtype))))

const baseData = Object.fromEntries(Object.entries(SHAPES).map(([t, s], k) => [t, wave(k, numel(s))]))
const tunes = [1, 2, 3].map((m) => Object.fromEntries(Object.entries(baseData).map(([t, v], k) => [t, wave(10 * m + k, v.length, v)])))

const context = { id: "m", kind: "merge", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

const withEnv = <A>(env: Record<string, string>, run: () => Promise<A>): Promise<A> => {
  for (const [k, v] of Object.entries(env)) process.env[k] = v
  return run().finally(() => {
    for (const k of Object.keys(env)) delete process.env[k]
  })
}

// The memory a merged tensor declares: its packed inputs on the range-wise path, the float32 working set otherwise.
const declared = (t: TensorRef.TensorRef) => (t.lineage?._tag === "Derived" ? t.lineage.memory.bytes : undefined)

/** Runs a kind and reads every tensor in ranges of `chunk` elements (the writer reads 1M). */
const mergeWith = (kind: typeof Ties, params: Record<string, unknown>, base: Model.Model, models: ReadonlyArray<Model.Model>, chunk: number, rangeWise: (tensor: string) => boolean = () => false) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const merged = yield* kind.run({ ...context, params: decodeParams(kind as never, params as never) as never, inputs: { base, models } })
    const out: Record<string, Uint8Array> = {}
    for (const t of merged.tensors.values()) {
      const packed = TensorRef.totalByteLength([base, ...models].map((m) => m.tensors.get(t.name)!))
      expect(declared(t) === packed, `${t.name} range-wise`).toBe(rangeWise(t.name))
      const n = TensorRef.numel(t.shape)
      const bytes = new Uint8Array(TensorRef.byteLength(t))
      const size = DType.byteSize[t.dtype]
      for (let start = 0; start < n; start += chunk) {
        const end = Math.min(n, start + chunk)
        yield* TensorRef.readInto(t, { start, end }, bytes.subarray(start * size, end * size))
      }
      out[t.name] = bytes
    }
    return out
  })))

// DELLA ranks within rows, so it goes range-wise only where rows tile the 65,536-element block (256, not 777).
const expectRangeWise = (label: string) => (tensor: string) => label !== "merge/della" || tensor === "embed.weight"

const kinds = [
  ["merge/ties", Ties, { density: 0.3 }],
  ["merge/dare-ties", DareTies, { density: 0.4, seed: 3 }],
  ["merge/breadcrumbs", Breadcrumbs, { density: 0.5, gamma: 0.05 }],
  ["merge/task-arithmetic", TaskArithmetic, { weights: [0.5, 1, -0.25], lambda: 0.9 }],
  ["merge/della", Della, { density: 0.5, epsilon: 0.1 }]
] as const

describe("range-wise task arithmetic (packed inputs)", () => {
  for (const [label, kind, params] of kinds) {
    it(`${label}: bf16 groups forced range-wise give the whole-tensor bytes, for 1 and 2 workers`, async () => {
      const base = modelOf("base", baseData)
      const models = tunes.map((d, m) => modelOf(`ft${m}`, d))
      const whole = await withEnv({ CRUCIBLE_MERGE_THREADS: "1" }, () => mergeWith(kind as typeof Ties, params, base, models, 1 << 20))
      for (const threads of ["1", "2"]) {
        // Ranges of two blocks, and one range for the whole tensor.
        for (const chunk of [2 * 65536, 1 << 20]) {
          const ranged = await withEnv({ CRUCIBLE_MERGE_THREADS: threads, CRUCIBLE_RANGE_WISE_BYTES: "0" }, () => mergeWith(kind as typeof Ties, params, base, models, chunk, expectRangeWise(label)))
          for (const name of Object.keys(SHAPES)) expect(Buffer.from(ranged[name]!).equals(Buffer.from(whole[name]!)), `${name}, ${threads} workers, chunks of ${chunk}`).toBe(true)
        }
      }
    }, 30_000)
  }

  it("f16 and f32 inputs, and an f32 output, match the whole-tensor path", async () => {
    for (const dtype of ["F16", "F32"] as const) {
    const base = modelOf("base", baseData, dtype)
    const models = [modelOf("a", tunes[0]!, dtype), modelOf("b", tunes[1]!, dtype)]
    const params = { density: 0.25, out_dtype: "float32" }
    const whole = await mergeWith(Ties, params, base, models, 1 << 20)
    const ranged = await withEnv({ CRUCIBLE_MERGE_THREADS: "2", CRUCIBLE_RANGE_WISE_BYTES: "0" }, () => mergeWith(Ties, params, base, models, 65536, () => true))
    for (const name of Object.keys(SHAPES)) expect(Buffer.from(ranged[name]!).equals(Buffer.from(whole[name]!)), `${dtype} ${name}`).toBe(true)
    }
  }, 30_000)

  it("a non-finite input still fails, naming the tensor, the element and the count", async () => {
    const broken = { ...tunes[1]!, "embed.weight": tunes[1]!["embed.weight"]!.slice() }
    broken["embed.weight"]![70_001] = NaN
    broken["embed.weight"]![100_000] = Infinity
    const models = [modelOf("a", tunes[0]!), modelOf("b", broken)]
    const failure = await withEnv({ CRUCIBLE_MERGE_THREADS: "2", CRUCIBLE_RANGE_WISE_BYTES: "0" }, () =>
      mergeWith(Ties, { density: 0.3 }, modelOf("base", baseData), models, 1 << 20, () => true).then(() => undefined, (e: unknown) => e))
    expect(String(failure)).toContain(`tensor "embed.weight": 2 non-finite values in the input (first: NaN at element 70001)`)
  }, 30_000)

  it("finite inputs merging to ±Inf fail as the whole-tensor path does (the workers flag the range, in SIMD for TIES)", async () => {
    // τ = −3e38 − 3e38 overflows float32 to −Inf: the merged element is −Inf.
    const base = { ...baseData, "embed.weight": baseData["embed.weight"]!.slice() }
    base["embed.weight"]![70_001] = 3e38
    const tuned = tunes.slice(0, 2).map((d) => ({ ...d, "embed.weight": d["embed.weight"]!.slice() }))
    for (const d of tuned) d["embed.weight"]![70_001] = -3e38
    const run = (env: Record<string, string>, rangeWise: boolean) =>
      withEnv(env, () =>
        mergeWith(Ties, { density: 0.3 }, modelOf("base", base), tuned.map((d, m) => modelOf(`ft${m}`, d)), 1 << 20, () => rangeWise)
          .then(() => "no failure", (e: unknown) => String(e)))
    const whole = await run({ CRUCIBLE_MERGE_THREADS: "1" }, false)
    expect(whole).toContain(`tensor "embed.weight"`)
    expect(whole).toContain("output")
    for (const threads of ["1", "2"]) expect(await run({ CRUCIBLE_MERGE_THREADS: threads, CRUCIBLE_RANGE_WISE_BYTES: "0" }, true)).toBe(whole)
  }, 30_000)

  it("the statistics and diagnostics equal the whole-tensor kernels', for 1 and 2 workers", async () => {
    const n = numel(SHAPES["layers.0.weight"]!)
    const f32 = (v: Float32Array) => DType.toFloat32(DType.fromNumbers(v, "BF16"), "BF16")
    const base = f32(baseData["layers.0.weight"]!)
    const models = tunes.map((d) => f32(d["layers.0.weight"]!))
    const packed = [base, ...models].map((v): PackedInput => {
      const bytes = new Uint8Array(new SharedArrayBuffer(v.length * 2))
      bytes.set(DType.fromNumbers(v, "BF16"))
      return { bytes, dtype: "BF16" }
    })
    const cases = [{ ...Kernel.presets.ties, density: 0.3 }, { ...Kernel.presets["dare-ties"], density: 0.4, seed: 5 }, { ...Kernel.presets["breadcrumbs-ties"], density: [0.2, 0.5, 0.7], gamma: 0.02 }]
    const plans = cases.map((params) => Result.getOrThrow(Kernel.plan({ weights: [1, 0.5, 2], ...params }, SHAPES["layers.0.weight"]!, 3, "layers.0.weight")))
    for (const workers of [1, 2]) {
      await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        const runner = PackedParallel.runner(workers === 1 ? undefined : yield* Pool.make({ workers, inlineBelow: 0 }))
        for (const plan of plans) {
          const prepared = TaskStatistics.prepare(plan, base, models)
          const expected = new Float32Array(n)
          const partial = Kernel.apply(prepared, expected, base, models)!
          const scanned = yield* PackedParallel.scan(runner, plan, packed, n)
          const got = yield* PackedParallel.prepare(runner, plan, packed, n, scanned)
          const out = new Float32Array(new SharedArrayBuffer(n * 4))
          const parts: Array<TaskDiagnostics.Partial> = []
          for (let s = 0; s < n; s += 65536) parts.push(...(yield* PackedParallel.apply(runner, got, packed, out.subarray(s, Math.min(n, s + 65536)), s, Math.min(n, s + 65536))).parts)
          expect(got).toEqual(prepared)
          // bf16 task vectors tie often: the cut falls inside a group of equal magnitudes (the third pass).
          if (plan.sparsify === "magnitude") expect(got.selectors.some((x) => x.kind === "window" && x.hi.index > 0)).toBe(true)
          expect(Buffer.from(out.buffer).equals(Buffer.from(expected.buffer)), `${plan.sparsify}, ${workers} workers`).toBe(true)
          expect(TaskDiagnostics.summarize(plan, parts, n)).toEqual(TaskDiagnostics.summarize(plan, [partial], n))
        }
      })))
    }
  }, 30_000)

  it("goes range-wise only for large (or over-the-limit) groups of packable dtypes, and DELLA only where rows tile the block", () => {
    const ref = (dtype: DType.DType, shape: Array<number>) => TensorRef.fromBytes("t", dtype, shape, new Uint8Array(0))
    const planFor = (sparsify: "magnitude" | "della", shape: Array<number>) =>
      Result.getOrThrow(Kernel.plan({ weights: [1], sparsify, density: 0.5, epsilon: 0.1 }, shape, 1, "t"))
    const group = (dtype: DType.DType, shape: Array<number>) => [ref(dtype, shape), ref(dtype, shape)]
    const big = [512, 512]
    expect(RangeWise.eligible({ inputs: group("BF16", big), plan: planFor("magnitude", big), workingSet: 3 * 4 * 512 * 512, threshold: 1 << 20, limit: undefined })).toBe(true)
    expect(RangeWise.eligible({ inputs: group("BF16", big), plan: planFor("magnitude", big), workingSet: 3 * 4 * 512 * 512, threshold: 1 << 30, limit: undefined })).toBe(false)
    expect(RangeWise.eligible({ inputs: group("BF16", big), plan: planFor("magnitude", big), workingSet: 3 * 4 * 512 * 512, threshold: 1 << 30, limit: 1 << 20 })).toBe(true)
    expect(RangeWise.eligible({ inputs: group("F64", big), plan: planFor("magnitude", big), workingSet: 3 * 4 * 512 * 512, threshold: 0, limit: undefined })).toBe(false)
    expect(RangeWise.eligible({ inputs: group("BF16", big), plan: planFor("della", big), workingSet: 3 * 4 * 512 * 512, threshold: 0, limit: undefined })).toBe(true)
    expect(RangeWise.eligible({ inputs: group("BF16", [512, 777]), plan: planFor("della", [512, 777]), workingSet: 3 * 4 * 512 * 777, threshold: 0, limit: undefined })).toBe(false)
    expect(RangeWise.eligible({ inputs: group("BF16", [100, 100]), plan: planFor("magnitude", [100, 100]), workingSet: 3 * 4 * 100 * 100, threshold: 0, limit: undefined })).toBe(false)
  })

  it("decodes every f16 and bf16 pattern as DType.toFloat32 does", () => {
    const all = new Uint8Array(new Uint16Array(Array.from({ length: 65536 }, (_, i) => i)).buffer)
    for (const dtype of ["F16", "BF16"] as const) {
      const got = new Float32Array(65536)
      decode({ bytes: all, dtype }, 0, 65536, got)
      const want = DType.toFloat32(all, dtype)
      for (let i = 0; i < 65536; i++) {
        if (Number.isNaN(want[i]!)) expect(Number.isNaN(got[i]!), `${dtype} ${i}`).toBe(true)
        else if (got[i] !== want[i] || Object.is(got[i], -0) !== Object.is(want[i], -0)) expect(got[i], `${dtype} ${i.toString(16)}`).toBe(want[i])
      }
    }
    expect(f16ToF32Bits(0x0001)).toBe(0x33800000)
  })

  it("encodes bf16 as DType.fromNumbers does: every high half with ties, halfway and NaN low halves", () => {
    const lows = [0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234]
    const bits = new Uint32Array(65536 * lows.length)
    for (let h = 0; h < 65536; h++) for (const [k, low] of lows.entries()) bits[h * lows.length + k] = ((h << 16) | low) >>> 0
    const values = new Float32Array(bits.buffer)
    const got = new Uint8Array(values.length * 2)
    encodeBF16(values, got)
    expect(Buffer.from(got).equals(Buffer.from(DType.fromNumbers(values, "BF16")))).toBe(true)
  })
})
