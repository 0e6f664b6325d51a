/**
 * The schedule of a pipeline, as plain data: a topological order (file order breaks ties),
 * levels of stages that may run together, and each value's consumers and last use — so the
 * executor can release a stage's output (close its files, drop its tensors) as soon as nothing
 * downstream can read it. Pure: no effects, no stage is run.
 *
 * @since 0.1.0
 */
import type { Validate } from "@crucible/core"

/** @category models */
export interface Plan {
  /** Stage ids in an order where every stage follows its dependencies. */
  readonly order: ReadonlyArray<string>
  /** Stages grouped by depth: level k depends only on levels < k. */
  readonly levels: ReadonlyArray<ReadonlyArray<string>>
  /** For each stage, the stages that read its output (or wait for it). */
  readonly consumers: ReadonlyMap<string, ReadonlyArray<string>>
  /** For each stage, its last consumer in `order` (undefined: nothing reads it). */
  readonly lastUse: ReadonlyMap<string, string | undefined>
}

/** Plans a validated (hence acyclic) pipeline. */
export const make = (pipeline: Validate.ResolvedPipeline): Plan => {
  const stages = pipeline.stages
  const depth = new Map<string, number>()
  const byId = new Map(stages.map((s) => [s.id, s] as const))
  const depthOf = (id: string): number => {
    const known = depth.get(id)
    if (known !== undefined) return known
    const deps = byId.get(id)?.dependsOn ?? []
    const d = deps.length === 0 ? 0 : 1 + Math.max(...deps.map(depthOf))
    depth.set(id, d)
    return d
  }
  const fileOrder = new Map(stages.map((s, i) => [s.id, i] as const))
  const order = stages.map((s) => s.id).sort((a, b) => depthOf(a) - depthOf(b) || fileOrder.get(a)! - fileOrder.get(b)!)
  const levels: Array<Array<string>> = []
  for (const id of order) (levels[depthOf(id)] ??= []).push(id)
  const consumers = new Map<string, Array<string>>(stages.map((s) => [s.id, []]))
  for (const id of order) for (const dep of byId.get(id)!.dependsOn) consumers.get(dep)!.push(id)
  const lastUse = new Map(order.map((id) => [id, consumers.get(id)!.at(-1)] as const))
  return { order, levels, consumers, lastUse }
}

/** The stages `id` depends on, directly or not. */
export const ancestors = (pipeline: Validate.ResolvedPipeline, id: string): ReadonlySet<string> => {
  const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
  const seen = new Set<string>()
  const visit = (x: string) => {
    for (const d of byId.get(x)?.dependsOn ?? []) if (!seen.has(d)) (seen.add(d), visit(d))
  }
  visit(id)
  return seen
}
