/**
 * Header-only checks that several models can be merged tensor by tensor: same tensor names,
 * shapes and dtypes. Runs before any tensor byte is read.
 *
 * @since 0.1.0
 */
import { type Model, TensorRef } from "@crucible/core"

/** A way one model disagrees with the first; `model` is its index, so validation can point at its reference. @category models */
export interface Mismatch {
  readonly model: number
  readonly message: string
}

/** Every way `models` disagree with the first one (empty when they agree). */
export const mismatches = (models: ReadonlyArray<Model.Model>): Array<Mismatch> => {
  const [first, ...rest] = models
  if (first === undefined) return []
  const problems: Array<Mismatch> = []
  for (const [i, other] of rest.entries()) {
    const label = `model ${i + 2} (${other.source})`
    const at = (message: string) => problems.push({ model: i + 1, message })
    for (const [name, t] of first.tensors) {
      const o = other.tensors.get(name)
      if (o === undefined) at(`"${name}" is missing in ${label}`)
      else {
        if (o.shape.length !== t.shape.length || o.shape.some((d, k) => d !== t.shape[k])) {
          at(`"${name}" has shape ${TensorRef.formatShape(t.shape)} in model 1 but ${TensorRef.formatShape(o.shape)} in ${label}`)
        }
        if (o.dtype !== t.dtype) at(`"${name}" is ${t.dtype} in model 1 but ${o.dtype} in ${label}`)
      }
    }
    for (const name of other.tensors.keys()) if (!first.tensors.has(name)) at(`"${name}" is in ${label} but not in model 1 (${first.source})`)
  }
  return problems
}
