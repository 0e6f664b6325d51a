/**
 * Checks a pipeline IR against a registry of stage kinds and resolves it: every stage's kind is
 * known, its params decode with the kind's Schema, its input references name existing stages
 * whose output port is the one the input expects, and the graph has no cycle. Every problem is
 * collected — a user fixing a file sees them all at once.
 *
 * @since 0.1.0
 */
import { Exit, Schema } from "effect"
import { didYouMean } from "../internal/suggest.ts"
import * as Issues from "./Issues.ts"
import type { IrStage, PipelineIR } from "./Ir.ts"
import type { Input } from "./Port.ts"
import { Problem, type ProblemCode } from "./Problem.ts"
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

/** Resolves `ir` against `registry`, or returns every problem found. */
export const validate = (
  ir: PipelineIR,
  registry: Registry.Registry
): { readonly _tag: "Valid"; readonly pipeline: ResolvedPipeline } | { readonly _tag: "Invalid"; readonly problems: ReadonlyArray<Problem> } => {
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
    const inputs = resolveInputs(s, kind, ids, kindOf, problems)
    const params = decodeParams(s, kind, problems)
    for (const [i, need] of s.needs.entries()) {
      if (!ids.has(need)) problems.push(problem("DanglingReference", `needs "${need}", but there is no such stage${didYouMean(need, ids)}`, [...base, "needs", i], s.id))
    }
    const dependsOn = [...new Set([...Object.values(inputs).flat(), ...s.needs.filter((n) => ids.has(n))])]
    stages.push({ id: s.id, kind, raw: s.with, params, inputs, dependsOn })
  }
  problems.push(...findCycles(stages))
  return problems.length > 0 ? { _tag: "Invalid", problems } : { _tag: "Valid", pipeline: { ir, stages } }
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
  const issues = Issues.fromCause(exit.cause)
  const known = [...Object.keys(structFields(kind.params)), ...inputNames]
  for (const issue of issues) {
    const path: Path = ["stages", s.id, "with", ...issue.path]
    const key = String(issue.path[0] ?? "")
    if (Issues.isExcess(issue.message)) {
      problems.push(problem("UnknownParam", `unknown parameter "${key}" for ${kind.kind}${didYouMean(key, known)}; it takes: ${known.join(", ") || "nothing"}`, path, s.id))
    } else if (Issues.isMissing(issue.message)) {
      problems.push(problem("MissingParam", `missing required parameter "${issue.path.join(".")}" for ${kind.kind}`, ["stages", s.id, "with"], s.id))
    } else {
      problems.push(problem("InvalidParam", `parameter "${issue.path.join(".") || "with"}": ${issue.message}`, path, s.id))
    }
  }
  return undefined
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
