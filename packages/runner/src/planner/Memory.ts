/**
 * Estimated peak memory of a plan, per stage and for the run, from the tensors' lineage:
 *
 * - a stage's peak is the largest working set of the tensors it introduces — for a merge, what it
 *   takes from `--memory-limit` per tensor: `merge/linear` a writer chunk's inputs (two sets, read
 *   ahead) and output as float32, `(2·inputs + 1) · 4 · min(elements, 1M)`; the whole-tensor
 *   methods every input and the output of the largest tensor as float32, `(inputs + 1) · 4 ·
 *   elements` (`Lineage.Derived.memory`) — plus, for a stage that writes, the writer's own
 *   buffers (`Formats.planWrite`: three chunks for safetensors); `load` holds none;
 * - a writer pulls its model through every merge upstream, each holding its working set at once,
 *   so a pull's peak is the writer's plus each of those merges' (an upper bound: the sum of
 *   maxima);
 * - the run's peak is the sum of the `concurrency` largest pulls (a run lets that many stages
 *   work at once, 2 by default). Stages that run only at run time (training, evaluation) are not
 *   estimated.
 *
 * @since 0.1.0
 */
import { Lineage, Model, type Port, Safetensors, type TensorRef } from "@crucible/core"
import type { StageOutcome } from "../Executor.ts"

/** A writer and the merges it pulls from. @category models */
export interface Pull {
  readonly stage: string
  readonly bytes: number
  /** The stages whose working sets it holds at once, itself first. */
  readonly stages: ReadonlyArray<string>
}

/** @category models */
export interface Memory {
  /** Each planned stage's peak (stages not run by the plan are absent). */
  readonly stages: ReadonlyMap<string, number>
  readonly pulls: ReadonlyArray<Pull>
  /** The run's peak: the `concurrency` largest pulls together. */
  readonly peakBytes: number
}

/** Merges serve the writer's chunks: an elementwise working set is taken for this many elements. */
const CHUNK = Safetensors.DEFAULT_CHUNK_ELEMENTS

/** The memory of a dry run's `outcomes` (in plan order), for a run doing `concurrency` stages at once. */
export const of = (outcomes: ReadonlyArray<StageOutcome>, concurrency: number): Memory => {
  // Each tensor belongs to the first stage (in plan order) whose value holds it: its computation's memory is that stage's.
  const owner = new Map<TensorRef.TensorRef, string>()
  const stages = new Map<string, number>()
  for (const o of outcomes) {
    if (o.status !== "succeeded") continue
    const planned = plannedOf(o.value)
    const tensors = planned?.model.tensors ?? (Model.isModel(o.value) ? o.value.tensors : undefined)
    let largest = 0
    for (const t of tensors?.values() ?? []) {
      if (owner.has(t)) continue
      owner.set(t, o.id)
      largest = Math.max(largest, Lineage.workingSet(t, CHUNK))
    }
    stages.set(o.id, (planned?.workingSetBytes ?? 0) + largest)
  }
  const pulls = outcomes.flatMap((o): Array<Pull> => {
    const planned = plannedOf(o.value)
    if (planned === undefined) return []
    const upstream = [...ownersReached(planned.model, owner)].filter((id) => id !== o.id)
    const held = [o.id, ...upstream]
    return [{ stage: o.id, bytes: held.reduce((n, id) => n + (stages.get(id) ?? 0), 0), stages: held }]
  })
  const largest = [...pulls].sort((a, b) => b.bytes - a.bytes).slice(0, Math.max(1, concurrency))
  return { stages, pulls, peakBytes: largest.reduce((n, p) => n + p.bytes, 0) }
}

// The stages whose derived tensors a full read of `model` computes.
const ownersReached = (model: Model.Model, owner: ReadonlyMap<TensorRef.TensorRef, string>): ReadonlySet<string> => {
  const found = new Set<string>()
  const seen = new Set<TensorRef.TensorRef>()
  const stack = [...model.tensors.values()]
  while (stack.length > 0) {
    const t = stack.pop()!
    if (seen.has(t)) continue
    seen.add(t)
    if (t.lineage?._tag !== "Derived") continue
    const id = owner.get(t)
    if (id !== undefined) found.add(id)
    stack.push(...t.lineage.inputs)
  }
  return found
}

const plannedOf = (value: unknown): Port.Files["planned"] => (value as Port.Files | undefined)?.planned
