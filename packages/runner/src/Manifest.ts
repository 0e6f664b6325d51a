/**
 * `manifest.json` of a run directory: what ran, with what, how it went, and the digests of every
 * input and output file — enough to audit or reproduce a run. The runner rewrites it atomically
 * after every stage, so a crash leaves the last consistent state on disk.
 *
 * @since 0.1.0
 */
import { AtomicFile, Digest, IoError, Model, Owner, Port, ReadCounter, type Validate } from "@crucible/core"
import { Effect, Fiber, type Scope, Semaphore } from "effect"
import effectPackage from "effect/package.json" with { type: "json" }
import * as fs from "node:fs"
import runnerPackage from "../package.json" with { type: "json" }
import type { StageOutcome } from "./Executor.ts"
import * as FileDigests from "./store/FileDigests.ts"

/** @category models */
export interface Manifest {
  readonly crucible: { readonly manifestVersion: 1 }
  readonly runId: string
  readonly status: "running" | "succeeded" | "failed" | "interrupted"
  /**
   * The process running the run (absent in manifests of older runs): a `running` manifest whose
   * owner is dead is shown as `crashed` ({@link effectiveStatus}).
   */
  readonly owner?: Owner.Owner | undefined
  readonly startedAt: string
  readonly endedAt?: string | undefined
  readonly pipeline: {
    readonly name: string
    readonly file?: string | undefined
    readonly sha256?: string | undefined
    readonly ir: unknown
    /** The input port names of each kind the pipeline uses (so views need not know the kinds). */
    readonly inputPorts?: Readonly<Record<string, ReadonlyArray<string>>> | undefined
  }
  readonly tools: Readonly<Record<string, string>>
  readonly stages: ReadonlyArray<{
    readonly id: string
    readonly kind: string
    readonly version: number
    readonly key: string
    readonly params: unknown
    readonly status: string
    readonly startedAt?: string | undefined
    readonly durationMs?: number | undefined
    readonly error?: { readonly tag: string; readonly message: string } | undefined
    readonly blockedBy?: string | undefined
    readonly output?: unknown
    /** The result came from the results store: an earlier run computed it. */
    readonly cached?: true | undefined
    /** The stage had the same key as this earlier stage of the run, and took its value. */
    readonly sameAs?: string | undefined
    /** On a cluster: the worker that ran it (`crucible worker --id`), and its host. */
    readonly worker?: string | undefined
    readonly host?: string | undefined
  }>
  readonly inputs: ReadonlyArray<FileRecord>
  readonly outputs: ReadonlyArray<FileRecord>
}

/** @category models */
export interface FileRecord {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
  /** Inputs: the bytes the run's stages read from the file (headers and the tensor data they used). */
  readonly bytesRead?: number | undefined
}

/**
 * A run's status as views show it: what the runner wrote, except that a `running` manifest whose
 * owner is no longer alive (killed, crashed, the machine rebooted) is `crashed` — nothing will
 * ever finish it. Manifests without an owner (older runs) read as written. @category models
 */
export type ShownStatus = Manifest["status"] | "crashed"

/** The `owner` field of a manifest: this process (the runner spreads it into every write). @category constructors */
export const ownerNow = (): { readonly owner: Owner.Owner } => ({ owner: Owner.current() })

/**
 * The status to show for `manifest` (see {@link ShownStatus}); `isAlive` is asked only about the
 * owner of a `running` manifest (default: `Owner.isAlive`). @category accessors
 */
export const effectiveStatus = <S extends string>(
  manifest: { readonly status: S; readonly owner?: Owner.Owner | undefined },
  isAlive: (owner: Owner.Owner) => boolean = Owner.isAlive
): S | "crashed" => (manifest.status === "running" && manifest.owner !== undefined && !isAlive(manifest.owner) ? "crashed" : manifest.status)

/** Reads `manifest.json` as the runner wrote it (not checked beyond being a JSON object). @category constructors */
export const read = (file: string): Effect.Effect<Manifest, IoError.IoError> =>
  Effect.try({
    try: () => {
      const json: unknown = JSON.parse(fs.readFileSync(file, "utf8"))
      if (typeof json !== "object" || json === null || typeof (json as { status?: unknown }).status !== "string") throw new Error("not a Crucible manifest")
      return json as Manifest
    },
    catch: (cause) => new IoError.IoError({ file, operation: "read the manifest", detail: cause instanceof Error ? cause.message : String(cause) })
  })

/** Versions of the tools that shaped the outputs (read when bundled: the installed CLI has no packages to ask). */
export const toolVersions = (extra: Readonly<Record<string, string>> = {}): Record<string, string> => ({
  crucible: runnerPackage.version,
  node: process.version,
  effect: effectPackage.version,
  ...extra
})

/** The manifest's view of stage outcomes. */
export const stageRecords = (pipeline: Validate.ResolvedPipeline, outcomes: ReadonlyArray<StageOutcome>): Manifest["stages"] => {
  const raw = new Map(pipeline.stages.map((s) => [s.id, s.raw] as const))
  return outcomes.map((o) => ({
    id: o.id,
    kind: o.kind,
    version: o.version,
    key: o.key,
    params: raw.get(o.id),
    status: o.status,
    startedAt: o.startedAt === undefined ? undefined : new Date(o.startedAt).toISOString(),
    durationMs: o.startedAt === undefined || o.endedAt === undefined ? undefined : o.endedAt - o.startedAt,
    error: o.error,
    blockedBy: o.blockedBy,
    output: describeOutput(o.value),
    ...(o.cached === true ? { cached: true as const } : {}),
    ...(o.sameAs === undefined ? {} : { sameAs: o.sameAs })
  }))
}

const describeOutput = (value: unknown): unknown => {
  if (value === undefined) return undefined
  if (Model.isModel(value)) return { type: "model", tensors: value.tensors.size, bytes: Model.totalBytes(value) }
  if (Port.isFiles(value)) return { type: "files", files: value.files }
  if (Port.isMetrics(value)) return { type: "metrics", ...value }
  return undefined
}

/** Files read by the run's models and files written by its stages. */
export const filesOf = (outcomes: ReadonlyArray<StageOutcome>): { readonly inputs: ReadonlyArray<string>; readonly outputs: ReadonlyArray<FileRecord> } => {
  const inputs = new Set<string>()
  const outputs: Array<FileRecord> = []
  for (const o of outcomes) {
    if (Model.isModel(o.value)) for (const f of o.value.files) inputs.add(f)
    else if (Port.isFiles(o.value)) outputs.push(...o.value.files.filter((f) => f.sha256 !== ""))
  }
  const written = new Set(outputs.map((f) => f.path))
  return { inputs: [...inputs].filter((f) => !written.has(f)), outputs }
}

/** Input records with the bytes the stages read from each (counted by a `ReadCounter.tally`). */
export const withBytesRead = (records: ReadonlyArray<FileRecord>, totals: ReadonlyMap<string, number>): ReadonlyArray<FileRecord> =>
  records.map((r) => ({ ...r, bytesRead: totals.get(r.path) ?? 0 }))

/**
 * Digests of the run's input files for the manifest, from the store's file digests
 * (`store/FileDigests.ts`: remembered across runs by device, inode, size and mtime, so a re-run
 * over the same multi-gigabyte checkpoints does not hash them again; the stage keys of a run
 * have usually hashed them already).
 *
 * A file is hashed from the moment a stage's outcome names it (`start`: a `load` finishes long
 * before the merge that reads it), beside the stages instead of after them; `finish` waits for
 * those, uses a started digest only if the file still has the size and mtime it had when hashing
 * started, and hashes what is left. Files `deferred` names (tapped: hashed from the stages'
 * reads of them, `ReadTap`) are not started: `finish` finishes them.
 */
export interface InputDigests {
  readonly start: (file: string) => Effect.Effect<void>
  readonly finish: (files: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<FileRecord>>
}

/** Digests started in the current scope; those still running when it closes are interrupted. @category constructors */
export const inputDigests = (digests: FileDigests.FileDigests, deferred: (file: string) => boolean = () => false): Effect.Effect<InputDigests, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const started = new Map<string, { readonly stat: fs.Stats; readonly digest: Fiber.Fiber<FileDigests.Digested> }>()
    const statOf = (file: string) => {
      try { return fs.statSync(file) } catch { return undefined }
    }
    const same = (a: fs.Stats, b: fs.Stats) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino
    const start = (file: string) =>
      Effect.suspend(() => {
        const stat = statOf(file)
        if (stat === undefined || started.has(file) || deferred(file)) return Effect.void
        return Effect.map(Effect.forkIn(digests.of(file), scope), (digest) => void started.set(file, { stat, digest }))
      })
    const record = (d: FileDigests.Digested): FileRecord => (d.sha256 === FileDigests.MISSING ? { path: d.path, bytes: 0, sha256: "unreadable" } : d)
    const finish = (files: ReadonlyArray<string>) =>
      Effect.forEach(files, (file) =>
        Effect.gen(function* () {
          const stat = statOf(file)
          const early = started.get(file)
          const digest = early !== undefined && stat !== undefined && same(early.stat, stat) ? yield* Fiber.join(early.digest) : yield* digests.of(file)
          return record({ ...digest, path: file })
        }), { concurrency: "unbounded" })
    return { start, finish }
  })

/** Writes the manifest atomically. */
export const write = (file: string, manifest: Manifest) => AtomicFile.writeWhole(file, `${JSON.stringify(manifest, null, 2)}\n`)
