/**
 * A problem found in a pipeline, and how it is shown: `file:line:col`, the stage, a message that
 * says what to do, and a short code frame. All problems of a pipeline are collected and reported
 * together; nothing runs while there is one.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The stable codes of pipeline problems. @category models */
export const ProblemCodes = [
  "YamlSyntax", "DuplicateId", "DuplicateKey", "InvalidPipeline", "UnknownKey", "UnknownStageKind",
  "InvalidParam", "MissingParam", "UnknownParam", "MissingInput", "InvalidReference", "DanglingReference",
  "PortMismatch", "TooFewInputs", "Cycle", "InvalidInput", "KindModule", "KindClash",
  // A limit of `Limits.ts` (file size, stages, keys, nesting, aliases), raised with CRUCIBLE_PIPELINE_LIMITS.
  "LimitExceeded",
  // Found by reading the inputs' headers (never their tensors), before anything runs.
  "InputUnreadable", "OutputUnwritable", "HeaderMismatch", "UnmatchedFilter", "StageWouldFail"
] as const
export type ProblemCode = (typeof ProblemCodes)[number]

/**
 * An error stops the pipeline from running; a warning is printed and the pipeline runs (a filter
 * that matches no tensor is legal, and often a typo). @category models
 */
export const Severities = ["error", "warning"] as const
export type Severity = (typeof Severities)[number]

/** A position in the pipeline file, 1-based. @category models */
export const Position = Schema.Struct({ line: Schema.Number, col: Schema.Number })
export type Position = typeof Position.Type

/** @category models */
export class Problem extends Schema.Class<Problem>("crucible/Problem")({
  code: Schema.Literals(ProblemCodes),
  message: Schema.String,
  /** The stage the problem is in, when it is in one. */
  stage: Schema.optional(Schema.String),
  /** The path of the offending value in the document, e.g. ["stages", "avg", "with", "weights"]. */
  path: Schema.Array(Schema.Union([Schema.String, Schema.Number])),
  position: Schema.optional(Position),
  frame: Schema.optional(Schema.String),
  /** Absent means `error`. */
  severity: Schema.optional(Schema.Literals(Severities))
}) {}

/** Whether a problem stops the pipeline (every problem but a warning does). */
export const isError = (problem: Problem): boolean => problem.severity !== "warning"

/** Problems in document order (those without a position first), as they are reported. */
export const sortByPosition = (problems: ReadonlyArray<Problem>): Array<Problem> =>
  [...problems].sort((a, b) => (a.position?.line ?? 0) - (b.position?.line ?? 0) || (a.position?.col ?? 0) - (b.position?.col ?? 0))

const FRAME_WIDTH = 160

/** A line cut to {@link FRAME_WIDTH} characters around `col`, and the column within what is shown. */
const window = (line: string, col: number): readonly [string, number] => {
  if (line.length <= FRAME_WIDTH) return [line, col]
  const start = Math.max(0, Math.min(col - 1 - FRAME_WIDTH / 2, line.length - FRAME_WIDTH))
  const shown = `${start > 0 ? "…" : ""}${line.slice(start, start + FRAME_WIDTH)}${start + FRAME_WIDTH < line.length ? "…" : ""}`
  return [shown, col - start + (start > 0 ? 1 : 0)]
}

/**
 * Code frames of one text: the text is split into lines once, on the first frame, so a file with
 * many problems is not split once per problem.
 */
export const framer = (text: string): ((position: Position) => string) => {
  let lines: ReadonlyArray<string> | undefined
  return (position) => frameOf((lines ??= text.split(/\r?\n/)), position)
}

/** A short code frame: the offending line with its neighbours and a caret under the column (long lines cut around it). */
export const codeFrame = (text: string, position: Position): string => framer(text)(position)

const frameOf = (lines: ReadonlyArray<string>, position: Position): string => {
  const first = Math.max(1, position.line - 1)
  const last = Math.min(lines.length, position.line + 1)
  const width = String(last).length
  const out: Array<string> = []
  for (let n = first; n <= last; n++) {
    const marker = n === position.line ? ">" : " "
    const [line, col] = window(lines[n - 1] ?? "", n === position.line ? position.col : 1)
    out.push(`${marker} ${String(n).padStart(width)} | ${line}`)
    if (n === position.line) out.push(`  ${" ".repeat(width)} | ${" ".repeat(Math.max(0, col - 1))}^`)
  }
  return out.join("\n")
}

/** `file:line:col: [Code] stage "x": message`, then the frame. */
export const format = (problem: Problem, file: string | undefined): string => {
  const where = [file ?? "<pipeline>", problem.position?.line, problem.position?.col].filter((x) => x !== undefined).join(":")
  const stage = problem.stage === undefined ? "" : `stage "${problem.stage}": `
  const head = `${where}: ${problem.severity === "warning" ? "warning " : ""}[${problem.code}] ${stage}${problem.message}`
  return problem.frame === undefined ? head : `${head}\n${problem.frame}`
}
