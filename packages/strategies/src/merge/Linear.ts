/**
 * `merge/linear`: the weighted average of models, θ = Σ wᵢ θᵢ / Σ wᵢ (or Σ wᵢ θᵢ with
 * `normalize: false`). Streams: each output tensor (or element range of one) is computed from the
 * same range of the inputs when a consumer reads it, so memory is bounded by a few tensors.
 * Integer and bool tensors (step counters, masks) are copied from the first model.
 *
 * @since 0.1.0
 */
import { DType, Model, Port, Stage, type TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import { mismatches } from "./Alignment.ts"
import { InvalidMergeParams, MergeInputsMismatch } from "./MergeError.ts"

/** @category stage kinds */
export const Linear = Stage.define({
  kind: "merge/linear",
  version: 1,
  description: "Weighted average of models with identical tensor names and shapes.",
  reference: "https://arxiv.org/abs/2203.05482",
  params: Schema.Struct({
    /** One weight per model; equal weights when omitted. */
    weights: Schema.optional(Schema.Array(Schema.Finite)),
    /** Divide by the sum of the weights (default true). */
    normalize: Schema.optional(Schema.Boolean),
    /** Compute dtype: F32 (default) or F64. */
    dtype: Schema.optional(Schema.Literals(["F32", "F64", "float32", "float64"])),
    /** Output dtype for floating-point tensors; default: `dtype` when given, else the inputs' dtype. */
    out_dtype: Schema.optional(DType.WritableDTypeName)
  }),
  inputs: { models: Port.many(Port.ModelPort, { min: 1, description: "the models to average" }) },
  output: Port.ModelPort,
  resources: { lazy: true },
  run: Effect.fn("Linear.run")(function* ({ id, params, inputs }) {
    const models = inputs.models
    const weights = params.weights ?? models.map(() => 1)
    if (weights.length !== models.length) {
      return yield* new InvalidMergeParams({ stage: id, detail: `weights has ${weights.length} values for ${models.length} models` })
    }
    const total = weights.reduce((a, b) => a + b, 0)
    const normalize = params.normalize ?? true
    if (normalize && Math.abs(total) < 1e-12) {
      return yield* new InvalidMergeParams({ stage: id, detail: `weights sum to ${total}; cannot normalize (set normalize: false or change the weights)` })
    }
    const problems = mismatches(models)
    if (problems.length > 0) return yield* new MergeInputsMismatch({ stage: id, mismatches: problems })
    const scale = weights.map((w) => (normalize ? w / total : w))
    const wide = params.dtype === "F64" || params.dtype === "float64"
    // As mergekit: out_dtype, else the compute dtype when one is asked for, else the inputs' own.
    const outDtype = params.out_dtype !== undefined ? DType.parseWritable(params.out_dtype) : params.dtype === undefined ? undefined : wide ? "F64" : "F32"
    const first = models[0]!
    yield* Effect.annotateCurrentSpan({ "crucible.merge.weights": scale.join(","), "crucible.tensors.out": first.tensors.size })
    const tensors = Array.from(first.tensors.values(), (t): TensorRef.TensorRef =>
      DType.isFloat(t.dtype) ? averaged(t, models.map((m) => m.tensors.get(t.name)!), scale, wide, outDtype ?? writable(t.dtype)) : t
    )
    return Model.make(`${id} (merge/linear)`, tensors, first.metadata, [...new Set(models.flatMap((m) => m.files))])
  })
})

const writable = (dtype: DType.DType): DType.WritableDType => DType.parseWritable(dtype) ?? "F32"

const averaged = (
  like: TensorRef.TensorRef,
  sources: ReadonlyArray<TensorRef.TensorRef>,
  scale: ReadonlyArray<number>,
  wide: boolean,
  dtype: DType.WritableDType
): TensorRef.TensorRef => ({
  name: like.name,
  dtype,
  shape: like.shape,
  read: (range) =>
    Effect.gen(function* () {
      let acc: Float32Array | Float64Array | undefined
      for (const [i, source] of sources.entries()) {
        const bytes = yield* source.read(range)
        const values = wide ? DType.toFloat64(bytes, source.dtype) : DType.toFloat32(bytes, source.dtype)
        acc ??= wide ? new Float64Array(values.length) : new Float32Array(values.length)
        axpy(acc, values, scale[i]!)
      }
      return DType.fromNumbers(acc ?? new Float32Array(0), dtype)
    })
})

/** acc += w · x, in place. */
const axpy = (acc: Float32Array | Float64Array, x: Float32Array | Float64Array, w: number): void => {
  for (let j = 0; j < acc.length; j++) acc[j]! += w * x[j]!
}
