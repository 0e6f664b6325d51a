/**
 * mergekit parameter settings in Crucible's rule syntax. mergekit guesses a list's meaning from
 * its contents; Crucible spells each form:
 *
 * | mergekit                                   | Crucible                                   |
 * | ------------------------------------------ | ------------------------------------------ |
 * | `0.5`                                      | `0.5`                                      |
 * | `[0, 0.5, 1]` (a gradient over layers)     | `{ gradient: [0, 0.5, 1] }`                |
 * | `- { filter: self_attn, value: … }`        | `- { filter: "*self_attn*", value: … }`    |
 * | `- { value: 0.5 }` (no filter: catch-all)  | `- { filter: "*", value: 0.5 }`            |
 *
 * mergekit's filter is a substring test, so it becomes the glob `*…*`; a filter holding a glob
 * metacharacter (`*`, `?`) becomes an escaped `/regex/` instead, because globs have no escape.
 * A setting that matches no filter falls through to the next level (source → slice → global), as
 * in mergekit's `ConfigReader.parameter`: {@link layered} appends the outer levels as catch-alls.
 *
 * @since 0.1.0
 */

/** A value Crucible's rule parameters take (`ParamValue`'s single-model forms). @category models */
export type Single = number | { readonly gradient: ReadonlyArray<number> }
/** @category models */
export type FilterRule = { readonly filter: string; readonly value: Single }
/** What one model gets: a number, a gradient, or a filter list (first match wins). @category models */
export type ModelValue = Single | ReadonlyArray<FilterRule>
/** A plain (non-rule) setting: a boolean, number or string, taken as is. @category models */
export type Plain = boolean | number | string

/** A conversion result: the value, or what is wrong with it (the path is relative to the setting). @category models */
export type Converted<A> = { readonly value: A } | { readonly error: string; readonly path: ReadonlyArray<string | number> }

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** The glob (or regex) of a mergekit substring filter; an absent, empty or `*` filter matches everything. @category conversion */
export const filterToGlob = (filter: string | undefined): string => {
  if (filter === undefined || filter === "" || filter === "*") return "*"
  if (!/[*?]/.test(filter)) return `*${filter}*`
  return `/${filter.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}/`
}

/** A scalar or gradient (a list of numbers). */
const single = (v: unknown): Converted<Single> => {
  if (isNumber(v)) return { value: v }
  if (Array.isArray(v) && v.length > 0 && v.every(isNumber)) return { value: { gradient: v } }
  if (Array.isArray(v) && v.length > 0 && v.every((e) => typeof e === "boolean" || typeof e === "string")) {
    return { error: "a list of booleans or strings (a step function over layers) is not supported; give a number or a list of numbers", path: [] }
  }
  return { error: `expected a number or a list of numbers (a gradient over layers), got ${JSON.stringify(v)}`, path: [] }
}

/**
 * A mergekit setting of a rule parameter (weight, density, t…) as one model's Crucible value:
 * a number, a gradient, or a filter list (a single `{ filter, value }` map is a list of one).
 *
 * @category conversion
 */
export const toModelValue = (setting: unknown): Converted<ModelValue> => {
  const conditions = isRecord(setting) ? [setting] : Array.isArray(setting) && setting.some(isRecord) ? setting : undefined
  if (conditions === undefined) return single(setting)
  const rules: Array<FilterRule> = []
  for (const [i, c] of conditions.entries()) {
    const at = isRecord(setting) ? [] : [i]
    if (!isRecord(c)) return { error: "a list mixing numbers and { filter, value } entries; give one or the other", path: at }
    const extra = Object.keys(c).find((k) => k !== "filter" && k !== "value")
    if (extra !== undefined) return { error: `unknown key "${extra}" in a conditional parameter (it takes filter and value)`, path: [...at, extra] }
    if (!("value" in c)) return { error: "a conditional parameter needs a value", path: at }
    if (c.filter !== undefined && c.filter !== null && typeof c.filter !== "string") return { error: "filter must be a string (a substring of tensor names)", path: [...at, "filter"] }
    const value = single(c.value)
    if ("error" in value) return { error: value.error, path: [...at, "value"] }
    rules.push({ filter: filterToGlob(c.filter ?? undefined), value: value.value })
  }
  return { value: rules }
}

/** A plain setting (normalize, rescale, filter_wise…): a scalar only. @category conversion */
export const toPlain = (setting: unknown): Converted<Plain> =>
  typeof setting === "boolean" || typeof setting === "string" || isNumber(setting)
    ? { value: setting }
    : { error: `expected a single value here (Crucible takes no gradient or filter for this parameter), got ${JSON.stringify(setting)}`, path: [] }

const isCatchAll = (rules: ReadonlyArray<FilterRule>) => rules.some((r) => r.filter === "*")

/**
 * One value from settings tried in order (a source's, its slice's, the config's): a filter list
 * that may match nothing is followed by the next level, as mergekit falls through to it.
 *
 * @category conversion
 */
export const layered = (levels: ReadonlyArray<ModelValue | undefined>): ModelValue | undefined => {
  const given = levels.filter((l): l is ModelValue => l !== undefined)
  let result: ModelValue | undefined
  for (const level of given.reverse()) {
    if (result === undefined || !Array.isArray(level) || isCatchAll(level as ReadonlyArray<FilterRule>)) {
      result = level
      continue
    }
    const fallback: ReadonlyArray<FilterRule> = Array.isArray(result) ? result : [{ filter: "*", value: result as Single }]
    result = [...(level as ReadonlyArray<FilterRule>), ...fallback]
  }
  return result
}

/** Per-model values as one Crucible value: the common one when all agree, else a list of one per model. @category conversion */
export const perModel = (values: ReadonlyArray<ModelValue>): ModelValue | ReadonlyArray<ModelValue> => {
  const first = JSON.stringify(values[0])
  return values.length > 0 && values.every((v) => JSON.stringify(v) === first) ? values[0]! : values
}
