/**
 * The YAML documents of a mergekit config (one, or several separated by `---` as mergekit-multi
 * reads them), with the position of every node, so a problem found while compiling — or later,
 * in the compiled pipeline — is reported at `file:line:col` of the mergekit file.
 *
 * @since 0.1.0
 */
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from "yaml"
import { framer, type Position, Problem, type ProblemCode } from "../pipeline/Problem.ts"

/** A path inside one document. @category models */
export type Path = ReadonlyArray<string | number>

/** Where something is written: a document and a path in it. @category models */
export interface Origin {
  readonly doc: number
  readonly path: Path
  /** Point at the key of the last step rather than its value (an unknown key). */
  readonly key?: boolean
}

/** The parsed documents. @category models */
export interface Documents {
  /** Each document's plain value (undefined for a document that failed to parse). */
  readonly values: ReadonlyArray<unknown>
  /** YAML syntax problems, positioned. */
  readonly problems: ReadonlyArray<Problem>
  /** The position of an origin (its nearest existing ancestor). */
  readonly locate: (origin: Origin) => Position | undefined
  /** A problem at an origin, with its position and code frame. */
  readonly problem: (code: ProblemCode, message: string, origin: Origin, severity?: "warning") => Problem
  /** A problem positioned at an origin (keeping its code and message). */
  readonly at: (p: Problem, origin: Origin | undefined) => Problem
}

/** Parses every document of `text`. @category constructors */
export const parse = (text: string): Documents => {
  const lineCounter = new LineCounter()
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true }) as unknown as ReadonlyArray<Document> | { readonly empty: true }
  const list: ReadonlyArray<Document> = Array.isArray(docs) ? docs : []
  const frame = framer(text)
  const problems: Array<Problem> = []
  for (const doc of list) {
    for (const error of doc.errors) {
      const position = lineCounter.linePos(error.pos[0])
      problems.push(new Problem({ code: "YamlSyntax", message: error.message.split("\n")[0] ?? "invalid YAML", path: [], position, frame: frame(position) }))
    }
  }
  const nodeAt = (doc: Document | undefined, path: Path): unknown => {
    let node: unknown = doc?.contents
    for (const step of path) {
      if (isMap(node)) node = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(step))?.value
      else if (isSeq(node) && typeof step === "number") node = node.items[step]
      else return undefined
    }
    return node
  }
  const locate = (origin: Origin): Position | undefined => {
    const doc = list[origin.doc]
    for (let n = origin.path.length; n >= 0; n--) {
      const prefix = origin.path.slice(0, n)
      if (origin.key === true && n === origin.path.length && n > 0) {
        const parent = nodeAt(doc, prefix.slice(0, -1))
        const pair = isMap(parent) ? parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(prefix[n - 1])) : undefined
        if (pair !== undefined && isNode(pair.key) && pair.key.range) return lineCounter.linePos(pair.key.range[0])
      }
      const node = nodeAt(doc, prefix)
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0])
    }
    return doc?.range === undefined ? undefined : lineCounter.linePos(doc.range[0])
  }
  const at = (p: Problem, origin: Origin | undefined): Problem => {
    const position = origin === undefined ? undefined : locate(origin)
    return position === undefined ? p : new Problem({ ...p, position, frame: frame(position) })
  }
  const problem = (code: ProblemCode, message: string, origin: Origin, severity?: "warning") =>
    at(new Problem({ code, message, path: [...origin.path], ...(severity === undefined ? {} : { severity }) }), origin)
  const values = list.map((doc) => (doc.errors.length > 0 ? undefined : doc.toJS({ maxAliasCount: 100 }) as unknown))
  return { values, problems, locate, problem, at }
}

/** Whether a text is a mergekit config: a top-level `merge_method` key (a Crucible pipeline has none). @category predicates */
export const isMergekit = (text: string): boolean => /^merge_method[ \t]*:/m.test(text)
