/**
 * A merge method's checks, shared by `crucible validate` and the method's own run, so both say
 * the same thing:
 *
 * - rule parameters compiled against the number of models — every wrong per-model list at once;
 * - the inputs' headers lined up (names, shapes, dtypes), each mismatch naming the input that
 *   differs, so validation points at that input's reference;
 * - filters that match no tensor (warnings, with the nearest tensor names), tensors no filter
 *   matches under `unmatched: error`, and the method's own per-tensor check (a kernel's `plan`,
 *   which needs parameters and shapes only) on every tensor it would merge.
 *
 * @since 0.1.0
 */
import { type Check, DType, type Model, TensorRef } from "@crucible/core"
import { Result } from "effect"
import type { MergeKernelError } from "./kernels/KernelError.ts"
import type { TensorParams } from "./Method.ts"
import * as Layer from "./rules/Layer.ts"
import type { ParamValue } from "./rules/ParamValue.ts"
import * as Resolve from "./rules/Resolve.ts"
import * as Unmatched from "./rules/Unmatched.ts"

/** What a method's checks need to know of it. @category models */
export interface Checked {
  readonly kind: string
  readonly maxModels?: number | undefined
  readonly rules: ReadonlyArray<string>
  readonly statistics?: { readonly description: string } | undefined
  /** The method's own check of its params against the inputs' references (e.g. SLERP's base among its models). */
  readonly checkParams?: ((context: ReferencesContext) => ReadonlyArray<Check.Issue>) | undefined
  /** The method's own check of one tensor's resolved params, from its header (a kernel's `plan`). */
  readonly checkTensor?: ((tensor: TensorParams, params: unknown) => Result.Result<unknown, MergeKernelError>) | undefined
}

/** The params and, for each input, the stage ids it references. @category models */
export interface ReferencesContext {
  readonly params: Readonly<Record<string, unknown>>
  readonly inputs: { readonly base?: ReadonlyArray<string>; readonly models: ReadonlyArray<string>; readonly statistics?: ReadonlyArray<string> }
}

/** A rule parameter that does not fit the model count. @category models */
export interface RuleProblem {
  readonly parameter: string
  readonly message: string
}

/** The rule parameters given in `params`, compiled for `models` models, and every one that does not compile. @category checks */
export const compileRules = (
  params: Readonly<Record<string, unknown>>,
  rules: ReadonlyArray<string>,
  models: number
): { readonly rules: Map<string, Resolve.Rule>; readonly problems: Array<RuleProblem> } => {
  const compiled = new Map<string, Resolve.Rule>()
  const problems: Array<RuleProblem> = []
  for (const name of rules) {
    if (params[name] === undefined) continue
    const rule = Resolve.compile(name, params[name] as ParamValue, models)
    if (Result.isSuccess(rule)) compiled.set(name, rule.success)
    else problems.push({ parameter: name, message: rule.failure.message })
  }
  return { rules: compiled, problems }
}

/** A way the inputs' headers disagree; `input` indexes the inputs as given to {@link plan} (the base first). @category models */
export interface Mismatch {
  readonly message: string
  readonly input: number
}

/** The tensor names to produce, and every way the inputs' headers disagree. @category checks */
export const plan = (models: ReadonlyArray<Model.Model>, onMissing: string): { readonly names: Array<string>; readonly problems: Array<Mismatch> } => {
  const problems: Array<Mismatch> = []
  const reference = models[0]!
  const names = [...reference.tensors.keys()]
  const seen = new Set(names)
  for (const m of models.slice(1)) for (const name of m.tensors.keys()) if (!seen.has(name)) (seen.add(name), names.push(name))
  const kept: Array<string> = []
  for (const name of names) {
    const present = models.map((m) => m.tensors.get(name))
    const missingIn = models.flatMap((_, i) => (present[i] === undefined ? [i] : []))
    if (missingIn.length > 0) {
      if (onMissing === "error") problems.push({ input: missingIn[0]!, message: `"${name}" is missing in ${missingIn.map((i) => models[i]!.source).join(", ")} (on_missing: skip or base to allow it)` })
      if (onMissing === "skip") continue
      if (onMissing === "base" && present[0] === undefined) {
        problems.push({ input: 0, message: `"${name}" is missing in the base ${models[0]!.source}, so on_missing: base cannot copy it` })
      }
    }
    const firstIndex = present.findIndex((t) => t !== undefined)
    const first = present[firstIndex]!
    for (const [i, t] of present.entries()) {
      if (t === undefined) continue
      if (t.shape.length !== first.shape.length || t.shape.some((d, k) => d !== first.shape[k])) {
        problems.push({ input: i, message: `"${name}" has shape ${TensorRef.formatShape(first.shape)} in ${models[firstIndex]!.source} but ${TensorRef.formatShape(t.shape)} in ${models[i]!.source}` })
      }
      if (t.dtype !== first.dtype) problems.push({ input: i, message: `"${name}" is ${first.dtype} in ${models[firstIndex]!.source} but ${t.dtype} in ${models[i]!.source}` })
    }
    kept.push(name)
  }
  return { names: kept, problems }
}

/** The `params` check of a method: rules against the model count, the model and statistics counts, then the method's own. @category checks */
export const checkParams = (method: Checked, context: ReferencesContext): Array<Check.Issue> => {
  const models = context.inputs.models.length
  const issues: Array<Check.Issue> = compileRules(context.params, method.rules, models).problems.map((p) => ({ path: [p.parameter], message: p.message }))
  return [...issues, ...checkCounts(method, models, context.inputs.statistics?.length), ...(method.checkParams?.(context) ?? [])]
}

/**
 * The model count against the method's most, and the statistics count (when given) against the
 * model count; the method's own run checks its inputs with it too. @category checks
 */
export const checkCounts = (method: Pick<Checked, "kind" | "maxModels" | "statistics">, models: number, statistics: number | undefined): Array<Check.Issue> => {
  const issues: Array<Check.Issue> = []
  if (method.maxModels !== undefined && models > method.maxModels) {
    issues.push({ path: ["models"], message: `${method.kind} takes at most ${method.maxModels} models, got ${models}` })
  }
  if (method.statistics !== undefined && statistics !== undefined && statistics !== models) {
    issues.push({ path: ["statistics"], message: `${method.kind} needs one statistics model per merged model (${models}), got ${statistics}: ${method.statistics.description}` })
  }
  return issues
}

/** The inputs of a method as the `headers` check sees them. @category models */
export interface HeaderInputs {
  readonly base?: Model.Model | undefined
  readonly models: ReadonlyArray<Model.Model>
}

// A list of tensor names in a message: the first few, then how many more.
const listed = (names: ReadonlyArray<string>, shown = 8) =>
  `${names.slice(0, shown).map((n) => `"${n}"`).join(", ")}${names.length > shown ? ` and ${names.length - shown} more` : ""}`

/** The `headers` check of a method: every header mismatch at the input that differs, filters, and each tensor's params. @category checks */
export const checkHeaders = (method: Checked, params: Readonly<Record<string, unknown>>, inputs: HeaderInputs): Array<Check.Issue> => {
  const { base, models } = inputs
  const compiled = compileRules(params, method.rules, models.length)
  // Rules that do not fit the model count were reported by the params check.
  if (compiled.problems.length > 0 || models.length === 0) return []
  const all = base === undefined ? models : [base, ...models]
  const inputPath = (i: number): ReadonlyArray<string | number> => (base === undefined ? ["models", i] : i === 0 ? ["base"] : ["models", i - 1])
  const { names, problems } = plan(all, params.on_missing as string)
  const issues: Array<Check.Issue> = problems.map((p) => ({ path: inputPath(p.input), message: p.message, code: "HeaderMismatch" }))
  if (issues.length > 0) return issues
  for (const [parameter, rule] of compiled.rules) {
    for (const filter of Unmatched.unmatched(Unmatched.filtersOf(params[parameter] as ParamValue), names)) {
      const near = Unmatched.nearest(filter.pattern, names)
      issues.push({
        path: [parameter, ...filter.path],
        code: "UnmatchedFilter",
        severity: "warning",
        message: `filter "${filter.pattern}" of "${parameter}" matches none of the ${names.length} tensors${near.length === 0 ? "" : `; nearest: ${near.join(", ")}`}`
      })
    }
    const uncovered = rule.unmatched(names)
    if (params.unmatched === "error" && uncovered.length > 0) {
      issues.push({ path: [parameter], code: "HeaderMismatch", message: `${uncovered.length} tensor${uncovered.length === 1 ? "" : "s"} match no filter of "${parameter}" (unmatched: error): ${listed(uncovered)}; add a catch-all { filter: "*", value: … } or set unmatched: base` })
    }
  }
  return [...issues, ...checkTensors(method, params, all, names, compiled.rules, models.length)]
}

/** The method's per-tensor check on every tensor it would merge; one issue per parameter, naming the first tensor and how many fail. */
const checkTensors = (
  method: Checked,
  params: Readonly<Record<string, unknown>>,
  all: ReadonlyArray<Model.Model>,
  names: ReadonlyArray<string>,
  rules: ReadonlyMap<string, Resolve.Rule>,
  count: number
): Array<Check.Issue> => {
  const check = method.checkTensor
  if (check === undefined) return []
  const layerCount = Layer.layerCount(names)
  const failures = new Map<string, { readonly first: MergeKernelError; tensors: number }>()
  for (const name of names) {
    const like = all.map((m) => m.tensors.get(name)).find((t) => t !== undefined)!
    // Tensors that are copied rather than merged: integers and bools, and those some input lacks.
    if (!DType.isFloat(like.dtype) || all.some((m) => !m.tensors.has(name))) continue
    const value = (parameter: string, model = 0) => rules.get(parameter)?.resolve(name, model, Layer.layerIndex(name), layerCount)
    const result = check({ name, shape: like.shape, models: count, value, perModel: (parameter, fallback) => Array.from({ length: count }, (_, i) => value(parameter, i) ?? fallback) }, params)
    if (Result.isSuccess(result)) continue
    const key = "parameter" in result.failure ? result.failure.parameter : ""
    const known = failures.get(key)
    if (known === undefined) failures.set(key, { first: result.failure, tensors: 1 })
    else known.tensors++
  }
  return [...failures].map(([parameter, { first, tensors }]) => ({
    path: parameter in params ? [parameter] : [],
    code: "InvalidParam" as const,
    message: `${first.message}${tensors > 1 ? ` (and ${tensors - 1} more tensor${tensors === 2 ? "" : "s"})` : ""}`
  }))
}
