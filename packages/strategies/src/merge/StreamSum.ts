/**
 * The weighted sum of a streamed merge, `out[j] = Σᵢ cᵢ·xᵢ[j]`, computed per element range as a
 * writer pulls it, with the inputs of the next range read while the current one is summed and
 * written.
 *
 * - **Read-ahead.** A merge knows the order its tensors are written in (file order) but not the
 *   consumer's chunk size; it guesses the next request from the last one (the next range of the
 *   same length, else the start of the next tensor) and reads it in a fiber of the stage's scope.
 *   A request that matches takes those values; any other is read on the spot, so a consumer with
 *   another pattern gets the same bytes, only without the overlap. A read-ahead that fails is
 *   retried by the request for its range (whose failure then is the request's), and ignored
 *   otherwise.
 * - **Reused memory.** Inputs are read straight into one of two sets of arrays in a WebAssembly
 *   memory (one set being summed, one being filled; `TensorRef.readInto`, a copy for tensors
 *   without it or of another dtype), where the SIMD kernel (`kernels/Simd.ts`) sums them; a
 *   consumer with its own buffer (`sumInto`, the safetensors writer) gets the sum copied into
 *   it. No fresh buffer per chunk: fresh read buffers kept alive across a write made V8 promote
 *   them and run a full collection every few chunks (measured: 57 against 2 per 256 MiB merge,
 *   twice the CPU time), and each fresh buffer is page-faulted memory.
 * - **Same bits on every path.** Requests larger than the arrays, requests that arrive while
 *   another is being served (two consumers at once), and more inputs than the SIMD kernel takes
 *   are read directly and summed by the JavaScript loop, which computes the same bits.
 *
 * - **Non-finite values.** With `checkFinite`, each summed range is scanned for NaN/±Inf (a SIMD
 *   pass while it is in cache, ~3% of the merge). Any non-finite input reaches the sum (0·Inf and
 *   0·NaN are NaN), so scanning the output finds both; the error then says which, by scanning the
 *   whole tensor's inputs (a failing merge may spend the time).
 *
 * Memory: two sets of one range per input plus one output range in the arena (36 MiB for four
 * inputs in the writer's 1M-element chunks), and the fresh output of each request.
 *
 * @since 0.1.0
 */
import { DType, TensorRef } from "@crucible/core"
import { Effect, Exit, Fiber, type Scope } from "effect"
import * as Arena from "./kernels/Arena.ts"
import * as NonFinite from "./kernels/NonFinite.ts"
import * as Simd from "./kernels/Simd.ts"
import { weightedSum } from "./kernels/WeightedSum.ts"

/** Weighted sums of the same range of several tensors. @category models */
export interface StreamSum {
  /** `Σᵢ cᵢ·inputs[index][i][range]`, encoded as `dtype` in fresh bytes. */
  readonly sum: (index: number, range: TensorRef.ElementRange, dtype: DType.WritableDType) => Effect.Effect<TensorRef.TensorBytes, TensorRef.TensorError>
  /** The same bytes, written into `target` (the consumer's reused memory: no fresh output). */
  readonly sumInto: (index: number, range: TensorRef.ElementRange, dtype: DType.WritableDType, target: Uint8Array) => Effect.Effect<void, TensorRef.TensorError>
}

/** The writer's default chunk (`Safetensors.write`): the first guess for a tensor larger than it. */
const DEFAULT_CHUNK = 1024 * 1024
/** The largest range served from the arena (16 MiB per input); larger ones are read directly. */
const MAX_RANGE = 4 * 1024 * 1024

interface Slots {
  readonly capacity: number
  /** Two sets of one array per input. */
  readonly sets: readonly [ReadonlyArray<Float32Array>, ReadonlyArray<Float32Array>]
  readonly out: Float32Array
  readonly simd: Simd.SimdKernels | undefined
}

interface Pending {
  readonly index: number
  readonly start: number
  readonly end: number
  readonly set: 0 | 1
  readonly fiber: Fiber.Fiber<void, TensorRef.TensorError>
}

const bytesOf = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

/**
 * Sums over `inputs[k]`, the input tensors of the k-th output tensor in the order a writer
 * reads them, with `coefficients` (one per input); read-ahead fibers run in `scope`.
 *
 * @category constructors
 */
export const make = (
  inputs: ReadonlyArray<ReadonlyArray<TensorRef.TensorRef>>,
  coefficients: ReadonlyArray<number>,
  scope: Scope.Scope,
  options: { readonly checkFinite?: boolean } = {}
): StreamSum => {
  const checkFinite = options.checkFinite ?? false
  const count = coefficients.length
  const sizes = inputs.map((tensors) => TensorRef.numel(tensors[0]!.shape))
  const simdOk = count >= 1 && count <= Simd.MAX_INPUTS && Simd.isSupported()
  let slots: Slots | undefined
  let pending: Pending | undefined
  let current: 0 | 1 = 0
  let chunk = DEFAULT_CHUNK
  let busy = false

  const read = (index: number, start: number, end: number) =>
    Effect.forEach(inputs[index]!, (t) => Effect.map(t.read(start === 0 && end === sizes[index]! ? undefined : { start, end }), (bytes) => DType.toFloat32(bytes, t.dtype)), { concurrency: "unbounded" })

  // Reads a range into a set: float32 straight into the arena, other dtypes converted.
  const fill = (index: number, start: number, end: number, set: ReadonlyArray<Float32Array>) =>
    Effect.forEach(inputs[index]!, (t, i) => TensorRef.readFloat32Into(t, start === 0 && end === sizes[index]! ? undefined : { start, end }, set[i]!.subarray(0, end - start)), {
      concurrency: "unbounded",
      discard: true
    })

  const allocate = (capacity: number): Slots => {
    const arena = Arena.make({ maxBytes: (2 * count + 1) * capacity * 4 + (1 << 20), initialBytes: (2 * count + 1) * capacity * 4 + (1 << 16) })
    const set = () => coefficients.map(() => arena.alloc(capacity)!)
    return { capacity, sets: [set(), set()], out: arena.alloc(capacity)!, simd: simdOk ? Simd.make(arena.memory, arena.owns) : undefined }
  }

  const guess = (index: number, start: number, end: number): { index: number; start: number; end: number } | undefined => {
    if (end < sizes[index]!) return { index, start: end, end: Math.min(sizes[index]!, end + (end - start)) }
    if (index + 1 >= sizes.length) return undefined
    return { index: index + 1, start: 0, end: Math.min(sizes[index + 1]!, chunk) }
  }

  // The sum as `dtype` bytes, into the consumer's target or else as fresh bytes: float32 sums in
  // the reused arena are copied out, a fresh float32 sum is handed over as it is.
  const deliver = (sum: Float32Array, reused: boolean, dtype: DType.WritableDType, target: Uint8Array | undefined): TensorRef.TensorBytes | undefined => {
    const bytes = dtype === "F32" ? bytesOf(sum) : DType.fromNumbers(sum, dtype)
    if (target !== undefined) {
      target.set(bytes)
      return undefined
    }
    if (dtype !== "F32" || !reused) return bytes as TensorRef.TensorBytes
    const fresh = new Uint8Array(bytes.byteLength)
    fresh.set(bytes)
    return fresh
  }

  // Direct path: fresh reads, the JavaScript loop, no read-ahead.
  const direct = (index: number, start: number, end: number, dtype: DType.WritableDType, target: Uint8Array | undefined) =>
    Effect.flatMap(read(index, start, end), (values) => {
      const out = new Float32Array(end - start)
      weightedSum(out, values, coefficients)
      return checkFinite && NonFinite.firstNonFinite(out) >= 0 ? nonFinite(index) : Effect.succeed(deliver(out, false, dtype, target))
    })

  // Which input of the tensor holds the first non-finite value, or else where the sum overflowed.
  const nonFinite = (index: number) =>
    Effect.gen(function* () {
      const tensors = inputs[index]!
      const whole = yield* Effect.forEach(tensors, (t) => TensorRef.readFloat32(t))
      const name = tensors[0]!.name
      const input = NonFinite.find(whole.map((values) => ({ tensor: name, values })))
      if (input !== undefined) return yield* new NonFinite.NonFiniteTensor({ role: "input", ...input })
      const out = new Float32Array(sizes[index]!)
      weightedSum(out, whole, coefficients)
      const output = NonFinite.find([{ tensor: name, values: out }])
      // The scan that sent us here saw a non-finite sum; not finding it again is a bug.
      if (output === undefined) return yield* Effect.die(new Error(`StreamSum: "${name}" was reported non-finite, but its sum is finite`))
      return yield* new NonFinite.NonFiniteTensor({ role: "output", ...output })
    })

  const cancelPending = Effect.suspend(() => {
    const p = pending
    pending = undefined
    return p === undefined ? Effect.void : Fiber.interrupt(p.fiber)
  })

  const viaArena = (index: number, start: number, end: number, dtype: DType.WritableDType, target: Uint8Array | undefined) =>
    Effect.gen(function* () {
      const m = end - start
      const hit = pending !== undefined && pending.index === index && pending.start === start && pending.end === end ? pending : undefined
      if (hit === undefined) yield* cancelPending
      if (slots === undefined || slots.capacity < m) slots = allocate(Math.min(MAX_RANGE, Math.max(m, chunk)))
      const s = slots
      if (hit !== undefined) {
        pending = undefined
        current = hit.set
        // A read-ahead that failed is read again here, in this request's own context (under
        // --memory-limit a read-ahead may find no memory free that the request then has).
        if (Exit.isFailure(yield* Effect.exit(Fiber.join(hit.fiber)))) yield* fill(index, start, end, s.sets[current]!)
      } else {
        yield* fill(index, start, end, s.sets[current]!)
      }
      const next = guess(index, start, end)
      if (next !== undefined && next.end - next.start <= s.capacity) {
        const other: 0 | 1 = current === 0 ? 1 : 0
        const fiber = yield* Effect.forkIn(fill(next.index, next.start, next.end, s.sets[other]), scope, { startImmediately: true })
        pending = { ...next, set: other, fiber }
      }
      const values = s.sets[current]!.map((a) => a.subarray(0, m))
      const out = s.out.subarray(0, m)
      if (s.simd === undefined || !s.simd.weightedSum(out, values, coefficients, 0, m)) weightedSum(out, values, coefficients)
      if (checkFinite && (s.simd?.hasNonFinite(out, 0, m) ?? NonFinite.firstNonFinite(out) >= 0)) return yield* nonFinite(index)
      return deliver(out, true, dtype, target)
    })

  const serve = (index: number, range: TensorRef.ElementRange, dtype: DType.WritableDType, target: Uint8Array | undefined) =>
    Effect.suspend(() => {
      const { start, end } = TensorRef.rangeOf(inputs[index]![0]!, range)
      // A range that ends before its tensor does is a full chunk (the last one may be shorter).
      if (end < sizes[index]!) chunk = end - start
      if (busy || end - start > MAX_RANGE) return direct(index, start, end, dtype, target)
      busy = true
      return Effect.ensuring(viaArena(index, start, end, dtype, target), Effect.sync(() => { busy = false }))
    })

  return {
    sum: (index, range, dtype) => Effect.map(serve(index, range, dtype, undefined), (bytes) => bytes!),
    sumInto: (index, range, dtype, target) => Effect.asVoid(serve(index, range, dtype, target))
  }
}
