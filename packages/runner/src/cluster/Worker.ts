/**
 * A worker's side of the cluster: the `CrucibleStage` entity's handler. A unit runs as a local run
 * of its sub-pipeline (`Units.subIr`) over the shared results store, in a run folder under
 * `<store>/runs/<run id>/`: stored ancestors are found by key, lazy ones run here, the unit's result
 * is stored by key for the units after it — so a unit sent again (its first worker died) finds what
 * was finished and resumes a training from its last checkpoint. At most `slots` units run at once.
 *
 * @since 0.2.0
 */
import { Effect, Layer, Semaphore } from "effect"
import { Rpc } from "effect/rpc"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Ir, RunCache } from "@crucible/core"
import * as TfBackend from "@crucible/strategies/backend/Backend"
import * as Runner from "../Runner.ts"
import { RunIdTaken } from "../RunDir.ts"
import { StageEntity, type UnitReport, type UnitTask } from "./Protocol.ts"
import type { WorkerResources } from "./Resources.ts"
import * as Store from "./Store.ts"
import * as Units from "./Units.ts"

/** @category models */
export interface WorkerOptions {
  /** The shared store's root (`--store`). */
  readonly store: string
  /** How the worker names itself in traces and reports (default `host:port`). */
  readonly id: string
  readonly resources: WorkerResources
  /** TF.js backend of the stages it runs. */
  readonly backend?: string | undefined
  /** Stages of one unit doing work at once (as `crucible run --concurrency`). */
  readonly concurrency?: number | undefined
  /** The results store's implementation over `<store>/cache` (default: the POSIX folder; see `RunOptions.resultStore`). */
  readonly resultStore?: Runner.RunOptions["resultStore"]
}

/** The entity's handler as a layer: provide the cluster (`ClusterLayer.worker`). */
export const layer = (options: WorkerOptions) =>
  Layer.unwrap(Effect.gen(function* () {
    // TF.js keeps one backend per process, and two runs starting it at once race: the loser sees
    // `setBackend` return false, falls back to cpu and switches the whole process to it, so units
    // compute other bytes than a local run. Started here once, each run's start finds it ready.
    yield* TfBackend.initialise(options.backend).pipe(Effect.ignore)
    // One semaphore for the worker: the entity's build runs once per entity (per unit), so a
    // semaphore made there would bound nothing.
    const slots = yield* Semaphore.make(Math.max(1, options.resources.slots))
    const memos = runMemos()
    return StageEntity.toLayer(
      StageEntity.of({ RunUnit: ({ payload }) => slots.withPermits(1)(runUnit(payload, options, memos.of(payload.runId))).pipe(Rpc.fork) }),
      { concurrency: "unbounded" }
    )
  }))

// The units of one cluster run are parts of one run: they share its memo (MNIST parsed once per
// worker, not once per unit: ~0.7 s each). The memos of the two latest runs are kept, each bounded.
const runMemos = () => {
  const memos = new Map<string, RunCache.Shape>()
  return {
    of: (runId: string): RunCache.Shape => {
      const known = memos.get(runId)
      if (known !== undefined) return known
      const memo = RunCache.make()
      memos.set(runId, memo)
      for (const old of [...memos.keys()].slice(0, -2)) memos.delete(old)
      return memo
    }
  }
}

/** Runs one unit here and reports how it went (never fails: a failure is in the report). */
export const runUnit = (task: UnitTask, options: WorkerOptions, runCache?: RunCache.Shape): Effect.Effect<UnitReport> =>
  Effect.gen(function* () {
    const startedAt = Date.now()
    const ir = JSON.parse(task.ir) as Ir.PipelineIR
    const runsDir = Store.runFolder(options.store, task.runId)
    yield* Effect.sync(() => fs.mkdirSync(runsDir, { recursive: true }))
    const base = { unit: task.unit, worker: options.id, host: os.hostname(), startedAt }
    const attempt = (n: number): Effect.Effect<Runner.RunResult, Exclude<Effect.Error<ReturnType<typeof Runner.run>>, RunIdTaken> | RunIdTaken> =>
      Runner.run(Units.subIr(ir, task), {
        runsDir,
        // A unit sent again (its worker died) gets a folder of its own beside the first try's.
        runId: n === 1 ? task.unit : `${task.unit}-${n}`,
        baseDir: task.baseDir,
        kindModules: task.kindModules,
        cacheDir: Store.cacheDir(options.store),
        preflight: false,
        ...(options.backend === undefined ? {} : { backend: options.backend }),
        ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        ...(runCache === undefined ? {} : { runCache }),
        ...(options.resultStore === undefined ? {} : { resultStore: options.resultStore }),
        spanAttributes: { "crucible.worker.id": options.id, "host.name": os.hostname(), "crucible.cluster.run.id": task.runId }
      })
    const tryFrom = (n: number): ReturnType<typeof attempt> =>
      Effect.catchTag(attempt(n), "RunIdTaken", (e) => (n < 1000 ? tryFrom(n + 1) : Effect.fail(e)))
    return yield* tryFrom(1).pipe(
      Effect.map((result): UnitReport => {
        const mine = result.outcomes.filter((o) => task.runs.includes(o.id))
        const own = result.outcomes.find((o) => o.id === task.unit)
        return {
          ...base,
          status: own?.status === "succeeded" ? "succeeded" : "failed",
          runDir: result.runDir,
          endedAt: Date.now(),
          stages: mine.map((o) => ({
            id: o.id,
            kind: o.kind,
            status: o.status,
            key: o.key,
            cached: o.cached === true,
            durationMs: o.startedAt !== undefined && o.endedAt !== undefined ? o.endedAt - o.startedAt : 0,
            ...(o.error === undefined ? {} : { error: `${o.error.tag}: ${o.error.message}` })
          })),
          ...(own?.status === "succeeded" ? {} : { error: own?.error?.message ?? (own?.blockedBy === undefined ? `${task.unit} ${own?.status ?? "did not run"}` : `failed because "${own.blockedBy}" failed`) })
        }
      }),
      Effect.catch((e) => Effect.succeed<UnitReport>({ ...base, status: "failed", runDir: "", endedAt: Date.now(), stages: [], error: (e as { message?: string }).message ?? String(e) })),
      Effect.withSpan(`unit ${task.unit}`, { attributes: { "crucible.worker.id": options.id, "host.name": os.hostname(), "crucible.unit": task.unit, "crucible.cluster.run.id": task.runId } })
    )
  })

