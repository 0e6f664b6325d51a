/**
 * Filters that match no tensor. Such a rule is legal (it never applies) and most often a typo
 * (`*self_atn*`), so validation warns, naming the filter and the tensor names nearest to what it
 * spells — found from the models' headers, before any tensor is read.
 *
 * @since 0.1.0
 */
import { Suggest } from "@crucible/core"
import { Result } from "effect"
import * as Filter from "./Filter.ts"
import { isFilterList, type ParamValue } from "./ParamValue.ts"

/** A filter written in a parameter value, and its path inside the value. @category models */
export interface Located {
  readonly pattern: string
  /** `[k, "filter"]` in a filter list; `[i, k, "filter"]` in model i's filter list. */
  readonly path: ReadonlyArray<string | number>
}

/** Every filter of a parameter value, in the order written. @category filters */
export const filtersOf = (value: ParamValue): Array<Located> => {
  if (!Array.isArray(value)) return []
  const rules = (list: ReadonlyArray<unknown>, prefix: ReadonlyArray<number>): Array<Located> =>
    isFilterList(list) ? list.map((rule, k) => ({ pattern: rule.filter, path: [...prefix, k, "filter"] })) : []
  return isFilterList(value) ? rules(value, []) : value.flatMap((v, i) => (Array.isArray(v) ? rules(v, [i]) : []))
}

/** The filters (of those given) that match none of `names`; a filter that does not compile is the Schema's to report. @category filters */
export const unmatched = (filters: ReadonlyArray<Located>, names: ReadonlyArray<string>): Array<Located> =>
  filters.filter((f) => {
    const match = Filter.compile(f.pattern)
    return Result.isSuccess(match) && !names.some(match.success)
  })

/**
 * Up to `count` names nearest to a pattern: those its literal parts (the text between wildcards, or
 * between a regex's operators) come closest to occurring in, fewest edits first — only those as
 * near as the nearest (within one edit), so a short list is not padded with unrelated names.
 *
 * @category filters
 */
export const nearest = (pattern: string, names: ReadonlyArray<string>, count = 3): Array<string> => {
  const regex = /^\/(.*)\/[a-z]*$/s.exec(pattern)
  const parts = (regex === null ? pattern.split(/[*?]+/) : regex[1]!.replace(/\\(.)/g, "$1").split(/[\^$.*+?()[\]{}|]+/)).filter((p) => p.length > 0)
  if (parts.length === 0) return []
  const scored = names.map((name, order) => ({ name, order, score: parts.reduce((sum, part) => sum + Suggest.substringDistance(part, name), 0) }))
  const sorted = scored.sort((a, b) => a.score - b.score || a.order - b.order)
  const best = sorted[0]?.score ?? 0
  return sorted.filter((s) => s.score <= best + 1).slice(0, count).map((s) => s.name)
}
