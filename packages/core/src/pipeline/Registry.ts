/**
 * A registry maps `uses:` names to stage kinds. It is a value passed to the validator and the
 * runner — built-in kinds come from `@crucible/strategies`' literal map, and a user adds their
 * own by extending it, never by an import side effect.
 *
 * @since 0.1.0
 */
import type { AnyStageKind } from "./Stage.ts"

/** @category models */
export interface Registry {
  readonly kinds: ReadonlyMap<string, AnyStageKind>
}

/** A registry of the given kinds (each under its own `kind` name). @category constructors */
export const make = (kinds: Iterable<AnyStageKind> | Readonly<Record<string, AnyStageKind>>): Registry => {
  const list = Symbol.iterator in kinds ? [...(kinds as Iterable<AnyStageKind>)] : checkedValues(kinds as Readonly<Record<string, AnyStageKind>>)
  const map = new Map<string, AnyStageKind>()
  for (const k of list) {
    if (map.has(k.kind)) throw new Error(`two stage kinds are named "${k.kind}"`)
    map.set(k.kind, k)
  }
  return { kinds: map }
}

/** A registry with more kinds; a kind of the same name replaces the built-in one. @category combinators */
export const extend = (registry: Registry, kinds: Iterable<AnyStageKind> | Readonly<Record<string, AnyStageKind>>): Registry => {
  const map = new Map(registry.kinds)
  for (const k of make(kinds).kinds.values()) map.set(k.kind, k)
  return { kinds: map }
}

/** The kind named `uses`, if registered. */
export const get = (registry: Registry, uses: string): AnyStageKind | undefined => registry.kinds.get(uses)

// A literal map's keys must be the kinds' names, or YAML and code would disagree about a kind.
const checkedValues = (record: Readonly<Record<string, AnyStageKind>>): Array<AnyStageKind> =>
  Object.entries(record).map(([key, kind]) => {
    if (key !== kind.kind) throw new Error(`registry key "${key}" holds stage kind "${kind.kind}"`)
    return kind
  })
