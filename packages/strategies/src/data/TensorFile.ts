/**
 * User datasets from a safetensors file holding the inputs as tensor `x` (`[N, …sample shape]`,
 * any float or integer dtype) and the labels as tensor `y` (`[N]`, integer values ≥ 0, any
 * dtype), e.g. written by `safetensors.torch.save_file({"x": x, "y": y}, path)`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { ModelIoError } from "@crucible/core/io/IoError"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import { toFloat64 } from "@crucible/core/tensor/DType"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { DataError, type Dataset } from "./Dataset.ts"

/** Options of {@link read}. */
export interface TensorFileOptions {
  /** Name of the inputs tensor (default `x`). */
  readonly x?: string
  /** Name of the labels tensor (default `y`). */
  readonly y?: string
  /** Number of classes (default: max label + 1). */
  readonly classes?: number
  /** Dataset name (default: the path). */
  readonly name?: string
}

/** Reads `x` and `y` from a safetensors file into memory. */
export const read = Effect.fn("TensorFile.read")(function* (file: string, options: TensorFileOptions = {}): Effect.fn.Return<Dataset, DataError | ModelIoError | TensorRef.TensorError> {
  const xName = options.x ?? "x"
  const yName = options.y ?? "y"
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const model = yield* Safetensors.read(file)
      const fail = (tensor: string, detail: string) => new DataError({ source: file, tensor, detail })
      const names = () => [...model.tensors.keys()].map((n) => `"${n}"`).join(", ")
      const xRef = model.tensors.get(xName)
      if (xRef === undefined) return yield* fail(xName, `missing (the file holds ${names()})`)
      const yRef = model.tensors.get(yName)
      if (yRef === undefined) return yield* fail(yName, `missing (the file holds ${names()})`)
      if (xRef.shape.length < 2) return yield* fail(xName, `expected [N, …sample shape], got [${xRef.shape.join(", ")}]`)
      if (yRef.shape.length !== 1) return yield* fail(yName, `expected [N], got [${yRef.shape.join(", ")}]`)
      const count = xRef.shape[0]!
      if (yRef.shape[0] !== count) return yield* fail(yName, `holds ${yRef.shape[0]} labels for ${count} samples of "${xName}"`)
      if (xRef.dtype === "BOOL") return yield* fail(xName, "is BOOL; expected numbers")
      const x = yield* TensorRef.readFloat32(xRef)
      for (let i = 0; i < x.length; i++) {
        if (!Number.isFinite(x[i]!)) return yield* fail(xName, `value ${x[i]} at index ${i} is not finite`)
      }
      const raw = toFloat64(yield* yRef.read(), yRef.dtype)
      const y = new Int32Array(count)
      let max = -1
      for (let i = 0; i < count; i++) {
        const v = raw[i]!
        if (!Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) return yield* fail(yName, `label ${v} of sample ${i} is not a non-negative integer`)
        y[i] = v
        max = Math.max(max, v)
      }
      const classes = options.classes ?? max + 1
      if (max >= classes) return yield* fail(yName, `label ${max} is not below classes = ${classes}`)
      if (classes < 1) return yield* fail(yName, "no labels")
      return { name: options.name ?? file, shape: xRef.shape.slice(1), count, x, y, classes } satisfies Dataset
    })
  )
})
