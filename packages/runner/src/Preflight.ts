/**
 * The preflight of `crucible validate` and `crucible run`: what a pipeline's inputs' headers say,
 * found before any tensor byte is read. The lazy stages run dry, as `crucible plan` runs them — a
 * `load` or `convert` opens its checkpoint and reads its header, a merge composes lazy tensors
 * (checking names, shapes and dtypes), a `save` reports what it would write — and then every kind's
 * `headers` check runs on its input values. Each failure becomes a problem of its stage, at the
 * parameter it is about where that can be told (the `path` whose file is unreadable).
 *
 * What cannot be known yet is skipped quietly: stages that are not lazy (train, evaluate…) and
 * everything that reads their outputs, and stages with `needs:`, which wait for something another
 * stage does (often a file it writes).
 *
 * @since 0.1.0
 */
import { Check, Problem, type Validate } from "@crucible/core"
import { Effect, References } from "effect"
import * as path from "node:path"
import { dryRun, inputValues, type StageOutcome } from "./Executor.ts"

/** @category models */
export interface PreflightOptions {
  /** The folder the pipeline's relative paths resolve against. */
  readonly baseDir: string
}

/**
 * The problems of `pipeline` found from its inputs' headers, unpositioned (each with its stage and
 * a path into the document). Never fails: a stage that cannot be checked is a problem or is skipped.
 *
 * @category checks
 */
export const run = (pipeline: Validate.ResolvedPipeline, options: PreflightOptions): Effect.Effect<ReadonlyArray<Problem.Problem>> =>
  Effect.gen(function* () {
    // Failures come back as problems; a stage's own log lines would only repeat them.
    const outcomes = yield* dryRun(withoutNeeds(pipeline), options.baseDir, "crucible-preflight").pipe(
      Effect.provideService(References.MinimumLogLevel, "None")
    )
    const byId = new Map(outcomes.map((o) => [o.id, o] as const))
    const problems: Array<Problem.Problem> = []
    for (const stage of pipeline.stages) {
      const found = headerProblems(stage, byId)
      problems.push(...found)
      const outcome = byId.get(stage.id)
      // A failed run the header check already explained (a merge of mismatched inputs) is said once.
      if (outcome?.status === "failed" && outcome.error !== undefined && !found.some(Problem.isError)) {
        problems.push(failureProblem(stage, outcome.error, options.baseDir))
      }
    }
    return problems
  })

/**
 * The pipeline with every stage that has `needs:` made not lazy for this dry run, so it and what
 * reads it are skipped: what it waits for has not happened.
 */
const withoutNeeds = (pipeline: Validate.ResolvedPipeline): Validate.ResolvedPipeline => {
  const waits = new Set(pipeline.ir.stages.filter((s) => s.needs.length > 0).map((s) => s.id))
  return {
    ...pipeline,
    stages: pipeline.stages.map((s) => (waits.has(s.id) ? { ...s, kind: { ...s.kind, resources: { ...s.kind.resources, lazy: false } } } : s))
  }
}

/** The kind's `headers` check, when every stage its inputs reference produced a value. */
const headerProblems = (stage: Validate.ResolvedStage, outcomes: ReadonlyMap<string, StageOutcome>): Array<Problem.Problem> => {
  const check = stage.kind.check?.headers
  if (check === undefined) return []
  const refs = Object.values(stage.inputs).flat()
  if (!refs.every((r) => outcomes.get(r)?.status === "succeeded")) return []
  const values = new Map(refs.map((r) => [r, outcomes.get(r)!.value] as const))
  return Check.run(stage.id, stage.kind.kind, "HeaderMismatch", () => check({ id: stage.id, params: stage.params, inputs: inputValues(stage, values) }))
}

/** What a stage's failure in the dry run means for the user, by its tag (the stable code of a stage error). */
const codes: Readonly<Record<string, Problem.ProblemCode>> = {
  IoError: "InputUnreadable",
  FormatError: "InputUnreadable",
  UnsafePickle: "InputUnreadable",
  ExpansionLimit: "InputUnreadable",
  InvalidArgument: "InputUnreadable",
  MergeInputsMismatch: "HeaderMismatch",
  InvalidMergeParams: "InvalidParam",
  InvalidMergeParameter: "InvalidParam",
  InvalidRule: "InvalidParam",
  PerModelMismatch: "InvalidParam"
}

// An IoError names its operation (`<file>: cannot <operation>: …`): open and read are an input's, the others (create, write, overwrite…) an output's.
const codeOf = (error: NonNullable<StageOutcome["error"]>): Problem.ProblemCode | undefined =>
  error.tag === "IoError" && !/: cannot (open|read):/.test(error.message) ? "OutputUnwritable" : codes[error.tag]

const failureProblem = (stage: Validate.ResolvedStage, error: NonNullable<StageOutcome["error"]>, baseDir: string): Problem.Problem => {
  const code = codeOf(error)
  return new Problem.Problem({
    code: code ?? "StageWouldFail",
    // The stage's own tag says more than the generic code when no code fits it.
    message: code === undefined ? `${error.tag}: ${error.message}` : error.message,
    stage: stage.id,
    path: ["stages", stage.id, "with", ...parameterNamedIn(stage, error.message, baseDir)]
  })
}

/**
 * The `with:` parameter a failure is about: the one whose path (as written, or resolved against
 * the pipeline's folder) the message names, the longest if several do; none when no path is named.
 */
const parameterNamedIn = (stage: Validate.ResolvedStage, message: string, baseDir: string): ReadonlyArray<string> => {
  let best: { readonly key: string; readonly length: number } | undefined
  for (const [key, value] of Object.entries(stage.raw)) {
    if (typeof value !== "string" || value.length === 0) continue
    const resolved = path.resolve(baseDir, value)
    const length = message.includes(resolved) ? resolved.length : message.includes(value) ? value.length : 0
    if (length > 0 && (best === undefined || length > best.length)) best = { key, length }
  }
  return best === undefined ? [] : [best.key]
}
