/**
 * The errors of reading and writing model files. Each names the file, and where it applies the
 * tensor, so a user can tell which input is broken and how.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The file is not a valid instance of its format (truncated, bad header, bad offsets…). @category errors */
export class FormatError extends Schema.TaggedError<FormatError>()("FormatError", {
  file: Schema.String,
  format: Schema.String,
  detail: Schema.String,
  tensor: Schema.optional(Schema.String)
}) {
  override get message() {
    return `${this.file}: invalid ${this.format}${this.tensor === undefined ? "" : ` (tensor "${this.tensor}")`}: ${this.detail}`
  }
}

/** The operating system refused a read or write (missing file, permission, disk full…). @category errors */
export class IoError extends Schema.TaggedError<IoError>()("IoError", {
  file: Schema.String,
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.file}: cannot ${this.operation}: ${this.detail}`
  }
}

/** A pickle asked for a global that is not on the allowlist; nothing was called. @category errors */
export class UnsafePickle extends Schema.TaggedError<UnsafePickle>()("UnsafePickle", {
  file: Schema.String,
  global: Schema.String
}) {
  override get message() {
    return `${this.file}: refused to load: the pickle references "${this.global}", which is not on Crucible's allowlist of safe globals (nothing was executed)`
  }
}

/**
 * An option given to a reader or writer is not usable (an unknown state-dict key, a shard size
 * that is not a size…): the input files may be fine, the call is not. @category errors
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>()("InvalidArgument", {
  argument: Schema.String,
  value: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `invalid ${this.argument} ${this.value}: ${this.detail}`
  }
}

/** Any error of model I/O. @category errors */
export type ModelIoError = FormatError | IoError | UnsafePickle | InvalidArgument

/** Formats a Node error for `detail`: its code, then its message (which often starts with the code already). */
export const describe = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const code = (cause as NodeJS.ErrnoException).code
  return code === undefined || cause.message.startsWith(`${code}:`) ? cause.message : `${code}: ${cause.message}`
}
