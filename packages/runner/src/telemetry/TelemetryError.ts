/**
 * The errors of setting up telemetry. Each names the variable or option that is wrong (or the
 * trace file that cannot be written) and says what a valid value looks like, so a run fails
 * before any work when its observability settings are broken.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * An `OTEL_*` variable or a `Telemetry.layer` option has a value Crucible cannot use (an unknown
 * protocol, a URL that does not parse, a malformed `key=value` list…).
 *
 * @category errors
 */
export class InvalidSetting extends Schema.TaggedError<InvalidSetting>()("InvalidSetting", {
  /** The environment variable (`OTEL_EXPORTER_OTLP_PROTOCOL`) or option (`options.protocol`). */
  setting: Schema.String,
  value: Schema.String,
  /** What was expected instead. */
  expected: Schema.String
}) {
  override get message() {
    return `telemetry: ${this.setting}=${JSON.stringify(this.value)} is invalid: expected ${this.expected}`
  }
}

/** The trace file's directory cannot be created or written, so the trace would be lost at the end. @category errors */
export class TraceFileUnwritable extends Schema.TaggedError<TraceFileUnwritable>()("TraceFileUnwritable", {
  file: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `telemetry: cannot write the trace file ${this.file}: ${this.detail} (choose a writable path or drop the trace file option)`
  }
}

/** Any error of setting up telemetry. @category errors */
export type TelemetryError = InvalidSetting | TraceFileUnwritable
