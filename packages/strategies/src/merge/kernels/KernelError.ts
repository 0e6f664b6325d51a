/**
 * The errors a merge kernel's planning step returns: the method, the tensor and the parameter
 * are named, so a stage can pass them on and a user can tell what to change. Kernels never
 * throw on bad input; their `plan` functions return one of these in a `Result`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A parameter is out of its domain (density 1.5, weights that sum to 0 with `normalize`, …). @category errors */
export class InvalidMergeParameter extends Schema.TaggedError<InvalidMergeParameter>()("InvalidMergeParameter", {
  method: Schema.String,
  tensor: Schema.String,
  parameter: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.method}: tensor "${this.tensor}": parameter "${this.parameter}": ${this.detail}`
  }
}

/** The inputs do not fit the method (too few models, lengths that differ, a non-square Gram matrix…). @category errors */
export class MergeInputMismatch extends Schema.TaggedError<MergeInputMismatch>()("MergeInputMismatch", {
  method: Schema.String,
  tensor: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.method}: tensor "${this.tensor}": ${this.detail}`
  }
}

/** The inputs are valid but the method has no defined answer for them (antipodal vectors, a singular system…). @category errors */
export class DegenerateMerge extends Schema.TaggedError<DegenerateMerge>()("DegenerateMerge", {
  method: Schema.String,
  tensor: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.method}: tensor "${this.tensor}": ${this.detail}`
  }
}

/** Any error of a merge kernel's planning step. @category errors */
export type MergeKernelError = InvalidMergeParameter | MergeInputMismatch | DegenerateMerge

/** Checks that every array has `length` elements; the first that does not is named by position. @category validation */
export const lengthProblem = (arrays: ReadonlyArray<ArrayLike<number>>, length: number, what = "input"): string | undefined => {
  for (const [i, a] of arrays.entries()) {
    if (a.length !== length) return `${what} ${i} has ${a.length} elements where ${length} were expected`
  }
  return undefined
}
