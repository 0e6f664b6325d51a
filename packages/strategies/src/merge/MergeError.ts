/**
 * The errors of merge stages. Each names the stage and lists every offending tensor, so one run
 * shows a user everything to fix.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The input models do not line up: tensors missing in some, or shapes/dtypes that differ. @category errors */
export class MergeInputsMismatch extends Schema.TaggedError<MergeInputsMismatch>()("MergeInputsMismatch", {
  stage: Schema.String,
  mismatches: Schema.Array(Schema.String)
}) {
  override get message() {
    const shown = this.mismatches.slice(0, 50)
    const more = this.mismatches.length - shown.length
    return `stage "${this.stage}": the input models cannot be merged tensor by tensor (${this.mismatches.length} problem${this.mismatches.length === 1 ? "" : "s"}):\n${shown.map((m) => `  - ${m}`).join("\n")}${more > 0 ? `\n  … and ${more} more` : ""}`
  }
}

/** A parameter does not fit the inputs (e.g. 3 weights for 2 models). @category errors */
export class InvalidMergeParams extends Schema.TaggedError<InvalidMergeParams>()("InvalidMergeParams", {
  stage: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}
