/**
 * Lazy dtype conversion of a model's tensors, exact where the target can hold the value and
 * rounded to nearest even otherwise (see DType). Integer and bool tensors (step counters, masks)
 * are left as they are unless `includeIntegers` is set, as PyTorch's `model.half()` does.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { byteSize, fromNumbers, isFloat, toFloat64, type WritableDType } from "../tensor/DType.ts"
import * as Lineage from "../tensor/Lineage.ts"
import type { TensorRef } from "../tensor/TensorRef.ts"
import * as Model from "./Model.ts"

/** A tensor converted to `dtype` on read (a read holds the input range, its float64 values and the output). */
export const castTensor = (tensor: TensorRef, dtype: WritableDType): TensorRef =>
  tensor.dtype === dtype
    ? tensor
    : {
      name: tensor.name,
      dtype,
      shape: tensor.shape,
      read: (range) => Effect.map(tensor.read(range), (bytes) => fromNumbers(toFloat64(bytes, tensor.dtype), dtype)),
      lineage: Lineage.derived([tensor], { perElement: byteSize[tensor.dtype] + 8 + byteSize[dtype] })
    }

/** A model whose floating-point tensors read as `dtype`. */
export const cast = (model: Model.Model, dtype: WritableDType, options: { readonly includeIntegers?: boolean } = {}): Model.Model =>
  Model.make(
    model.source,
    Array.from(model.tensors.values(), (t) => (isFloat(t.dtype) || options.includeIntegers === true ? castTensor(t, dtype) : t)),
    model.metadata,
    model.files
  )
