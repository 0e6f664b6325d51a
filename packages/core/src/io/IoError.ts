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

/**
 * A tensor is a view that expands a small storage into far more bytes than the file holds
 * (`torch.zeros(1).expand(131072, 131072)`: 4 stored bytes read as 68.7 GB), above the reader's
 * `maxExpansion` limit. Refused from the header, before any data is read. @category errors
 */
export class ExpansionLimit extends Schema.TaggedError<ExpansionLimit>()("ExpansionLimit", {
  file: Schema.String,
  tensor: Schema.String,
  /** numel × dtype size: what reading the tensor would produce. */
  logicalBytes: Schema.Number,
  /** The bytes of the storage the tensor views, as stored in the file. */
  storedBytes: Schema.Number,
  /** The factor in effect (`maxExpansion`). */
  limit: Schema.Number
}) {
  override get message() {
    const factor = this.storedBytes === 0 ? "" : ` (${formatFactor(this.logicalBytes / this.storedBytes)}×)`
    return `${this.file}: refused to load tensor "${this.tensor}": it is ${formatBytes(this.logicalBytes)} (${this.logicalBytes} bytes) but its storage holds ${formatBytes(this.storedBytes)} (${this.storedBytes} bytes)${factor}, above the limit of ${this.limit}× — a broadcast or overlapping view that would expand the file into far more data than it holds (a resource bomb?). If you trust this checkpoint, raise the limit: the maxExpansion read option, or CRUCIBLE_MAX_TENSOR_EXPANSION=<factor> (Infinity turns the check off)`
  }
}

const formatFactor = (x: number): string => (x >= 1e6 ? x.toExponential(2) : x >= 10 ? String(Math.round(x)) : x.toFixed(1))

/** `68719476736` → `"68.7 GB"` (powers of 1000, as `parseByteSize` reads GB). */
export const formatBytes = (bytes: number): string => {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toPrecision(3)} ${units[unit]}`
}

/** Any error of model I/O. @category errors */
export type ModelIoError = FormatError | IoError | UnsafePickle | InvalidArgument | ExpansionLimit

/** Formats a Node error for `detail`: its code, then its message (which often starts with the code already). */
export const describe = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const code = (cause as NodeJS.ErrnoException).code
  return code === undefined || cause.message.startsWith(`${code}:`) ? cause.message : `${code}: ${cause.message}`
}
