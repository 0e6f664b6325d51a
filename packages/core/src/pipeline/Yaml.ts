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
import { Composer, isMap, isNode, isPair, isScalar, isSeq, LineCounter, Parser, type CST, type Document, type Pair, type YAMLMap, YAMLParseError } from "yaml"
import * as Guards from "../internal/yamlGuards.ts"
import * as Issues from "./Issues.ts"
import * as Limits from "./Limits.ts"
import { FORMAT_VERSION, type IrStage, type PipelineIR, StageId, StageNode } from "./Ir.ts"
import { PipelineInvalid, PipelineUnreadable } from "./PipelineError.ts"
import { framer, isError, type Position, Problem, type ProblemCode, sortByPosition } from "./Problem.ts"
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

/**
 * Parses pipeline YAML into IR; structural problems are returned, not thrown. Linear in the text,
 * and bounded by `limits` (each exceeded is a `LimitExceeded` problem at its position), checked
 * before the work they guard.
 */
export const parse = (text: string, limits: Limits.Limits = Limits.defaults): Parsed => {
  try {
    return parseBounded(text, limits)
  } catch (e) {
    // A guard missed a case: still a problem, never a crash.
    const p = new Problem({ code: "LimitExceeded", message: `the pipeline could not be parsed: ${e instanceof Error ? e.message : String(e)}; simplify the file`, path: [] })
    return { ir: undefined, problems: [withPosition(p, { line: 1, col: 1 }, framer(text))], locate: () => undefined }
  }
}

const parseBounded = (text: string, limits: Limits.Limits): Parsed => {
  const frames = framer(text)
  const lineCounter = new LineCounter()
  const problems: Array<Problem> = []
  const violation = (v: Guards.Violation, locate: Parsed["locate"], linePos: (offset: number) => Position): Parsed => {
    const raise = v.limit === undefined ? "" : `; ${Limits.howToRaise(v.limit, v.limit === "depth" ? undefined : v.found)}`
    problems.push(withPosition(new Problem({ code: v.code, message: `${v.message}${raise}`, path: [] }), linePos(v.offset), frames))
    return { ir: undefined, problems, locate }
  }
  const none = () => undefined
  const bytes = Buffer.byteLength(text, "utf8")
  if (bytes > limits.bytes) {
    return violation({ code: "LimitExceeded", limit: "bytes", found: bytes, offset: 0, message: `the file is ${bytes} bytes; the limit is ${limits.bytes}` }, none, () => ({ line: 1, col: 1 }))
  }
  const early = Guards.scanText(text, limits) ?? Guards.scanStages(text, limits)
  if (early !== undefined) return violation(early, none, (offset) => linePosOf(text, offset))
  const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(text))
  const deep = Guards.scanTokens(tokens, limits)
  if (deep !== undefined) return violation(deep, none, (offset) => lineCounter.linePos(offset))
  const doc = firstDocument(tokens, text)
  const locate = makeLocator(doc, lineCounter)
  const positioned = (code: ProblemCode, message: string, at: Path, stage?: string, key = false) =>
    withPosition(new Problem({ code, message, path: [...at], ...(stage === undefined ? {} : { stage }) }), locate(at, { key }), frames)

  for (const error of doc.errors) {
    const pos = lineCounter.linePos(error.pos[0])
    problems.push(withPosition(new Problem({ code: "YamlSyntax", message: error.message.split("\n")[0] ?? "invalid YAML", path: [] }), pos, frames))
  }
  if (doc.errors.length > 0) return { ir: undefined, problems, locate }
  const scanned = Guards.scanDocument(doc, limits)
  for (const dup of scanned.duplicates) {
    const p = dup.stage
      ? new Problem({ code: "DuplicateId", message: `stage id "${dup.key}" is used twice; stage ids must be unique`, path: ["stages", dup.key], stage: dup.key })
      : new Problem({ code: "DuplicateKey", message: `Map keys must be unique ("${dup.key}" is used twice)`, path: [] })
    problems.push(withPosition(p, lineCounter.linePos(dup.offset), frames))
  }
  if (scanned.violations.length > 0) {
    for (const v of scanned.violations) violation(v, locate, (offset) => lineCounter.linePos(offset))
    return { ir: undefined, problems, locate }
  }

  // Aliases are bounded above (count and expansion), so yaml's own alias check is off.
  const raw: unknown = doc.toJS({ maxAliasCount: -1 })
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
  /** The position of a path in the text (with `key`, of its last key), as {@link Parsed} has it. */
  readonly locate: Parsed["locate"]
}

/**
 * Parses and validates pipeline YAML against a registry, failing on nothing. `found` are problems
 * the caller found on its own (a `kinds:` module that failed to load): they are positioned by
 * their path and reported with the others.
 */
export const check = (
  text: string,
  registry: Registry.Registry,
  found: ReadonlyArray<Problem> = [],
  limits: Limits.Limits = Limits.defaults,
  parsed: Parsed = parse(text, limits)
): Checked => {
  // An unknown key is shown at the key itself, everything else at its value.
  const frames = framer(text)
  const position = (p: Problem) => withPosition(p, parsed.locate(p.path, { key: p.code === "UnknownParam" || p.code === "UnknownKey" }), frames)
  const problems = [...parsed.problems, ...found.map(position)]
  if (parsed.ir === undefined) return { problems: sortByPosition(problems), pipeline: undefined, position, locate: parsed.locate }
  const result = validate(parsed.ir, registry)
  problems.push(...result.problems.map(position))
  return { problems: sortByPosition(problems), pipeline: result.pipeline, position, locate: parsed.locate }
}

/**
 * Parses and validates pipeline YAML against a registry; fails with every problem when one is an
 * error. Warnings of a valid pipeline are not returned: {@link check} gives them.
 */
export const decode = (
  text: string,
  registry: Registry.Registry,
  file?: string,
  found: ReadonlyArray<Problem> = [],
  limits: Limits.Limits = Limits.defaults
): Effect.Effect<ResolvedPipeline, PipelineInvalid> => {
  const checked = check(text, registry, found, limits)
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

const withPosition = (p: Problem, position: Position | undefined, frame: (position: Position) => string): Problem =>
  position === undefined ? p : new Problem({ ...p, position, frame: frame(position) })

const { fromCause: issuesOf, isExcess } = Issues

const issueCode = (message: string, otherwise: ProblemCode): ProblemCode => (isExcess(message) ? "UnknownKey" : otherwise)

const issueMessage = (issue: Issues.FlatIssue): string => {
  const where = issue.path.length === 0 ? "the pipeline" : `"${issue.path.join(".")}"`
  if (isExcess(issue.message)) return `unknown key "${String(issue.path[issue.path.length - 1])}"`
  if (Issues.isMissing(issue.message)) return `missing required key ${where}`
  return `${where}: ${issue.message}`
}

/** The first document of the CST (one more is a problem, as yaml's `parseDocument` reports it), composed without yaml's quadratic `uniqueKeys`. */
const firstDocument = (tokens: ReadonlyArray<CST.Token>, text: string): Document => {
  let doc: Document | undefined
  for (const next of new Composer({ uniqueKeys: false, prettyErrors: false }).compose(tokens, true, text.length)) {
    if (doc === undefined) doc = next
    else {
      doc.errors.push(new YAMLParseError([next.range[0], next.range[1]], "MULTIPLE_DOCS", "Source contains multiple documents; a pipeline file holds one"))
      break
    }
  }
  return doc!
}

/** 1-based line and column of an offset, counted once (for a problem found before yaml's parser ran). */
const linePosOf = (text: string, offset: number): Position => {
  let line = 1
  let start = 0
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++
    start = i + 1
  }
  return { line, col: offset - start + 1 }
}

/**
 * Finds the node at `path`, or the nearest ancestor that exists; with `key`, the key of the last
 * step. Each mapping is indexed on first use, so locating every stage of a large file stays linear.
 */
const makeLocator = (doc: Document, lineCounter: LineCounter) => {
  const indexes = new WeakMap<YAMLMap, Map<string, Pair>>()
  const pairOf = (parent: unknown, key: string | number): Pair | undefined => {
    if (!isMap(parent)) return undefined
    let index = indexes.get(parent)
    if (index === undefined) {
      index = new Map()
      for (const item of parent.items) if (isPair(item) && isScalar(item.key) && !index.has(String(item.key.value))) index.set(String(item.key.value), item)
      indexes.set(parent, index)
    }
    return index.get(String(key))
  }
  const nodeAt = (at: Path): unknown => {
    let node: unknown = doc.contents
    for (const step of at) {
      if (isMap(node)) node = pairOf(node, step)?.value
      else if (isSeq(node) && typeof step === "number") node = node.items[step]
      else return undefined
    }
    return node
  }
  return (at: Path, options: { readonly key?: boolean } = {}): Position | undefined => {
    for (let n = at.length; n >= 0; n--) {
      const prefix = at.slice(0, n)
      if (options.key === true && n === at.length && n > 0) {
        const pair = pairOf(nodeAt(prefix.slice(0, -1)), prefix[prefix.length - 1]!)
        if (pair !== undefined && isNode(pair.key) && pair.key.range) return lineCounter.linePos(pair.key.range[0])
      }
      const node = nodeAt(prefix)
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0])
    }
    return undefined
  }
}
