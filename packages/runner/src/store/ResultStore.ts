/**
 * The results store: every finished stage's output, named by its key (`Identity.ts`), published
 * atomically under `<runs>/.cache/results/<key>/` (see `Layout.ts`) — a model as safetensors with
 * its metadata, metrics as JSON with their artifacts, a `save`'s files by their digests (the
 * files stay at their output paths). A later run reuses a stored result instead of computing it.
 *
 * Publishing assembles the folder under `tmp/<owner>.<random>/` and renames it into place: a
 * reader sees the whole result or none, and a `kill -9` leaves only a temporary that the next
 * run's {@link ResultStore.sweep} removes (its owner is dead). A key is computed under its lock
 * file: a second run that wants it waits for the first, then reuses what it stored.
 *
 * @since 0.2.0
 */
import { AtomicFile, Formats, IoError, LockFile, Model, Owner, Port } from "@crucible/core"
import { Cause, Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FileDigests from "./FileDigests.ts"
import * as Inventory from "./Inventory.ts"
import * as Layout from "./Layout.ts"

/** Who computes a result: for its record, and for a run waiting on its lock. @category models */
export type Producer = Layout.Producer

/** @category models */
export interface ResultStore {
  readonly root: string
  readonly digests: FileDigests.FileDigests
  /** The stored result of `key` if it can be reused now (a `files` result: only if every file is still as written). */
  readonly lookup: (key: string) => Effect.Effect<Layout.ResultRecord | undefined>
  /** The value of a stored result, as the stage returned it; a model is read lazily, for as long as `Scope` is open. */
  readonly restore: (record: Layout.ResultRecord, runDir: string) => Effect.Effect<unknown, IoError.IoError | IoError.ModelIoError, Scope.Scope>
  /** Stores a stage's value (a store that cannot be written is a warning, never a failure of the stage). */
  readonly publish: (producer: Producer, value: unknown, runDir: string) => Effect.Effect<void>
  /** Holds `key`'s lock for the scope, waiting while another process (or fiber) holds it. */
  readonly lock: (producer: Producer, onWait: (holder: LockFile.Holder) => Effect.Effect<void>) => Effect.Effect<void, IoError.IoError, Scope.Scope>
  /** Holds the lock of an output path for the scope (a second writer waits). */
  readonly lockPath: (target: string, producer: Producer, onWait: (holder: LockFile.Holder) => Effect.Effect<void>) => Effect.Effect<void, IoError.IoError, Scope.Scope>
  /** Removes what dead processes left: temporaries, stale locks, `.partial` files of the store. */
  readonly sweep: Effect.Effect<void>
}

/** The store at `root`. @category constructors */
export const make = (root: string): Effect.Effect<ResultStore> =>
  Effect.gen(function* () {
    const digests = yield* FileDigests.make(Layout.digestsDir(root))

    const readRecord = (key: string): Layout.ResultRecord | undefined => {
      try {
        const record = JSON.parse(fs.readFileSync(Layout.resultFile(root, key), "utf8")) as Layout.ResultRecord
        return record.crucible?.resultVersion === 1 && record.key === key ? record : undefined
      } catch {
        return undefined
      }
    }

    const lookup = (key: string) =>
      Effect.gen(function* () {
        const record = readRecord(key)
        if (record === undefined) return undefined
        if (record.type === "files") {
          for (const f of record.files ?? []) {
            const now = yield* digests.of(f.path)
            if (now.sha256 !== f.sha256 || now.bytes !== f.bytes) return undefined
          }
        }
        // The record's mtime is the result's last use (`crucible cache gc` evicts by it).
        yield* Effect.sync(() => touch(Layout.resultFile(root, key)))
        return record
      })

    const restore = (record: Layout.ResultRecord, runDir: string) =>
      Effect.gen(function* () {
        const dir = Layout.resultDir(root, record.key)
        if (record.type === "model") {
          const model = yield* Formats.readModel(path.join(dir, Layout.MODEL_FILE))
          return {
            ...model,
            source: record.source ?? model.source,
            metadata: record.metadata ?? model.metadata,
            ...(record.provenance === undefined ? {} : { provenance: record.provenance })
          } satisfies Model.Model
        }
        if (record.type === "metrics") {
          const metrics = yield* readJson<Port.Metrics>(path.join(dir, Layout.METRICS_FILE), decodeNonFinite)
          // Artifacts (plots) go back into the run directory, where the metrics name them.
          for (const artifact of record.artifacts ?? []) {
            yield* copy(path.join(dir, Layout.ARTIFACTS, artifact), path.join(runDir, artifact))
          }
          return metrics
        }
        return { files: record.files ?? [] } satisfies Port.Files
      })

    const publish = (producer: Producer, value: unknown, runDir: string) =>
      Effect.gen(function* () {
        const tmp = path.join(Layout.tmpDir(root), Owner.temporaryName("result"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(tmp, { recursive: true, force: true })))
        yield* Effect.sync(() => fs.mkdirSync(tmp, { recursive: true }))
        const base = { crucible: { resultVersion: 1 as const }, ...producer, createdAt: new Date().toISOString() }
        let record: Layout.ResultRecord
        if (Model.isModel(value)) {
          const written = yield* Formats.writeModel(path.join(tmp, Layout.MODEL_FILE), value)
          record = { ...base, type: "model", bytes: written.files.reduce((n, f) => n + f.bytes, 0), source: value.source, metadata: value.metadata, provenance: value.provenance }
        } else if (Port.isFiles(value)) {
          for (const f of value.files) yield* digests.remember(f.path, f.sha256)
          record = { ...base, type: "files", bytes: 0, files: value.files }
        } else if (Port.isMetrics(value)) {
          const metrics = JSON.stringify(value, encodeNonFinite)
          yield* AtomicFile.writeWhole(path.join(tmp, Layout.METRICS_FILE), metrics)
          const artifacts = value.artifacts ?? []
          for (const artifact of artifacts) yield* copy(path.join(runDir, artifact), path.join(tmp, Layout.ARTIFACTS, artifact))
          record = { ...base, type: "metrics", bytes: Buffer.byteLength(metrics) + artifacts.reduce((n, a) => n + Inventory.sizeOf(path.join(runDir, a)), 0), artifacts }
        } else {
          return
        }
        yield* AtomicFile.writeWhole(path.join(tmp, Layout.RESULT_FILE), `${JSON.stringify(record, null, 2)}\n`)
        yield* Effect.sync(() => install(tmp, Layout.resultDir(root, producer.key)))
      }).pipe(
        Effect.scoped,
        Effect.catchCause((cause) => Effect.logWarning(`the result of stage ${producer.stage} could not be stored in ${root} (${reason(cause)}); a rerun computes it again`))
      )

    const lock = (producer: Producer, onWait: (holder: LockFile.Holder) => Effect.Effect<void>) =>
      LockFile.acquire(Layout.lockFile(root, producer.key), { info: { runId: producer.runId, stage: producer.stage }, onWait })

    const lockPath = (target: string, producer: Producer, onWait: (holder: LockFile.Holder) => Effect.Effect<void>) =>
      LockFile.acquire(Layout.pathLockFile(root, target), { info: { runId: producer.runId, stage: producer.stage, path: target }, onWait })

    const sweep = Effect.gen(function* () {
      // Dead owners' temporaries and stale locks, as `crucible cache gc` removes them.
      Inventory.removeDebris(root)
      yield* AtomicFile.sweepOrphans(root)
      yield* AtomicFile.sweepOrphans(Layout.digestsDir(root))
      // Checkpoints are written atomically too: a training killed mid-write leaves a temporary there.
      const work = path.join(root, Layout.WORK)
      for (const name of listDir(work)) {
        // A kill between a result's publication and the removal of its spent checkpoints leaves them;
        // but a key whose lock is held (stale locks are gone by now) is being computed again by a
        // live run (`--no-cache`, `--rerun`), whose checkpoints these are.
        if (fs.existsSync(Layout.lockFile(root, name))) yield* AtomicFile.sweepOrphans(path.join(work, name))
        else if (fs.existsSync(Layout.resultFile(root, name))) fs.rmSync(path.join(work, name), { recursive: true, force: true })
        else yield* AtomicFile.sweepOrphans(path.join(work, name))
      }
    }).pipe(Effect.ignoreCause)

    return { root, digests, lookup, restore, publish, lock, lockPath, sweep }
  })


// Puts a whole result folder in place. Another run may have stored the same key meanwhile (equal
// keys are equal values: ours is dropped); a result that no longer passed `lookup` (its files
// changed) is replaced.
const install = (tmp: string, target: string) => {
  fs.mkdirSync(path.dirname(target), { recursive: true })
  try {
    fs.renameSync(tmp, target)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error
    const old = path.join(path.dirname(tmp), Owner.temporaryName("replaced"))
    fs.renameSync(target, old)
    fs.renameSync(tmp, target)
    fs.rmSync(old, { recursive: true, force: true })
  }
}

// One line: a store that cannot be written is a warning, not a stack trace.
const reason = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause) as { readonly message?: unknown }
  return typeof error?.message === "string" ? error.message : String(error)
}

const touch = (file: string) => {
  try {
    const now = new Date()
    fs.utimesSync(file, now, now)
  } catch { /* read-only store: reuse still works, eviction order is only less exact */ }
}

const listDir = (dir: string): ReadonlyArray<string> => {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

const readJson = <A>(file: string, reviver?: (key: string, value: unknown) => unknown) =>
  Effect.try({ try: () => JSON.parse(fs.readFileSync(file, "utf8"), reviver) as A, catch: (cause) => new IoError.IoError({ file, operation: "read", detail: IoError.describe(cause) }) })

// JSON has no NaN or ±Infinity (stringify writes null): such a metric is stored as
// `{ "crucible:number": "NaN" }`, so a restored value equals the computed one.
const NON_FINITE = "crucible:number"
const encodeNonFinite = (_key: string, value: unknown): unknown =>
  typeof value === "number" && !Number.isFinite(value) ? { [NON_FINITE]: String(value) } : value
const decodeNonFinite = (_key: string, value: unknown): unknown => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value
  const keys = Object.keys(value)
  const text = (value as Record<string, unknown>)[NON_FINITE]
  return keys.length === 1 && typeof text === "string" ? Number(text) : value
}

// A copy that appears whole or not at all (artifacts are small files: plots).
const copy = (from: string, to: string) =>
  Effect.flatMap(
    Effect.try({ try: () => fs.readFileSync(from), catch: (cause) => new IoError.IoError({ file: from, operation: "read", detail: IoError.describe(cause) }) }),
    (bytes) => AtomicFile.writeWhole(to, bytes)
  )
