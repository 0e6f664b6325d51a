/**
 * The range-wise form of the task-arithmetic merges (task arithmetic, TIES, DARE, breadcrumbs,
 * DELLA) for tensor groups too large to hold as float32: the inputs are read once into shared
 * memory in their own dtype (a bf16 input takes half of its float32 size), the statistics run as
 * passes over block-aligned ranges on the stage's pool (`kernels/PackedParallel.ts`), and the
 * output is computed range by range as its reader asks for it — never one whole float32 array.
 * The bytes are those of the whole-tensor path (see `kernels/PackedTaskArithmetic.ts`).
 *
 * With a GPU (`options.gpu`: the run's `GpuMerge`) and a plan it runs (every preset, any rescale, up
 * to 32 models: `gpu/RangeWise.supports`), the non-finite scan, the magnitude cuts, the L1 norms,
 * DARE's and DELLA's draws and every output range run in WGSL on the packed inputs
 * (`gpu/RangeWise.ts`): the kept sets are the CPU's, the
 * values within the README's "GPU kernels" bound (not its bytes), encoded to the output dtype on
 * the host as the CPU encodes its float32 values.
 *
 * Why hold the packed bytes rather than re-read the files on every pass: a file read decodes in
 * the calling thread (one core) on every pass, while packed bytes in shared memory let every
 * worker decode its own range; and a tensor that is itself computed (a merge of a merge) would be
 * recomputed per pass. The held bytes are 2 per element for bf16 (786 MB for the 131M-element
 * embedding of base + 2 models), well inside the 1.5 GB target.
 *
 * @since 0.1.0
 */
import { DType, MemoryBudget, Stage, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as GpuRange from "./gpu/RangeWise.ts"
import * as NonFinite from "./kernels/NonFinite.ts"
import { encodeBF16, isPackable, type PackedInput } from "./kernels/PackedInput.ts"
import * as PackedParallel from "./kernels/PackedParallel.ts"
import type { PoolError } from "./kernels/Pool.ts"
import type { GpuKernelError } from "./gpu/Device.ts"
import type { Prepared, TaskArithmeticPlan } from "./kernels/TaskArithmetic.ts"
import * as TaskDiagnostics from "./kernels/TaskDiagnostics.ts"
import type * as StagePool from "./StagePool.ts"

/**
 * Tensor groups whose float32 working set (inputs and output) exceeds this merge range-wise.
 * 64 MiB keeps the small tensors (norms, biases, every test model's) on the whole-tensor path,
 * where one pass over float32 arrays is simplest, and sends every large matrix of an LLM
 * range-wise: the 4096² attention matrices (256 MiB as float32 for base + 2), the 4096×11008 MLP
 * (720 MB) and the embeddings (2.1 GB). A higher cut (256 MiB) left the 4096² groups whole, and
 * their reused float32 buffers (268 MB) then sat beside the packed ones: measured on base + 2
 * bf16 folders of a [32000, 4096] embedding and four 4096² matrices, peak RSS 1.32 GB at 256 MiB,
 * 1.05 GB at 64 MiB, 2.32 GB all whole; range-wise took no more CPU time than whole.
 *
 * @category constants
 */
export const DEFAULT_THRESHOLD_BYTES = 64 * 1024 * 1024

/** The threshold: `CRUCIBLE_RANGE_WISE_BYTES` when set to a non-negative integer (0: every eligible tensor), else the default. @category constants */
export const thresholdFromEnv = (): number => {
  const wanted = Number(process.env.CRUCIBLE_RANGE_WISE_BYTES)
  return process.env.CRUCIBLE_RANGE_WISE_BYTES !== undefined && Number.isSafeInteger(wanted) && wanted >= 0 ? wanted : DEFAULT_THRESHOLD_BYTES
}

/** Elements a tensor needs at least to go range-wise: one block (smaller groups are cheap whole). */
const MIN_ELEMENTS = 65536

/**
 * Whether a group goes range-wise: every input packable (f32/f16/bf16), a working set above the
 * threshold or above the memory limit, and DELLA rows that fit the block grid (its ranks are per
 * row, so a window must hold whole rows).
 *
 * @category predicates
 */
export const eligible = (options: {
  readonly inputs: ReadonlyArray<TensorRef.TensorRef>
  readonly plan: TaskArithmeticPlan
  readonly workingSet: number
  readonly threshold: number
  readonly limit: number | undefined
}): boolean => {
  const { inputs, plan, workingSet, threshold, limit } = options
  const n = TensorRef.numel(inputs[0]!.shape)
  const large = workingSet > threshold || (limit !== undefined && workingSet > limit)
  const rowsFit = plan.models.every((m) => m.selector.kind !== "della" || 65536 % m.selector.rowLength === 0)
  return large && n >= MIN_ELEMENTS && rowsFit && inputs.every((t) => isPackable(t.dtype))
}

/** Bytes a range-wise group holds: its packed inputs (the output range and scratch are small). @category models */
export const heldBytes = (inputs: ReadonlyArray<TensorRef.TensorRef>): number => TensorRef.totalByteLength(inputs)

/**
 * Shared buffers for packed inputs, reused from tensor to tensor (fresh `SharedArrayBuffer`s are
 * freed only by a full collection, so several would otherwise be alive at once); a second group
 * read meanwhile gets fresh ones. `release` drops them.
 *
 * @category models
 */
export interface PackedBuffers {
  readonly take: (sizes: ReadonlyArray<number>) => { readonly views: ReadonlyArray<Uint8Array>; readonly giveBack: () => void }
  readonly release: () => void
}

/** @category constructors */
export const buffers = (): PackedBuffers => {
  let slots: Array<SharedArrayBuffer> = []
  let busy = false
  const fresh = (size: number) => new SharedArrayBuffer(size)
  return {
    take: (sizes) => {
      if (busy) return { views: sizes.map((s) => new Uint8Array(fresh(s))), giveBack: () => {} }
      busy = true
      slots = sizes.map((s, k) => (slots[k] !== undefined && slots[k].byteLength >= s ? slots[k] : fresh(s))).concat(slots.slice(sizes.length))
      return { views: sizes.map((s, k) => new Uint8Array(slots[k]!, 0, s)), giveBack: () => { busy = false } }
    },
    release: () => {
      if (!busy) slots = []
    }
  }
}

/** What a range-wise merged tensor needs. @category models */
export interface Options {
  readonly like: TensorRef.TensorRef
  readonly dtype: DType.WritableDType
  /** Base first, then the models. */
  readonly inputs: ReadonlyArray<TensorRef.TensorRef>
  readonly plan: TaskArithmeticPlan
  readonly workers: StagePool.StagePool | undefined
  readonly buffers: PackedBuffers
  readonly allowNonFinite: boolean
  /** Whether the method reports diagnostics (a `merge.diagnostics` event after the last range). */
  readonly diagnose: boolean
  /** Drop the packed buffers after this tensor's last range (under a memory limit) instead of keeping them for the next. */
  readonly releaseAfter: boolean
  /** The GPU to merge on (the run's `GpuMerge`); the CPU when absent or the plan has no GPU kernel. */
  readonly gpu?: GpuRange.Target | undefined
}

type State = {
  readonly inputs: ReadonlyArray<PackedInput>
  readonly giveBack: () => void
  /** The CPU's runner; undefined when the ranges run on the GPU. */
  readonly runner: PackedParallel.Runner | undefined
  readonly prepared: Prepared
  /** The merged values of the range being served, reused from range to range (and tensor to tensor). */
  readonly out: Float32Array
  /** For bf16 output: the same range encoded by the workers. */
  readonly bf16: Uint8Array | undefined
  readonly partials: Map<number, ReadonlyArray<TaskDiagnostics.Partial>>
  served: number
}

const CHUNK = 1024 * 1024

/**
 * The merged tensor, computed range by range: the first read loads the inputs (packed) and runs
 * the statistics; each read then merges its range; after the last element has been served the
 * inputs are let go and the diagnostics reported.
 *
 * @category constructors
 */
export const tensor = (options: Options): TensorRef.TensorRef => {
  const { like, dtype, inputs, plan, allowNonFinite } = options
  const name = like.name
  const n = TensorRef.numel(like.shape)
  let state: State | undefined
  const gpu = options.gpu !== undefined && GpuRange.supports(plan, options.gpu.device) ? options.gpu : undefined

  const load = Effect.gen(function* () {
    const range = Math.min(n, CHUNK)
    const sizes = [...inputs.map((t) => TensorRef.byteLength(t)), range * 4, ...(dtype === "BF16" ? [range * 2] : [])]
    const { views, giveBack } = options.buffers.take(sizes)
    const out = new Float32Array(views[inputs.length]!.buffer, 0, range)
    const bf16 = dtype === "BF16" ? views[inputs.length + 1] : undefined
    const read = Effect.forEach(inputs, (t, k) => readPacked(t, views[k]!), { concurrency: "unbounded", discard: true })
    const prepared = yield* Effect.gen(function* () {
      yield* read
      if (gpu !== undefined) {
        // Statistics on the GPU: the non-finite scan and the cuts, from the packed inputs.
        yield* Effect.annotateCurrentSpan({ "crucible.merge.device": "gpu" })
        const packed = inputs.map((t, k): PackedInput => ({ bytes: views[k]!, dtype: t.dtype as PackedInput["dtype"] }))
        const bad = (yield* GpuRange.scan(gpu.device, packed, gpu)).find((c) => c.first >= 0)
        if (!allowNonFinite && bad !== undefined) {
          return yield* new NonFinite.NonFiniteTensor({ tensor: name, role: "input", index: bad.first, value: bad.value, count: bad.count })
        }
        return { packed, runner: undefined, prepared: yield* GpuRange.prepare(gpu.device, plan, packed, gpu) }
      }
      const pool = options.workers === undefined ? undefined : yield* options.workers.forTensor(n)
      const runner = PackedParallel.runner(pool)
      const packed = inputs.map((t, k): PackedInput => ({ bytes: views[k]!, dtype: t.dtype as PackedInput["dtype"] }))
      const scanned = yield* PackedParallel.scan(runner, plan, packed, n)
      if (!allowNonFinite && scanned.nonFinite !== undefined) {
        const { first, value, count } = scanned.nonFinite
        return yield* new NonFinite.NonFiniteTensor({ tensor: name, role: "input", index: first, value, count })
      }
      return { packed, runner, prepared: yield* PackedParallel.prepare(runner, plan, packed, n, scanned) }
    }).pipe(Effect.onError(() => Effect.sync(giveBack)))
    return { inputs: prepared.packed, giveBack, runner: prepared.runner, prepared: prepared.prepared, out, bf16, partials: new Map(), served: 0 } satisfies State
  })

  // The merged float32 values of [start, end), in shared memory for the workers.
  const merge = (start: number, end: number): Effect.Effect<{ readonly values: Float32Array; readonly bf16: Uint8Array | undefined }, TensorRef.TensorError | PoolError | NonFinite.NonFiniteTensor | GpuKernelError> =>
    Effect.gen(function* () {
      const s = state ?? (state = yield* load)
      const out = s.out.subarray(0, end - start)
      const bf16 = s.bf16?.subarray(0, (end - start) * 2)
      const { parts, nonFinite } = s.runner !== undefined
        ? yield* PackedParallel.apply(s.runner, s.prepared, s.inputs, out, start, end, bf16)
        : yield* onGpu(s, out, start, end, bf16)
      s.partials.set(start, parts)
      s.served += end - start
      // The workers checked the range (in SIMD for TIES); the exact element is searched for only when they found one.
      if (!allowNonFinite && nonFinite) {
        // The count is that of this range: later ranges are never computed.
        const bad = NonFinite.firstNonFinite(out)
        if (bad >= 0) {
          finish(s)
          return yield* new NonFinite.NonFiniteTensor({ tensor: name, role: "output", index: start + bad, value: out[bad]!, count: NonFinite.countNonFinite(out, bad) })
        }
      }
      if (s.served >= n) {
        finish(s)
        if (options.diagnose && parts.length > 0) {
          const ordered = [...s.partials.entries()].sort(([a], [b]) => a - b).flatMap(([, p]) => p)
          const diagnostics = TaskDiagnostics.summarize(plan, ordered, n)
          yield* Stage.event("merge.diagnostics", { tensor: name, ...diagnostics })
        }
      }
      return { values: out, bf16 }
    })

  // One range on the GPU, written where the CPU's workers write theirs (the bf16 encoding on the host, as the CPU encodes).
  const onGpu = (s: State, out: Float32Array, start: number, end: number, bf16: Uint8Array | undefined) =>
    Effect.map(GpuRange.apply(gpu!.device, s.prepared, s.inputs, start, end, { ...gpu, squares: options.diagnose }), ({ out: values, partial }) => {
      out.set(values)
      if (bf16 !== undefined) encodeBF16(out, bf16)
      return { parts: [partial], nonFinite: NonFinite.firstNonFinite(out) >= 0 }
    })

  const finish = (s: State) => {
    if (state === s) state = undefined
    s.giveBack()
    if (options.releaseAfter) options.buffers.release()
  }

  // Each read holds the packed inputs against --memory-limit (the output range is small).
  const held = heldBytes(inputs) + Math.min(n, CHUNK) * 4
  const bytesOf = (range: TensorRef.ElementRange | undefined, write: (bytes: Uint8Array) => void) =>
    MemoryBudget.hold(name, held)(Effect.gen(function* () {
      const { start, end } = TensorRef.rangeOf(like, range)
      for (let s = start; s < end; s += CHUNK) {
        const e = Math.min(end, s + CHUNK)
        const { values, bf16 } = yield* merge(s, e)
        // f32 and bf16 ranges are written from the reused shared buffers: no allocation per range.
        write(dtype === "F32" ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength) : bf16 ?? DType.fromNumbers(values, dtype))
      }
    }))

  const ref: TensorRef.TensorRef = {
    name,
    dtype,
    shape: like.shape,
    read: (range) =>
      Effect.gen(function* () {
        const { start, end } = TensorRef.rangeOf(like, range)
        const bytes = new Uint8Array((end - start) * DType.byteSize[dtype])
        let at = 0
        yield* bytesOf(range, (b) => {
          bytes.set(b, at)
          at += b.byteLength
        })
        return bytes
      })
  }
  return TensorRef.withReadInto(ref, (range, target) =>
    Effect.gen(function* () {
      let at = 0
      yield* bytesOf(range, (b) => {
        target.set(b, at)
        at += b.byteLength
      })
    }))
}

// Raw bytes in chunks straight into the shared buffer (the file's fast path where it has one).
const readPacked = (t: TensorRef.TensorRef, into: Uint8Array): Effect.Effect<void, TensorRef.TensorError> =>
  Effect.gen(function* () {
    const n = TensorRef.numel(t.shape)
    const size = DType.byteSize[t.dtype]
    for (let start = 0; start < n; start += CHUNK) {
      const end = Math.min(n, start + CHUNK)
      yield* TensorRef.readInto(t, n <= CHUNK ? undefined : { start, end }, into.subarray(start * size, end * size))
    }
  })

