/**
 * Finding NaN and ±Inf in merge inputs and outputs: the kernels assume finite values, so a stage
 * checks its inputs (and, cheaply, its output) and raises {@link NonFiniteTensor} naming the
 * tensor, the element and the value.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** Where a non-finite value was found. @category models */
export interface NonFiniteReport {
  /** The name given with the array (tensor and role, e.g. `model.layers.0.q.weight (input 2)`). */
  readonly tensor: string
  /** Element index (plus the array's offset in the tensor). */
  readonly index: number
  readonly value: number
  /** How many non-finite values the scanned range holds. */
  readonly count: number
}

/** A merge input or output holds NaN or ±Inf. @category errors */
export class NonFiniteTensor extends Schema.TaggedError<NonFiniteTensor>()("NonFiniteTensor", {
  tensor: Schema.String,
  index: Schema.Number,
  value: Schema.Number,
  count: Schema.Number,
  role: Schema.Literals(["input", "output"])
}) {
  override get message() {
    const what = `${this.count} non-finite value${this.count === 1 ? "" : "s"} in the ${this.role}`
    const advice = this.role === "input" ? "fix or exclude the model before merging" : "the merge overflowed; check the weights and lambda"
    return `tensor "${this.tensor}": ${what} (first: ${this.value} at element ${this.index}): ${advice}`
  }
}

/** The first index in `[start, end)` holding NaN or ±Inf, or −1. x − x is 0 exactly when x is finite. @category predicates */
export const firstNonFinite = (x: ArrayLike<number>, start = 0, end = x.length): number => {
  for (let j = start; j < end; j++) {
    const v = x[j]!
    if (v - v !== 0) return j
  }
  return -1
}

/** Counts NaN and ±Inf on `[start, end)`. @category predicates */
export const countNonFinite = (x: ArrayLike<number>, start = 0, end = x.length): number => {
  let count = 0
  for (let j = start; j < end; j++) {
    const v = x[j]!
    if (v - v !== 0) count++
  }
  return count
}

/**
 * Scans named arrays in order and reports the first that holds a non-finite value, or
 * undefined when all are finite. `offset` is added to indices (for arrays that are a window of
 * their tensor).
 *
 * @category predicates
 */
export const find = (
  arrays: Iterable<{ readonly tensor: string; readonly values: ArrayLike<number>; readonly offset?: number }>
): NonFiniteReport | undefined => {
  for (const { tensor, values, offset } of arrays) {
    const at = firstNonFinite(values)
    if (at >= 0) return { tensor, index: at + (offset ?? 0), value: values[at]!, count: countNonFinite(values, at) }
  }
  return undefined
}
