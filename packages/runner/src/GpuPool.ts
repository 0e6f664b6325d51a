/**
 * The GPU a run's stages share. When the run's TF.js backend is `webgpu` (`--backend webgpu`,
 * `CRUCIBLE_BACKEND=webgpu`, or `auto` that found an adapter), its device is the one TF.js uses,
 * and the stages that run on it take its slot one at a time (CPU stages keep running beside them):
 *
 * - stages whose kind declares `resources.device: "gpu"` or `"any"` (runs where the backend is):
 *   among them the merges with a WGSL kernel (`merge/linear` and the methods `Method.define`
 *   gives a `gpu` kernel), which are given {@link GpuMerge}. Merges without one (model
 *   stock, SCE…) declare nothing and are CPU stages. Most merges are lazy — their `run` only composes,
 *   and each tensor is computed as a consumer reads it — so their slot is taken around each read
 *   of one of their tensors (`LazyOutput.track`'s `guard`), not for their `run`;
 * - stages whose kind runs tensors on the backend (`resources.backend`: training, evaluation…).
 *
 * A GPU stage holds the slot in place of a concurrency permit (`--concurrency` bounds the stages
 * working on the CPU; the device is the GPU stages' bound), so CPU stages keep running beside it and
 * no GPU stage waiting for the device holds a permit. The slot is reentrant within a fiber's
 * context: a GPU stage reading a lazy GPU merge's tensors already holds it. A CPU stage (`save`)
 * reading a GPU merge takes the slot for each read while it holds its permit; a slot holder never
 * waits for a permit, so the two cannot wait for each other.
 *
 * One slot per device, held by the device's handle (`Gpu.GpuHandle.slot`): TF.js has one backend
 * per process, so runs in one process (a cluster worker's units, tests) share its device and slot.
 *
 * Memory: WebGPU reports no device memory (no free/total query), so there is no `--gpu-memory`
 * budget; a single buffer is bounded by the adapter's `maxBufferSize` (spans record it). What TF.js
 * holds on the device is sampled at a stage's start, every {@link SAMPLE_EVERY_MS} while it holds
 * the slot, and at its end: `tf.memory().numBytesAllocatedInGPU`, the buffers TF.js's webgpu backend
 * has allocated (its pool keeps freed buffers for reuse, so this is TF.js's high-water mark on the
 * device by then: a kernel's transient buffers are in it even when no sample fell inside the
 * kernel). The merge kernels' own buffers (`strategies/src/merge/gpu/`) are not counted.
 *
 * @since 0.2.0
 */
import type { Stage } from "@crucible/core"
import type * as Gpu from "@crucible/strategies/gpu/Gpu"
import { GpuMerge } from "@crucible/strategies/merge/GpuMerge"
import * as tf from "@tensorflow/tfjs-core"
import { Context, Effect, Fiber } from "effect"

/** The GPU of a run. @category models */
export interface GpuPool {
  readonly handle: Gpu.GpuHandle
  readonly info: Gpu.GpuInfo
  /** The adapter as spans and the manifest name it ("llvmpipe (LLVM 15.0.6, 256 bits) [software]"). */
  readonly adapter: string
  /** Gives `effect` the device as {@link GpuMerge}. */
  readonly provide: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, Exclude<R, GpuMerge>>
  /** Runs `effect` holding the device's slot (at once when this context holds it already). */
  readonly withSlot: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** The most GPU memory TF.js held while the effects it watched ran (see the module doc). @category models */
export interface MemoryWatch {
  /** Runs `effect`, sampling before, every {@link SAMPLE_EVERY_MS} while it runs (with `sample: true`), and after. */
  readonly around: <A, E, R>(effect: Effect.Effect<A, E, R>, options?: { readonly sample?: boolean }) => Effect.Effect<A, E, R>
  /** The largest sample so far (bytes), undefined before any. */
  readonly peak: () => number | undefined
}

/** How often the GPU memory TF.js holds is sampled while a GPU stage runs. @category constants */
export const SAMPLE_EVERY_MS = 25

// Whether the current context holds a device's slot: nested reads of lazy GPU tensors do not wait for themselves.
const Holding = Context.Reference<ReadonlySet<GPUDevice>>("crucible/runner/GpuPool/holding", { defaultValue: () => new Set() })

/** The adapter's name as spans and the manifest show it. @category getters */
export const describeAdapter = (info: Gpu.GpuInfo): string =>
  [info.description || info.device || info.vendor || "unknown adapter", info.architecture ? `(${info.architecture})` : "", info.isFallbackAdapter ? "[software]" : ""].filter((s) => s !== "").join(" ")

/**
 * Whether stages of `kind` run on a run's GPU (see the module doc): from what the kind declares
 * (`resources.device`, `resources.backend`), never from its name.
 *
 * @category predicates
 */
export const runsOnGpu = (kind: Stage.AnyStageKind): boolean => kind.resources.device !== "cpu" || kind.resources.backend

/** Bytes TF.js's backend has allocated on the GPU (0 when its backend does not say). */
const gpuBytes = (): number => {
  const memory = tf.memory() as { numBytesInGPU?: number; numBytesAllocatedInGPU?: number }
  return Math.max(memory.numBytesAllocatedInGPU ?? 0, memory.numBytesInGPU ?? 0)
}

/** The pool of `handle`'s device. @category constructors */
export const make = (handle: Gpu.GpuHandle): GpuPool => {
  const slot = handle.slot
  const merge = GpuMerge.ofHandle(handle)
  return {
    handle,
    info: handle.info,
    adapter: describeAdapter(handle.info),
    provide: (effect) => Effect.provideService(effect, GpuMerge, merge),
    withSlot: (effect) =>
      Effect.gen(function* () {
        const held = yield* Holding
        return yield* held.has(handle.device) ? effect : slot.withPermits(1)(Effect.provideService(effect, Holding, new Set([...held, handle.device])))
      })
  }
}

/** A watch of the GPU memory TF.js holds (see the module doc). @category constructors */
export const watchMemory = (): MemoryWatch => {
  let peak: number | undefined
  const sample = Effect.sync(() => void (peak = Math.max(peak ?? 0, gpuBytes())))
  return {
    peak: () => peak,
    around: (effect, options) =>
      Effect.andThen(
        sample,
        options?.sample === true
          ? Effect.flatMap(Effect.forkDetach(Effect.forever(Effect.andThen(Effect.sleep(SAMPLE_EVERY_MS), sample))), (sampler) =>
            Effect.ensuring(effect, Effect.andThen(Fiber.interrupt(sampler), sample)))
          : Effect.ensuring(effect, sample)
      )
  }
}

/** The attributes of a stage span that ran on `pool`'s GPU, or on the CPU. @category getters */
export const spanAttributes = (pool: GpuPool | undefined): Record<string, string | number | boolean> =>
  pool === undefined
    ? { "crucible.device": "cpu" }
    : { "crucible.device": "gpu", "crucible.gpu.adapter": pool.adapter, "crucible.gpu.fallback": pool.info.isFallbackAdapter, "crucible.gpu.max_buffer_bytes": pool.info.maxBufferSize }
