/**
 * A pipeline cut into the pieces a cluster places: units. A unit is a stage whose result is stored
 * by key (it computes, or writes files) or a lazy stage nothing reads, together with the lazy
 * stages it reads through (a `load` → lazy `merge` chain pulled by its `save`): lazy outputs are
 * reads composed in memory, so they run on the worker that pulls them. A unit runs on one worker
 * as a run of the sub-pipeline of the unit and its ancestors over the shared results store: the
 * stored ancestors (other units, finished before it) are found there by key; the lazy ones run.
 *
 * @since 0.2.0
 */
import type { Ir, Validate } from "@crucible/core"
import * as Plan from "../Plan.ts"

/** @category models */
export interface Unit {
  /** The stage the unit is named after (the one whose result it stores). */
  readonly id: string
  /** The units it waits for: the nearest stored stages among its ancestors. */
  readonly dependsOn: ReadonlyArray<string>
  /** The stages it runs itself: the unit's stage and the lazy stages it reads through. */
  readonly runs: ReadonlyArray<string>
  /** Every stage of its sub-pipeline: the unit's stage and all its ancestors. */
  readonly stages: ReadonlyArray<string>
  readonly device: "cpu" | "gpu" | "any"
}

/** Whether a stage's result is stored by key (as the executor decides it). */
export const isStored = (stage: Validate.ResolvedStage): boolean => !stage.kind.resources.lazy || stage.kind.output.name === "files"

/** The units of a pipeline, in an order where each follows the units it waits for. */
export const of = (pipeline: Validate.ResolvedPipeline): ReadonlyArray<Unit> => {
  const plan = Plan.make(pipeline)
  const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
  const isUnit = (id: string) => isStored(byId.get(id)!) || (plan.consumers.get(id) ?? []).length === 0
  return plan.order.filter(isUnit).map((id) => {
    const dependsOn = new Set<string>()
    const runs = [id]
    // Walk up through lazy stages; stop at stored ones (they are other units).
    const seen = new Set<string>()
    const visit = (x: string) => {
      for (const d of byId.get(x)!.dependsOn) {
        if (seen.has(d)) continue
        seen.add(d)
        if (isStored(byId.get(d)!)) dependsOn.add(d)
        else (runs.push(d), visit(d))
      }
    }
    visit(id)
    const ancestors = Plan.ancestors(pipeline, id)
    const devices = runs.map((r) => byId.get(r)!.kind.resources.device)
    return {
      id,
      dependsOn: plan.order.filter((x) => dependsOn.has(x)),
      runs: plan.order.filter((x) => runs.includes(x)),
      stages: plan.order.filter((x) => x === id || ancestors.has(x)),
      device: devices.includes("gpu") ? "gpu" : devices.includes("cpu") ? "cpu" : "any"
    }
  })
}

/** The IR of a unit's sub-pipeline: the unit's stage and its ancestors, as written. */
export const subIr = (ir: Ir.PipelineIR, unit: Pick<Unit, "stages">): Ir.PipelineIR => ({
  ...ir,
  stages: ir.stages.filter((s) => unit.stages.includes(s.id))
})
