// The streamed weighted sum of merge/linear: every path (read-ahead into the SIMD arena, the
// direct JavaScript path for large ranges, concurrent consumers and more than eight inputs)
// against Σ cᵢxᵢ computed here in float64, left to right, and rounded once.
import { DType, TensorRef } from "@crucible/core"
import { Effect, Exit, Fiber, Scope } from "effect"
import { describe, expect, it } from "vitest"
import * as StreamSum from "../../src/merge/StreamSum.ts"

const rand = (seed: number, n: number) => {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 4294967296 - 0.5) * 4
  })
}

interface Hooks {
  readonly fail?: (r: TensorRef.ElementRange) => boolean
  readonly stall?: (r: TensorRef.ElementRange) => boolean
  /** Milliseconds a read takes (reads complete out of order, as file reads on a thread pool). */
  readonly delay?: (r: TensorRef.ElementRange) => number
}

/** A tensor over `values` (stored as `dtype`) that counts its reads and can fail, stall or delay some. */
const source = (name: string, values: Float32Array, dtype: DType.WritableDType = "F32", hooks: Hooks = {}) => {
  const bytes = DType.fromNumbers(values, dtype)
  const reads: Array<string> = []
  const ref: TensorRef.TensorRef = {
    name,
    dtype,
    shape: [values.length],
    read: (range) => {
      const r = TensorRef.rangeOf({ shape: [values.length] }, range)
      reads.push(`${r.start}-${r.end}`)
      if (hooks.stall?.(r) === true) return Effect.never
      if (hooks.fail?.(r) === true) return Effect.fail({ _tag: "TestReadError", message: `cannot read ${name} ${r.start}-${r.end}` })
      const size = DType.byteSize[dtype]
      const read = Effect.sync(() => bytes.slice(r.start * size, r.end * size))
      const ms = hooks.delay?.(r) ?? 0
      return ms > 0 ? Effect.delay(read, `${ms} millis`) : read
    }
  }
  return { ref, reads, decoded: DType.toFloat32(bytes, dtype) }
}

const expected = (inputs: ReadonlyArray<Float32Array>, c: ReadonlyArray<number>, start: number, end: number) =>
  Float32Array.from({ length: end - start }, (_, k) => {
    let acc = 0
    for (let i = 0; i < inputs.length; i++) acc = i === 0 ? c[0]! * inputs[0]![start + k]! : acc + c[i]! * inputs[i]![start + k]!
    return acc
  })

/** The first byte where `a` and `b` differ, or −1 (toEqual on millions of bytes is slow). */
const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  if (a.length !== b.length) return Math.min(a.length, b.length)
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i
  return -1
}

const f32 = (bytes: Uint8Array) => new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)

const withScope = <A, E>(f: (scope: Scope.Scope) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.gen(function* () {
    const scope = yield* Scope.make()
    const result = yield* Effect.exit(f(scope))
    yield* Scope.close(scope, Exit.void)
    return yield* result
  }))

// Sizes that are not multiples of the chunk, the SIMD width or each other.
const SIZES = [2_500_003, 77, 1_048_576, 1]
const CHUNK = 1 << 20

describe("StreamSum", () => {
  it("gives Σ cᵢxᵢ rounded once for a writer's chunks, reading each range of each input once", async () => {
    const c = [0.25, -1.5, 0.125, 3]
    const tensors = SIZES.map((n, t) => c.map((_, i) => source(`t${t}.m${i}`, rand(100 * t + i, n))))
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make(tensors.map((ins) => ins.map((s) => s.ref)), c, scope)
      for (const [t, n] of SIZES.entries()) {
        for (let start = 0; start < n; start += CHUNK) {
          const end = Math.min(n, start + CHUNK)
          const got = f32(yield* stream.sum(t, n <= CHUNK ? { start: 0, end: n } : { start, end }, "F32"))
          expect(got).toEqual(expected(tensors[t]!.map((s) => s.decoded), c, start, end))
        }
      }
    }))
    // Each range once: the read-ahead guessed every request of the writer's pattern.
    for (const [t, n] of SIZES.entries()) {
      const ranges = Array.from({ length: Math.ceil(n / CHUNK) }, (_, k) => `${k * CHUNK}-${Math.min(n, (k + 1) * CHUNK)}`)
      for (const s of tensors[t]!) expect(s.reads).toEqual(ranges)
    }
  })

  it("reads inputs with readInto straight into its arena and sums into the consumer's reused buffer (sumInto)", async () => {
    const c = [0.25, -1.5, 0.125]
    const n = 2_500_003
    const calls = { read: 0, readInto: 0 }
    // File-like inputs: readInto copies into the given memory, as a read from the page cache does.
    const inputs = c.map((_, i) => {
      const s = source(`m${i}`, rand(40 + i, n))
      const bytes = DType.fromNumbers(s.decoded, "F32")
      const ref = TensorRef.withReadInto({ ...s.ref, read: (range) => ((calls.read += 1), s.ref.read(range)) }, (range, target) => Effect.sync(() => {
        calls.readInto += 1
        const r = TensorRef.rangeOf(s.ref, range)
        target.set(bytes.subarray(r.start * 4, r.end * 4))
      }))
      return { ref, decoded: s.decoded }
    })
    const targets = [new Uint8Array(new SharedArrayBuffer(CHUNK * 4)), new Uint8Array(new SharedArrayBuffer(CHUNK * 4))]
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make([inputs.map((x) => x.ref)], c, scope)
      for (let start = 0, k = 0; start < n; start += CHUNK, k++) {
        const end = Math.min(n, start + CHUNK)
        const target = targets[k & 1]!.subarray(0, (end - start) * 4)
        target.fill(0xff)
        yield* stream.sumInto(0, { start, end }, "F32", target)
        expect(f32(target.slice())).toEqual(expected(inputs.map((x) => x.decoded), c, start, end))
      }
      const bf16 = new Uint8Array(2 * 1000)
      yield* stream.sumInto(0, { start: 5000, end: 6000 }, "BF16", bf16)
      expect(bf16).toEqual(DType.fromNumbers(expected(inputs.map((x) => x.decoded), c, 5000, 6000), "BF16"))
    }))
    expect(calls.read).toBe(0)
    expect(calls.readInto).toBeGreaterThanOrEqual(3 * Math.ceil(n / CHUNK))
  })

  it("gives the same bytes for any request pattern: random ranges, whole tensors, repeats", async () => {
    const c = [0.7, 0.3]
    const n = 300_001
    const ins = c.map((_, i) => source(`m${i}`, rand(7 + i, n), "F32", { delay: (r) => ((r.start * 7 + i * 3) % 4) }))
    const values = ins.map((s) => s.decoded)
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make([ins.map((s) => s.ref)], c, scope)
      const ranges = [[0, n], [10, 20], [299_999, 300_001], [5, 100_005], [100_005, 200_010], [0, n], [17, 18], [0, 4]]
      for (const [start, end] of ranges) expect(f32(yield* stream.sum(0, { start: start!, end: end! }, "F32"))).toEqual(expected(values, c, start!, end!))
    }))
  })

  it("drops a wrong guess: a late read-ahead never overwrites the values of a later one", async () => {
    const ins = [source("a", rand(3, 1000), "F32", { delay: (r) => (r.start === 100 ? 60 : 0) })]
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make([ins.map((s) => s.ref)], [1.5], scope)
      yield* stream.sum(0, { start: 0, end: 100 }, "F32") // guesses [100, 200): slow
      yield* stream.sum(0, { start: 500, end: 600 }, "F32") // guesses [600, 700): fast
      yield* Effect.sleep("150 millis") // the slow guess would have landed by now
      expect(f32(yield* stream.sum(0, { start: 600, end: 700 }, "F32"))).toEqual(expected([ins[0]!.decoded], [1.5], 600, 700))
    }))
  })

  it("encodes float16 and bfloat16 inputs and outputs, rounding the float32 sum to nearest even", async () => {
    const c = [0.5, 0.5, 1]
    const n = 70_000
    const ins = [source("a", rand(1, n), "F16"), source("b", rand(2, n), "BF16"), source("c", rand(3, n), "F32")]
    const sum = expected(ins.map((s) => s.decoded), c, 0, n)
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make([ins.map((s) => s.ref)], c, scope)
      expect(yield* stream.sum(0, { start: 0, end: n }, "BF16")).toEqual(DType.fromNumbers(sum, "BF16"))
      expect(yield* stream.sum(0, { start: 0, end: n }, "F16")).toEqual(DType.fromNumbers(sum, "F16"))
      expect(f32(yield* stream.sum(0, { start: 0, end: n }, "F32"))).toEqual(sum)
    }))
  })

  it("sums more inputs than the SIMD kernel takes, and ranges larger than its arena, with the same rounding", async () => {
    const many = Array.from({ length: 11 }, (_, i) => source(`m${i}`, rand(50 + i, 5000)))
    const c = many.map((_, i) => (i + 1) / 66)
    const big = [source("x", rand(9, (4 << 20) + 3)), source("y", rand(10, (4 << 20) + 3))]
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make([many.map((s) => s.ref), big.map((s) => s.ref)], c, scope)
      expect(f32(yield* stream.sum(0, { start: 0, end: 5000 }, "F32"))).toEqual(expected(many.map((s) => s.decoded), c, 0, 5000))
      const two = StreamSum.make([big.map((s) => s.ref)], [0.5, 2], scope)
      const n = (4 << 20) + 3
      expect(f32(yield* two.sum(0, { start: 0, end: n }, "F32"))).toEqual(expected(big.map((s) => s.decoded), [0.5, 2], 0, n))
    }))
  })

  it("serves two consumers pulling at the same time with the right bytes", async () => {
    const c = [1, 2, -0.5]
    const sizes = [600_000, 1_500_000]
    const tensors = sizes.map((n, t) => c.map((_, i) => source(`t${t}.m${i}`, rand(10 * t + i, n), "F32", { delay: (r) => ((r.start + i) % 3) })))
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make(tensors.map((ins) => ins.map((s) => s.ref)), c, scope)
      const consumer = (chunk: number, dtype: DType.WritableDType) =>
        Effect.forEach(sizes.entries(), ([t, n]) =>
          Effect.gen(function* () {
            for (let start = 0; start < n; start += chunk) {
              const end = Math.min(n, start + chunk)
              const got = yield* stream.sum(t, { start, end }, dtype)
              expect(got).toEqual(DType.fromNumbers(expected(tensors[t]!.map((s) => s.decoded), c, start, end), dtype))
              yield* Effect.yieldNow
            }
          }), { discard: true })
      yield* Effect.all([consumer(262_144, "F32"), consumer(100_000, "BF16")], { concurrency: "unbounded" })
    }))
  })

  it("reports a failed read of a requested range as its error, and ignores one it only read ahead", async () => {
    const ins = [source("a", rand(1, 3000), "F32", { fail: (r) => r.start === 2000 }), source("b", rand(2, 3000))]
    await withScope((scope) => Effect.gen(function* () {
      const stream = StreamSum.make([ins.map((s) => s.ref)], [0.5, 0.5], scope)
      // The read-ahead guesses [1000, 2000) and then [2000, 3000), which fails: never requested here.
      yield* stream.sum(0, { start: 0, end: 1000 }, "F32")
      yield* stream.sum(0, { start: 1000, end: 2000 }, "F32")
      expect(f32(yield* stream.sum(0, { start: 0, end: 1000 }, "F32"))).toEqual(expected(ins.map((s) => s.decoded), [0.5, 0.5], 0, 1000))
      const failed = yield* Effect.flip(stream.sum(0, { start: 2000, end: 3000 }, "F32"))
      expect(failed.message).toBe("cannot read a 2000-3000")
    }))
  })

  it("interrupts a read-ahead that never completes when the scope closes", async () => {
    const ins = [source("a", rand(1, 2000), "F32", { stall: (r) => r.start === 1000 })]
    const closed = await Effect.runPromise(Effect.gen(function* () {
      const scope = yield* Scope.make()
      const stream = StreamSum.make([ins.map((s) => s.ref)], [2], scope)
      const first = f32(yield* stream.sum(0, { start: 0, end: 1000 }, "F32"))
      const fiber = yield* Effect.forkDetach(Scope.close(scope, Exit.void))
      yield* Fiber.join(fiber)
      return first
    }).pipe(Effect.timeout("5 seconds")))
    expect(closed).toEqual(expected([ins[0]!.decoded], [2], 0, 1000))
  })

  describe("packed inputs (bf16/f16 read as they are, decoded, summed and encoded by the fused kernel)", () => {
    const n = 2_500_003
    const pairs = [["BF16", "BF16"], ["F16", "F16"], ["BF16", "F32"], ["F32", "BF16"]] as const
    for (const workers of [1, 2]) {
      it(`bf16→bf16, f16→f16, bf16→f32, f32→bf16 on ${workers} thread(s): the bytes of Σ cᵢxᵢ in float64, rounded once, for the writer's chunks`, async () => {
        const c = [0.25, 0.5, 0.25]
        // One tensor per dtype pair, all in one stream (one pool).
        const tensors = pairs.map(([inDtype], t) => c.map((_, i) => source(`t${t}.m${i}`, rand(70 + 10 * t + i, n), inDtype)))
        await withScope((scope) => Effect.gen(function* () {
          const stream = StreamSum.make(tensors.map((ins) => ins.map((s) => s.ref)), c, scope, { workers, checkFinite: true })
          for (const [t, [, outDtype]] of pairs.entries()) {
            const size = DType.byteSize[outDtype]
            const target = new Uint8Array(new SharedArrayBuffer(CHUNK * size))
            for (let start = 0; start < n; start += CHUNK) {
              const end = Math.min(n, start + CHUNK)
              const into = target.subarray(0, (end - start) * size)
              yield* stream.sumInto(t, { start, end }, outDtype, into)
              expect(firstDifference(into, DType.fromNumbers(expected(tensors[t]!.map((x) => x.decoded), c, start, end), outDtype))).toBe(-1)
            }
          }
        }))
        for (const ins of tensors) for (const s of ins) expect(s.reads.length).toBe(Math.ceil(n / CHUNK))
      })
    }

    for (const workers of [1, 2]) {
      it(`on ${workers} thread(s), a target taken from the stream's memory receives the sum where it is computed: the same bytes, the memory reused once given back`, async () => {
        const c = [0.25, 0.5, 0.25]
        const tensors = pairs.map(([inDtype], t) => c.map((_, i) => source(`t${t}.m${i}`, rand(90 + 10 * t + i, n), inDtype)))
        await withScope((scope) => Effect.gen(function* () {
          const stream = StreamSum.make(tensors.map((ins) => ins.map((s) => s.ref)), c, scope, { workers, checkFinite: true })
          const memory = stream.targetMemory!
          // Larger than the writer's buffers ever are: refused (the writer then makes its own).
          expect(memory.take(64 * CHUNK)).toBeUndefined()
          for (const [t, [, outDtype]] of pairs.entries()) {
            const size = DType.byteSize[outDtype]
            const target = memory.take(CHUNK * size)!
            expect(target.buffer).toBeInstanceOf(SharedArrayBuffer)
            for (let start = 0; start < n; start += CHUNK) {
              const end = Math.min(n, start + CHUNK)
              const into = target.subarray(0, (end - start) * size)
              into.fill(0xa5)
              yield* stream.sumInto(t, { start, end }, outDtype, into)
              expect(firstDifference(into, DType.fromNumbers(expected(tensors[t]!.map((x) => x.decoded), c, start, end), outDtype))).toBe(-1)
            }
            memory.give(target)
            // Given back, the same memory is handed out again.
            const again = memory.take(CHUNK * size)!
            expect(again.byteOffset).toBe(target.byteOffset)
            memory.give(again)
          }
        }))
      })
    }

    it("has no target memory when its inputs are not summed by the arena's kernels (float64 inputs)", async () => {
      const ins = [source("w", rand(1, 1000)), source("w", rand(2, 1000))]
      const wide = ins.map((s) => ({ ...s.ref, dtype: "F64" as const, read: () => Effect.succeed(DType.fromNumbers(Float64Array.from(rand(3, 1000)), "F64")) }))
      await withScope((scope) => Effect.sync(() => expect(StreamSum.make([wide], [1, 1], scope).targetMemory).toBeUndefined()))
    })

    it("fails naming the tensor when the f16 sum overflows to Inf only once encoded", async () => {
      const big = Float32Array.from({ length: 300_000 }, (_, i) => (i === 123_456 ? 60_000 : 1))
      const ins = [source("w", big, "F16"), source("w", big, "F16")]
      const failed = await withScope((scope) => Effect.flip(StreamSum.make([ins.map((s) => s.ref)], [1, 1], scope, { workers: 2, checkFinite: true }).sum(0, { start: 0, end: 300_000 }, "F16")))
      expect(failed.message).toContain("w")
      expect(failed.message).toContain("123456")
    })
  })
})
