/**
 * The weighted sum of a streamed merge, `out[j] = Σᵢ cᵢ·xᵢ[j]`, computed per element range as a
 * writer pulls it, with the inputs of the next range read while the current one is summed and
 * written.
 *
 * - **Read-ahead.** A merge knows the order its tensors are written in (file order) but not the
 *   consumer's chunk size; it guesses the next request from the last one (the next range of the
 *   same length, else the start of the next tensor) and reads up to {@link READ_AHEAD} such ranges
 *   ahead, each in a fiber of the stage's scope.
 *   A request that matches takes those values; any other is read on the spot, so a consumer with
 *   another pattern gets the same bytes, only without the overlap. A read-ahead that fails is
 *   retried by the request for its range (whose failure then is the request's), and ignored
 *   otherwise.
 * - **Packed data.** When every input of a tensor is f32, bf16 or f16 (one dtype) and so is the
 *   output, the raw bytes are read straight into one of two sets of slots in a WebAssembly memory
 *   (one set being summed, the others being filled; `TensorRef.readInto`) and the fused SIMD kernel
 *   (`kernels/Packed.ts`) decodes, sums and encodes them in one pass: no per-element conversion,
 *   no float32 copy of a bf16 input. Other dtypes are read as float32 into the same slots and
 *   summed by the f32 kernel (`kernels/Simd.ts`), then encoded. A consumer with its own buffer
 *   (`sumInto`, the safetensors writer) gets the sum copied into it, or, when it took its buffer
 *   from the arena (`targetMemory`), computed there: the copy cost ~7% of a page-cached bf16
 *   merge's calling thread.
 * - **Every core.** A range of at least `StagePool.MIN_ELEMENTS` (2¹⁸) elements is split across the worker
 *   threads of a pool on the same memory (`kernels/Pool.ts`, `StagePool.streamWorkers`: one fewer
 *   than the cores, the calling thread's share of the work being the reads and writes it issues;
 *   on 2 cores the calling thread sums), started when the first such range is summed; the reads of
 *   the next range (libuv's threads) and the writer's write and hash overlap it. Elementwise math:
 *   the bytes do not depend on the split.
 * - **Reused memory.** No fresh buffer per chunk: fresh read buffers kept alive across a write
 *   made V8 promote them and run a full collection every few chunks (measured: 57 against 2 per
 *   256 MiB merge, twice the CPU time), and each fresh buffer is page-faulted memory.
 * - **Same bits on every path.** Requests larger than the arrays, requests that arrive while
 *   another is being served (two consumers at once), and more inputs than the SIMD kernel takes
 *   are read directly and summed by the JavaScript loop, which computes the same bits.
 *
 * - **On a GPU.** Given a device (`options.gpu`: the run's `GpuMerge`), each range is summed there
 *   instead (`gpu/WeightedSum.ts`: bf16/f16/f32 inputs as stored, decoded in the shader, float32
 *   sums; one `WeightedSum.make` for the stream's life, its pipelines and buffers reused, the
 *   inputs written to the device straight from the arena's slots and the sums read back into its
 *   output slot) and the float32 sums are encoded to the output dtype as the CPU path encodes its own
 *   (`DType.fromNumbers`, nearest even). The reads, read-ahead and arena are the same. The sums
 *   agree with the CPU's within `WeightedSum.bound`, not bit for bit; a range whose GPU sum is not
 *   finite (a float32 partial sum may overflow where the CPU's float64 one does not) is summed
 *   again on the CPU, whose verdict stands.
 *
 * - **Non-finite values.** With `checkFinite`, each summed range is scanned for NaN/±Inf (a SIMD
 *   pass while it is in cache, ~3% of the merge). Any non-finite input reaches the sum (0·Inf and
 *   0·NaN are NaN), so scanning the output finds both; the error then says which, by scanning the
 *   whole tensor's inputs (a failing merge may spend the time).
 *
 * Memory: {@link READ_AHEAD} + 1 sets of one range per input plus one output range in the arena,
 * 4 bytes an element each (68 MiB for four inputs in the writer's 1M-element chunks), and the
 * fresh output of each request (none with `sumInto`).
 *
 * @since 0.1.0
 */
/// <reference types="@webgpu/types" />
import { DType, TensorRef } from "@crucible/core"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as GpuSum from "./gpu/WeightedSum.ts"
import * as Arena from "./kernels/Arena.ts"
import * as NonFinite from "./kernels/NonFinite.ts"
import * as Packed from "./kernels/Packed.ts"
import * as Pool from "./kernels/Pool.ts"
import * as Simd from "./kernels/Simd.ts"
import { weightedSum } from "./kernels/WeightedSum.ts"
import * as StagePool from "./StagePool.ts"

/** Weighted sums of the same range of several tensors. @category models */
export interface StreamSum {
  /** `Σᵢ cᵢ·inputs[index][i][range]`, encoded as `dtype` in fresh bytes. */
  readonly sum: (index: number, range: TensorRef.ElementRange, dtype: DType.WritableDType) => Effect.Effect<TensorRef.TensorBytes, TensorRef.TensorError>
  /** The same bytes, written into `target` (the consumer's reused memory: no fresh output). */
  readonly sumInto: (index: number, range: TensorRef.ElementRange, dtype: DType.WritableDType, target: Uint8Array) => Effect.Effect<void, TensorRef.TensorError>
  /**
   * The arena, for the consumer's targets (`TensorRef.TargetMemory`): a bf16/f16/f32 sum into a
   * target taken from it is computed there, with no copy. Undefined where the sum is not computed
   * by the arena's kernels (a GPU, or inputs the kernels do not take).
   */
  readonly targetMemory: TensorRef.TargetMemory | undefined
}

/** @category models */
export interface StreamSumOptions {
  /** Scan each summed range for NaN/±Inf and fail naming the tensor (default false). */
  readonly checkFinite?: boolean
  /** Threads that sum large ranges (default `StagePool.streamWorkers`: `CRUCIBLE_MERGE_THREADS`, else one fewer than the cores; 1 = this thread). */
  readonly workers?: number
  /** Sum on this GPU instead of the CPU's kernels (see the module doc); `maxBindingBytes` as `WeightedSum.Options`. */
  readonly gpu?: { readonly device: GPUDevice; readonly maxBindingBytes?: number }
}

/** The writer's default chunk (`Safetensors.write`): the first guess for a tensor larger than it. */
const DEFAULT_CHUNK = 1024 * 1024
/** The largest range served from the arena (16 MiB per input); larger ones are read directly. */
const MAX_RANGE = 4 * 1024 * 1024
/** Arena room for the consumer's targets: the writer's three chunk buffers of up to {@link MAX_RANGE} float32s. */
const TARGET_BYTES = 3 * MAX_RANGE * 4
/**
 * Ranges read ahead of the one being summed. One is not enough once the sum is fast: the reads of
 * the next range (three 2 MiB preads for three bf16 inputs) then take longer than the sum, and
 * with nothing else in flight the cores idle between them (measured: 3 × 1.3 GB bf16, page-cached,
 * 3.0 s with one, … with three).
 * @category constants
 */
export const READ_AHEAD = 3
/** Sets of input slots: one being summed and one per read-ahead. */
const SETS = READ_AHEAD + 1
/** Arena bytes per element of a streamed range with `inputs` inputs: every set and the output, 4 bytes an element. @category constants */
export const bytesPerElement = (inputs: number): number => (SETS * inputs + 1) * 4

/** Elementwise work splits anywhere; ranges of whole 16-element steps keep each worker's SIMD loop whole. */
const SPLIT_BLOCK = 4096

interface Slots {
  readonly capacity: number
  /** {@link SETS} sets of one slot per input, `capacity` × 4 bytes each (a float32 or a packed range). */
  readonly sets: ReadonlyArray<ReadonlyArray<Uint8Array>>
  readonly out: Uint8Array
}

interface Pending {
  readonly index: number
  readonly start: number
  readonly end: number
  readonly set: number
  readonly fiber: Fiber.Fiber<void, TensorRef.TensorError>
}

const floats = (bytes: Uint8Array, elements: number): Float32Array => new Float32Array(bytes.buffer, bytes.byteOffset, elements)

/**
 * Sums over `inputs[k]`, the input tensors of the k-th output tensor in the order a writer
 * reads them, with `coefficients` (one per input); read-ahead fibers and the worker pool live in
 * `scope`.
 *
 * @category constructors
 */
export const make = (
  inputs: ReadonlyArray<ReadonlyArray<TensorRef.TensorRef>>,
  coefficients: ReadonlyArray<number>,
  scope: Scope.Scope,
  options: StreamSumOptions = {}
): StreamSum => {
  const checkFinite = options.checkFinite ?? false
  const workers = options.workers ?? StagePool.streamWorkers()
  const gpu = options.gpu
  const count = coefficients.length
  const sizes = inputs.map((tensors) => TensorRef.numel(tensors[0]!.shape))
  // The dtype a tensor's inputs share when the fused kernel can read them as they are.
  const packedIn = inputs.map((tensors) => {
    const dtype = tensors[0]!.dtype
    return Packed.isPacked(dtype) && tensors.every((t) => t.dtype === dtype) ? dtype : undefined
  })
  const kernelsOk = count >= 1 && count <= Simd.MAX_INPUTS && Simd.isSupported()
  // One arena for the stream's life (virtual until touched), so the pool's workers, which map it
  // once, see every slot; slots grow inside it.
  let arena: Arena.Arena | undefined
  let kernels: { readonly simd: Simd.SimdKernels; readonly packed: Packed.PackedKernels } | undefined
  let pool: StagePool.StagePool | undefined
  let slots: Slots | undefined
  // Read-aheads in the order they are expected to be asked for.
  let queue: Array<Pending> = []
  let current = 0
  let chunk = DEFAULT_CHUNK
  let busy = false
  // The GPU sum's pipelines and buffers, made by the first range summed there and kept for the
  // stream's life (destroyed with `scope`).
  let gpuSum: GpuSum.WeightedSum | undefined

  const packedOf = (index: number, dtype: DType.WritableDType): { readonly inDtype: Packed.PackedDType; readonly outDtype: Packed.PackedDType } | undefined => {
    const inDtype = packedIn[index]
    return inDtype !== undefined && Packed.isPacked(dtype) ? { inDtype, outDtype: dtype } : undefined
  }

  const whole = (index: number, start: number, end: number) => (start === 0 && end === sizes[index]! ? undefined : { start, end })

  const read = (index: number, start: number, end: number) =>
    Effect.forEach(inputs[index]!, (t) => Effect.map(t.read(whole(index, start, end)), (bytes) => DType.toFloat32(bytes, t.dtype)), { concurrency: "unbounded" })

  // Reads a range into a set: raw bytes when the tensor sums packed, else float32 (converted).
  const fill = (index: number, start: number, end: number, set: ReadonlyArray<Uint8Array>, packed: boolean) =>
    Effect.forEach(inputs[index]!, (t, i) => packed
      ? TensorRef.readInto(t, whole(index, start, end), set[i]!.subarray(0, (end - start) * DType.byteSize[t.dtype]))
      : TensorRef.readFloat32Into(t, whole(index, start, end), floats(set[i]!, end - start)), {
      concurrency: "unbounded",
      discard: true
    })

  // Made by the first range summed or target taken; the memory is virtual until touched.
  const arenaFor = (capacity: number): Arena.Arena => {
    if (arena === undefined) {
      const most = (SETS * count + 1) * MAX_RANGE * 4 + TARGET_BYTES + (1 << 20)
      arena = Arena.make({ maxBytes: most, initialBytes: (SETS * count + 1) * capacity * 4 + (1 << 16) })
      if (kernelsOk) kernels = { simd: Simd.make(arena.memory, arena.owns), packed: Packed.make(arena.memory, arena.owns) }
    }
    return arena
  }

  const allocate = (capacity: number): Slots => {
    const a = arenaFor(capacity)
    if (slots !== undefined) for (const s of [...slots.sets.flat(), slots.out]) a.free(floats(s, s.byteLength / 4))
    const slot = () => {
      const f = a.alloc(capacity)!
      return new Uint8Array(f.buffer, f.byteOffset, f.byteLength)
    }
    return { capacity, sets: Array.from({ length: SETS }, () => coefficients.map(slot)), out: slot() }
  }

  // The pool on the arena's memory, started by the first large range (StagePool: none for one
  // thread, or when the workers cannot start — the same bytes then come from this thread).
  const poolFor = (elements: number): Effect.Effect<Pool.Pool | undefined> => {
    if (arena === undefined || kernels === undefined) return Effect.succeed(undefined)
    pool ??= StagePool.make(scope, workers, arena)
    return pool.forTensor(elements)
  }

  const guess = (index: number, start: number, end: number): { index: number; start: number; end: number } | undefined => {
    if (end < sizes[index]!) return { index, start: end, end: Math.min(sizes[index]!, end + (end - start)) }
    if (index + 1 >= sizes.length) return undefined
    return { index: index + 1, start: 0, end: Math.min(sizes[index + 1]!, chunk) }
  }

  // The sum's bytes, into the consumer's target or else as fresh bytes (a copy when they are the
  // reused arena's).
  const deliver = (bytes: Uint8Array, reused: boolean, target: Uint8Array | undefined): TensorRef.TensorBytes | undefined => {
    if (target !== undefined) {
      if (bytes.buffer !== target.buffer || bytes.byteOffset !== target.byteOffset) target.set(bytes)
      return undefined
    }
    if (!reused && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes as TensorRef.TensorBytes
    const fresh = new Uint8Array(bytes.byteLength)
    fresh.set(bytes)
    return fresh
  }

  // Direct path: fresh reads, the JavaScript loops (or the GPU), no read-ahead.
  const direct = (index: number, start: number, end: number, dtype: DType.WritableDType, target: Uint8Array | undefined): Effect.Effect<TensorRef.TensorBytes | undefined, TensorRef.TensorError> =>
    gpu === undefined ? directCpu(index, start, end, dtype, target) : Effect.gen(function* () {
      const inDtype = packedIn[index] ?? "F32"
      const raw = yield* (packedIn[index] === undefined
        ? Effect.map(read(index, start, end), (values) => values.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength)))
        : Effect.forEach(inputs[index]!, (t) => t.read(whole(index, start, end)), { concurrency: "unbounded" }))
      const { bytes, bad } = yield* onGpu(gpu, raw, inDtype, end - start, dtype)
      return bad ? yield* directCpu(index, start, end, dtype, target) : deliver(bytes, false, target)
    })

  const directCpu = (index: number, start: number, end: number, dtype: DType.WritableDType, target: Uint8Array | undefined) => {
    const packed = packedOf(index, dtype)
    if (packed !== undefined) {
      return Effect.flatMap(Effect.forEach(inputs[index]!, (t) => t.read(whole(index, start, end)), { concurrency: "unbounded" }), (raw) => {
        const out = new Uint8Array((end - start) * DType.byteSize[packed.outDtype])
        Packed.weightedSumJs(out, packed.outDtype, raw, packed.inDtype, coefficients, 0, end - start)
        return checkFinite && Packed.hasNonFiniteJs(out, packed.outDtype, 0, end - start) ? nonFinite(index, dtype) : Effect.succeed(deliver(out, false, target))
      })
    }
    return Effect.flatMap(read(index, start, end), (values) => {
      const out = new Float32Array(end - start)
      weightedSum(out, values, coefficients)
      const bytes = DType.fromNumbers(out, dtype)
      const bad = checkFinite && (NonFinite.firstNonFinite(out) >= 0 || (Packed.isPacked(dtype) && Packed.hasNonFiniteJs(bytes, dtype, 0, end - start)))
      return bad ? nonFinite(index, dtype) : Effect.succeed(deliver(bytes, false, target))
    })
  }

  // Which input of the tensor holds the first non-finite value, or else where the sum is not
  // finite in the output dtype (a float32 sum beyond f16's range overflows when encoded).
  const nonFinite = (index: number, dtype: DType.WritableDType) =>
    Effect.gen(function* () {
      const tensors = inputs[index]!
      const all = yield* Effect.forEach(tensors, (t) => TensorRef.readFloat32(t))
      const name = tensors[0]!.name
      const input = NonFinite.find(all.map((values) => ({ tensor: name, values })))
      if (input !== undefined) return yield* new NonFinite.NonFiniteTensor({ role: "input", ...input })
      const sum = new Float32Array(sizes[index]!)
      weightedSum(sum, all, coefficients)
      const out = dtype === "F32" || !DType.isFloat(dtype) ? sum : DType.toFloat32(DType.fromNumbers(sum, dtype), dtype)
      const output = NonFinite.find([{ tensor: name, values: out }])
      // The scan that sent us here saw a non-finite sum; not finding it again is a bug.
      if (output === undefined) return yield* Effect.die(new Error(`StreamSum: "${name}" was reported non-finite, but its sum is finite`))
      return yield* new NonFinite.NonFiniteTensor({ role: "output", ...output })
    })

  // Drops the read-aheads after a request that is not the next one expected. They are awaited,
  // not interrupted: a file read cannot be called back, and one still running would land in a
  // set that is about to be reused.
  const dropQueue = Effect.suspend(() => {
    const dropped = queue
    queue = []
    return Effect.forEach(dropped, (p) => Fiber.await(p.fiber), { discard: true })
  })

  // Sums set `set` (m elements): on the GPU when there is one (the CPU again for a range that is
  // not finite there), else into the output slot; returns the output's bytes.
  const compute = (index: number, m: number, set: ReadonlyArray<Uint8Array>, out: Uint8Array, dtype: DType.WritableDType) => {
    if (gpu === undefined) return computeCpu(index, m, set, out, dtype)
    const inDtype = packedOf(index, dtype)?.inDtype ?? "F32"
    return Effect.flatMap(onGpu(gpu, set, inDtype, m, dtype, floats(out, m)), (summed) => (summed.bad ? computeCpu(index, m, set, out, dtype) : Effect.succeed(summed)))
  }

  const computeCpu = (index: number, m: number, set: ReadonlyArray<Uint8Array>, out: Uint8Array, dtype: DType.WritableDType) =>
    Effect.gen(function* () {
      const packed = packedOf(index, dtype)
      const p = yield* poolFor(m)
      if (packed !== undefined) {
        const values = set.map((s) => s.subarray(0, m * DType.byteSize[packed.inDtype]))
        const result = out.subarray(0, m * DType.byteSize[packed.outDtype])
        const args = { out: result, outDtype: packed.outDtype, inputs: values, inDtype: packed.inDtype, coefficients }
        if (p !== undefined) yield* Effect.orDie(p.run("packedSum", args, Pool.split(m, p.workers, SPLIT_BLOCK)))
        else if (kernels === undefined || !kernels.packed.weightedSum(result, packed.outDtype, values, packed.inDtype, coefficients, 0, m)) {
          Packed.weightedSumJs(result, packed.outDtype, values, packed.inDtype, coefficients, 0, m)
        }
        const bad = checkFinite && (kernels?.packed.hasNonFinite(result, packed.outDtype, 0, m) ?? Packed.hasNonFiniteJs(result, packed.outDtype, 0, m))
        return { bytes: result, bad }
      }
      const values = set.map((s) => floats(s, m))
      const sum = floats(out, m)
      if (p !== undefined) yield* Effect.orDie(p.run("weightedSum", { out: sum, inputs: values, coefficients }, Pool.split(m, p.workers, SPLIT_BLOCK)))
      else if (kernels === undefined || !kernels.simd.weightedSum(sum, values, coefficients, 0, m)) weightedSum(sum, values, coefficients)
      const bad = checkFinite && (kernels?.simd.hasNonFinite(sum, 0, m) ?? NonFinite.firstNonFinite(sum) >= 0)
      const bytes = dtype === "F32" ? new Uint8Array(sum.buffer, sum.byteOffset, sum.byteLength) : DType.fromNumbers(sum, dtype)
      return { bytes, bad: bad || (checkFinite && dtype !== "F32" && Packed.isPacked(dtype) && Packed.hasNonFiniteJs(bytes, dtype, 0, m)) }
    })

  const viaArena = (index: number, start: number, end: number, dtype: DType.WritableDType, target: Uint8Array | undefined) =>
    Effect.gen(function* () {
      const m = end - start
      const packed = packedOf(index, dtype) !== undefined
      const head = queue[0]
      const hit = head !== undefined && head.index === index && head.start === start && head.end === end ? head : undefined
      if (hit === undefined) yield* dropQueue
      else queue.shift()
      if (slots === undefined || slots.capacity < m) {
        yield* dropQueue
        slots = allocate(Math.min(MAX_RANGE, Math.max(m, chunk)))
      }
      const s = slots
      if (hit !== undefined) {
        current = hit.set
        // A read-ahead that failed is read again here, in this request's own context (under
        // --memory-limit a read-ahead may find no memory free that the request then has).
        if (Exit.isFailure(yield* Effect.exit(Fiber.join(hit.fiber)))) yield* fill(index, start, end, s.sets[current]!, packed)
      } else {
        yield* fill(index, start, end, s.sets[current]!, packed)
      }
      // Keep READ_AHEAD ranges in flight, each into a set that is neither summed nor being filled.
      // The read-ahead decides packed or float32 by the dtype of this request: a writer asks
      // every tensor for one output dtype.
      let last = queue.at(-1) ?? { index, start, end }
      while (queue.length < READ_AHEAD) {
        const next = guess(last.index, last.start, last.end)
        if (next === undefined || next.end - next.start > s.capacity) break
        const busySets = new Set([current, ...queue.map((p) => p.set)])
        const set = Array.from({ length: SETS }, (_, k) => k).find((k) => !busySets.has(k))!
        const fiber = yield* Effect.forkIn(fill(next.index, next.start, next.end, s.sets[set]!, packedOf(next.index, dtype) !== undefined), scope, { startImmediately: true })
        queue.push({ ...next, set, fiber })
        last = next
      }
      // A target in the arena receives the packed sum where the kernel writes it (no copy below).
      const inPlace = target !== undefined && gpu === undefined && packed && arena!.owns(target)
      const { bytes, bad } = yield* compute(index, m, s.sets[current]!, inPlace ? target : s.out, dtype)
      if (bad) return yield* nonFinite(index, dtype)
      return deliver(bytes, bytes.buffer === s.out.buffer, target)
    })

  const serve = (index: number, range: TensorRef.ElementRange, dtype: DType.WritableDType, target: Uint8Array | undefined) =>
    Effect.suspend(() => {
      const { start, end } = TensorRef.rangeOf(inputs[index]![0]!, range)
      // A range that ends before its tensor does is a full chunk (the last one may be shorter).
      if (end < sizes[index]!) chunk = end - start
      if (busy || end - start > MAX_RANGE || count > Simd.MAX_INPUTS) return direct(index, start, end, dtype, target)
      busy = true
      return Effect.ensuring(viaArena(index, start, end, dtype, target), Effect.sync(() => { busy = false }))
    })

  // The sum of m elements of `values` (the raw bytes of `inDtype`) on the GPU, encoded as `dtype`.
  // `out`, when given, receives the float32 sums (the arena's output slot).
  const onGpu = (device: NonNullable<StreamSumOptions["gpu"]>, values: ReadonlyArray<Uint8Array>, inDtype: Packed.PackedDType, m: number, dtype: DType.WritableDType, out?: Float32Array) =>
    Effect.gen(function* () {
      if (gpuSum === undefined) {
        const made = gpuSum = GpuSum.make(device.device, device.maxBindingBytes === undefined ? {} : { maxBindingBytes: device.maxBindingBytes })
        yield* Scope.addFinalizer(scope, Effect.sync(() => made.destroy()))
      }
      const size = DType.byteSize[inDtype]
      // Typed views need aligned offsets: arena slots and file reads are; anything else is copied.
      const aligned = values.map((v) => (v.byteOffset % size === 0 ? v : v.slice(0, m * size)))
      const inputs: GpuSum.Inputs = inDtype === "F32"
        ? { dtype: "F32", arrays: aligned.map((v) => new Float32Array(v.buffer, v.byteOffset, m)) }
        : { dtype: inDtype, arrays: aligned.map((v) => new Uint16Array(v.buffer, v.byteOffset, m)) }
      const sum = yield* gpuSum.sum(inputs, coefficients, out)
      yield* Effect.annotateCurrentSpan({ "crucible.merge.device": "gpu" })
      const bytes = dtype === "F32" ? new Uint8Array(sum.buffer, sum.byteOffset, sum.byteLength) : DType.fromNumbers(sum, dtype)
      // Always checked, whatever checkFinite says: a float32 partial sum may overflow where the CPU's
      // float64 one does not, so a non-finite GPU range goes back to the CPU, which applies checkFinite.
      const bad = NonFinite.firstNonFinite(sum) >= 0 || (dtype !== "F32" && Packed.isPacked(dtype) && Packed.hasNonFiniteJs(bytes, dtype, 0, m))
      return { bytes, bad }
    })

  const targetMemory: TensorRef.TargetMemory | undefined = gpu !== undefined || !kernelsOk || packedIn.every((d) => d === undefined)
    ? undefined
    : {
      take: (byteLength) => (byteLength > TARGET_BYTES / 3 ? undefined : arenaFor(DEFAULT_CHUNK).allocBytes(byteLength)),
      give: (bytes) => arena?.free(bytes)
    }

  return {
    sum: (index, range, dtype) => Effect.map(serve(index, range, dtype, undefined), (bytes) => bytes!),
    sumInto: (index, range, dtype, target) => Effect.asVoid(serve(index, range, dtype, target)),
    targetMemory
  }
}
