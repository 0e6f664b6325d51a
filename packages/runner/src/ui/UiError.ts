/**
 * The errors of the dashboard: a run id that could escape the runs directory, a run that does not
 * exist, a run directory whose files cannot be read, a file outside what a run may serve, and a
 * server that cannot listen. Each names the run, file or port, so an HTTP answer (404, 400, 500)
 * and a CLI message can be made from it.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A run id that is not a plain directory name (`..`, slashes, NUL…): refused before any file is touched. @category errors */
export class InvalidRunId extends Schema.TaggedError<InvalidRunId>()("InvalidRunId", {
  runId: Schema.String
}) {
  override get message() {
    return `invalid run id ${JSON.stringify(this.runId)}: a run id is a directory name made of letters, digits, ".", "_" and "-"`
  }
}

/** No run directory with a `manifest.json` of that id. @category errors */
export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", {
  runId: Schema.String,
  runsDir: Schema.String
}) {
  override get message() {
    return `no run "${this.runId}" in ${this.runsDir} (a run directory holds a manifest.json)`
  }
}

/** A run's file exists but cannot be read or parsed. @category errors */
export class RunUnreadable extends Schema.TaggedError<RunUnreadable>()("RunUnreadable", {
  file: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `cannot read ${this.file}: ${this.detail}`
  }
}

/** A requested file that is not a regular file inside the run directory (traversal, symlink out, missing). @category errors */
export class FileNotServed extends Schema.TaggedError<FileNotServed>()("FileNotServed", {
  runId: Schema.String,
  path: Schema.String
}) {
  override get message() {
    return `run "${this.runId}" has no file ${JSON.stringify(this.path)} to serve (only regular files inside the run directory are served)`
  }
}

/** The dashboard cannot listen (port in use, permission). @category errors */
export class ServerUnavailable extends Schema.TaggedError<ServerUnavailable>()("ServerUnavailable", {
  host: Schema.String,
  port: Schema.Number,
  detail: Schema.String
}) {
  override get message() {
    return `crucible ui: cannot listen on ${this.host}:${this.port}: ${this.detail} (choose another --port, or --port 0 for any free one)`
  }
}

/** Any error of the dashboard. @category errors */
export type UiError = InvalidRunId | RunNotFound | RunUnreadable | FileNotServed | ServerUnavailable
