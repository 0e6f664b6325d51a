/**
 * `statistics/gram`: the statistics RegMean needs — for every linear layer of a model, the Gram
 * matrix G = XᵀX / N of its inputs X (N samples of `data`), written as `<layer>.gram` `[in, in]`
 * (float32, accumulated in float64). Feed one per model to `merge/regmean`'s `statistics`.
 *
 * @since 0.1.0
 */
import { DType, Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Forward from "../models/Forward.ts"
import * as Runnable from "../models/Runnable.ts"

/** @category stage kinds */
export const GramStatistics = Stage.define({
  kind: "statistics/gram",
  version: 1,
  description: "Gram matrices of the inputs of a model's linear layers on a dataset (for merge/regmean).",
  reference: "https://arxiv.org/abs/2212.09849",
  params: Schema.Struct({
    data: DataSource.dataField(),
    /** The data the model was fitted to. */
    split: DataSource.splitField("train", "the samples to measure on (the data the model was fitted to)"),
    /** At most this many samples (the first ones, deterministic); default all. */
    samples: Schema.optional(Schema.Int.check(Schema.isGreaterThan(0))),
    arch: Schema.optional(Runnable.ArchParam)
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: { model: Port.one(Port.ModelPort, "the model to measure") },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("GramStatistics.run")(function* ({ id, params, inputs, resolvePath }) {
    const { network, params: weights } = yield* Runnable.load(inputs.model, params.arch, resolvePath)
    const data = yield* DataSource.load(params.data, params.split, resolvePath)
    const n = Math.min(data.count, params.samples ?? data.count)
    const size = data.x.length / data.count
    const layers = network.nodes.filter((node) => node.kind === "linear").map((node) => node.path)
    const result = yield* Forward.forward(network, weights, { shape: [n, ...data.shape], data: data.x.subarray(0, n * size) }, { capture: layers.map((p) => `${p}:in`) })
    const tensors = layers.map((layer) => {
      const x = result.activations.get(`${layer}:in`)!
      const columns = x.shape[1]!
      return TensorRef.fromBytes(`${layer}.gram`, "F32", [columns, columns], DType.fromNumbers(gram(x.data, n, columns), "F32"))
    })
    yield* Effect.annotateCurrentSpan({ "crucible.statistics.samples": n, "crucible.statistics.layers": layers.length })
    return Model.make(`${id} (statistics/gram)`, tensors, { "crucible.statistics": "gram", "crucible.statistics.samples": String(n) }, inputs.model.files)
  })
})

/** XᵀX / n for row-major X [n, c], in float64. */
const gram = (x: Float32Array, n: number, c: number): Float64Array => {
  const g = new Float64Array(c * c)
  for (let s = 0; s < n; s++) {
    const row = s * c
    for (let i = 0; i < c; i++) {
      const xi = x[row + i]!
      if (xi === 0) continue
      const at = i * c
      for (let j = i; j < c; j++) g[at + j]! += xi * x[row + j]!
    }
  }
  for (let i = 0; i < c; i++) for (let j = i; j < c; j++) g[j * c + i] = g[i * c + j]! /= n
  return g
}
