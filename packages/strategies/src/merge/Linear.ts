/**
 * `merge/linear`: the weighted average of models, θ = Σ wᵢ θᵢ / Σ wᵢ (or Σ wᵢ θᵢ with
 * `normalize: false`). Streams: each output tensor (or element range of one) is computed from the
 * same range of the inputs when a consumer reads it, so memory is bounded by a few chunks; under
 * `--memory-limit` each read holds its range's working set from the budget.
 * Integer and bool tensors (step counters, masks) are copied from the first model. NaN/±Inf in an
 * input or the output (in the output's dtype: a sum beyond float16's range is +Inf there) is an
 * error naming the tensor (`allow_nonfinite: true` to merge anyway). bf16/f16/f32 inputs are
 * summed as they are stored, on every core (`StreamSum.ts`), or on the GPU when the run provides
 * `GpuMerge` (within `gpu/WeightedSum.ts`'s bound of the CPU's sums; `dtype: F64` stays on the CPU).
 *
 * @since 0.1.0
 */
import { DType, Lineage, MemoryBudget, Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Option, Schema } from "effect"
import { mismatches } from "./Alignment.ts"
import { GpuMerge } from "./GpuMerge.ts"
import * as NonFinite from "./kernels/NonFinite.ts"
import { InvalidMergeParams, MergeInputsMismatch } from "./MergeError.ts"
import * as StreamSum from "./StreamSum.ts"

/** @category stage kinds */
export const Linear = Stage.define({
  kind: "merge/linear",
  version: 1,
  description: "Weighted average of models with identical tensor names and shapes.",
  reference: "https://arxiv.org/abs/2203.05482",
  params: Schema.Struct({
    /** One weight per model; equal weights when omitted. */
    weights: Schema.optional(Schema.Array(Schema.Finite)),
    /** Divide by the sum of the weights. */
    normalize: Schema.Boolean.annotate({ description: "divide by the sum of the weights" }).pipe(Stage.withDefault(true)),
    /** Compute dtype: F32 (default) or F64. */
    dtype: Schema.optional(Schema.Literals(["F32", "F64", "float32", "float64"])),
    /** Output dtype for floating-point tensors; default: `dtype` when given, else the inputs' dtype. */
    out_dtype: Schema.optional(DType.WritableDTypeName),
    /** NaN/±Inf in an input or the output is an error naming the tensor unless this is true. */
    allow_nonfinite: Schema.Boolean.annotate({ description: "accept NaN/±Inf in inputs and output instead of failing at the first" }).pipe(Stage.withDefault(false))
  }),
  inputs: { models: Port.many(Port.ModelPort, { min: 1, description: "the models to average" }) },
  output: Port.ModelPort,
  // On a GPU run it sums there (GpuMerge), holding the device's slot for each read.
  resources: { lazy: true, device: "any" },
  // What `run` checks first, said at validation: the weights against the models, then the headers.
  check: {
    params: ({ params, inputs }) => {
      const weights = params.weights
      if (weights === undefined) return []
      if (weights.length !== inputs.models.length) return [{ path: ["weights"], message: weightsProblem(weights.length, inputs.models.length) }]
      const total = weights.reduce((a, b) => a + b, 0)
      return params.normalize && Math.abs(total) < 1e-12 ? [{ path: ["weights"], message: sumProblem(total) }] : []
    },
    headers: ({ inputs }) => mismatches(inputs.models).map((m) => ({ path: ["models", m.model], message: m.message }))
  },
  run: Effect.fn("Linear.run")(function* ({ id, params, inputs }) {
    const models = inputs.models
    const weights = params.weights ?? models.map(() => 1)
    if (weights.length !== models.length) {
      return yield* new InvalidMergeParams({ stage: id, detail: weightsProblem(weights.length, models.length) })
    }
    const total = weights.reduce((a, b) => a + b, 0)
    const normalize = params.normalize
    if (normalize && Math.abs(total) < 1e-12) {
      return yield* new InvalidMergeParams({ stage: id, detail: sumProblem(total) })
    }
    const problems = mismatches(models)
    if (problems.length > 0) return yield* new MergeInputsMismatch({ stage: id, mismatches: problems.map((p) => p.message) })
    const scale = weights.map((w) => (normalize ? w / total : w))
    const wide = params.dtype === "F64" || params.dtype === "float64"
    // As mergekit: out_dtype, else the compute dtype when one is asked for, else the inputs' own.
    const outDtype = params.out_dtype !== undefined ? DType.parseWritable(params.out_dtype) : params.dtype === undefined ? undefined : wide ? "F64" : "F32"
    const first = models[0]!
    yield* Effect.annotateCurrentSpan({ "crucible.merge.weights": scale.join(","), "crucible.tensors.out": first.tensors.size })
    const merged = Array.from(first.tensors.values()).filter((t) => DType.isFloat(t.dtype))
    const sources = merged.map((t) => models.map((m) => m.tensors.get(t.name)!))
    const checkFinite = !params.allow_nonfinite
    // The run's GPU when it provides one (webgpu backend); F64 sums stay on the CPU (WGSL has no float64).
    const gpu = wide ? Option.none() : yield* Effect.serviceOption(GpuMerge)
    const stream = wide ? undefined : StreamSum.make(sources, scale, yield* Effect.scope, { checkFinite, ...(Option.isSome(gpu) ? { gpu: { device: gpu.value.device } } : {}) })
    const index = new Map(merged.map((t, i) => [t.name, i]))
    const tensors = Array.from(first.tensors.values(), (t): TensorRef.TensorRef => {
      const i = index.get(t.name)
      if (i === undefined) return t
      const dtype = outDtype ?? writable(t.dtype)
      return stream === undefined ? summedWide(t, sources[i]!, scale, checkFinite, dtype) : streamed(t, sources[i]!, stream, i, dtype)
    })
    const linear = Model.make(`${id} (merge/linear)`, tensors, first.metadata, [...new Set(models.flatMap((m) => m.files))])
    // The Hugging Face folders it comes from, for a save to a folder (config, tokenizer, card).
    return { ...linear, provenance: Model.combine("merge/linear", { models }) }
  })
})

const weightsProblem = (weights: number, models: number) => `weights has ${weights} values for ${models} models (give one weight per model)`
const sumProblem = (total: number) => `weights sum to ${total}; cannot normalize (set normalize: false or change the weights)`

const writable = (dtype: DType.DType): DType.WritableDType => DType.parseWritable(dtype) ?? "F32"

// The compute dtypes differ in what they keep: F32 sums each element in float64 and rounds it
// once to float32 (the weighted-sum kernel: the same bits for any chunking, JS or SIMD, streamed
// with read-ahead); F64 keeps the float64 sums for a float64 output.

/** A tensor summed by the stream (F32): reads and the writer's `readInto` hold the stream's input sets and the output (`StreamSum.bytesPerElement`). */
const streamed = (like: TensorRef.TensorRef, sources: ReadonlyArray<TensorRef.TensorRef>, stream: StreamSum.StreamSum, index: number, dtype: DType.WritableDType): TensorRef.TensorRef => {
  const perElement = StreamSum.bytesPerElement(sources.length)
  const hold = holding(like, perElement)
  const tensor: TensorRef.TensorRef = {
    name: like.name,
    dtype,
    shape: like.shape,
    read: (range) => hold(range, stream.sum(index, TensorRef.rangeOf(like, range), dtype)),
    lineage: Lineage.derived(sources, { perElement })
  }
  return TensorRef.withReadInto(tensor, (range, target) => hold(range, stream.sumInto(index, TensorRef.rangeOf(like, range), dtype, target)), stream.targetMemory)
}

/** A tensor summed in float64 (F64), range by range; a read holds the inputs and the sum as float64. */
const summedWide = (like: TensorRef.TensorRef, sources: ReadonlyArray<TensorRef.TensorRef>, scale: ReadonlyArray<number>, checkFinite: boolean, dtype: DType.WritableDType): TensorRef.TensorRef => {
  const perElement = (sources.length + 1) * 8
  const hold = holding(like, perElement)
  return {
    name: like.name,
    dtype,
    shape: like.shape,
    lineage: Lineage.derived(sources, { perElement }),
    read: (range) =>
      hold(range, Effect.gen(function* () {
        const offset = TensorRef.rangeOf(like, range).start
        const inputs = yield* Effect.forEach(sources, (source) => Effect.map(source.read(range), (bytes) => DType.toFloat64(bytes, source.dtype)))
        const input = checkFinite ? NonFinite.find(inputs.map((values) => ({ tensor: like.name, values, offset }))) : undefined
        if (input !== undefined) return yield* new NonFinite.NonFiniteTensor({ role: "input", ...input })
        const acc = new Float64Array(inputs[0]?.length ?? 0)
        inputs.forEach((values, i) => axpy(acc, values, scale[i]!))
        const result = DType.fromNumbers(acc, dtype)
        const output = checkFinite ? NonFinite.find([{ tensor: like.name, values: DType.toFloat64(result, dtype), offset }]) : undefined
        if (output !== undefined) return yield* new NonFinite.NonFiniteTensor({ role: "output", ...output })
        return result
      }))
  }
}

// Under --memory-limit a read of a range holds `bytesPerElement` × its elements of the budget.
const holding = (like: TensorRef.TensorRef, bytesPerElement: number) => <A, E>(range: TensorRef.ElementRange | undefined, effect: Effect.Effect<A, E>) => {
  const { start, end } = TensorRef.rangeOf(like, range)
  return MemoryBudget.hold(like.name, bytesPerElement * (end - start))(effect)
}

/** acc += w · x, in place. */
const axpy = (acc: Float64Array, x: Float64Array, w: number): void => {
  for (let j = 0; j < acc.length; j++) acc[j]! += w * x[j]!
}
