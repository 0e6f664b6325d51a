/**
 * The errors of extraction stages (`extract/lora`). Each names the stage, and lists every
 * offending tensor, so one run shows everything to fix.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The fine-tune and its base do not line up: a weight missing in the base, or shapes that differ. @category errors */
export class ExtractInputsMismatch extends Schema.TaggedError<ExtractInputsMismatch>()("ExtractInputsMismatch", {
  stage: Schema.String,
  mismatches: Schema.Array(Schema.String)
}) {
  override get message() {
    const shown = this.mismatches.slice(0, 50)
    const more = this.mismatches.length - shown.length
    return `stage "${this.stage}": the fine-tune and its base cannot be compared layer by layer (${this.mismatches.length} problem${this.mismatches.length === 1 ? "" : "s"}; give the base the fine-tune was trained from, or narrow \`modules\`):\n${shown.map((m) => `  - ${m}`).join("\n")}${more > 0 ? `\n  … and ${more} more` : ""}`
  }
}

/** No 2-D weight of the fine-tune is selected for extraction. @category errors */
export class NothingToExtract extends Schema.TaggedError<NothingToExtract>()("NothingToExtract", {
  stage: Schema.String,
  model: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": no layer of ${this.model} to extract a LoRA from: ${this.detail}`
  }
}

/** A parameter does not fit (e.g. an integer dtype for the factors, an output folder over an input). @category errors */
export class InvalidExtractParams extends Schema.TaggedError<InvalidExtractParams>()("InvalidExtractParams", {
  stage: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}
