/**
 * Errors of ensembles: a model that claims to be one but is malformed, or members that cannot
 * be combined.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** An ensemble cannot be built or read; names the model (or stage) and what is wrong. @category errors */
export class EnsembleError extends Schema.TaggedError<EnsembleError>()("EnsembleError", {
  reason: Schema.Literals(["InvalidParams", "MembersMismatch", "Malformed", "Nested"]),
  /** The stage id or the model's source. */
  source: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.source}: ensemble ${this.reason}: ${this.detail}`
  }
}
