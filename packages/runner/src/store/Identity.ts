/**
 * Stage identity as a value: a stage's key is the sha256 of its kind, the kind's version, its
 * params as decoded (Schema defaults applied, so a changed default changes the key), its input
 * stages' keys, and what it reads besides its inputs — the content digest of every file or folder
 * its kind declares (`reads`), and the name and version of built-in data. Paths are not part of
 * what a read contributes, contents are: a read's path in the params is replaced by its digest,
 * so the same file in two folders (or written `./data.csv` and `data.csv`) gives one key, and a
 * file whose contents change gives a new one. A stage that writes files (`save`, `convert`) also has its
 * resolved output path in its key: the same model written to two places is two results.
 *
 * Equal keys are equal work: the executor runs a key once per run, and reuses a stored result
 * across runs (`ResultStore.ts`).
 *
 * @since 0.2.0
 */
import { Stage, StageKey, type Validate } from "@crucible/core"
import { Effect } from "effect"
import * as path from "node:path"
import type { FileDigests } from "./FileDigests.ts"

/** What one read contributes to a key. */
type ReadIdentity = { readonly sha256: string } | { readonly builtin: string }

/**
 * A run's stage keys, known up front or pending. A stage's key is known before anything runs when
 * every file it depends on (its reads and, transitively, its inputs') has a remembered digest
 * (`FileDigests.known`); otherwise it is pending, and {@link StageKeys.resolve} computes it once
 * those files are hashed — tapped ones finished from the reads the stages made (`ReadTap`).
 * @category models
 */
export interface StageKeys {
  /** Keys known now. */
  readonly known: ReadonlyMap<string, string>
  /** A stage's key: at once when known; otherwise once the digests it waits for are computed (once per file, however many ask). */
  readonly resolve: (stage: string) => Effect.Effect<string>
  /** Files (absolute paths) some pending key waits for, with whether a stage's reads may hash them (`tapped`). */
  readonly pendingFiles: ReadonlyArray<{ readonly file: string; readonly tapped: boolean }>
  /** Hashes the pending files no stage reads in order (FileDigests hashes two at once, on worker threads). */
  readonly hashUntapped: Effect.Effect<void>
}

/**
 * Keys of every stage of `pipeline`, whose relative paths resolve against `baseDir`: those whose
 * files have remembered digests now, the others when {@link StageKeys.resolve}d. `tapped` says
 * whether a file's digest may come from reads of it (the run then wants it from its `ReadTap`).
 * @category constructors
 */
export const lazyStageKeys = (pipeline: Validate.ResolvedPipeline, baseDir: string, digests: FileDigests, tapped: (stage: Validate.ResolvedStage) => boolean = () => false): StageKeys => {
  const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
  const declared = new Map(pipeline.stages.map((s) => [s.id, Stage.readsOf(s.kind, s.params)] as const))
  // Files are hashed once each, however many stages read them.
  const byFile = new Map<string, Effect.Effect<string>>()
  const digestOf = (file: string) => {
    let pending = byFile.get(file)
    if (pending === undefined) {
      pending = Effect.runSync(Effect.cached(Effect.map(digests.of(file), (d) => d.sha256)))
      byFile.set(file, pending)
    }
    return pending
  }
  const keyFrom = (id: string, reads: ReadonlyArray<ReadIdentity>, inputs: Readonly<Record<string, ReadonlyArray<string>>>) => {
    const stage = byId.get(id)!
    const files = declared.get(id)!
    const named = new Map(files.flatMap((r, i) => ("file" in r ? [[r.file, (reads[i] as { readonly sha256: string }).sha256] as const] : [])))
    const writes = writesOf(stage, baseDir)
    return StageKey.stageKey({ kind: stage.kind.kind, version: stage.kind.version, params: { params: byContent(stage.params, named), reads, ...(writes === undefined ? {} : { writes }) }, inputs })
  }
  const inputKeys = <A>(stage: Validate.ResolvedStage, keyOf: (id: string) => A) => Object.fromEntries(Object.entries(stage.inputs).map(([name, refs]) => [name, refs.map(keyOf)]))
  // Known keys, from remembered digests only.
  const known = new Map<string, string>()
  const pendingFiles = new Map<string, boolean>()
  const knownKey = (id: string): string | undefined => {
    if (known.has(id)) return known.get(id)
    const stage = byId.get(id)!
    const inputs = inputKeys(stage, knownKey)
    let complete = Object.values(inputs).every((keys) => keys.every((k) => k !== undefined))
    const reads = declared.get(id)!.map((r): ReadIdentity | undefined => {
      if (!("file" in r)) return { builtin: r.builtin }
      const file = path.resolve(baseDir, r.file)
      const sha256 = digests.known(file)
      if (sha256 === undefined) (complete = false), pendingFiles.set(file, (pendingFiles.get(file) ?? false) || tapped(stage))
      return sha256 === undefined ? undefined : { sha256 }
    })
    if (!complete || reads.some((r) => r === undefined)) return undefined
    const key = keyFrom(id, reads as ReadonlyArray<ReadIdentity>, inputs as Record<string, ReadonlyArray<string>>)
    known.set(id, key)
    return key
  }
  for (const s of pipeline.stages) knownKey(s.id)
  const resolved = new Map<string, Effect.Effect<string>>()
  const resolve = (id: string): Effect.Effect<string> => {
    const now = known.get(id)
    if (now !== undefined) return Effect.succeed(now)
    let once = resolved.get(id)
    if (once === undefined) {
      const stage = byId.get(id)!
      once = Effect.runSync(Effect.cached(Effect.gen(function* () {
        const inputs: Record<string, ReadonlyArray<string>> = {}
        for (const [name, refs] of Object.entries(stage.inputs)) inputs[name] = yield* Effect.forEach(refs, resolve)
        const reads = yield* Effect.forEach(declared.get(id)!, (r): Effect.Effect<ReadIdentity> =>
          "file" in r ? Effect.map(digestOf(path.resolve(baseDir, r.file)), (sha256) => ({ sha256 })) : Effect.succeed({ builtin: r.builtin }), { concurrency: 4 })
        return keyFrom(id, reads, inputs)
      })))
      resolved.set(id, once)
    }
    return once
  }
  const untapped = [...pendingFiles].flatMap(([file, tapped]) => (tapped ? [] : [file]))
  return {
    known,
    resolve,
    pendingFiles: [...pendingFiles].map(([file, tapped]) => ({ file, tapped })),
    hashUntapped: Effect.forEach(untapped, digestOf, { concurrency: 2, discard: true })
  }
}

/** Keys of every stage of `pipeline`, every file hashed now where its digest is not remembered. */
export const stageKeys = (pipeline: Validate.ResolvedPipeline, baseDir: string, digests: FileDigests): Effect.Effect<ReadonlyMap<string, string>> =>
  Effect.suspend(() => {
    const keys = lazyStageKeys(pipeline, baseDir, digests)
    return Effect.map(Effect.forEach(pipeline.stages, (s) => Effect.map(keys.resolve(s.id), (key) => [s.id, key] as const), { concurrency: 4 }), (entries) => new Map(entries))
  })

// A read file's path in the params stands for its contents: `data.csv` and `./data.csv`, or one
// file in two folders, are one key.
const byContent = (value: unknown, files: ReadonlyMap<string, string>): unknown => {
  if (files.size === 0) return value
  if (typeof value === "string") return files.has(value) ? { file: files.get(value) } : value
  if (Array.isArray(value)) return value.map((v) => byContent(v, files))
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, byContent(v, files)]))
  return value
}

export const writesOf = (stage: Validate.ResolvedStage, baseDir: string): string | undefined => {
  if (stage.kind.output.name !== "files") return undefined
  const target = (stage.params as { readonly path?: unknown } | undefined)?.path
  return typeof target === "string" ? path.resolve(baseDir, target) : undefined
}

/**
 * Stages whose key equals an earlier stage's (in file order): each such stage → the first one.
 * The executor runs the first and gives its value to the others. Stages whose key is not known
 * (pending, absent from `keys`) have no twin.
 */
export const sameAs = (pipeline: Validate.ResolvedPipeline, keys: ReadonlyMap<string, string>): ReadonlyMap<string, string> => {
  const first = new Map<string, string>()
  const out = new Map<string, string>()
  for (const s of pipeline.stages) {
    const key = keys.get(s.id)
    if (key === undefined) continue
    const earlier = first.get(key)
    if (earlier === undefined) first.set(key, s.id)
    else out.set(s.id, earlier)
  }
  return out
}
