/**
 * The errors of describing, loading and running an architecture. Each names where the problem
 * is — a path into the `arch:` spec, a tensor name, or the input — and what was expected.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The `arch:` spec is malformed or its layers do not fit together (shapes, ranks). @category errors */
export class ArchError extends Schema.TaggedError<ArchError>()("ArchError", {
  /** Where in the spec, e.g. `arch.layers[3].body[0]`. */
  path: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.path}: ${this.detail}`
  }
}

/** A parameter set does not match its architecture (missing, unexpected or misshapen tensor). @category errors */
export class ParamError extends Schema.TaggedError<ParamError>()("ParamError", {
  tensor: Schema.String,
  detail: Schema.String,
  /** Where the parameters came from (a file path, a stage id), when known. */
  source: Schema.optional(Schema.String)
}) {
  override get message() {
    return `${this.source === undefined ? "" : `${this.source}: `}tensor "${this.tensor}": ${this.detail}`
  }
}

/** An input batch does not fit the architecture, or an unknown activation was asked for. @category errors */
export class InputError extends Schema.TaggedError<InputError>()("InputError", {
  detail: Schema.String
}) {
  override get message() {
    return `model input: ${this.detail}`
  }
}

/** Any error of the models module. @category errors */
export type ModelError = ArchError | ParamError | InputError
