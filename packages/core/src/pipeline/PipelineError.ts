/**
 * The errors of loading and checking a pipeline.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { format, isError, Problem } from "./Problem.ts"

/** The pipeline is invalid; every problem found is listed. @category errors */
export class PipelineInvalid extends Schema.TaggedError<PipelineInvalid>()("PipelineInvalid", {
  file: Schema.optional(Schema.String),
  problems: Schema.Array(Problem)
}) {
  override get message() {
    const n = this.problems.length
    // Warnings ride along with the errors (all at once), and are counted apart so the count is honest.
    const warnings = this.problems.filter((p) => !isError(p)).length
    const counted = warnings === 0 ? "" : ` (${n - warnings} error${n - warnings === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"})`
    return `${n} problem${n === 1 ? "" : "s"}${counted} in ${this.file ?? "the pipeline"}:\n\n${this.problems.map((p) => format(p, this.file)).join("\n\n")}`
  }
}

/** The pipeline file could not be read. @category errors */
export class PipelineUnreadable extends Schema.TaggedError<PipelineUnreadable>()("PipelineUnreadable", {
  file: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `cannot read pipeline ${this.file}: ${this.detail}`
  }
}
