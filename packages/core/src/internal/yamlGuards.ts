/**
 * The checks that keep parsing a pipeline file linear and bounded, each run before the work it
 * guards: a scan of the raw text (flow nesting, compact `- - -` chains) before yaml's parser, whose
 * collection stack is slow on a megabyte of `[`; the CST's nesting before the composer, which
 * recurses; and one walk of the composed document — keys per mapping, duplicate keys (a Set per
 * mapping: yaml's `uniqueKeys` is quadratic), aliases to missing anchors, and what aliases expand
 * to — before `toJS`, which would throw on the last two.
 */
import { type CST, isAlias, isMap, isNode, isScalar, isSeq, type Document } from "yaml"
import type { Limits } from "../pipeline/Limits.ts"

/** A check that failed, at an offset of the text. */
export interface Violation {
  readonly code: "LimitExceeded" | "YamlSyntax"
  readonly limit?: keyof Limits
  readonly found?: number
  readonly message: string
  readonly offset: number
}

const opensQuote = (prev: number): boolean =>
  prev === 32 || prev === 9 || prev === 10 || prev === 13 || prev === 91 || prev === 123 || prev === 44 || prev === 58 || prev === 45 || prev === 63

/**
 * Flow collections (`[`, `{`) nested deeper than the limit, lines that open more compact block
 * collections (`- - - x`) than it, and more values than the limit (estimated from above by the
 * lines and the commas inside `[ ]` and `{ }`: yaml's parser takes about 0.5 KB and a few µs per
 * value), found in one pass over the text; quoted scalars and comments are skipped.
 * Conservative: brackets inside plain scalars count too.
 */
export const scanText = (text: string, limits: Limits): Violation | undefined => {
  const tooDeep = (offset: number): Violation => ({
    code: "LimitExceeded", limit: "depth", found: limits.depth + 1, offset,
    message: `collections nest more than ${limits.depth} deep here`
  })
  const n = text.length
  let depth = 0
  let values = 1
  let over = -1
  const count = (at: number) => {
    if (++values > limits.values && over === -1) over = at
  }
  let prev = 10
  let i = 0
  let lineStart = true
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 10) {
      count(i)
      lineStart = true
      prev = c
      i++
      continue
    }
    if (lineStart) {
      lineStart = false
      let j = i
      while (j < n && text.charCodeAt(j) === 32) j++
      let chain = 0
      while (j + 1 < n && (text.charCodeAt(j) === 45 || text.charCodeAt(j) === 63) && (text.charCodeAt(j + 1) === 32 || text.charCodeAt(j + 1) === 9)) {
        if (++chain > limits.depth) return tooDeep(j)
        j += 2
        while (j < n && text.charCodeAt(j) === 32) j++
      }
      if (j > i) {
        prev = 32
        i = j
        continue
      }
    }
    if (c === 35 && (prev === 32 || prev === 9 || prev === 10)) {
      while (i < n && text.charCodeAt(i) !== 10) i++
      continue
    }
    if ((c === 34 || c === 39) && opensQuote(prev)) {
      i++
      while (i < n) {
        const q = text.charCodeAt(i)
        if (c === 34 && q === 92) i += 2
        else if (q === c && c === 39 && text.charCodeAt(i + 1) === 39) i += 2
        else if (q === c) break
        else i++
      }
      prev = c
      i++
      continue
    }
    if (c === 91 || c === 123) {
      if (++depth > limits.depth) return tooDeep(i)
    } else if ((c === 93 || c === 125) && depth > 0) depth--
    else if (c === 44 && depth > 0) count(i)
    prev = c
    i++
  }
  return over === -1 ? undefined : {
    code: "LimitExceeded", limit: "values", found: values, offset: over,
    message: `the file has about ${values} values (its lines and the commas of its [ ] and { }); the limit is ${limits.values}`
  }
}

/**
 * The stages of a block-style `stages:` mapping, counted from the text before yaml parses it: the
 * lines at the indentation of its first key, up to the next top-level line (a block scalar or
 * flow value inside a stage is indented further, so it is not counted). A `stages:` in flow style
 * is left to the check of the composed document.
 */
export const scanStages = (text: string, limits: Limits): Violation | undefined => {
  const at = /^stages[ \t]*:[ \t]*(?:#.*)?\r?$/m.exec(text)
  if (at === null) return undefined
  let indent = -1
  let count = 0
  let i = text.indexOf("\n", at.index)
  while (i !== -1 && i < text.length) {
    const start = i + 1
    let j = start
    while (j < text.length && text.charCodeAt(j) === 32) j++
    const c = text.charCodeAt(j)
    i = text.indexOf("\n", j)
    if (j >= text.length || c === 10 || c === 13 || c === 35) continue
    if (j === start) break
    if (indent === -1) indent = j - start
    if (j - start === indent) count++
  }
  return count > limits.stages
    ? { code: "LimitExceeded", limit: "stages", found: count, offset: at.index, message: `${count} stages; the limit is ${limits.stages}` }
    : undefined
}

/** The first collection of the CST nested deeper than the limit (iteratively: no recursion to overflow). */
export const scanTokens = (tokens: ReadonlyArray<CST.Token>, limits: Limits): Violation | undefined => {
  const stack: Array<readonly [CST.Token, number]> = []
  for (const token of tokens) if (token.type === "document" && token.value !== undefined) stack.push([token.value, 1])
  while (stack.length > 0) {
    const [token, depth] = stack.pop()!
    if (token.type !== "block-map" && token.type !== "block-seq" && token.type !== "flow-collection") continue
    if (depth > limits.depth) return { code: "LimitExceeded", limit: "depth", found: depth, offset: token.offset, message: `collections nest more than ${limits.depth} deep here` }
    for (const item of token.items) {
      if ("key" in item && item.key) stack.push([item.key, depth + 1])
      if (item.value) stack.push([item.value, depth + 1])
    }
  }
  return undefined
}

/** A mapping key used twice, at its second occurrence; `stage` when the mapping is `stages:`. */
export interface Duplicate {
  readonly key: string
  readonly offset: number
  readonly stage: boolean
}

const OPEN = -1

/**
 * One walk of the composed document (its depth already bounded): mappings over their key limit,
 * duplicate keys, aliases over their limit, to no anchor, or inside the node they name, and the
 * nodes expanding them adds. Stops at the first limit exceeded.
 */
export const scanDocument = (doc: Document, limits: Limits): { readonly violations: ReadonlyArray<Violation>; readonly duplicates: ReadonlyArray<Duplicate> } => {
  const violations: Array<Violation> = []
  const duplicates: Array<Duplicate> = []
  const anchors = new Map<string, number>()
  let aliases = 0
  let expansion = 0
  let stopped = false
  const exceed = (limit: keyof Limits, found: number, offset: number, message: string) => {
    violations.push({ code: "LimitExceeded", limit, found, offset, message })
    stopped = true
    return 0
  }
  const visit = (node: unknown, role: "top" | "stages" | "other"): number => {
    if (stopped || !isNode(node)) return 0
    const offset = node.range?.[0] ?? 0
    if (isAlias(node)) {
      if (++aliases > limits.aliases) return exceed("aliases", aliases, offset, `the file has more than ${limits.aliases} aliases`)
      const size = anchors.get(node.source)
      if (size === undefined || size === OPEN) {
        violations.push({
          code: "YamlSyntax", offset,
          message: size === undefined
            ? `alias *${node.source} refers to no anchor: define &${node.source} on a value before the alias`
            : `alias *${node.source} is inside the value anchored &${node.source} it refers to (a value cannot contain itself)`
        })
        return 1
      }
      expansion += size
      return expansion > limits.expansion ? exceed("expansion", expansion, offset, `expanding the aliases adds more than ${limits.expansion} values to the document`) : size
    }
    const anchor = node.anchor
    if (anchor !== undefined) anchors.set(anchor, OPEN)
    let size = 1
    if (isMap(node)) {
      const [limit, what] = role === "stages" ? (["stages", "stages"] as const) : (["keys", "keys in one mapping"] as const)
      if (node.items.length > limits[limit]) return exceed(limit, node.items.length, offset, `${node.items.length} ${what}; the limit is ${limits[limit]}`)
      const seen = new Set<string>()
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : undefined
        if (key !== undefined) {
          if (seen.has(key)) duplicates.push({ key, offset: (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0, stage: role === "stages" })
          seen.add(key)
        }
        size += visit(pair.key, "other") + visit(pair.value, role === "top" && key === "stages" ? "stages" : "other")
      }
    } else if (isSeq(node)) {
      for (const item of node.items) size += visit(item, "other")
    }
    if (anchor !== undefined) anchors.set(anchor, size)
    return size
  }
  visit(doc.contents, "top")
  return { violations, duplicates }
}
