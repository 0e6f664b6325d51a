/**
 * A run's directory and the files the runner itself writes there: run ids are checked before they
 * touch the file system (`[A-Za-z0-9._-]`, no leading dot, so the directory is always one plain
 * name inside the runs folder, and one the dashboard lists), a run never reuses a directory, and
 * a failed write of the event log (a full disk) is remembered, not thrown, so the run can end,
 * record its manifest and say which file could not be written.
 *
 * @since 0.1.0
 */
import { IoError } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** `--run-id` is not one plain directory name. @category errors */
export class RunIdInvalid extends Schema.TaggedError<RunIdInvalid>()("RunIdInvalid", {
  runId: Schema.String
}) {
  override get message() {
    return `invalid run id ${JSON.stringify(this.runId)}: use letters, digits, ".", "_" and "-" (at most 200, not starting with "."), e.g. --run-id merge-2024-06-01`
  }
}

/** A run with this id already has its directory: runs never share one. @category errors */
export class RunIdTaken extends Schema.TaggedError<RunIdTaken>()("RunIdTaken", {
  runId: Schema.String,
  runDir: Schema.String
}) {
  override get message() {
    return `run id ${JSON.stringify(this.runId)} is taken: ${this.runDir} already exists; choose another --run-id (or leave it out for a fresh one)`
  }
}

/** One of the run's own files (its directory, event log, manifest) could not be written. @category errors */
export class RunFileUnwritable extends Schema.TaggedError<RunFileUnwritable>()("RunFileUnwritable", {
  file: Schema.String,
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `the run's ${path.basename(this.file)} could not be written (${this.file}: cannot ${this.operation}: ${this.detail}); the run's record is incomplete — free some space or fix the permissions, then run again`
  }
}

/** Why a run directory could not be made or kept. @category errors */
export type RunDirError = RunIdInvalid | RunIdTaken | RunFileUnwritable

/** A run id is one plain directory name: `[A-Za-z0-9._-]`, 1 to 200 of them, no leading dot. */
export const isRunId = (runId: string): boolean => runId.length <= 200 && /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(runId)

/** Creates the directory of a new run `runId` in `runsDir` (the runs folder is created when missing). */
export const create = (runsDir: string, runId: string): Effect.Effect<string, RunDirError> =>
  Effect.suspend((): Effect.Effect<string, RunDirError> => {
    if (!isRunId(runId)) return Effect.fail(new RunIdInvalid({ runId }))
    const root = path.resolve(runsDir)
    const runDir = path.join(root, runId)
    try {
      fs.mkdirSync(root, { recursive: true })
    } catch (cause) {
      return Effect.fail(new RunFileUnwritable({ file: root, operation: "create the runs folder", detail: IoError.describe(cause) }))
    }
    try {
      // Not recursive: an existing directory (or a file, or a symlink) of that name is refused atomically.
      fs.mkdirSync(runDir)
      return Effect.succeed(runDir)
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "EEXIST") return Effect.fail(new RunIdTaken({ runId, runDir }))
      return Effect.fail(new RunFileUnwritable({ file: runDir, operation: "create the run directory", detail: IoError.describe(cause) }))
    }
  })

/** An append-only line file whose first failed write is kept, and ends the writing. @category models */
export interface LineLog {
  readonly file: string
  /** Appends `line` and a newline; after a failure, does nothing. */
  readonly append: (line: string) => void
  /** The first failure, if any. */
  readonly failure: () => RunFileUnwritable | undefined
  readonly close: () => void
}

/** Creates `file` (never an existing file, never through a symlink) for appending lines. */
export const lineLog = (file: string): Effect.Effect<LineLog, RunFileUnwritable> =>
  Effect.try({
    try: () => fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, 0o644),
    catch: (cause) => new RunFileUnwritable({ file, operation: "create", detail: IoError.describe(cause) })
  }).pipe(Effect.map((fd) => lineLogOf(file, fd)))

/** A {@link LineLog} over an open descriptor (tests use `/dev/full`). */
export const lineLogOf = (file: string, fd: number): LineLog => {
  let failed: RunFileUnwritable | undefined
  let open = true
  return {
    file,
    append: (line) => {
      if (failed !== undefined || !open) return
      try {
        const bytes = Buffer.from(`${line}\n`)
        for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at)
      } catch (cause) {
        failed = new RunFileUnwritable({ file, operation: "write", detail: IoError.describe(cause) })
      }
    },
    failure: () => failed,
    close: () => {
      if (!open) return
      open = false
      try {
        fs.closeSync(fd)
      } catch {
        // Nothing more can be lost: every write was already checked.
      }
    }
  }
}
