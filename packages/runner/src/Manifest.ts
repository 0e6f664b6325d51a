/**
 * `manifest.json` of a run directory: what ran, with what, how it went, and the digests of every
 * input and output file — enough to audit or reproduce a run. The runner rewrites it atomically
 * after every stage, so a crash leaves the last consistent state on disk.
 *
 * @since 0.1.0
 */
import { AtomicFile, Model, type Port, type Validate } from "@crucible/core"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import type { StageOutcome } from "./Executor.ts"

/** @category models */
export interface Manifest {
  readonly crucible: { readonly manifestVersion: 1 }
  readonly runId: string
  readonly status: "running" | "succeeded" | "failed" | "interrupted"
  readonly startedAt: string
  readonly endedAt?: string | undefined
  readonly pipeline: { readonly name: string; readonly file?: string | undefined; readonly sha256?: string | undefined; readonly ir: unknown }
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
  }>
  readonly inputs: ReadonlyArray<FileRecord>
  readonly outputs: ReadonlyArray<FileRecord>
}

/** @category models */
export interface FileRecord {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
}

const require = createRequire(import.meta.url)

/** Versions of the tools that shaped the outputs. */
export const toolVersions = (extra: Readonly<Record<string, string>> = {}): Record<string, string> => {
  const version = (pkg: string) => {
    try { return (require(`${pkg}/package.json`) as { version: string }).version } catch { return "unknown" }
  }
  return { crucible: version("@crucible/core"), node: process.version, effect: version("effect"), ...extra }
}

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
    output: describeOutput(o.value)
  }))
}

const describeOutput = (value: unknown): unknown => {
  if (value === undefined) return undefined
  const model = value as Model.Model
  if (model.tensors instanceof Map) return { type: "model", tensors: model.tensors.size, bytes: Model.totalBytes(model) }
  if (Array.isArray((value as Port.Files).files)) return { type: "files", files: (value as Port.Files).files }
  if (typeof (value as Port.Metrics).values === "object") return { type: "metrics", ...(value as Port.Metrics) }
  return undefined
}

/** Files read by the run's models and files written by its stages. */
export const filesOf = (outcomes: ReadonlyArray<StageOutcome>): { readonly inputs: ReadonlyArray<string>; readonly outputs: ReadonlyArray<FileRecord> } => {
  const inputs = new Set<string>()
  const outputs: Array<FileRecord> = []
  for (const o of outcomes) {
    const v = o.value as (Model.Model & Port.Files) | undefined
    if (v?.tensors instanceof Map) for (const f of v.files) inputs.add(f)
    else if (Array.isArray(v?.files)) outputs.push(...v.files.filter((f) => f.sha256 !== ""))
  }
  const written = new Set(outputs.map((f) => f.path))
  return { inputs: [...inputs].filter((f) => !written.has(f)), outputs }
}

/**
 * sha256 and size of a file, read through one reused 4 MiB buffer: no garbage per chunk (a
 * 64 KiB read stream allocates 16,000 buffers per GiB, and V8 then runs a full collection every
 * few dozen of them on a large heap).
 */
export const digestFile = (file: string): Effect.Effect<FileRecord> =>
  Effect.promise(async () => {
    const hash = createHash("sha256")
    const buffer = Buffer.allocUnsafeSlow(4 * 1024 * 1024)
    let bytes = 0
    let handle: fs.promises.FileHandle | undefined
    try {
      handle = await fs.promises.open(file, "r")
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, bytes)
        if (bytesRead === 0) break
        hash.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))
        bytes += bytesRead
      }
      return { path: file, bytes, sha256: hash.digest("hex") }
    } catch {
      return { path: file, bytes: 0, sha256: "unreadable" }
    } finally {
      await handle?.close().catch(() => undefined)
    }
  })

/**
 * Digests of input files remembered by (path, size, mtime) in `<runs>/.cache/digests.json`, so a
 * pipeline re-run over the same multi-gigabyte checkpoints does not hash them again (as git's index
 * does; a file rewritten in place with the same size within the same millisecond would be missed).
 */
export const digestInputs = (files: ReadonlyArray<string>, cacheFile: string): Effect.Effect<ReadonlyArray<FileRecord>> =>
  Effect.gen(function* () {
    type Entry = { readonly size: number; readonly mtimeMs: number; readonly sha256: string }
    let known: Record<string, Entry> = {}
    try { known = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as Record<string, Entry> } catch { /* no cache yet */ }
    const records = yield* Effect.forEach(files, (file) => {
      const stat = (() => { try { return fs.statSync(file) } catch { return undefined } })()
      const hit = stat === undefined ? undefined : known[file]
      if (stat !== undefined && hit !== undefined && hit.size === stat.size && hit.mtimeMs === stat.mtimeMs) {
        return Effect.succeed({ path: file, bytes: hit.size, sha256: hit.sha256 })
      }
      return Effect.tap(digestFile(file), (r) =>
        Effect.sync(() => {
          if (stat !== undefined && r.sha256 !== "unreadable") known[file] = { size: stat.size, mtimeMs: stat.mtimeMs, sha256: r.sha256 }
        })
      )
    }, { concurrency: 2 })
    yield* AtomicFile.writeWhole(cacheFile, JSON.stringify(known)).pipe(Effect.ignore)
    return records
  })

/** Writes the manifest atomically. */
export const write = (file: string, manifest: Manifest) => AtomicFile.writeWhole(file, `${JSON.stringify(manifest, null, 2)}\n`)
