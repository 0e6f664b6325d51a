/**
 * Parameter values as users write them, mergekit-style but unambiguous:
 *
 * ```yaml
 * density: 0.5                                   # one value
 * weight: [0.7, 0.3]                             # one value per model, in input order
 * t: { gradient: [0, 0.5, 1] }                   # interpolated over the layer index
 * density:                                       # first matching filter wins
 *   - { filter: "*self_attn*", value: 0.3 }
 *   - { filter: "/mlp\\.(up|down)_proj/", value: { gradient: [0.2, 0.8] } }
 *   - { filter: "*", value: [0.5, 0.4] }         # per model, for the rest
 * ```
 *
 * A list of numbers is always per model (a gradient is spelled `{ gradient: … }`), and a list of
 * `{ filter, value }` rules is always a filter list, so the schema never guesses. A per-model
 * list may hold filter lists, and a rule's value may be a per-model list.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import { FilterPattern } from "./Filter.ts"
import { InvalidRule } from "./RuleError.ts"

/** `{ gradient: [v₀, v₁, …] }`: v₀ at the first layer, the last value at the last, linear in between. @category schemas */
export const Gradient = Schema.Struct({ gradient: Schema.NonEmptyArray(Schema.Finite) }).annotate({
  // Named so that generated JSON Schemas define it once (`crucible schema`) and messages say "Gradient".
  identifier: "Gradient",
  description: "interpolated over the layer index: the first value at the first layer, the last at the last"
})
/** @category models */
export type Gradient = typeof Gradient.Type

/** A number or a gradient. @category schemas */
export const Single = Schema.Union([Schema.Finite, Gradient])
/** @category models */
export type Single = typeof Single.Type

/** One filter rule; its value may be one per model. @category schemas */
export const FilterRule = Schema.Struct({
  filter: FilterPattern,
  value: Schema.Union([Single, Schema.NonEmptyArray(Single)])
}).annotate({ identifier: "FilterRule", description: "a glob or /regex/ over tensor names, and the value for the tensors it matches" })
/** @category models */
export type FilterRule = typeof FilterRule.Type

/** Rules tried in order; the first whose filter matches the tensor name gives the value. @category schemas */
export const FilterList = Schema.NonEmptyArray(FilterRule)
/** @category models */
export type FilterList = typeof FilterList.Type

/** What one model gets: a number, a gradient or a filter list. @category schemas */
export const ModelValue = Schema.Union([Schema.Finite, Gradient, FilterList])
/** @category models */
export type ModelValue = typeof ModelValue.Type

/** A parameter value: one {@link ModelValue} for every model, or a list of one per model. @category schemas */
export const ParamValue = Schema.Union([Schema.Finite, Gradient, FilterList, Schema.NonEmptyArray(ModelValue)])
/** @category models */
export type ParamValue = typeof ParamValue.Type

const decodeParam = Schema.decodeUnknownResult(ParamValue)

/** Decodes a parameter value (unknown keys are errors, so typos are caught). @category decoding */
export const decode = (parameter: string, input: unknown): Result.Result<ParamValue, InvalidRule> =>
  Result.mapError(decodeParam(input, { onExcessProperty: "error", errors: "first" }), (e) => new InvalidRule({ parameter, detail: e.message }))

/** Whether a value is a gradient. @category predicates */
export const isGradient = (v: unknown): v is Gradient => typeof v === "object" && v !== null && !Array.isArray(v) && "gradient" in v

/** Whether a list is a filter list (rather than a per-model list). @category predicates */
export const isFilterList = (v: ReadonlyArray<unknown>): v is FilterList =>
  v.length > 0 && v.every((e) => typeof e === "object" && e !== null && !Array.isArray(e) && "filter" in e)
