/**
 * Pipeline files in YAML: parsing with source positions, decoding with Effect Schema, and
 * validation against a registry, with every problem mapped back to its `line:col` and a code
 * frame. A stage that is malformed does not stop the others from being checked, nor does a
 * top level that is (a missing `name`, a wrong `version`): its stages are still decoded and checked.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Document, type Node, type Pair } from "yaml"
import * as Issues from "./Issues.ts"
import { FORMAT_VERSION, type IrStage, type PipelineIR, StageId, StageNode } from "./Ir.ts"
import { PipelineInvalid, PipelineUnreadable } from "./PipelineError.ts"
import { codeFrame, isError, type Position, Problem, type ProblemCode, sortByPosition } from "./Problem.ts"
import type * as Registry from "./Registry.ts"
import { type ResolvedPipeline, validate } from "./Validate.ts"

type Path = ReadonlyArray<string | number>

/** A parsed pipeline file: its IR (when its shape allowed one), problems, and a position lookup. */
export interface Parsed {
  readonly ir: PipelineIR | undefined
  readonly problems: ReadonlyArray<Problem>
  readonly locate: (path: Path, options?: { readonly key?: boolean }) => Position | undefined
}

const TopLevel = Schema.Struct({
  version: Schema.Literal(FORMAT_VERSION),
  name: Schema.String,
  description: Schema.optional(Schema.String),
  kinds: Schema.optional(Schema.Array(Schema.String)),
  stages: Schema.Record(Schema.String, Schema.Unknown)
})

/** Parses pipeline YAML into IR; structural problems are returned, not thrown. */
export const parse = (text: string): Parsed => {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const locate = makeLocator(doc, lineCounter)
  const problems: Array<Problem> = []
  const positioned = (code: ProblemCode, message: string, at: Path, stage?: string, key = false) =>
    withPosition(new Problem({ code, message, path: [...at], ...(stage === undefined ? {} : { stage }) }), locate(at, { key }), text)

  const duplicates = duplicateStageIds(doc)
  for (const error of doc.errors) {
    if (error.code === "DUPLICATE_KEY") {
      const dup = duplicates.find((d) => d.offset === error.pos[0])
      const pos = lineCounter.linePos(error.pos[0])
      const p = dup === undefined
        ? new Problem({ code: "DuplicateKey", message: error.message.split("\n")[0] ?? "duplicate key", path: [] })
        : new Problem({ code: "DuplicateId", message: `stage id "${dup.id}" is used twice; stage ids must be unique`, path: ["stages", dup.id], stage: dup.id })
      problems.push(withPosition(p, pos, text))
    } else {
      const pos = lineCounter.linePos(error.pos[0])
      problems.push(withPosition(new Problem({ code: "YamlSyntax", message: error.message.split("\n")[0] ?? "invalid YAML", path: [] }), pos, text))
    }
  }
  if (doc.errors.some((e) => e.code !== "DUPLICATE_KEY")) return { ir: undefined, problems, locate }

  const raw: unknown = doc.toJS({ maxAliasCount: 100 })
  const decoded = Schema.decodeUnknownExit(TopLevel)(raw, { errors: "all", onExcessProperty: "error" })
  if (Exit.isFailure(decoded)) {
    for (const issue of issuesOf(decoded.cause)) problems.push(positioned(issueCode(issue.message, "InvalidPipeline"), issueMessage(issue), issue.path, undefined, isExcess(issue.message)))
  }
  // A wrong top level is reported above; its stages are still checked, so no problem hides another.
  const top = Exit.isSuccess(decoded) ? decoded.value : lenientTopLevel(raw)
  if (top === undefined) return { ir: undefined, problems, locate }
  const stages: Array<IrStage> = []
  for (const [id, value] of Object.entries(top.stages)) {
    const idExit = Schema.decodeUnknownExit(StageId)(id)
    if (Exit.isFailure(idExit)) {
      for (const issue of issuesOf(idExit.cause)) problems.push(positioned("InvalidPipeline", issue.message, ["stages", id], id, true))
      continue
    }
    const exit = Schema.decodeUnknownExit(StageNode)(value, { errors: "all", onExcessProperty: "error" })
    if (Exit.isFailure(exit)) {
      for (const issue of issuesOf(exit.cause)) {
        const at: Path = ["stages", id, ...issue.path]
        problems.push(positioned(issueCode(issue.message, "InvalidPipeline"), `${issueMessage(issue)}${isExcess(issue.message) ? " (a stage takes uses, with, needs, description)" : ""}`, at, id, isExcess(issue.message)))
      }
      continue
    }
    stages.push({ id, uses: exit.value.uses, with: exit.value.with ?? {}, needs: exit.value.needs ?? [] })
  }
  const ir: PipelineIR = {
    version: FORMAT_VERSION,
    name: top.name,
    ...(top.description === undefined ? {} : { description: top.description }),
    ...(top.kinds === undefined ? {} : { kinds: top.kinds }),
    stages
  }
  return { ir, problems, locate }
}

/** What can be used of a top level that failed to decode: its stages map (if it is one), and the rest where well-typed. */
const lenientTopLevel = (raw: unknown): typeof TopLevel.Type | undefined => {
  if (!isRecord(raw) || !isRecord(raw.stages)) return undefined
  const kinds = Array.isArray(raw.kinds) && raw.kinds.every((k) => typeof k === "string") ? (raw.kinds as ReadonlyArray<string>) : undefined
  return {
    version: FORMAT_VERSION,
    name: typeof raw.name === "string" ? raw.name : "",
    ...(typeof raw.description === "string" ? { description: raw.description } : {}),
    ...(kinds === undefined ? {} : { kinds }),
    stages: raw.stages
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value)

/** Pipeline YAML checked against a registry: every problem, and what a preflight can check further. @category models */
export interface Checked {
  /** Every problem, errors and warnings, positioned and in document order. */
  readonly problems: ReadonlyArray<Problem>
  /**
   * Every stage when no problem is an error; otherwise the stages that passed their own checks and
   * depend only on such stages. Undefined when the text holds no pipeline to check.
   */
  readonly pipeline: ResolvedPipeline | undefined
  /** Gives a problem found later (by a preflight) its position and code frame, from its path. */
  readonly position: (problem: Problem) => Problem
}

/**
 * Parses and validates pipeline YAML against a registry, failing on nothing. `found` are problems
 * the caller found on its own (a `kinds:` module that failed to load): they are positioned by
 * their path and reported with the others.
 */
export const check = (text: string, registry: Registry.Registry, found: ReadonlyArray<Problem> = []): Checked => {
  const parsed = parse(text)
  // An unknown key is shown at the key itself, everything else at its value.
  const position = (p: Problem) => withPosition(p, parsed.locate(p.path, { key: p.code === "UnknownParam" || p.code === "UnknownKey" }), text)
  const problems = [...parsed.problems, ...found.map(position)]
  if (parsed.ir === undefined) return { problems: sortByPosition(problems), pipeline: undefined, position }
  const result = validate(parsed.ir, registry)
  problems.push(...result.problems.map(position))
  return { problems: sortByPosition(problems), pipeline: result.pipeline, position }
}

/**
 * Parses and validates pipeline YAML against a registry; fails with every problem when one is an
 * error. Warnings of a valid pipeline are not returned: {@link check} gives them.
 */
export const decode = (
  text: string,
  registry: Registry.Registry,
  file?: string,
  found: ReadonlyArray<Problem> = []
): Effect.Effect<ResolvedPipeline, PipelineInvalid> => {
  const checked = check(text, registry, found)
  if (checked.pipeline === undefined || checked.problems.some(isError)) {
    return Effect.fail(new PipelineInvalid({ ...(file === undefined ? {} : { file }), problems: checked.problems }))
  }
  return Effect.succeed(checked.pipeline)
}

/** A pipeline loaded from a file, with the folder its relative paths resolve against. */
export interface LoadedPipeline {
  readonly file: string
  readonly baseDir: string
  readonly text: string
  readonly pipeline: ResolvedPipeline
}

/** Reads, parses and validates a pipeline file. */
export const load = (file: string, registry: Registry.Registry): Effect.Effect<LoadedPipeline, PipelineInvalid | PipelineUnreadable> =>
  Effect.gen(function* () {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (e) => new PipelineUnreadable({ file, detail: (e as Error).message })
    })
    const pipeline = yield* decode(text, registry, file)
    return { file, baseDir: path.dirname(path.resolve(file)), text, pipeline }
  })

// ---------------------------------------------------------------------------------------------

const withPosition = (p: Problem, position: Position | undefined, text: string): Problem =>
  position === undefined ? p : new Problem({ ...p, position, frame: codeFrame(text, position) })

const { fromCause: issuesOf, isExcess } = Issues

const issueCode = (message: string, otherwise: ProblemCode): ProblemCode => (isExcess(message) ? "UnknownKey" : otherwise)

const issueMessage = (issue: Issues.FlatIssue): string => {
  const where = issue.path.length === 0 ? "the pipeline" : `"${issue.path.join(".")}"`
  if (isExcess(issue.message)) return `unknown key "${String(issue.path[issue.path.length - 1])}"`
  if (Issues.isMissing(issue.message)) return `missing required key ${where}`
  return `${where}: ${issue.message}`
}

/** Finds the node at `path`, or the nearest ancestor that exists; with `key`, the key of the last step. */
const makeLocator = (doc: Document, lineCounter: LineCounter) => (at: Path, options: { readonly key?: boolean } = {}): Position | undefined => {
  for (let n = at.length; n >= 0; n--) {
    const prefix = at.slice(0, n)
    if (options.key === true && n === at.length && n > 0) {
      const parent = n === 1 ? doc.contents : doc.getIn(prefix.slice(0, -1), true)
      const pair = findPair(parent, prefix[prefix.length - 1]!)
      if (pair !== undefined && isNode(pair.key) && pair.key.range) return lineCounter.linePos(pair.key.range[0])
    }
    const node = n === 0 ? doc.contents : doc.getIn(prefix, true)
    if (isNode(node) && node.range) return lineCounter.linePos(node.range[0])
  }
  return undefined
}

const findPair = (parent: unknown, key: string | number): Pair | undefined => {
  if (!isMap(parent)) return undefined
  return parent.items.find((item): item is Pair => isPair(item) && isScalar(item.key) && String(item.key.value) === String(key))
}

/** The second and later occurrences of a stage id under `stages:`, by the offset of their key. */
const duplicateStageIds = (doc: Document): ReadonlyArray<{ readonly id: string; readonly offset: number }> => {
  const stages = isMap(doc.contents) ? findPair(doc.contents, "stages")?.value : undefined
  if (!isMap(stages)) return []
  const seen = new Set<string>()
  const out: Array<{ id: string; offset: number }> = []
  for (const item of stages.items) {
    if (!isPair(item) || !isScalar(item.key)) continue
    const id = String(item.key.value)
    if (seen.has(id)) out.push({ id, offset: (item.key as Node).range?.[0] ?? 0 })
    seen.add(id)
  }
  return out
}
