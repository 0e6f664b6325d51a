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

/**
 * The rule schemas over one kind of number: the plain ones over any finite number, and ranged
 * ones (`Unit`, `NonNegative`) whose every number — single, per model, in a gradient or in a
 * filter rule's value — lies in a range, so `density: 1.5` is reported where it is written by
 * `crucible validate`, the JSON Schema and editors alike. `name` prefixes the identifiers the
 * generated JSON Schemas define them by.
 */
const over = (number: typeof Schema.Finite, name: string) => {
  const Gradient = Schema.Struct({ gradient: Schema.NonEmptyArray(number) }).annotate({
    // Named so that generated JSON Schemas define it once (`crucible schema`) and messages say "Gradient".
    identifier: `${name}Gradient`,
    description: "interpolated over the layer index: the first value at the first layer, the last at the last"
  })
  const Single = Schema.Union([number, Gradient])
  const FilterRule = Schema.Struct({
    filter: FilterPattern,
    value: Schema.Union([Single, Schema.NonEmptyArray(Single)])
  }).annotate({ identifier: `${name}FilterRule`, description: "a glob or /regex/ over tensor names, and the value for the tensors it matches" })
  const FilterList = Schema.NonEmptyArray(FilterRule)
  const ModelValue = Schema.Union([number, Gradient, FilterList])
  const ParamValue = Schema.Union([number, Gradient, FilterList, Schema.NonEmptyArray(ModelValue)])
  return { Gradient, Single, FilterRule, FilterList, ModelValue, ParamValue }
}

const plain = over(Schema.Finite, "")

/** `{ gradient: [v₀, v₁, …] }`: v₀ at the first layer, the last value at the last, linear in between. @category schemas */
export const Gradient = plain.Gradient
/** @category models */
export type Gradient = typeof Gradient.Type

/** A number or a gradient. @category schemas */
export const Single = plain.Single
/** @category models */
export type Single = typeof Single.Type

/** One filter rule; its value may be one per model. @category schemas */
export const FilterRule = plain.FilterRule
/** @category models */
export type FilterRule = typeof FilterRule.Type

/** Rules tried in order; the first whose filter matches the tensor name gives the value. @category schemas */
export const FilterList = plain.FilterList
/** @category models */
export type FilterList = typeof FilterList.Type

/** What one model gets: a number, a gradient or a filter list. @category schemas */
export const ModelValue = plain.ModelValue
/** @category models */
export type ModelValue = typeof ModelValue.Type

/** A parameter value: one {@link ModelValue} for every model, or a list of one per model. @category schemas */
export const ParamValue = plain.ParamValue
/** @category models */
export type ParamValue = typeof ParamValue.Type

/** A {@link ParamValue} whose every number lies in [0, 1] (density, gamma, t). @category schemas */
export const Unit = over(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })), "Unit").ParamValue

/** A {@link ParamValue} whose every number is ≥ 0 (epsilon). @category schemas */
export const NonNegative = over(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)), "NonNegative").ParamValue

/** The schema of a rule parameter: {@link ParamValue}, or one of its ranged forms. @category models */
export type RuleSchema = typeof ParamValue

const decodeParam = Schema.decodeUnknownResult(ParamValue)

/** Decodes a parameter value (unknown keys are errors, so typos are caught). @category decoding */
export const decode = (parameter: string, input: unknown): Result.Result<ParamValue, InvalidRule> =>
  Result.mapError(decodeParam(input, { onExcessProperty: "error", errors: "first" }), (e) => new InvalidRule({ parameter, detail: e.message }))

/** Whether a value is a gradient. @category predicates */
export const isGradient = (v: unknown): v is Gradient => typeof v === "object" && v !== null && !Array.isArray(v) && "gradient" in v

/** Whether a list is a filter list (rather than a per-model list). @category predicates */
export const isFilterList = (v: ReadonlyArray<unknown>): v is FilterList =>
  v.length > 0 && v.every((e) => typeof e === "object" && e !== null && !Array.isArray(e) && "filter" in e)
