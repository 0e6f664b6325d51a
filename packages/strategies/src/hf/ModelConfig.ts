/**
 * The `config.json` of an output folder: the donor's, with the fields that describe the written
 * weights set from them — `torch_dtype` (the written dtype's torch name), the layer count (the
 * layers present in the tensors, by `Architecture`) and `vocab_size` (the input embedding's rows).
 * Every other field is the donor's, in the donor's order.
 *
 * @since 0.1.0
 */
import { DType, type Model, TensorRef } from "@crucible/core"
import { Result } from "effect"
import * as Architecture from "./Architecture.ts"

/** transformers' `torch_dtype` names of the floating dtypes. @category constants */
export const TORCH_DTYPE: Readonly<Partial<Record<DType.DType, string>>> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16"
}

/**
 * The floating dtype holding most of `model`'s bytes: what its folder calls its dtype (a model may
 * keep a few tensors in another, e.g. float32 norms); undefined when it holds no floats.
 *
 * @category getters
 */
export const dominantFloat = (model: Model.Model): DType.DType | undefined => {
  const bytes = new Map<DType.DType, number>()
  for (const t of model.tensors.values()) if (DType.isFloat(t.dtype)) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + TensorRef.byteLength(t))
  let best: DType.DType | undefined
  for (const [dtype, n] of bytes) if (best === undefined || n > bytes.get(best)!) best = dtype
  return best
}

// The key of the layer count: transformers' name, or gpt2's.
const LAYER_KEYS = ["num_hidden_layers", "n_layer"]

/**
 * `config` updated for the weights of `model` (see the module doc). A config whose family
 * `Architecture` does not know keeps its layer count and vocabulary size; the layer count then
 * comes from the tensor names when they follow a common layout.
 *
 * @category constructors
 */
export const forModel = (config: Readonly<Record<string, unknown>>, model: Model.Model): Record<string, unknown> => {
  const names = [...model.tensors.keys()]
  const updated: Record<string, unknown> = { ...config }
  const dtype = dominantFloat(model)
  if (dtype !== undefined && TORCH_DTYPE[dtype] !== undefined) updated["torch_dtype"] = TORCH_DTYPE[dtype]
  const arch = Architecture.fromConfig(config)
  const countUnder = (layerPrefix: string) => names.reduce((top, name) => Math.max(top, Architecture.layerOf({ layerPrefix }, name) ?? -1), -1) + 1
  // The family's prefix, else the names' own: gpt2 as openai-community/gpt2 stores it has `h.{i}.`
  // where transformers' class writes `transformer.h.{i}.` (mergekit reads both, as aliases).
  const layers = (Result.isSuccess(arch) ? countUnder(arch.success.layerPrefix) : 0) || (Architecture.fromTensorNames(names)?.layerCount ?? 0)
  // Only when the weights have layers: a config describes them, a non-transformer checkpoint keeps its own.
  if (layers > 0) for (const key of LAYER_KEYS) if (key in updated || (key === "num_hidden_layers" && !("n_layer" in updated))) updated[key] = layers
  // The family's embedding name, or the same without its `transformer.` module prefix (gpt2's `wte.weight`).
  const embedding = Result.isSuccess(arch)
    ? model.tensors.get(arch.success.embedding) ?? model.tensors.get(arch.success.embedding.replace(/^transformer\./, ""))
    : undefined
  if (embedding !== undefined && embedding.shape.length === 2) updated["vocab_size"] = embedding.shape[0]
  return updated
}
