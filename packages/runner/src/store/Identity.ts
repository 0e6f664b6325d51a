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

/** Keys of every stage of `pipeline`, whose relative paths resolve against `baseDir`. */
export const stageKeys = (pipeline: Validate.ResolvedPipeline, baseDir: string, digests: FileDigests): Effect.Effect<ReadonlyMap<string, string>> =>
  Effect.gen(function* () {
    const reads = new Map<string, ReadonlyArray<ReadIdentity>>()
    const named = new Map<string, ReadonlyMap<string, string>>()
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
    for (const stage of pipeline.stages) {
      const declared = Stage.readsOf(stage.kind, stage.params)
      const identities = yield* Effect.forEach(declared, (r): Effect.Effect<ReadIdentity> =>
        "file" in r ? Effect.map(digestOf(path.resolve(baseDir, r.file)), (sha256) => ({ sha256 })) : Effect.succeed({ builtin: r.builtin }), { concurrency: 4 })
      reads.set(stage.id, identities)
      named.set(stage.id, new Map(declared.flatMap((r, i) => ("file" in r ? [[r.file, (identities[i] as { readonly sha256: string }).sha256] as const] : []))))
    }
    const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
    return StageKey.pipelineKeys(pipeline, (id, params) => {
      const stage = byId.get(id)!
      const writes = writesOf(stage, baseDir)
      return { params: byContent(params, named.get(id)!), reads: reads.get(id) ?? [], ...(writes === undefined ? {} : { writes }) }
    })
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
 * The executor runs the first and gives its value to the others.
 */
export const sameAs = (pipeline: Validate.ResolvedPipeline, keys: ReadonlyMap<string, string>): ReadonlyMap<string, string> => {
  const first = new Map<string, string>()
  const out = new Map<string, string>()
  for (const s of pipeline.stages) {
    const key = keys.get(s.id)!
    const earlier = first.get(key)
    if (earlier === undefined) first.set(key, s.id)
    else out.set(s.id, earlier)
  }
  return out
}
