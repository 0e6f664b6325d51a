/**
 * The errors of loading and checking a pipeline.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { format, Problem } from "./Problem.ts"

/** The pipeline is invalid; every problem found is listed. @category errors */
export class PipelineInvalid extends Schema.TaggedError<PipelineInvalid>()("PipelineInvalid", {
  file: Schema.optional(Schema.String),
  problems: Schema.Array(Problem)
}) {
  override get message() {
    const n = this.problems.length
    return `${n} problem${n === 1 ? "" : "s"} in ${this.file ?? "the pipeline"}:\n\n${this.problems.map((p) => format(p, this.file)).join("\n\n")}`
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
