/**
 * Reading run directories safely, for the dashboard and the report: run ids are checked before
 * they touch the file system, every path is resolved (symlinks included) and must stay inside the
 * runs directory or the run's own directory, the run's own files (manifest, events, trace) are
 * opened without following a symlink, and unreadable files become typed errors. The view
 * itself is built by the pure {@link RunView.make}.
 *
 * @since 0.1.0
 */
import type { Registry } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Manifest from "../Manifest.ts"
import * as RunDir from "../RunDir.ts"
import * as RunView from "./RunView.ts"
import * as Spans from "./Spans.ts"
import { FileNotServed, InvalidRunId, RunNotFound, RunUnreadable } from "./UiError.ts"

/** The files of a run directory the dashboard reads. */
export const files = { manifest: "manifest.json", events: "events.jsonl", trace: "trace.json", report: "report.html" } as const

/**
 * The bytes of the regular file `file`, opened with `O_NOFOLLOW` (a symlink as the last component
 * fails with ELOOP) and checked to be a regular file on the open descriptor, so what is read is
 * what was checked; `undefined` when it does not exist.
 */
export const readNoFollow = (file: string): Buffer | undefined => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined
    if ((cause as NodeJS.ErrnoException).code === "ELOOP") throw new Error("it is a symbolic link, which the dashboard does not follow")
    throw cause
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error("not a regular file")
    return fs.readFileSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** `path` is a regular file itself, not a symlink to one. */
const isPlainFile = (p: string): boolean => {
  try {
    return fs.lstatSync(p).isFile()
  } catch {
    return false
  }
}

/** `child` is `parent` or lies inside it (both absolute and normalised). */
const isInside = (parent: string, child: string): boolean => child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep)

const realpath = (p: string): string | undefined => {
  try {
    return fs.realpathSync(p)
  } catch {
    return undefined
  }
}

/** The directory of run `runId` in `runsDir`: the id is checked, and the directory must hold a manifest. */
export const runDirOf = (runsDir: string, runId: string): Effect.Effect<string, InvalidRunId | RunNotFound> =>
  Effect.suspend((): Effect.Effect<string, InvalidRunId | RunNotFound> => {
    if (!RunDir.isRunId(runId)) return Effect.fail(new InvalidRunId({ runId }))
    const root = realpath(path.resolve(runsDir))
    const dir = root === undefined ? undefined : realpath(path.join(root, runId))
    // A symlinked run directory pointing elsewhere is not served: only what is under runsDir.
    if (root === undefined || dir === undefined || dir === root || !isInside(root, dir) || !isPlainFile(path.join(dir, files.manifest))) {
      return Effect.fail(new RunNotFound({ runId, runsDir: path.resolve(runsDir) }))
    }
    return Effect.succeed(dir)
  })

const readText = (file: string): Effect.Effect<string | undefined, RunUnreadable> =>
  Effect.try({
    try: () => readNoFollow(file)?.toString("utf8"),
    catch: (cause) => new RunUnreadable({ file, detail: cause instanceof Error ? cause.message : String(cause) })
  })

const decodeManifest = Schema.decodeUnknownResult(RunView.ManifestView)

/**
 * Reads and decodes `manifest.json` of a run directory, with the status views show: a `running`
 * manifest whose owner process is gone reads `crashed` (Manifest.effectiveStatus).
 */
export const readManifest = (runDir: string): Effect.Effect<RunView.ShownManifest, RunUnreadable> =>
  Effect.gen(function* () {
    const file = path.join(runDir, files.manifest)
    const text = yield* readText(file)
    if (text === undefined) return yield* new RunUnreadable({ file, detail: "the file does not exist" })
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (cause) {
      return yield* new RunUnreadable({ file, detail: `not JSON: ${cause instanceof Error ? cause.message : String(cause)}` })
    }
    const decoded = decodeManifest(json)
    if (decoded._tag === "Failure") return yield* new RunUnreadable({ file, detail: `not a Crucible manifest: ${decoded.failure.message}` })
    return { ...decoded.success, status: Manifest.effectiveStatus(decoded.success) }
  })

/** The input port names of the kinds in `registry` (built-in kinds by default). */
export const inputPortsOf = (registry: Registry.Registry = builtinRegistry): RunView.InputPorts => (uses) => {
  const kind = registry.kinds.get(uses)
  return kind === undefined ? undefined : Object.keys(kind.inputs as Record<string, unknown>)
}

/** Options of {@link readRunDir}. */
export interface ReadOptions {
  /** The time open spans end at (default: now). */
  readonly now?: number
  readonly inputPorts?: RunView.InputPorts
}

/**
 * The view of the run in `runDir`: the manifest, the complete lines of `events.jsonl`, and the
 * spans of `trace.json` once the run has ended (before that, spans rebuilt from the events).
 */
export const readRunDir = (runDir: string, options: ReadOptions = {}): Effect.Effect<RunView.RunView, RunUnreadable> =>
  Effect.gen(function* () {
    const manifest = yield* readManifest(runDir)
    const { events, lines } = RunView.parseEvents((yield* readText(path.join(runDir, files.events))) ?? "")
    const now = options.now ?? Date.now()
    const traceText = manifest.status === "running" ? undefined : yield* readText(path.join(runDir, files.trace))
    let traced: ReadonlyArray<Spans.SpanView> = []
    try {
      traced = traceText === undefined ? [] : Spans.fromOtlp(JSON.parse(traceText))
    } catch {
      // A damaged trace still leaves the events' timeline.
    }
    const fromTrace = traced.length > 0
    const view = RunView.make({
      manifest,
      events,
      eventCount: lines,
      spans: fromTrace ? traced : Spans.fromEvents(events, now),
      spansFrom: fromTrace ? "trace" : "events",
      inputPorts: options.inputPorts ?? inputPortsOf()
    })
    // Pages address a run by its directory's name.
    return { ...view, runId: path.basename(runDir) }
  })

/** The view of run `runId` in `runsDir`. */
export const readRun = (runsDir: string, runId: string, options: ReadOptions = {}): Effect.Effect<RunView.RunView, InvalidRunId | RunNotFound | RunUnreadable> =>
  Effect.flatMap(runDirOf(runsDir, runId), (dir) => readRunDir(dir, options))

/** Every run in `runsDir`, newest first; directories without a readable manifest are left out. */
export const listRuns = (runsDir: string): Effect.Effect<ReadonlyArray<RunView.RunSummary>> =>
  Effect.gen(function* () {
    const root = path.resolve(runsDir)
    let names: Array<string> = []
    try {
      names = fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && RunDir.isRunId(d.name)).map((d) => d.name)
    } catch {
      return []
    }
    const rows: Array<RunView.RunSummary> = []
    for (const name of names) {
      const manifest = yield* Effect.option(readManifest(path.join(root, name)))
      if (manifest._tag === "Some") rows.push({ ...RunView.summaryOf(manifest.value), runId: name })
    }
    return rows.sort((a, b) => b.startedAt - a.startedAt || (a.runId < b.runId ? 1 : -1))
  })

/**
 * A file of a run to serve (an artifact such as a plot): `relative` must resolve, symlinks
 * followed, to a regular file inside the run directory.
 */
export const runFile = (runsDir: string, runId: string, relative: string): Effect.Effect<string, InvalidRunId | RunNotFound | FileNotServed> =>
  Effect.flatMap(runDirOf(runsDir, runId), (dir): Effect.Effect<string, FileNotServed> => {
    const notServed = new FileNotServed({ runId, path: relative })
    if (relative.includes("\0") || path.isAbsolute(relative)) return Effect.fail(notServed)
    const target = realpath(path.resolve(dir, relative))
    if (target === undefined || target === dir || !isInside(dir, target)) return Effect.fail(notServed)
    try {
      return fs.statSync(target).isFile() ? Effect.succeed(target) : Effect.fail(notServed)
    } catch {
      return Effect.fail(notServed)
    }
  })
