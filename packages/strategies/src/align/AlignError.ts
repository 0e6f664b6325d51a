/**
 * The errors of alignment. Each names what is wrong (the tensor, axis, permutation or layer) and
 * what to do, so a pipeline author can fix the spec or the inputs without reading this code.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A score matrix handed to the assignment solver is malformed (wrong size, NaN, ±Infinity). @category errors */
export class InvalidScores extends Schema.TaggedError<InvalidScores>()("InvalidScores", {
  n: Schema.Number,
  detail: Schema.String
}) {
  override get message() {
    return `linear assignment on a ${this.n}×${this.n} score matrix: ${this.detail}`
  }
}

/** The permutation spec does not fit the tensors it names. @category errors */
export class SpecMismatch extends Schema.TaggedError<SpecMismatch>()("SpecMismatch", {
  permutation: Schema.String,
  tensor: Schema.String,
  axis: Schema.optional(Schema.Number),
  detail: Schema.String
}) {
  override get message() {
    const axis = this.axis === undefined ? "" : ` axis ${this.axis}`
    return `permutation "${this.permutation}", tensor "${this.tensor}"${axis}: ${this.detail}`
  }
}

/** A parameter set is unusable: a tensor is missing, its data does not match its shape, or it holds NaN/±Infinity. @category errors */
export class InvalidParams extends Schema.TaggedError<InvalidParams>()("InvalidParams", {
  model: Schema.String,
  tensor: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `model ${this.model}, tensor "${this.tensor}": ${this.detail}`
  }
}

/** A permutation given to `Permute.apply` (or as a starting point) is missing, has the wrong length or is not a bijection. @category errors */
export class InvalidPermutation extends Schema.TaggedError<InvalidPermutation>()("InvalidPermutation", {
  permutation: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `permutation "${this.permutation}": ${this.detail}`
  }
}

/** Activations handed to activation matching are malformed or do not pair up between the two models. @category errors */
export class InvalidActivations extends Schema.TaggedError<InvalidActivations>()("InvalidActivations", {
  layer: Schema.String,
  model: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `activations of layer "${this.layer}" (model ${this.model}): ${this.detail}`
  }
}

/** Any error of alignment. @category errors */
export type AlignError = InvalidScores | SpecMismatch | InvalidParams | InvalidPermutation | InvalidActivations
