/**
 * The submitting side: a pipeline becomes a `CrucibleRun` workflow on the cluster, refused up front
 * when a unit's needs meet no live worker; then it is followed — events from the store, the end
 * from the workflow's durable result — until it completes. The workflow is idempotent per run id:
 * submitting the same run id again, or `attach`ing to it after the submitter died, follows the
 * same execution instead of starting another.
 *
 * @since 0.2.0
 */
import { Effect, Exit, Option, Schedule, Schema } from "effect"
import { ClusterError } from "effect/cluster"
import { EntityId, Sharding } from "effect/cluster"
import { SqlClient } from "effect/sql"
import * as fs from "node:fs"
import * as path from "node:path"
import { Reporter, type RunEvent } from "../Events.ts"
import * as Planner from "../Planner.ts"
import type * as PipelineSource from "../PipelineSource.ts"
import { ClusterRunNotFound, ClusterUnreachable, NoWorkerFits } from "./ClusterError.ts"
import * as Follow from "./Follow.ts"
import { RunPayload, type RunSummary, RunWorkflow, unitEntityId } from "./Protocol.ts"
import { SHARDS_PER_GROUP } from "./ClusterLayer.ts"
import * as Placement from "./Placement.ts"
import * as Resources from "./Resources.ts"
import * as RunRecord from "./RunRecord.ts"
import * as Store from "./Store.ts"
import * as Units from "./Units.ts"

/** The run as the workflow takes it: units with their resource groups, the pipeline as IR. */
export const payloadOf = (loaded: PipelineSource.LoadedPipeline, options: { readonly runId: string; readonly kindModules: ReadonlyArray<string> }): Effect.Effect<{ readonly payload: RunPayload; readonly needs: ReadonlyMap<string, Resources.StageNeeds> }, NoWorkerFits> =>
  Effect.gen(function* () {
    const units = Units.of(loaded.pipeline)
    // The plan's memory estimate per stage (headers only); a unit needs the most of the stages it runs.
    const plan = yield* Planner.make(loaded)
    const peak = new Map(plan.stages.map((s) => [s.id, s.peakMemoryBytes ?? 0] as const))
    const needs = new Map<string, Resources.StageNeeds>()
    const planned = []
    for (const unit of units) {
      const need: Resources.StageNeeds = { device: unit.device === "gpu" ? "gpu" : "cpu", memoryBytes: Math.max(0, ...unit.runs.map((r) => peak.get(r) ?? 0)) }
      const group = Resources.groupFor(need)
      if (group === undefined) return yield* new NoWorkerFits({ stage: unit.id, needs: Resources.describeNeeds(need), workers: [] })
      needs.set(unit.id, need)
      planned.push({ id: unit.id, entity: unitEntityId(group, options.runId, unit.id), dependsOn: unit.dependsOn, stages: unit.stages, runs: unit.runs, group })
    }
    const payload = RunPayload.make({
      runId: options.runId,
      pipeline: loaded.pipeline.ir.name,
      file: loaded.file,
      ir: JSON.stringify(loaded.pipeline.ir),
      baseDir: path.resolve(loaded.baseDir),
      kindModules: options.kindModules.map((m) => path.resolve(m)),
      units: planned,
      submittedAt: Date.now()
    })
    return { payload, needs }
  })

/** A live worker as the cluster's runner table records it. @category models */
export interface LiveWorker extends Placement.RingRunner {
  readonly address: string
}

/** The workers registered and healthy now. */
export const liveWorkers = (cluster: string): Effect.Effect<ReadonlyArray<LiveWorker>, ClusterUnreachable, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ address: string; runner: string; healthy: boolean }>`select address, runner, healthy from cluster_runners`
    return rows.filter((r) => r.healthy).map((r) => {
      const runner = JSON.parse(r.runner) as { address?: { host?: string; port?: number }; groups?: Array<string>; weight?: number }
      return { address: r.address, host: runner.address?.host ?? "", port: runner.address?.port ?? 0, groups: runner.groups ?? [], weight: runner.weight ?? 1 }
    })
  }).pipe(Effect.mapError((e) => new ClusterUnreachable({ cluster: redact(cluster), detail: (e as { message?: string }).message ?? String(e) })))

/** Refuses a run whose unit no live worker can take, naming the unit, its needs and the workers. */
export const checkFit = (payload: RunPayload, needs: ReadonlyMap<string, Resources.StageNeeds>, workers: ReadonlyArray<LiveWorker>): Effect.Effect<void, NoWorkerFits> =>
  Effect.forEach(payload.units, (unit) =>
    workers.some((w) => w.groups.includes(unit.group))
      ? Effect.void
      : Effect.fail(new NoWorkerFits({ stage: unit.id, needs: Resources.describeNeeds(needs.get(unit.id)!), workers: workers.map(describeWorker) })), { discard: true })

const describeWorker = (w: LiveWorker): string => {
  const tiers = w.groups.filter((g) => g !== Resources.WORKFLOW_GROUP)
  if (tiers.length === 0) return `${w.address}: no stage group (its --memory is below the smallest tier, ${Resources.groupName("cpu", Resources.TIERS[0]!).slice(4)})`
  const devices = [...new Set(tiers.map((g) => g.slice(0, g.indexOf("-"))))]
  const largest = tiers.at(-1)?.slice(tiers.at(-1)!.indexOf("-") + 1) ?? "none"
  return `${w.address}: ${devices.join(",") || "no device"}, up to ${largest}`
}

/** The payload with each unit's entity id chosen to spread the units over the live workers. */
export const place = (payload: RunPayload, workers: ReadonlyArray<LiveWorker>) =>
  Effect.gen(function* () {
    const sharding = yield* Sharding.Sharding
    const ids = Placement.spread(payload.runId, payload.units, workers, SHARDS_PER_GROUP, (id, group) => sharding.getShardId(EntityId.make(id), group).id)
    return RunPayload.make({ ...payload, units: payload.units.map((u) => ({ ...u, entity: ids.get(u.id) ?? u.entity })) })
  })

/** The run's record in the store, for `attach`: the payload as submitted. */
export const recordFile = (store: string, runId: string): string => path.join(Store.runFolder(store, runId), "run.json")

/** Starts the workflow (or finds the one of this run id) and records the run in the store. */
export const start = (payload: RunPayload, store: string) =>
  Effect.gen(function* () {
    const file = recordFile(store, payload.runId)
    yield* Effect.sync(() => {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      // Written once: a second submission of the same run id follows the first one's record.
      if (!fs.existsSync(file)) fs.writeFileSync(file, JSON.stringify(Schema.encodeSync(RunPayload)(payload), null, 2))
    })
    yield* RunWorkflow.execute(payload, { discard: true })
  })

/** The payload of a submitted run, from its record in the store. */
export const readRecord = (store: string, runId: string): Effect.Effect<RunPayload, ClusterRunNotFound> =>
  Effect.try({
    try: () => Schema.decodeUnknownSync(RunPayload)(JSON.parse(fs.readFileSync(recordFile(store, runId), "utf8"))),
    catch: () => new ClusterRunNotFound({ runId, file: recordFile(store, runId) })
  })

/**
 * Follows a run until its workflow completes: `run-started`, the units' stage events as they are
 * written, then `run-finished` from the workflow's result. Returns the summary.
 */
export const follow = (payload: RunPayload, store: string) =>
  Effect.gen(function* () {
    const outer = yield* Reporter
    const folder = Store.runFolder(store, payload.runId)
    const record = yield* RunRecord.start(payload, folder)
    return yield* Effect.ensuring(followWith(payload, folder, record, outer), Effect.sync(record.close))
  })

const followWith = (payload: RunPayload, folder: string, record: RunRecord.RunRecord, outer: Reporter["Service"]) =>
  Effect.gen(function* () {
    const emit = (event: RunEvent) => Effect.andThen(Effect.sync(() => record.append(event)), outer.emit(event))
    const ir = JSON.parse(payload.ir) as { stages: ReadonlyArray<{ id: string }> }
    yield* emit({ type: "run-started", time: Date.now(), runId: payload.runId, runDir: folder, pipeline: payload.pipeline, stages: ir.stages.map((s) => s.id) })
    const follower = Follow.make(folder, payload.units)
    const executionId = yield* RunWorkflow.executionId(payload)
    const pass = Effect.flatMap(follower.poll, (events) => Effect.forEach(events, emit, { discard: true }))
    const summary = yield* Effect.gen(function* () {
      yield* pass
      // The engine turns storage it cannot reach (Postgres restarting) into a defect; for a
      // follower, which only reads, that is "not known yet": ask again. Other defects are bugs and
      // end the follow instead of retrying forever.
      const result = yield* RunWorkflow.poll(executionId).pipe(
        Effect.catchDefect((d) => (d instanceof ClusterError.PersistenceError ? Effect.fail("unreachable" as const) : Effect.die(d)))
      )
      if (Option.isSome(result) && result.value._tag === "Complete") return result.value.exit
      return yield* Effect.fail("running" as const)
    }).pipe(Effect.retry(Schedule.spaced("250 millis")), Effect.orDie)
    // The last events a worker wrote before the workflow heard of its unit's end.
    yield* pass
    const finished: RunSummary = Exit.isSuccess(summary) ? summary.value : { runId: payload.runId, status: "failed", units: [] }
    yield* record.finish(finished)
    yield* emit({ type: "run-finished", time: Date.now(), status: finished.status, durationMs: Date.now() - payload.submittedAt, runDir: folder })
    return finished
  })

/** A run as `crucible runs --cluster` lists it. @category models */
export interface ListedRun {
  readonly runId: string
  readonly pipeline: string
  readonly submittedAt: number
  readonly state: "running" | "succeeded" | "failed"
}

/** Every run the cluster knows, oldest first, with its state from the workflow's result. */
export const list = (cluster: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ payload: string }>`select payload from cluster_messages where entity_type = ${`Workflow/${RunWorkflow._tag}`} and tag = 'run' order by id`.pipe(
      Effect.mapError((e) => new ClusterUnreachable({ cluster: redact(cluster), detail: e.message }))
    )
    return yield* Effect.forEach(rows, (row) =>
      Effect.gen(function* () {
        const payload = Schema.decodeUnknownSync(RunPayload)(JSON.parse(row.payload))
        const result = yield* RunWorkflow.poll(yield* RunWorkflow.executionId(payload))
        const state: ListedRun["state"] = Option.isSome(result) && result.value._tag === "Complete"
          ? (Exit.isSuccess(result.value.exit) && result.value.exit.value.status === "succeeded" ? "succeeded" : "failed")
          : "running"
        return { runId: payload.runId, pipeline: payload.pipeline, submittedAt: payload.submittedAt, state } satisfies ListedRun
      }))
  })

/** A Postgres URL without its password, for messages. */
export const redact = (url: string): string => url.replace(/(\/\/[^:/@]+:)[^@]*@/, "$1***@")
