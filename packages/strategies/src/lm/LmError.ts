/**
 * The errors of reading a language model: its `config.json` (a field missing, of the wrong kind,
 * or asking for what Crucible does not implement) and its weights (a tensor missing, unexpected
 * or misshapen). Each names the file or tensor and what would fix it.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A `config.json` Crucible cannot run: names the file (or stage) and the field. @category errors */
export class LmConfigError extends Schema.TaggedError<LmConfigError>()("LmConfigError", {
  /** The config file, folder or stage it came from. */
  source: Schema.String,
  /** The offending field (`model_type`, `rope_scaling.rope_type`, …); empty for the whole file. */
  field: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.source}${this.field === "" ? "" : ` (${this.field})`}: ${this.detail}`
  }
}

/** The weights do not match the config: names the tensor. @category errors */
export class LmWeightsError extends Schema.TaggedError<LmWeightsError>()("LmWeightsError", {
  tensor: Schema.String,
  detail: Schema.String,
  /** Where the weights came from (a file path, a stage id). */
  source: Schema.optional(Schema.String)
}) {
  override get message() {
    return `${this.source === undefined ? "" : `${this.source}: `}tensor "${this.tensor}": ${this.detail}`
  }
}

/** The backend failed while a model ran (evaluating, generating): names what was running. @category errors */
export class LmBackendError extends Schema.TaggedError<LmBackendError>()("LmBackendError", {
  /** What was running: `evaluating`, `generating`. */
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `language model backend failure while ${this.operation}: ${this.detail}`
  }

  /** The error of a throw while `operation` ran. */
  static of(operation: string) {
    return (cause: unknown) => new LmBackendError({ operation, detail: cause instanceof Error ? cause.message : String(cause) })
  }
}
