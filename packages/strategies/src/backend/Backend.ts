/**
 * The TF.js backend every model in Crucible runs on, as an Effect service. Building its layer
 * initialises TF.js once for the process; code that runs tensors requires `Backend`, so it can
 * neither run before initialisation nor hide which backend produced its numbers (the name goes
 * on spans as `crucible.backend`).
 *
 * Backends, in order of preference:
 * - `wasm` (default): `@tensorflow/tfjs-backend-wasm`, XNNPACK with SIMD. In Node it loads its
 *   binary from `node_modules` without `setWasmPaths` and runs on one thread (its worker threads
 *   are browser blob workers); its matMul and transpose kernels are replaced by the threaded GEMM
 *   of `gemm/` (see `gemm/Attach.ts`). When it was not asked for by name and fails to start, `cpu` is
 *   used instead and the service says so in `fallbackFrom`.
 * - `cpu`: `@tensorflow/tfjs-backend-cpu`, plain JavaScript; slow (~1 GFLOP/s) but always there.
 * - `tensorflow`: libtensorflow through `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node`,
 *   imported only when asked for (they are optional: their install downloads libtensorflow).
 * - `webgpu`: `@tensorflow/tfjs-backend-webgpu` on the device of `Gpu.acquire` (Dawn through the
 *   optional `webgpu` package, on a GPU's Vulkan driver or lavapipe from `scripts/setup-lavapipe.sh`).
 *   The service carries that device as `gpu`, for the GPU merge kernels. Dawn cannot read GPU memory
 *   synchronously in Node: code that may run here reads tensors with `await tensor.data()`
 *   (`Trainer.fetch`, `Evaluate.logitsOf`); a `dataSync` of a tensor not read so fails saying so.
 *   The device lives as long as the process (TF.js's backend is a process global) and keeps no
 *   handle open: the process exits by itself.
 * - `auto`: `webgpu` when an adapter is found, else the default (`wasm`, then `cpu`), with one log
 *   line saying why webgpu was not used.
 *
 * Selection: the name given to {@link Backend.layer}, else the `CRUCIBLE_BACKEND` config value
 * (the environment variable by default), else `wasm`.
 *
 * TF.js keeps one active backend per process (a global of `@tensorflow/tfjs-core`): build one
 * `Backend` layer per program. Building it again with the same name is harmless.
 *
 * Note: `@tensorflow/tfjs-core`'s Node bundle registers no gradients (only `@tensorflow/tfjs`
 * does, and its ES module files cannot be loaded by Node), so every differentiable op Crucible
 * uses is a `tf.customGrad` in `models/Layers.ts` and `train/Loss.ts`.
 *
 * @since 0.1.0
 */
/// <reference types="@webgpu/types" />
import * as tf from "@tensorflow/tfjs-core"
import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import * as Gpu from "../gpu/Gpu.ts"
import * as Gemm from "./gemm/Attach.ts"
import { describeCause, importOptional } from "./Optional.ts"

/** The backends Crucible knows. @category models */
export const BackendNames = ["wasm", "cpu", "tensorflow", "webgpu"] as const

/** @category models */
export type BackendName = (typeof BackendNames)[number]

/** What may be asked for: a backend, or `auto` (webgpu when there is an adapter, else the default). @category models */
export const BackendRequests = [...BackendNames, "auto"] as const

/** Why a backend could not be started. @category errors */
export const BackendFailure = Schema.Literals(["UnknownBackend", "NotInstalled", "InitFailed", "NotSupported", "NoAdapter"])

/** A backend was asked for that does not exist, is not installed or did not start. @category errors */
export class BackendError extends Schema.TaggedError<BackendError>()("BackendError", {
  backend: Schema.String,
  reason: BackendFailure,
  detail: Schema.String
}) {
  override get message() {
    return `TF.js backend "${this.backend}" (${this.reason}): ${this.detail}`
  }
}

/** What the service reports about the running backend. @category models */
export interface BackendInfo {
  /** The backend TF.js now runs on. */
  readonly name: BackendName
  /** Set when the default backend failed to start and this one replaced it. */
  readonly fallbackFrom?: BackendName
  /** Version of `@tensorflow/tfjs-core`. */
  readonly tfjsVersion: string
  /** Tensors currently alive in TF.js: the number a leak check watches. */
  readonly liveTensors: () => number
  /** The WebGPU device TF.js runs on: present iff `name` is `webgpu`. */
  readonly gpu?: Gpu.GpuHandle
}

/** The name of the backend `Backend.layer` would pick: explicit, else `CRUCIBLE_BACKEND`, else none. */
export const requestedName = (explicit?: string): Effect.Effect<string | undefined> =>
  explicit !== undefined
    ? Effect.succeed(explicit)
    : Config.String("CRUCIBLE_BACKEND").pipe(
        Config.option,
        Effect.map((value) => Option.getOrUndefined(Option.filter(value, (v) => v.trim() !== ""))?.trim()),
        Effect.orElseSucceed(() => undefined)
      )

const isBackendName = (name: string): name is BackendName => (BackendNames as ReadonlyArray<string>).includes(name)
const isBackendRequest = (name: string): name is (typeof BackendRequests)[number] => (BackendRequests as ReadonlyArray<string>).includes(name)


/** Node packages that provide the `tensorflow` backend, tried in order (GPU first). */
const TENSORFLOW_PACKAGES: ReadonlyArray<string> = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]


const registerTensorflow = Effect.tryPromise({
  try: async () => {
    const failures: Array<string> = []
    for (const specifier of TENSORFLOW_PACKAGES) {
      try {
        await importOptional(specifier)
        return specifier
      } catch (cause) {
        failures.push(`${specifier}: ${describeCause(cause)}`)
      }
    }
    throw new Error(failures.join("; "))
  },
  catch: (cause) =>
    new BackendError({
      backend: "tensorflow",
      reason: "NotInstalled",
      detail:
        `neither ${TENSORFLOW_PACKAGES.join(" nor ")} can be imported (${describeCause(cause)}). ` +
        "Install one next to @crucible/strategies, e.g. `pnpm --filter @crucible/strategies add @tensorflow/tfjs-node@4.22.0` " +
        "(or `@tensorflow/tfjs-node-gpu@4.22.0` with CUDA); its install step downloads libtensorflow, so it needs network access"
    })
})

// The device TF.js's webgpu backend runs on, once acquired: referenced for the life of the process
// (Dawn crashes when its instance is collected while the device is used).
let webGpu: Gpu.GpuHandle | undefined
// The factory registered for it, to tell it from the one the package's own import registers.
let webGpuFactory: (() => tf.KernelBackend) | undefined

const webGpuFailure = (error: Gpu.GpuError): BackendError =>
  new BackendError({
    backend: "webgpu",
    reason: error.reason === "NotInstalled" ? "NotInstalled" : "NoAdapter",
    detail:
      error.reason === "NotInstalled"
        ? error.detail
        : `${error.detail}. On a machine without a GPU, scripts/setup-lavapipe.sh installs lavapipe (Mesa's Vulkan CPU driver), which Crucible then finds by itself`
  })

/**
 * The webgpu backend over `Gpu.acquire`'s device. Importing `@tensorflow/tfjs-backend-webgpu`
 * registers a factory that requests an adapter and device of its own; it is replaced by one that
 * builds the backend on Crucible's device (the one `BackendInfo.gpu` hands to the GPU merges).
 */
const registerWebGpu: Effect.Effect<Gpu.GpuHandle, BackendError> = Effect.gen(function* () {
  if (webGpu !== undefined && webGpuFactory !== undefined && tf.findBackendFactory("webgpu") === webGpuFactory) return webGpu
  const handle = webGpu ?? (yield* Gpu.acquire().pipe(Effect.mapError(webGpuFailure)))
  webGpu = handle
  const module = yield* Effect.tryPromise({
    try: () => importOptional("@tensorflow/tfjs-backend-webgpu") as Promise<{ readonly WebGPUBackend: WebGpuBackendClass }>,
    catch: (cause) =>
      new BackendError({
        backend: "webgpu",
        reason: "NotInstalled",
        detail: `the optional package @tensorflow/tfjs-backend-webgpu cannot be imported (${describeCause(cause)}); install it next to @crucible/strategies (\`pnpm --filter @crucible/strategies add @tensorflow/tfjs-backend-webgpu@4.22.0\`)`
      })
  })
  const SyncChecked = syncChecked(module.WebGPUBackend)
  // (`tf.findBackend` would run the package's factory: only the factory is looked up)
  if (tf.findBackendFactory("webgpu") !== null) tf.removeBackend("webgpu")
  const factory = () => new SyncChecked(handle.device, handle.adapter.info)
  tf.registerBackend("webgpu", factory)
  webGpuFactory = factory
  return handle
})

interface WebGpuBackendLike {
  tensorMap: { get(dataId: object): { readonly values?: unknown; readonly dtype: string } | undefined }
}
type WebGpuBackendClass = new (device: GPUDevice, adapterInfo?: GPUAdapterInfo) => tf.KernelBackend & WebGpuBackendLike

/**
 * TF.js reads GPU memory synchronously through an `OffscreenCanvas`, which Node lacks: it would
 * fail with `ReferenceError: OffscreenCanvas is not defined`. Values already read (by `data()`)
 * are cached on the host and returned; any other synchronous read fails saying what to do.
 */
const syncChecked = (Base: WebGpuBackendClass): WebGpuBackendClass =>
  class extends Base {
    override readSync(dataId: object): tf.backend_util.BackendValues {
      const entry = this.tensorMap.get(dataId)
      if (entry !== undefined && entry.values == null && entry.dtype !== "string" && entry.dtype !== "complex64" && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas !== "function") {
        throw new Error(
          "the webgpu backend cannot read GPU memory synchronously in Node (dataSync/arraySync need an OffscreenCanvas): read the tensor with `await tensor.data()` first, or run this on the wasm or cpu backend"
        )
      }
      return super.readSync(dataId)
    }
  }

const register = (name: BackendName): Effect.Effect<void, BackendError> => {
  switch (name) {
    case "wasm":
      return Effect.tryPromise({
        try: () => import("@tensorflow/tfjs-backend-wasm"),
        catch: (cause) => new BackendError({ backend: name, reason: "NotInstalled", detail: describeCause(cause) })
      })
    case "cpu":
      return Effect.tryPromise({
        try: () => import("@tensorflow/tfjs-backend-cpu"),
        catch: (cause) => new BackendError({ backend: name, reason: "NotInstalled", detail: describeCause(cause) })
      })
    case "tensorflow":
      return Effect.asVoid(registerTensorflow)
    case "webgpu":
      return Effect.asVoid(registerWebGpu)
  }
}

const activate = (name: BackendName): Effect.Effect<void, BackendError> =>
  Effect.gen(function* () {
    yield* register(name)
    const ok = yield* Effect.tryPromise({
      try: async () => {
        const set = await tf.setBackend(name)
        await tf.ready()
        return set && tf.getBackend() === name
      },
      catch: (cause) => new BackendError({ backend: name, reason: "InitFailed", detail: describeCause(cause) })
    })
    if (!ok) return yield* new BackendError({ backend: name, reason: "InitFailed", detail: "tf.setBackend returned false (see TF.js warnings above)" })
  })

const info = (name: BackendName, fallbackFrom?: BackendName): BackendInfo => ({
  name,
  ...(fallbackFrom === undefined ? {} : { fallbackFrom }),
  tfjsVersion: tf.version_core,
  liveTensors: () => tf.memory().numTensors,
  ...(name === "webgpu" && webGpu !== undefined ? { gpu: webGpu } : {})
})

const annotate = (chosen: BackendInfo) =>
  Effect.annotateCurrentSpan({
    "crucible.backend": chosen.name,
    ...(chosen.fallbackFrom === undefined ? {} : { "crucible.backend.fallback_from": chosen.fallbackFrom }),
    ...(chosen.gpu === undefined
      ? {}
      : {
          "crucible.gpu.adapter": chosen.gpu.info.description,
          "crucible.gpu.vendor": chosen.gpu.info.vendor,
          "crucible.gpu.fallback": chosen.gpu.info.isFallbackAdapter
        })
  })

/** The default: wasm, else cpu (saying why). `from` is what was asked for when it was not available. */
const defaultBackend = (from?: BackendName): Effect.Effect<BackendInfo, BackendError> =>
  activate("wasm").pipe(
    Effect.as(info("wasm", from)),
    Effect.catch((error) =>
      Effect.logWarning(`wasm backend unavailable (${error.detail}); falling back to cpu`).pipe(
        Effect.andThen(activate("cpu")),
        Effect.as(info("cpu", from ?? "wasm"))
      )
    )
  )

/** Starts the requested backend (see the module doc for the order of choice). */
export const initialise = Effect.fn("Backend.initialise")(function* (explicit?: string) {
  const requested = yield* requestedName(explicit)
  if (requested !== undefined && !isBackendRequest(requested)) {
    return yield* new BackendError({ backend: requested, reason: "UnknownBackend", detail: `expected one of ${BackendRequests.join(", ")}` })
  }
  const chosen: BackendInfo =
    requested === undefined
      ? yield* defaultBackend()
      : requested === "auto"
        ? yield* activate("webgpu").pipe(
            Effect.map(() => info("webgpu")),
            Effect.catch((error) =>
              Effect.logWarning(`webgpu unavailable (${error.reason}: ${error.detail}); using wasm`).pipe(Effect.andThen(defaultBackend("webgpu")))
            )
          )
        : yield* activate(requested).pipe(Effect.map(() => info(requested)))
  yield* annotate(chosen)
  // wasm: matMul on the threaded WebAssembly GEMM (gemm/Attach.ts; CRUCIBLE_GEMM_THREADS=0 keeps XNNPACK's).
  yield* Gemm.attach(chosen.name)
  return chosen
})

/**
 * The initialised TF.js backend.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const backend = yield* Backend
 *   yield* Effect.log(`running on ${backend.name}`)
 * })
 * Effect.runPromise(Effect.provide(program, Backend.layer()))
 * ```
 * @category services
 */
export class Backend extends Context.Service<Backend, BackendInfo>()("crucible/strategies/backend/Backend") {
  /** Initialises `name` (a backend or `auto`), else `CRUCIBLE_BACKEND`, else `wasm` (falling back to `cpu`); wasm's GEMM threads end with the layer. */
  static readonly layer = (name?: string): Layer.Layer<Backend, BackendError> => Layer.effect(Backend, Gemm.scoped(initialise(name)))
  /** The always-available `cpu` backend, for tests that must not depend on wasm. */
  static readonly layerCpu: Layer.Layer<Backend, BackendError> = Layer.effect(Backend, initialise("cpu"))
}
