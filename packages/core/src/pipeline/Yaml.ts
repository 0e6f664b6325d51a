/**
 * Pipeline files in YAML: parsing with source positions, decoding with Effect Schema, and
 * validation against a registry, with every problem mapped back to its `line:col` and a code
 * frame. A stage that is malformed does not stop the others from being checked.
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
import { codeFrame, type Position, Problem, type ProblemCode } from "./Problem.ts"
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
  const top = Schema.decodeUnknownExit(TopLevel)(raw, { errors: "all", onExcessProperty: "error" })
  if (Exit.isFailure(top)) {
    for (const issue of issuesOf(top.cause)) problems.push(positioned(issueCode(issue.message, "InvalidPipeline"), issueMessage(issue), issue.path, undefined, isExcess(issue.message)))
    return { ir: undefined, problems, locate }
  }
  const stages: Array<IrStage> = []
  for (const [id, value] of Object.entries(top.value.stages)) {
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
    name: top.value.name,
    ...(top.value.description === undefined ? {} : { description: top.value.description }),
    ...(top.value.kinds === undefined ? {} : { kinds: top.value.kinds }),
    stages
  }
  return { ir, problems, locate }
}

/**
 * Parses and validates pipeline YAML against a registry. `found` are problems the caller found
 * on its own (a `kinds:` module that failed to load): they are positioned by their path and
 * reported with the others.
 */
export const decode = (
  text: string,
  registry: Registry.Registry,
  file?: string,
  found: ReadonlyArray<Problem> = []
): Effect.Effect<ResolvedPipeline, PipelineInvalid> => {
  const parsed = parse(text)
  const problems = [...parsed.problems, ...found.map((p) => withPosition(p, parsed.locate(p.path), text))]
  let resolved: ResolvedPipeline | undefined
  if (parsed.ir !== undefined) {
    const result = validate(parsed.ir, registry)
    if (result._tag === "Valid") resolved = result.pipeline
    else for (const p of result.problems) problems.push(withPosition(p, parsed.locate(p.path, { key: p.code === "UnknownParam" }), text))
  }
  if (problems.length > 0 || resolved === undefined) {
    return Effect.fail(new PipelineInvalid({ ...(file === undefined ? {} : { file }), problems: sortByPosition(problems) }))
  }
  return Effect.succeed(resolved)
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

const sortByPosition = (problems: ReadonlyArray<Problem>): Array<Problem> =>
  [...problems].sort((a, b) => (a.position?.line ?? 0) - (b.position?.line ?? 0) || (a.position?.col ?? 0) - (b.position?.col ?? 0))

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
