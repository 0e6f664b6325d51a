/**
 * What an LM stage refuses before it runs anything: a missing `config:`, teachers whose
 * vocabulary differs from the student's, a `seq_len` past the model's positions. Names the stage
 * and says what to change.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** @category errors */
export class LmStageError extends Schema.TaggedError<LmStageError>()("LmStageError", {
  /** The stage id in the pipeline. */
  stage: Schema.String,
  reason: Schema.Literals(["MissingConfig", "VocabularyMismatch", "InvalidParams"]),
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}
