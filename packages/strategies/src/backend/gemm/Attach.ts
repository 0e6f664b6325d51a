/**
 * Puts the threaded GEMM under TF.js's wasm backend, for `Backend.initialise`, with the fused
 * optimizer updates of {@link Update} (registered and removed with it).
 *
 * Threads: `CRUCIBLE_GEMM_THREADS` (`0` keeps the stock XNNPACK kernels, `N` uses N threads: the
 * caller and N − 1 workers), default the machine's available parallelism. With a {@link Lifetime}
 * in the context (`Backend.layer` gives its own scope through {@link scoped}) the kernels are
 * restored and the workers stopped when that scope closes. Without one (`initialise` run by
 * itself, as the runner does) they stay for the life of the process, as the TF.js backend itself
 * does — not for whatever scope happens to be around (a stage's would end them with the stage);
 * the workers are unreferenced, so they never keep the process alive. When the GEMM kernels are
 * already registered (a second initialisation), nothing is done.
 *
 * @since 0.1.0
 */
import { Config, Context, Effect, Option, Result, Scope } from "effect"
import * as os from "node:os"
import * as Threads from "./Threads.ts"
import * as Update from "./Update.ts"
import * as WasmKernels from "./WasmKernels.ts"

/** Threads asked for: `CRUCIBLE_GEMM_THREADS`, else the available parallelism. @category config */
export const threadCount: Effect.Effect<number> = Config.Int("CRUCIBLE_GEMM_THREADS").pipe(
  Config.option,
  Effect.map((value) => Math.max(0, Option.getOrElse(value, () => os.availableParallelism()))),
  Effect.orElseSucceed(() => os.availableParallelism())
)

/** The scope the GEMM is attached for. @category services */
export class Lifetime extends Context.Service<Lifetime, Scope.Scope>()("crucible/strategies/backend/gemm/Lifetime") {}

/** Runs `effect` (an initialisation) with the GEMM attached for the current scope. @category combinators */
export const scoped = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => Effect.provideService(effect, Lifetime, scope))

/** Whether the wasm backend's `BatchMatMul` is the GEMM's (marked by `install`). @category predicates */
export const isAttached = (): boolean => WasmKernels.isInstalled()

/**
 * Starts the threads and registers the kernels (wasm backend only). Never fails: when the threads
 * cannot start, the stock kernels stay and a warning says why.
 *
 * @category constructors
 */
export const attach = Effect.fn("Gemm.attach")(function* (backendName: string) {
  if (backendName !== "wasm") return
  const threads = yield* threadCount
  if (threads === 0 || WasmKernels.isInstalled()) {
    yield* Effect.annotateCurrentSpan({ "crucible.gemm.threads": threads === 0 ? 0 : "already attached" })
    return
  }
  const lifetime = yield* Effect.serviceOption(Lifetime)
  const started = yield* Effect.tryPromise(() => Threads.start(threads)).pipe(Effect.result)
  if (Result.isFailure(started)) {
    const cause = started.failure.cause
    yield* Effect.logWarning(`${cause instanceof Error ? cause.message : String(cause)}; TF.js's own matMul kernels stay`)
    return
  }
  const pool = started.success
  const restoreGemm = WasmKernels.install(pool)
  // The fused optimizer updates go with the GEMM (both replace TF.js's single-threaded paths).
  const restoreUpdate = Update.install()
  const restore = () => {
    restoreUpdate()
    restoreGemm()
  }
  yield* Effect.annotateCurrentSpan({ "crucible.gemm.threads": pool.threads, "crucible.gemm.fma": pool.fma })
  yield* Effect.logDebug(`gemm: ${pool.threads} thread(s), ${pool.fma ? "relaxed-SIMD FMA" : "SIMD mul+add"}`)
  if (Option.isSome(lifetime)) {
    yield* Scope.addFinalizer(
      lifetime.value,
      Effect.promise(() => {
        restore()
        return pool.close()
      })
    )
  }
})
