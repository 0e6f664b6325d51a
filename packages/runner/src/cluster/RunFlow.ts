/**
 * The body of the `CrucibleRun` workflow: each unit is an activity that sends the unit to its
 * entity (placed on a worker of its resource group) and waits for the report; units start as soon
 * as the units they wait for have succeeded, independent ones at once. A unit after a failed one
 * is skipped, as in a local run. Activities are durable: when the workflow moves to another worker
 * (the one it lived on died), finished units answer from storage and are not sent again; a unit in
 * flight is sent again with the same primary key, which the cluster does not duplicate.
 *
 * @since 0.2.0
 */
import { Deferred, Effect, Schedule } from "effect"
import { Activity } from "effect/workflow"
import { RunSummary, RunWorkflow, StageEntity, type UnitReport, UnitReport as UnitReportSchema } from "./Protocol.ts"

/** The workflow's implementation, for the workers' layer. */
export const layer = RunWorkflow.toLayer((payload) =>
  Effect.gen(function* () {
    const client = yield* StageEntity.client
    const done = new Map<string, Deferred.Deferred<UnitReport>>()
    for (const unit of payload.units) done.set(unit.id, yield* Deferred.make<UnitReport>())
    const reports = yield* Effect.forEach(
      payload.units,
      (unit) =>
        Effect.gen(function* () {
          const before = yield* Effect.forEach(unit.dependsOn, (d) => Deferred.await(done.get(d)!))
          const failed = before.find((r) => r.status !== "succeeded")
          const report: UnitReport = failed !== undefined
            ? skipped(unit.id, failed.blockedBy ?? failed.unit)
            : yield* Activity.make({
                name: `unit/${unit.id}`,
                success: UnitReportSchema,
                execute: client(unit.entity)
                  .RunUnit({ runId: payload.runId, unit: unit.id, ir: payload.ir, baseDir: payload.baseDir, kindModules: payload.kindModules, stages: unit.stages, runs: unit.runs })
                  .pipe(
                    // The cluster's own errors (a runner going away, storage briefly unreachable) are
                    // transient here: the message is persisted, so asking again reaches its next owner.
                    Effect.retry(Schedule.spaced("1 second")),
                    Effect.orDie
                  )
              })
          yield* Deferred.succeed(done.get(unit.id)!, report)
          return report
        }),
      { concurrency: "unbounded" }
    )
    return RunSummary.make({ runId: payload.runId, status: reports.every((r) => r.status === "succeeded") ? "succeeded" : "failed", units: reports })
  })
)

const skipped = (unit: string, blockedBy: string): UnitReport => ({
  unit,
  status: "skipped",
  worker: "",
  host: "",
  runDir: "",
  startedAt: 0,
  endedAt: 0,
  stages: [],
  blockedBy
})
