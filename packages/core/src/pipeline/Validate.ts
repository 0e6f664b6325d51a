/**
 * Checks a pipeline IR against a registry of stage kinds and resolves it: every stage's kind is
 * known, its params decode with the kind's Schema, its input references name existing stages
 * whose output port is the one the input expects, the kind's own `params` check passes (a
 * per-model list has one value per referenced model…), and the graph has no cycle. Every problem is
 * collected — a user fixing a file sees them all at once — and the stages that passed, with all
 * they depend on, are kept, so a preflight can read their inputs' headers in the same report.
 *
 * @since 0.1.0
 */
import { Exit, Schema } from "effect"
import { didYouMean } from "../internal/suggest.ts"
import * as Check from "./Check.ts"
import * as Issues from "./Issues.ts"
import type { IrStage, PipelineIR } from "./Ir.ts"
import type { Input } from "./Port.ts"
import { isError, Problem, type ProblemCode } from "./Problem.ts"
import * as Registry from "./Registry.ts"
import type { AnyStageKind } from "./Stage.ts"

/** A stage whose kind, params and inputs are checked. @category models */
export interface ResolvedStage {
  readonly id: string
  readonly kind: AnyStageKind
  /** The `with:` values as written (the encoded params plus input references). */
  readonly raw: Readonly<Record<string, unknown>>
  /** Params decoded by the kind's Schema. */
  readonly params: unknown
  /** For each input port, the ids of the stages it reads (0 or 1 for `one`/`optional`). */
  readonly inputs: Readonly<Record<string, ReadonlyArray<string>>>
  /** Every stage this one waits for: its inputs, then `needs:`, without repeats. */
  readonly dependsOn: ReadonlyArray<string>
}

/** A pipeline that passed every check, stages in file order. @category models */
export interface ResolvedPipeline {
  readonly ir: PipelineIR
  readonly stages: ReadonlyArray<ResolvedStage>
}

type Path = ReadonlyArray<string | number>

const problem = (code: ProblemCode, message: string, path: Path, stage?: string): Problem =>
  new Problem({ code, message, path: [...path], ...(stage === undefined ? {} : { stage }) })

/**
 * The outcome of {@link validate}: `Valid` when no problem is an error (warnings may remain).
 * @category models
 */
export interface Validation {
  readonly _tag: "Valid" | "Invalid"
  /** Every problem found, errors and warnings, unpositioned (paths into the document). */
  readonly problems: ReadonlyArray<Problem>
  /** Every stage when valid; otherwise the stages that passed their checks and depend only on such stages. */
  readonly pipeline: ResolvedPipeline
}

/** Resolves `ir` against `registry`, with every problem found. */
export const validate = (ir: PipelineIR, registry: Registry.Registry): Validation => {
  const problems: Array<Problem> = []
  const ids = new Set(ir.stages.map((s) => s.id))
  const kindOf = new Map<string, AnyStageKind>()
  for (const s of ir.stages) {
    const kind = Registry.get(registry, s.uses)
    if (kind !== undefined) kindOf.set(s.id, kind)
  }
  const stages: Array<ResolvedStage> = []
  for (const s of ir.stages) {
    const kind = kindOf.get(s.id)
    const base: Path = ["stages", s.id]
    if (kind === undefined) {
      problems.push(problem("UnknownStageKind", `unknown stage kind "${s.uses}"${didYouMean(s.uses, registry.kinds.keys())}; known kinds: ${[...registry.kinds.keys()].sort().join(", ")}`, [...base, "uses"], s.id))
      continue
    }
    const before = problems.length
    const inputs = resolveInputs(s, kind, ids, kindOf, problems)
    const params = decodeParams(s, kind, problems)
    // A kind's own check sees decoded params and well-formed references only.
    const paramsCheck = kind.check?.params
    if (paramsCheck !== undefined && problems.length === before) {
      problems.push(...Check.run(s.id, kind.kind, "InvalidParam", () => paramsCheck({ id: s.id, params, inputs })))
    }
    for (const [i, need] of s.needs.entries()) {
      if (!ids.has(need)) problems.push(problem("DanglingReference", `needs "${need}", but there is no such stage${didYouMean(need, ids)}`, [...base, "needs", i], s.id))
    }
    const dependsOn = [...new Set([...Object.values(inputs).flat(), ...s.needs.filter((n) => ids.has(n))])]
    stages.push({ id: s.id, kind, raw: s.with, params, inputs, dependsOn })
  }
  problems.push(...findCycles(stages))
  const errors = problems.filter(isError)
  if (errors.length === 0) return { _tag: "Valid", problems, pipeline: { ir, stages } }
  const checked = passed(stages, new Set(errors.flatMap((p) => (p.stage === undefined ? [] : [p.stage]))))
  const checkedIds = new Set(checked.map((c) => c.id))
  return { _tag: "Invalid", problems, pipeline: { ir: { ...ir, stages: ir.stages.filter((s) => checkedIds.has(s.id)) }, stages: checked } }
}

/**
 * The stages without an error of their own whose dependencies are all such stages, transitively.
 * A cycle's stages all drop out: one of them carries the Cycle problem and each depends on it.
 */
const passed = (stages: ReadonlyArray<ResolvedStage>, failed: ReadonlySet<string>): Array<ResolvedStage> => {
  const kept = new Map(stages.filter((s) => !failed.has(s.id)).map((s) => [s.id, s] as const))
  for (let changed = true; changed;) {
    changed = false
    for (const s of kept.values()) {
      if (s.dependsOn.every((d) => kept.has(d))) continue
      kept.delete(s.id)
      changed = true
    }
  }
  return stages.filter((s) => kept.has(s.id))
}

const resolveInputs = (
  s: IrStage,
  kind: AnyStageKind,
  ids: ReadonlySet<string>,
  kindOf: ReadonlyMap<string, AnyStageKind>,
  problems: Array<Problem>
): Record<string, ReadonlyArray<string>> => {
  const out: Record<string, ReadonlyArray<string>> = {}
  for (const [name, input] of Object.entries(kind.inputs as Record<string, Input>)) {
    const path: Path = ["stages", s.id, "with", name]
    const value = s.with[name]
    if (value === undefined) {
      if (input.arity === "one" || (input.arity === "many" && input.min > 0)) problems.push(problem("MissingInput", `missing input "${name}" (${describeInput(input)}) for ${kind.kind}`, ["stages", s.id, "with"], s.id))
      out[name] = []
      continue
    }
    const refs = input.arity === "many" ? value : [value]
    if (!Array.isArray(refs) || !refs.every((r): r is string => typeof r === "string")) {
      problems.push(problem("InvalidReference", `input "${name}" takes ${input.arity === "many" ? "a list of stage ids" : "a stage id"}, got ${JSON.stringify(value)}`, path, s.id))
      out[name] = []
      continue
    }
    if (input.arity === "many" && refs.length < input.min) {
      problems.push(problem("TooFewInputs", `input "${name}" needs at least ${input.min} stages, got ${refs.length}`, path, s.id))
    }
    refs.forEach((ref, i) => {
      const at = input.arity === "many" ? [...path, i] : path
      if (!ids.has(ref)) {
        problems.push(problem("DanglingReference", `input "${name}" refers to "${ref}", but there is no such stage${didYouMean(ref, ids)}`, at, s.id))
        return
      }
      const source = kindOf.get(ref)
      if (source !== undefined && source.output.name !== input.port.name) {
        problems.push(problem("PortMismatch", `input "${name}" expects ${article(input.port.name)}, but stage "${ref}" (${source.kind}) outputs ${article(source.output.name)}`, at, s.id))
      }
    })
    out[name] = refs
  }
  return out
}

const decodeParams = (s: IrStage, kind: AnyStageKind, problems: Array<Problem>): unknown => {
  const inputNames = new Set(Object.keys(kind.inputs))
  const raw = Object.fromEntries(Object.entries(s.with).filter(([k]) => !inputNames.has(k)))
  const exit = Schema.decodeUnknownExit(kind.params as Schema.Codec<unknown, unknown>)(raw, { errors: "all", onExcessProperty: "error" })
  if (Exit.isSuccess(exit)) return exit.value
  const issues = relevant(Issues.fromCause(exit.cause))
  const known = [...Object.keys(structFields(kind.params)), ...inputNames]
  for (const issue of issues) {
    const path: Path = ["stages", s.id, "with", ...issue.path]
    const key = String(issue.path[0] ?? "")
    if (Issues.isExcess(issue.message) && issue.path.length > 1) {
      problems.push(problem("UnknownParam", `parameter "${issue.path.slice(0, -1).join(".")}" has an unknown key "${String(issue.path.at(-1))}"`, path, s.id))
    } else if (Issues.isExcess(issue.message)) {
      problems.push(problem("UnknownParam", `unknown parameter "${key}" for ${kind.kind}${didYouMean(key, known)}; it takes: ${known.join(", ") || "nothing"}`, path, s.id))
    } else if (Issues.isMissing(issue.message)) {
      problems.push(problem("MissingParam", `missing required parameter "${issue.path.join(".")}" for ${kind.kind}`, ["stages", s.id, "with"], s.id))
    } else {
      problems.push(problem("InvalidParam", `parameter "${issue.path.join(".") || "with"}": ${issue.message}`, path, s.id))
    }
  }
  return undefined
}

/**
 * A value that fits no member of a union (a rule: number, gradient, filter list…) fails in every
 * member: the member it was meant for says what is wrong with it (`density.1.value`: out of
 * range), the others only that it is not theirs (a missing `gradient`, an unknown `filter`). When
 * a parameter has issues of the first kind, those are the ones reported.
 */
const relevant = (issues: ReadonlyArray<Issues.FlatIssue>): ReadonlyArray<Issues.FlatIssue> => {
  const isShape = (i: Issues.FlatIssue) => Issues.isExcess(i.message) || Issues.isMissing(i.message)
  const withValueIssue = new Set(issues.filter((i) => i.path.length > 0 && !isShape(i)).map((i) => i.path[0]))
  return issues.filter((i) => !(isShape(i) && i.path.length > 1 && withValueIssue.has(i.path[0])))
}

const structFields = (schema: unknown): Record<string, unknown> => ((schema as { fields?: Record<string, unknown> }).fields ?? {})

const article = (port: string) => (port.endsWith("s") ? port : /^[aeiou]/.test(port) ? `an ${port}` : `a ${port}`)

const describeInput = (input: Input) =>
  input.arity === "many" ? `a list of at least ${input.min} ${input.port.name} stage ids` : `the id of a stage that outputs ${article(input.port.name)}`

/** Every cycle among the stages (by their dependencies), each reported once, naming its stages. */
const findCycles = (stages: ReadonlyArray<Pick<ResolvedStage, "id" | "dependsOn">>): Array<Problem> => {
  const edges = new Map(stages.map((s) => [s.id, s.dependsOn] as const))
  const state = new Map<string, "visiting" | "done">()
  const stack: Array<string> = []
  const problems: Array<Problem> = []
  const visit = (id: string) => {
    state.set(id, "visiting")
    stack.push(id)
    for (const next of edges.get(id) ?? []) {
      if (!edges.has(next)) continue
      if (state.get(next) === "visiting") {
        const cycle = [...stack.slice(stack.indexOf(next)), next]
        problems.push(problem("Cycle", `the pipeline has a cycle: ${cycle.join(" → ")}; a stage cannot depend on its own output`, ["stages", next], next))
      } else if (state.get(next) === undefined) visit(next)
    }
    stack.pop()
    state.set(id, "done")
  }
  for (const s of stages) if (state.get(s.id) === undefined) visit(s.id)
  return problems
}
