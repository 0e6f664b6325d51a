/**
 * Explicit mapping between TF.js (Keras) and PyTorch weight names and layouts. Nothing is
 * converted implicitly: a caller that moves a model between the two calls {@link tfjsToTorch}
 * or {@link torchToTfjs}. Kernels are permuted lazily, on read:
 *
 * | layer            | TF.js (Keras)                     | PyTorch                               |
 * | ---------------- | --------------------------------- | ------------------------------------- |
 * | dense            | `x/kernel` [in, out]              | `x.weight` [out, in]                  |
 * | conv1d           | `x/kernel` [k, in, out]           | `x.weight` [out, in, k]               |
 * | conv2d           | `x/kernel` [kh, kw, in, out]      | `x.weight` [out, in, kh, kw]          |
 * | depthwise conv2d | `x/depthwise_kernel` [kh, kw, c, m] | `x.weight` [c·m, 1, kh, kw]         |
 * | batch norm       | `gamma`, `beta`, `moving_mean`, `moving_variance` | `weight`, `bias`, `running_mean`, `running_var` |
 * | embedding        | `x/embeddings` [vocab, dim]       | `x.weight` [vocab, dim]               |
 *
 * Recurrent layers (their gates are ordered differently) are not mapped.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Model from "../../model/Model.ts"
import { byteSize } from "../../tensor/DType.ts"
import { numel, type TensorBytes, type TensorRef } from "../../tensor/TensorRef.ts"

/**
 * A tensor whose dimensions are `source`'s permuted (`out[i]` has `source`'s dimension
 * `perm[i]`), optionally reshaped, read lazily. Range reads (a writer streaming in chunks)
 * transpose once and serve the following chunks from that copy until the last one is read.
 */
export const permute = (source: TensorRef, perm: ReadonlyArray<number>, name = source.name, reshape?: ReadonlyArray<number>): TensorRef => {
  const shape = reshape ?? perm.map((p) => source.shape[p]!)
  const size = byteSize[source.dtype]
  const count = numel(shape)
  let held: TensorBytes | undefined
  const whole = () => (held !== undefined ? Effect.succeed(held) : Effect.map(source.read(), (bytes) => transpose(bytes, source.shape, perm, size)))
  return {
    name,
    dtype: source.dtype,
    shape,
    read: (range) => {
      if (range === undefined) return whole()
      return Effect.map(whole(), (all) => {
        held = range.end >= count ? undefined : all
        return all.slice(range.start * size, range.end * size)
      })
    }
  }
}

/** Row-major bytes of `shape` rearranged so that output dimension i is input dimension perm[i]. */
export const transpose = (bytes: TensorBytes, shape: ReadonlyArray<number>, perm: ReadonlyArray<number>, size: number): TensorBytes => {
  // Elements are moved as whole words (two words for 8-byte types): bit patterns are kept exactly.
  const words = size === 8 ? 2 : 1
  const unit = size === 8 ? 4 : size
  const aligned = bytes.byteOffset % unit === 0 ? bytes : bytes.slice()
  const make = unit === 4 ? Uint32Array : unit === 2 ? Uint16Array : Uint8Array
  const input = new make(aligned.buffer, aligned.byteOffset, aligned.byteLength / unit)
  const output = new make(input.length)
  const rank = shape.length
  const inStrides = new Array<number>(rank)
  for (let d = rank - 1, s = words; d >= 0; d--) {
    inStrides[d] = s
    s *= shape[d]!
  }
  const outShape = perm.map((p) => shape[p]!)
  const strides = perm.map((p) => inStrides[p]!) // input stride, in words, of each output dimension
  const index = new Array<number>(rank).fill(0)
  const n = numel(shape)
  let from = 0
  for (let o = 0; o < n * words; o += words) {
    output[o] = input[from]!
    if (words === 2) output[o + 1] = input[from + 1]!
    // Odometer over the output index, keeping the input offset in step.
    for (let d = rank - 1; d >= 0; d--) {
      from += strides[d]!
      if (++index[d]! < outShape[d]!) break
      from -= strides[d]! * outShape[d]!
      index[d] = 0
    }
  }
  return new Uint8Array(output.buffer)
}

/** Options of the mappings. */
export interface MappingOptions {
  /** Renames a mapped tensor (its default name given); for layer names that differ between the two models. */
  readonly rename?: (name: string, original: string) => string
}

const keras = {
  kernel: "weight", bias: "bias", gamma: "weight", beta: "bias",
  moving_mean: "running_mean", moving_variance: "running_var", embeddings: "weight", depthwise_kernel: "weight"
} as const

/** TF.js names and layouts → PyTorch's. Tensors it does not recognise keep their layout, with `/` → `.`. */
export const tfjsToTorch = (model: Model.Model, options: MappingOptions = {}): Model.Model => {
  const rename = options.rename ?? ((n: string) => n)
  const tensors = [...model.tensors.values()].map((t) => {
    const slash = t.name.lastIndexOf("/")
    const layer = t.name.slice(0, Math.max(0, slash)).replaceAll("/", ".")
    const leaf = t.name.slice(slash + 1) as keyof typeof keras
    const torchLeaf = keras[leaf] ?? leaf
    const name = rename(layer === "" ? torchLeaf : `${layer}.${torchLeaf}`, t.name)
    const rank = t.shape.length
    if (leaf === "kernel" && rank === 2) return permute(t, [1, 0], name)
    if (leaf === "kernel" && rank === 3) return permute(t, [2, 1, 0], name)
    if (leaf === "kernel" && rank === 4) return permute(t, [3, 2, 0, 1], name)
    if (leaf === "depthwise_kernel" && rank === 4) {
      const [kh, kw, c, m] = t.shape as [number, number, number, number]
      return permute(t, [2, 3, 0, 1], name, [c * m, 1, kh, kw])
    }
    return { ...t, name }
  })
  return Model.make(model.source, tensors, model.metadata, model.files)
}

/**
 * PyTorch names and layouts → TF.js's. A `x.weight` is a dense/conv kernel by its rank, a
 * batch-norm `gamma` when `x.running_mean` exists, and kept as is (an embedding) when
 * `isEmbedding(x)` says so; `num_batches_tracked`, which Keras has no slot for, is dropped.
 */
export const torchToTfjs = (model: Model.Model, options: MappingOptions & { readonly isEmbedding?: (layer: string) => boolean } = {}): Model.Model => {
  const rename = options.rename ?? ((n: string) => n)
  const names = new Set(model.tensors.keys())
  const tensors: Array<TensorRef> = []
  for (const t of model.tensors.values()) {
    const dot = t.name.lastIndexOf(".")
    const layer = t.name.slice(0, Math.max(0, dot))
    const leaf = t.name.slice(dot + 1)
    const prefix = layer === "" ? "" : `${layer.replaceAll(".", "/")}/`
    const batchNorm = names.has(`${layer}.running_mean`)
    if (leaf === "num_batches_tracked") continue
    const to = (kerasLeaf: string) => rename(`${prefix}${kerasLeaf}`, t.name)
    const rank = t.shape.length
    if (leaf === "weight" && batchNorm) tensors.push({ ...t, name: to("gamma") })
    else if (leaf === "bias" && batchNorm) tensors.push({ ...t, name: to("beta") })
    else if (leaf === "running_mean") tensors.push({ ...t, name: to("moving_mean") })
    else if (leaf === "running_var") tensors.push({ ...t, name: to("moving_variance") })
    else if (leaf === "weight" && options.isEmbedding?.(layer) === true) tensors.push({ ...t, name: to("embeddings") })
    else if (leaf === "weight" && rank === 2) tensors.push(permute(t, [1, 0], to("kernel")))
    else if (leaf === "weight" && rank === 3) tensors.push(permute(t, [2, 1, 0], to("kernel")))
    else if (leaf === "weight" && rank === 4) tensors.push(permute(t, [2, 3, 1, 0], to("kernel")))
    else if (leaf === "bias") tensors.push({ ...t, name: to("bias") })
    else tensors.push({ ...t, name: rename(t.name.replaceAll(".", "/"), t.name) })
  }
  return Model.make(model.source, tensors, model.metadata, model.files)
}
