/**
 * Frankenmerges, as mergekit's `slices:` with `merge_method: passthrough`: `slice` keeps a
 * half-open range of a model's layers, `stack` concatenates the layers of models in order. Both
 * only rename tensors: the output's tensors read their sources' bytes (nothing copied, lineage
 * kept), so they run at plan time and cost no memory until a consumer reads them.
 *
 * Tensors outside the layers follow mergekit's planner (`plan.py`, `plan_module`): the input
 * embeddings come from the first model, the tensors after the layers (final norm, lm_head) from
 * the last one (`head_from: first` takes them from the first too).
 *
 * @since 0.1.0
 */
import { Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as Architecture from "./Architecture.ts"

/** A layer range does not fit the model, or the model has no layers to slice. @category errors */
export class SliceError extends Schema.TaggedError<SliceError>()("SliceError", {
  stage: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}

/** Some layers of one model: `[start, end)`, under `layerPrefix`. */
interface Part {
  readonly model: Model.Model
  readonly layerPrefix: string
  readonly start: number
  readonly end: number
}

/** A model's layers, from its tensor names, or what is wrong (a message naming the model). */
const layersOf = (model: Model.Model): Result.Result<{ readonly layerPrefix: string; readonly layerCount: number }, string> => {
  const found = Architecture.fromTensorNames(model.tensors.keys())
  return found === undefined
    ? Result.fail(`model ${model.source} has no layer tensors (none named like "model.layers.{i}." or "transformer.h.{i}.")`)
    : Result.succeed(found)
}

/** Layers `[start, end)` of `model` (all when omitted), or what is wrong with the range. */
const partOf = (model: Model.Model, range?: readonly [number, number]): Result.Result<Part, string> =>
  Result.flatMap(layersOf(model), ({ layerCount, layerPrefix }) => {
    const [start, end] = range ?? [0, layerCount]
    if (start >= end) return Result.fail(`layers [${start}, ${end}) is empty: the end is exclusive and must be greater than the start`)
    if (end > layerCount) {
      return Result.fail(`layers [${start}, ${end}) is out of range: model ${model.source} has ${layerCount} layers (0…${layerCount - 1}; the end is exclusive, at most ${layerCount})`)
    }
    return Result.succeed({ model, layerPrefix, start, end })
  })

/** `t` under another name, reading `t`'s bytes (its fast path and lineage included). */
const renamed = (t: TensorRef.TensorRef, name: string): TensorRef.TensorRef =>
  name === t.name ? t : TensorRef.withReadInto({ ...t, name }, (range, target) => TensorRef.readInto(t, range, target), TensorRef.targetMemoryOf(t))

/**
 * The tensors of `parts` stacked: the first's input embeddings, each part's layers renumbered
 * consecutively from 0, then the tensors after the layers of `head`.
 */
const stackTensors = (parts: ReadonlyArray<Part>, head: Model.Model): Array<TensorRef.TensorRef> => {
  const first = parts[0]!
  const outside = (m: Model.Model, prefix: string) => Array.from(m.tensors.values()).filter((t) => Architecture.layerOf({ layerPrefix: prefix }, t.name) === undefined)
  const pre = outside(first.model, first.layerPrefix).filter((t) => Architecture.isInputEmbedding(t.name))
  const post = outside(head, first.layerPrefix).filter((t) => !Architecture.isInputEmbedding(t.name))
  const layers: Array<TensorRef.TensorRef> = []
  let next = 0
  for (const part of parts) {
    // Grouped by layer: checkpoints list tensors alphabetically (layers.10 before layers.2).
    const byLayer = new Map<number, Array<TensorRef.TensorRef>>()
    for (const t of part.model.tensors.values()) {
      const layer = Architecture.layerOf(part, t.name)
      if (layer !== undefined && layer >= part.start && layer < part.end) byLayer.set(layer, [...(byLayer.get(layer) ?? []), t])
    }
    for (let layer = part.start; layer < part.end; layer++, next++) {
      for (const t of byLayer.get(layer) ?? []) layers.push(renamed(t, Architecture.renumber(part, t.name, next)))
    }
  }
  return [...pre, ...layers, ...post]
}

const made = (id: string, method: string, parts: ReadonlyArray<Part>, head: Model.Model): Model.Model => {
  const models = parts.map((p) => p.model)
  const model = Model.make(`${id} (${method})`, stackTensors(parts, head), models[0]!.metadata, [...new Set(models.flatMap((m) => m.files))])
  const provenance = Model.combine(method, { models })
  return provenance === undefined ? model : { ...model, provenance }
}

const LayerIndex = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** @category stage kinds */
export const Slice = Stage.define({
  kind: "slice",
  version: 1,
  description: "Keeps layers [start, end) of a model, renumbered from 0, with its tensors outside the layers (mergekit's layer_range).",
  reference: "https://github.com/arcee-ai/mergekit#slices",
  params: Schema.Struct({
    /** `[start, end)`: the first layer kept and the one after the last (as mergekit's `layer_range`). */
    layers: Schema.Tuple([LayerIndex, LayerIndex]).annotate({ description: "[start, end): half-open, as mergekit's layer_range" })
  }),
  inputs: { model: Port.one(Port.ModelPort, "the model whose layers are kept") },
  output: Port.ModelPort,
  resources: { lazy: true },
  check: {
    params: ({ params }) => (params.layers[0] >= params.layers[1] ? [{ path: ["layers"], message: `layers [${params.layers[0]}, ${params.layers[1]}) is empty: the end is exclusive and must be greater than the start` }] : []),
    headers: ({ params, inputs }) => {
      const part = partOf(inputs.model, params.layers)
      return Result.isFailure(part) ? [{ path: ["layers"], message: part.failure }] : []
    }
  },
  run: Effect.fn("Slice.run")(function*({ id, params, inputs }) {
    const part = partOf(inputs.model, params.layers)
    if (Result.isFailure(part)) return yield* new SliceError({ stage: id, detail: part.failure })
    yield* Effect.annotateCurrentSpan({ "crucible.slice.layers": `${part.success.start}..${part.success.end}` })
    return made(id, "slice", [part.success], inputs.model)
  })
})

/** Each model's parts, or the issues (one per model, at its index). */
const partsOf = (models: ReadonlyArray<Model.Model>): Result.Result<Array<Part>, Array<{ readonly index: number; readonly message: string }>> => {
  const parts: Array<Part> = []
  const issues: Array<{ index: number; message: string }> = []
  models.forEach((model, index) => {
    const part = partOf(model)
    if (Result.isFailure(part)) issues.push({ index, message: part.failure })
    else if (parts.length > 0 && part.success.layerPrefix !== parts[0]!.layerPrefix) {
      issues.push({ index, message: `model ${model.source} keeps its layers under "${part.success.layerPrefix}", the first model under "${parts[0]!.layerPrefix}": stack models of one family` })
    } else parts.push(part.success)
  })
  return issues.length > 0 ? Result.fail(issues) : Result.succeed(parts)
}

/** @category stage kinds */
export const Stack = Stage.define({
  kind: "stack",
  version: 1,
  description: "Concatenates the layers of models in order, renumbered 0…N−1; input embeddings from the first model, final norm and lm_head from the last (as mergekit's passthrough slices).",
  reference: "https://github.com/arcee-ai/mergekit#slices",
  params: Schema.Struct({
    /** Which model the tensors after the layers (final norm, lm_head) come from: the last (mergekit) or the first. */
    head_from: Schema.Literals(["last", "first"]).annotate({ description: "the model whose final norm and lm_head are kept: last (as mergekit) or first" }).pipe(Stage.withDefault("last"))
  }),
  inputs: { models: Port.many(Port.ModelPort, { min: 1, description: "the models whose layers are stacked, in order (often slices)" }) },
  output: Port.ModelPort,
  resources: { lazy: true },
  check: {
    headers: ({ inputs }) => {
      const parts = partsOf(inputs.models)
      return Result.isFailure(parts) ? parts.failure.map((i) => ({ path: ["models", i.index], message: i.message })) : []
    }
  },
  run: Effect.fn("Stack.run")(function*({ id, params, inputs }) {
    const parts = partsOf(inputs.models)
    if (Result.isFailure(parts)) return yield* new SliceError({ stage: id, detail: parts.failure.map((i) => i.message).join("; ") })
    const head = params.head_from === "first" ? inputs.models[0]! : inputs.models[inputs.models.length - 1]!
    yield* Effect.annotateCurrentSpan({ "crucible.stack.layers": parts.success.reduce((n, p) => n + p.end - p.start, 0) })
    return made(id, "stack", parts.success, head)
  })
})
