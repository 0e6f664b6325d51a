/**
 * What the cluster carries: the `CrucibleStage` entity (one per unit of a run, placed by its
 * resource group; its `RunUnit` message is persisted, so a worker that dies leaves it to be
 * delivered again to the next owner of its shard) and the `CrucibleRun` workflow (durable,
 * idempotent per run id). Pipelines travel as their IR in JSON; their paths resolve against
 * `baseDir`, which every machine sees at the same path (the shared mount).
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import { ClusterSchema, Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import { Workflow } from "effect/workflow"

/** How a stage of a unit ended, as the worker's run recorded it. @category models */
export const StageResult = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  status: Schema.String,
  key: Schema.String,
  cached: Schema.Boolean,
  durationMs: Schema.Number,
  error: Schema.optional(Schema.String)
})
export type StageResult = typeof StageResult.Type

/** What a worker answers for a unit. @category models */
export const UnitReport = Schema.Struct({
  unit: Schema.String,
  status: Schema.Literals(["succeeded", "failed", "skipped"]),
  /** The worker that ran it (`--id`, default host:port) and its host name; empty for a skipped unit. */
  worker: Schema.String,
  host: Schema.String,
  /** The worker's run folder for it (under `<store>/runs/<run id>/`). */
  runDir: Schema.String,
  startedAt: Schema.Number,
  endedAt: Schema.Number,
  /** The stages the unit ran (itself and the lazy stages it read through). */
  stages: Schema.Array(StageResult),
  /** For a skipped unit: the unit whose failure stopped it. */
  blockedBy: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String)
})
export type UnitReport = typeof UnitReport.Type

/** A unit to run: the run, the unit, and the pipeline to cut it from. @category models */
const unitTaskFields = {
  runId: Schema.String,
  unit: Schema.String,
  /** The whole pipeline's IR, JSON. */
  ir: Schema.String,
  baseDir: Schema.String,
  kindModules: Schema.Array(Schema.String),
  /** The stages of the unit's sub-pipeline. */
  stages: Schema.Array(Schema.String),
  runs: Schema.Array(Schema.String)
}
export const UnitTask = Schema.Struct(unitTaskFields)
export type UnitTask = typeof UnitTask.Type

/** Runs one unit; persisted, one per (run, unit) whatever how often it is sent. */
export const RunUnit = Rpc.make("RunUnit", {
  payload: unitTaskFields,
  success: UnitReport,
  primaryKey: (task) => `${task.runId}/${task.unit}`
}).annotate(ClusterSchema.Persisted, true)

/** The entity id of a unit: its resource group, then run and unit (the group decides the shard group). */
export const unitEntityId = (group: string, runId: string, unit: string): string => `${group}:${runId}/${unit}`

/** The group an entity id names. */
export const groupOfEntity = (entityId: string): string => entityId.slice(0, entityId.indexOf(":"))

export const StageEntity = Entity.make("CrucibleStage", [RunUnit]).annotate(ClusterSchema.ShardGroup, (entityId) => groupOfEntity(String(entityId)))

/** A unit as the workflow schedules it. @category models */
export const PlannedUnit = Schema.Struct({
  id: Schema.String,
  /** Its entity id: `<group>:<run>/<unit>`, with a suffix chosen to spread units over workers (`Placement.ts`). */
  entity: Schema.String,
  dependsOn: Schema.Array(Schema.String),
  stages: Schema.Array(Schema.String),
  runs: Schema.Array(Schema.String),
  group: Schema.String
})
export type PlannedUnit = typeof PlannedUnit.Type

/** The run as submitted. @category models */
export const RunPayload = Schema.Struct({
  runId: Schema.String,
  pipeline: Schema.String,
  file: Schema.String,
  ir: Schema.String,
  baseDir: Schema.String,
  kindModules: Schema.Array(Schema.String),
  units: Schema.Array(PlannedUnit),
  submittedAt: Schema.Number
})
export type RunPayload = typeof RunPayload.Type

/** @category models */
export const RunSummary = Schema.Struct({
  runId: Schema.String,
  status: Schema.Literals(["succeeded", "failed"]),
  units: Schema.Array(UnitReport)
})
export type RunSummary = typeof RunSummary.Type

/** A run of a pipeline on the cluster: durable, one execution per run id. */
export const RunWorkflow = Workflow.make("CrucibleRun", {
  payload: RunPayload,
  success: RunSummary,
  idempotencyKey: (payload) => payload.runId
})
