/**
 * What a run will read from each file, from a plan's dry run: the bytes the dry run itself read
 * (headers, indexes: a run reads the same), plus the tensor data each consumer reads, by the
 * lineage of the tensors it pulls (`Lineage.reads`). A stage that would write a model (`save`,
 * `convert`) reads that model once, exactly; a stage that runs only at run time is assumed to
 * read each model the plan knows of its inputs once, whole — an estimate, marked as such.
 *
 * @since 0.1.0
 */
import { Lineage, Model, type Port, type TensorRef, type Validate } from "@crucible/core"
import type { StageOutcome } from "../Executor.ts"

/** One file's reads. @category models */
export interface FileRead {
  readonly path: string
  /** Headers plus data. */
  readonly bytes: number
  /** Headers, indexes and format detection: what the plan's own dry run read. */
  readonly headerBytes: number
  /** Tensor data the stages consume. */
  readonly dataBytes: number
  /** False when a stage that runs only at run time reads it (its reads are then estimated). */
  readonly exact: boolean
}

/** @category models */
export interface Reads {
  readonly files: ReadonlyArray<FileRead>
  readonly bytes: number
  /** Bytes of tensors whose lineage is unknown (a user kind's hand-built tensors): their files are not known. */
  readonly unknownBytes: number
  /** Every figure is exact: no estimate, nothing unknown. */
  readonly exact: boolean
}

/**
 * The reads of a dry run's `outcomes`, given what the dry run itself read (`headers`, by file) and
 * which stages run at run time (a stage skipped after a failure reads nothing).
 */
export const of = (
  pipeline: Validate.ResolvedPipeline,
  outcomes: ReadonlyArray<StageOutcome>,
  headers: ReadonlyMap<string, number>,
  runsAtRunTime: ReadonlySet<string>
): Reads => {
  const data = new Map<string, number>()
  const estimated = new Set<string>()
  let unknownBytes = 0
  const add = (tensors: Iterable<TensorRef.TensorRef>, exact: boolean) => {
    const r = Lineage.reads(tensors)
    for (const [file, bytes] of r.files) {
      data.set(file, (data.get(file) ?? 0) + bytes)
      if (!exact || r.inexact.has(file)) estimated.add(file)
    }
    unknownBytes += r.unknown
  }
  const values = new Map(outcomes.map((o) => [o.id, o.value] as const))
  const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
  for (const o of outcomes) {
    const planned = (o.value as Port.Files | undefined)?.planned
    if (planned !== undefined) add(planned.model.tensors.values(), true)
    else if (runsAtRunTime.has(o.id)) {
      for (const model of knownModelInputs(byId.get(o.id)!, values)) add(model.tensors.values(), false)
    }
  }
  const paths = [...new Set([...headers.keys(), ...data.keys()])]
  const files = paths.map((p) => {
    const headerBytes = headers.get(p) ?? 0
    const dataBytes = data.get(p) ?? 0
    return { path: p, bytes: headerBytes + dataBytes, headerBytes, dataBytes, exact: !estimated.has(p) }
  })
  return { files, bytes: files.reduce((n, f) => n + f.bytes, 0), unknownBytes, exact: unknownBytes === 0 && estimated.size === 0 }
}

// The models a stage that was not run takes on its inputs, where the plan produced them.
const knownModelInputs = (stage: Validate.ResolvedStage, values: ReadonlyMap<string, unknown>): ReadonlyArray<Model.Model> =>
  Object.values(stage.inputs).flatMap((refs) => (refs ?? []).map((r) => values.get(r))).filter(Model.isModel)
