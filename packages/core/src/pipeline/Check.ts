/**
 * A stage kind's own checks, declared beside its params Schema (`Stage.define({ …, check })`), so
 * a user's kind is checked exactly like a built-in one. The Schema says what each value may be on
 * its own (types, ranges); a check says what only the pipeline around the stage decides:
 *
 * - `params` runs during validation, before any file is opened: it sees the decoded params and the
 *   stage ids each input references (a per-model list needs one value per referenced model).
 * - `headers` runs in the preflight of `crucible validate` and `crucible run`: it sees the input
 *   values the lazy stages produced from headers alone — models whose tensors' names, shapes and
 *   dtypes are known and whose data is never read (the check is synchronous, so it cannot read).
 *
 * Each returns issues at a path inside the stage's `with:`, which the validator turns into
 * problems with `file:line:col` and a code frame.
 *
 * ```ts
 * check: {
 *   params: ({ params, inputs }) =>
 *     params.weights !== undefined && params.weights.length !== inputs.models.length
 *       ? [{ path: ["weights"], message: `${params.weights.length} weights for ${inputs.models.length} models` }]
 *       : []
 * }
 * ```
 *
 * @since 0.1.0
 */
import type { Input, InputValue } from "./Port.ts"
import { Problem, type ProblemCode, type Severity } from "./Problem.ts"

/** A problem a check found. @category models */
export interface Issue {
  /** Where, inside the stage's `with:`: `["weights"]`, `["models", 1]`, `["density", 0, "filter"]`. */
  readonly path: ReadonlyArray<string | number>
  /** What is wrong and what to do about it. */
  readonly message: string
  /** Default: `InvalidParam` from `params`, `HeaderMismatch` from `headers`. */
  readonly code?: ProblemCode
  /** Default: `error`. A warning is printed and does not stop the pipeline. */
  readonly severity?: Severity
}

/** What a `params` check sees. @category models */
export interface ParamsContext<Params, Inputs extends Record<string, Input>> {
  readonly id: string
  readonly params: Params
  /** For each input, the ids of the stages it references, in order (empty when not given). */
  readonly inputs: { readonly [K in keyof Inputs]: ReadonlyArray<string> }
}

/** What a `headers` check sees. @category models */
export interface HeadersContext<Params, Inputs extends Record<string, Input>> {
  readonly id: string
  readonly params: Params
  /** The input values as `run` would receive them; models carry headers only (their tensors are never read here). */
  readonly inputs: { readonly [K in keyof Inputs]: InputValue<Inputs[K]> }
}

/** The checks a kind declares. @category models */
export interface Checks<Params, Inputs extends Record<string, Input>> {
  readonly params?: ((context: ParamsContext<Params, Inputs>) => ReadonlyArray<Issue>) | undefined
  readonly headers?: ((context: HeadersContext<Params, Inputs>) => ReadonlyArray<Issue>) | undefined
}

/** The issues of stage `stage` as problems, their paths made document paths. */
const toProblems = (stage: string, issues: ReadonlyArray<Issue>, code: ProblemCode): Array<Problem> =>
  issues.map((issue) => new Problem({
    code: issue.code ?? code,
    message: issue.message,
    stage,
    path: ["stages", stage, "with", ...issue.path],
    ...(issue.severity === undefined || issue.severity === "error" ? {} : { severity: issue.severity })
  }))

/**
 * Runs one of a kind's checks; a check that throws is a bug in the kind, reported as a problem of
 * the stage (naming the kind) rather than a crash that would hide every other problem.
 *
 * @category constructors
 */
export const run = (stage: string, kind: string, code: ProblemCode, check: () => ReadonlyArray<Issue>): Array<Problem> => {
  try {
    return toProblems(stage, check(), code)
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause)
    return [new Problem({ code: "KindModule", message: `the check of kind "${kind}" threw (a bug in the kind): ${detail}`, stage, path: ["stages", stage, "uses"] })]
  }
}
