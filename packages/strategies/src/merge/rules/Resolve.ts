/**
 * Evaluating a parameter value for one tensor and one model: `compile` checks a value against
 * the model count once (filters compiled, per-model lengths checked), then `resolve` gives the
 * number for (tensor, layer, model). A filter list that matches nothing gives `undefined` (the
 * stage's default applies); in strict mode it is a {@link NoRuleMatches} error, and `unmatched`
 * lists every such tensor at once so a plan can report them together.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as Filter from "./Filter.ts"
import * as Layer from "./Layer.ts"
import { type FilterList, isFilterList, isGradient, type ModelValue, type ParamValue, type Single } from "./ParamValue.ts"
import { InvalidRule, NoRuleMatches, PerModelMismatch } from "./RuleError.ts"

/** A parameter value bound to a model count. @category models */
export interface Rule {
  readonly parameter: string
  readonly models: number
  /** The value for a tensor and model (layer index parsed from the name unless given); undefined when no filter matches. */
  readonly resolve: (tensorName: string, model?: number, layerIndex?: number, layerCount?: number) => number | undefined
  /** Like `resolve`, but a tensor no filter matches is an error. */
  readonly strict: (tensorName: string, model?: number, layerIndex?: number, layerCount?: number) => Result.Result<number, NoRuleMatches>
  /** The tensors (of the given names) that some model's filters do not match. */
  readonly unmatched: (tensorNames: Iterable<string>) => Array<string>
}

type Compiled =
  | { readonly kind: "single"; readonly value: Single }
  | { readonly kind: "filters"; readonly rules: ReadonlyArray<{ readonly match: Filter.Matcher; readonly values: ReadonlyArray<Single> | Single }> }

/** Checks `value` for `models` models and compiles its filters. @category constructors */
export const compile = (parameter: string, value: ParamValue, models: number): Result.Result<Rule, InvalidRule | PerModelMismatch> => {
  const perModel: Array<ModelValue> = []
  if (Array.isArray(value) && !isFilterList(value)) {
    if (value.length !== models) return Result.fail(new PerModelMismatch({ parameter, expected: models, got: value.length }))
    perModel.push(...(value as ReadonlyArray<ModelValue>))
  } else {
    for (let i = 0; i < models; i++) perModel.push(value as ModelValue)
  }
  const compiled: Array<Compiled> = []
  const cache = new Map<ModelValue, Compiled>()
  for (const v of perModel) {
    const known = cache.get(v)
    if (known !== undefined) {
      compiled.push(known)
      continue
    }
    const c = compileModel(parameter, v, models)
    if (Result.isFailure(c)) return Result.fail(c.failure)
    cache.set(v, c.success)
    compiled.push(c.success)
  }

  const resolve = (tensorName: string, model = 0, layerIndex?: number, layerCount?: number): number | undefined => {
    const c = compiled[model]
    if (c === undefined) return undefined
    const t = Layer.position(layerIndex ?? Layer.layerIndex(tensorName), layerCount ?? 0)
    if (c.kind === "single") return evaluate(c.value, t)
    for (const rule of c.rules) {
      if (rule.match(tensorName)) return evaluate(Array.isArray(rule.values) ? (rule.values as ReadonlyArray<Single>)[model]! : (rule.values as Single), t)
    }
    return undefined
  }
  const strict = (tensorName: string, model = 0, layerIndex?: number, layerCount?: number): Result.Result<number, NoRuleMatches> => {
    const v = resolve(tensorName, model, layerIndex, layerCount)
    return v === undefined ? Result.fail(new NoRuleMatches({ parameter, tensor: tensorName })) : Result.succeed(v)
  }
  const unmatched = (tensorNames: Iterable<string>): Array<string> => {
    const missing: Array<string> = []
    for (const name of tensorNames) {
      if (compiled.some((c) => c.kind === "filters" && !c.rules.some((r) => r.match(name)))) missing.push(name)
    }
    return missing
  }
  return Result.succeed({ parameter, models, resolve, strict, unmatched })
}

const compileModel = (parameter: string, value: ModelValue, models: number): Result.Result<Compiled, InvalidRule | PerModelMismatch> => {
  if (!Array.isArray(value)) return Result.succeed({ kind: "single", value: value as Single })
  const rules: Array<{ match: Filter.Matcher; values: ReadonlyArray<Single> | Single }> = []
  for (const rule of value as FilterList) {
    const match = Filter.compile(rule.filter)
    if (Result.isFailure(match)) return Result.fail(new InvalidRule({ parameter, detail: `filter "${rule.filter}": ${match.failure}` }))
    if (Array.isArray(rule.value) && rule.value.length !== models) {
      return Result.fail(new PerModelMismatch({ parameter, expected: models, got: rule.value.length }))
    }
    rules.push({ match: match.success, values: rule.value })
  }
  return Result.succeed({ kind: "filters", rules })
}

const evaluate = (value: Single, t: number): number => (isGradient(value) ? Layer.interpolate(value.gradient, t) : value)

/**
 * The value of a single-model parameter for one tensor: `resolve(value, name, layerIndex,
 * layerCount)` (an undefined layer index is parsed from the name). Undefined when a filter list matches nothing, or when the value cannot apply to
 * one model (a per-model list of several values, an invalid filter) — use {@link compile} to get
 * those as errors.
 *
 * @category resolution
 */
export const resolve = (value: ParamValue, tensorName: string, layerIndex: number | undefined, layerCount: number): number | undefined => {
  const rule = compile("value", value, 1)
  return Result.isSuccess(rule) ? rule.success.resolve(tensorName, 0, layerIndex, layerCount) : undefined
}
