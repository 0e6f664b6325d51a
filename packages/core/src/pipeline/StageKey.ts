/**
 * A stage's identity for caching: a hash of its kind, the kind's version, its canonical params
 * and its inputs' keys. Equal work has equal keys, so a content-addressed cache can reuse an
 * output, and a change anywhere upstream changes every key downstream.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import type { ResolvedPipeline } from "./Validate.ts"

/** JSON with object keys sorted, so equal values serialise equally. */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

/** The key of one stage, from its parts. */
export const stageKey = (parts: {
  readonly kind: string
  readonly version: number
  readonly params: unknown
  readonly inputs: Readonly<Record<string, ReadonlyArray<string>>>
}): string =>
  createHash("sha256")
    .update(canonicalJson({ kind: parts.kind, version: parts.version, params: parts.params ?? null, inputs: parts.inputs }))
    .digest("hex")

/**
 * Keys of every stage of a pipeline (inputs replaced by their stages' keys). Params that name
 * files should be resolved to absolute paths by the caller's `normalize` so that the same file
 * gives the same key from any working directory.
 */
export const pipelineKeys = (pipeline: ResolvedPipeline, normalize: (stage: string, params: unknown) => unknown = (_s, p) => p): ReadonlyMap<string, string> => {
  const keys = new Map<string, string>()
  const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
  const keyOf = (id: string): string => {
    const known = keys.get(id)
    if (known !== undefined) return known
    const s = byId.get(id)!
    const inputs = Object.fromEntries(Object.entries(s.inputs).map(([name, refs]) => [name, refs.map(keyOf)]))
    const key = stageKey({ kind: s.kind.kind, version: s.kind.version, params: normalize(id, s.params), inputs })
    keys.set(id, key)
    return key
  }
  for (const s of pipeline.stages) keyOf(s.id)
  return keys
}
