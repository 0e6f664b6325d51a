/**
 * A cascade as a model, so it flows through the `model` port: stage 0's tensors renamed
 * `stages.0.<name>`, stage 1's `stages.1.<name>`, metadata `crucible.cascade` holding
 * `{ layer, adapter }` as JSON and `crucible.cascade.arch.<i>` each stage's architecture. Running
 * it means running stage 0 up to its activation `layer` (`output` for its output), flattening
 * that per sample in PyTorch order, and running stage 1 on it. When `adapter` is true, stage 1's
 * `layers.0` is the dense adapter that maps the features to the second model's input size.
 *
 * @since 0.1.0
 */
import { Model } from "@crucible/core"
import type { TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import { type Network, type Node, sampleSize, type Shape } from "../models/Network.ts"
import { ARCH_KEY } from "../models/Runnable.ts"

/** The metadata key of a cascade's description. */
export const CASCADE_KEY = "crucible.cascade"

/** The `layer` that names stage 0's output rather than one of its activations. */
export const OUTPUT = "output"

/** The metadata key of stage `i`'s architecture. */
export const stageArchKey = (i: number): string => `${CASCADE_KEY}.arch.${i}`

/** Prefix of stage `i`'s tensors. */
export const stagePrefix = (i: number): string => `stages.${i}.`

/** What `crucible.cascade` holds. @category schemas */
export const Spec = Schema.Struct({
  /** Stage 0's activation fed to stage 1, or `output`. */
  layer: Schema.String,
  /** Whether stage 1 starts with a trained dense adapter (its `layers.0`). */
  adapter: Schema.Boolean
})
export type Spec = typeof Spec.Type

/** A cascade cannot be built, read or run; names the stage or model and what is wrong. @category errors */
export class CascadeError extends Schema.TaggedError<CascadeError>()("CascadeError", {
  reason: Schema.Literals(["InvalidParams", "ShapeMismatch", "Malformed"]),
  /** The stage id or the model's source. */
  source: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.source}: cascade ${this.reason}: ${this.detail}`
  }
}

/** Whether a model is a cascade bundle. */
export const isCascade = (model: Model.Model): boolean => model.metadata[CASCADE_KEY] !== undefined

const renamed = (ref: TensorRef.TensorRef, name: string): TensorRef.TensorRef => ({ name, dtype: ref.dtype, shape: ref.shape, read: ref.read })

/** The bundle of two runnable stage models (each carrying `crucible.arch`). */
export const make = (
  source: string,
  stages: readonly [Model.Model, Model.Model],
  spec: Spec,
  metadata: Readonly<Record<string, string>> = {}
): Effect.Effect<Model.Model, CascadeError> =>
  Effect.gen(function* () {
    const out: Record<string, string> = { ...metadata, [CASCADE_KEY]: JSON.stringify({ layer: spec.layer, adapter: spec.adapter }) }
    const tensors: Array<TensorRef.TensorRef> = []
    for (const [i, stage] of stages.entries()) {
      const arch = stage.metadata[ARCH_KEY]
      if (arch === undefined) return yield* new CascadeError({ reason: "InvalidParams", source, detail: `stage ${i} (${stage.source}) carries no architecture ("${ARCH_KEY}" metadata)` })
      out[stageArchKey(i)] = arch
      for (const ref of stage.tensors.values()) tensors.push(renamed(ref, `${stagePrefix(i)}${ref.name}`))
    }
    return Model.make(source, tensors, out, [...new Set(stages.flatMap((s) => s.files))])
  })

/** The description and the two stage models (each runnable) of a cascade bundle. */
export const decode = (model: Model.Model): Effect.Effect<{ readonly spec: Spec; readonly stages: readonly [Model.Model, Model.Model] }, CascadeError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new CascadeError({ reason: "Malformed", source: model.source, detail })
    const raw = model.metadata[CASCADE_KEY]
    if (raw === undefined) return yield* fail(`not a cascade (no "${CASCADE_KEY}" metadata)`)
    const json = yield* Effect.try({ try: () => JSON.parse(raw) as unknown, catch: () => fail(`"${CASCADE_KEY}" is not JSON`) })
    const spec = yield* Schema.decodeUnknownEffect(Spec)(json).pipe(Effect.mapError((e) => fail(`"${CASCADE_KEY}": ${e.message}`)))
    const buckets: [Array<TensorRef.TensorRef>, Array<TensorRef.TensorRef>] = [[], []]
    for (const ref of model.tensors.values()) {
      const match = /^stages\.([01])\.(.+)$/.exec(ref.name)
      if (match === null) return yield* fail(`tensor "${ref.name}" belongs to no stage (expected stages.0.<name> or stages.1.<name>)`)
      buckets[Number(match[1]) as 0 | 1].push(renamed(ref, match[2]!))
    }
    const stages: Array<Model.Model> = []
    for (const [i, tensors] of buckets.entries()) {
      const arch = model.metadata[stageArchKey(i)]
      if (arch === undefined) return yield* fail(`stage ${i} has no architecture ("${stageArchKey(i)}" metadata)`)
      if (tensors.length === 0) return yield* fail(`stage ${i} has no tensors`)
      stages.push(Model.make(`${model.source} stage ${i}`, tensors, { [ARCH_KEY]: arch }, model.files))
    }
    return { spec, stages: [stages[0]!, stages[1]!] as const }
  })

const findShape = (nodes: ReadonlyArray<Node>, layer: string): Shape | undefined => {
  for (const node of nodes) {
    if (node.path === layer) return node.outShape
    if (`${node.path}:in` === layer) return node.inShape
    if (node.kind === "residual") {
      const inner = findShape(node.body, layer) ?? findShape(node.shortcut ?? [], layer)
      if (inner !== undefined) return inner
    }
  }
  return undefined
}

/** The per-sample shape of `network`'s activation `layer` (`output`, `input` or a capture name). */
export const featureShape = (network: Network, layer: string, source: string): Effect.Effect<Shape, CascadeError> => {
  const shape = layer === OUTPUT ? network.outputShape : layer === "input" ? network.inputShape : findShape(network.nodes, layer)
  if (shape !== undefined) return Effect.succeed(shape)
  const known = [OUTPUT, ...network.activationNames]
  return Effect.fail(new CascadeError({
    reason: "InvalidParams", source,
    detail: `layer "${layer}" is not an activation of the first model; known: ${known.slice(0, 12).join(", ")}${known.length > 12 ? ", …" : ""}`
  }))
}

/** Stage 1 must take exactly the `features` values per sample and output class logits. */
export const checkStages = (source: string, first: Network, second: Network, layer: string): Effect.Effect<number, CascadeError> =>
  Effect.gen(function* () {
    const features = sampleSize(yield* featureShape(first, layer, source))
    const fail = (detail: string) => new CascadeError({ reason: "ShapeMismatch", source, detail })
    if (sampleSize(second.inputShape) !== features) return yield* fail(`stage 1 takes [${second.inputShape.join(", ")}]; stage 0's "${layer}" has ${features} values per sample`)
    if (second.outputShape.length !== 1) return yield* fail(`stage 1 outputs [${second.outputShape.join(", ")}], not class logits`)
    return features
  })
