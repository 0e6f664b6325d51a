/**
 * The TF.js backend every model in Crucible runs on, as an Effect service. Building its layer
 * initialises TF.js once for the process; code that runs tensors requires `Backend`, so it can
 * neither run before initialisation nor hide which backend produced its numbers (the name goes
 * on spans as `crucible.backend`).
 *
 * Backends, in order of preference:
 * - `wasm` (default): `@tensorflow/tfjs-backend-wasm`, XNNPACK with SIMD. In Node it loads its
 *   binary from `node_modules` without `setWasmPaths` and runs on one thread (its worker threads
 *   are browser blob workers). When it was not asked for by name and fails to start, `cpu` is
 *   used instead and the service says so in `fallbackFrom`.
 * - `cpu`: `@tensorflow/tfjs-backend-cpu`, plain JavaScript; slow (~1 GFLOP/s) but always there.
 * - `tensorflow`: libtensorflow through `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node`,
 *   imported only when asked for (they are optional: their install downloads libtensorflow).
 * - `webgpu`: reserved. A future layer would import `@tensorflow/tfjs-backend-webgpu` over the
 *   `webgpu` npm package (Dawn, needs a Vulkan driver); today it fails with `NotSupported`.
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
import * as tf from "@tensorflow/tfjs-core"
import { Config, Context, Effect, Layer, Option, Schema } from "effect"

/** The backends Crucible knows. @category models */
export const BackendNames = ["wasm", "cpu", "tensorflow", "webgpu"] as const

/** @category models */
export type BackendName = (typeof BackendNames)[number]

/** Why a backend could not be started. @category errors */
export const BackendFailure = Schema.Literals(["UnknownBackend", "NotInstalled", "InitFailed", "NotSupported"])

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

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Node packages that provide the `tensorflow` backend, tried in order (GPU first). */
const TENSORFLOW_PACKAGES: ReadonlyArray<string> = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]

// Imported by computed name so neither bundlers nor the type checker resolve it statically.
const importOptional = (specifier: string): Promise<unknown> => import(specifier)

const registerTensorflow = Effect.tryPromise({
  try: async () => {
    const failures: Array<string> = []
    for (const specifier of TENSORFLOW_PACKAGES) {
      try {
        await importOptional(specifier)
        return specifier
      } catch (cause) {
        failures.push(`${specifier}: ${describe(cause)}`)
      }
    }
    throw new Error(failures.join("; "))
  },
  catch: (cause) =>
    new BackendError({
      backend: "tensorflow",
      reason: "NotInstalled",
      detail:
        `neither ${TENSORFLOW_PACKAGES.join(" nor ")} can be imported (${describe(cause)}). ` +
        "Install one next to @crucible/strategies, e.g. `pnpm --filter @crucible/strategies add @tensorflow/tfjs-node@4.22.0` " +
        "(or `@tensorflow/tfjs-node-gpu@4.22.0` with CUDA); its install step downloads libtensorflow, so it needs network access"
    })
})

const register = (name: BackendName): Effect.Effect<void, BackendError> => {
  switch (name) {
    case "wasm":
      return Effect.tryPromise({
        try: () => import("@tensorflow/tfjs-backend-wasm"),
        catch: (cause) => new BackendError({ backend: name, reason: "NotInstalled", detail: describe(cause) })
      })
    case "cpu":
      return Effect.tryPromise({
        try: () => import("@tensorflow/tfjs-backend-cpu"),
        catch: (cause) => new BackendError({ backend: name, reason: "NotInstalled", detail: describe(cause) })
      })
    case "tensorflow":
      return Effect.asVoid(registerTensorflow)
    case "webgpu":
      return Effect.fail(
        new BackendError({
          backend: name,
          reason: "NotSupported",
          detail:
            "not implemented yet; a future layer would use @tensorflow/tfjs-backend-webgpu over the `webgpu` npm package (Dawn, needs a Vulkan driver). Use wasm, cpu or tensorflow"
        })
      )
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
      catch: (cause) => new BackendError({ backend: name, reason: "InitFailed", detail: describe(cause) })
    })
    if (!ok) return yield* new BackendError({ backend: name, reason: "InitFailed", detail: "tf.setBackend returned false (see TF.js warnings above)" })
  })

const info = (name: BackendName, fallbackFrom?: BackendName): BackendInfo => ({
  name,
  ...(fallbackFrom === undefined ? {} : { fallbackFrom }),
  tfjsVersion: tf.version_core,
  liveTensors: () => tf.memory().numTensors
})

/** Starts the requested backend (see the module doc for the order of choice). */
export const initialise = Effect.fn("Backend.initialise")(function* (explicit?: string) {
  const requested = yield* requestedName(explicit)
  if (requested !== undefined) {
    if (!isBackendName(requested)) {
      return yield* new BackendError({ backend: requested, reason: "UnknownBackend", detail: `expected one of ${BackendNames.join(", ")}` })
    }
    yield* activate(requested)
    yield* Effect.annotateCurrentSpan("crucible.backend", requested)
    return info(requested)
  }
  const chosen = yield* activate("wasm").pipe(
    Effect.as(info("wasm")),
    Effect.catch((error) =>
      Effect.logWarning(`wasm backend unavailable (${error.detail}); falling back to cpu`).pipe(
        Effect.andThen(activate("cpu")),
        Effect.as(info("cpu", "wasm"))
      )
    )
  )
  yield* Effect.annotateCurrentSpan("crucible.backend", chosen.name)
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
  /** Initialises `name`, else `CRUCIBLE_BACKEND`, else `wasm` (falling back to `cpu`). */
  static readonly layer = (name?: string): Layer.Layer<Backend, BackendError> => Layer.effect(Backend, initialise(name))
  /** The always-available `cpu` backend, for tests that must not depend on wasm. */
  static readonly layerCpu: Layer.Layer<Backend, BackendError> = Layer.effect(Backend, initialise("cpu"))
}
