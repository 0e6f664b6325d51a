/**
 * User regexes (`/…/flags` filters) run on a linear-time engine: the pattern is parsed into a
 * small syntax tree, compiled to a Thompson NFA and simulated one character at a time with a set of
 * states, so a test costs O(name length × pattern size) whatever the pattern. Each single-character
 * atom (a literal, `.`, a class, `\d`, `\p{…}`) is tested by the native engine on one character, so
 * character sets, case folding (`i`), `s` and `u` mean exactly what they mean in JavaScript.
 *
 * Rejected at compile time, with a reason and a rewrite: backreferences and lookarounds (no
 * linear-time engine can run them), and a repetition nested in an unbounded repetition such as
 * `(a+)+` — harmless here, but exponential in mergekit's Python `re` and in every backtracking
 * engine, and always expressible without the nesting.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"

type Node =
  | { readonly _tag: "Char"; readonly test: (c: string) => boolean }
  | { readonly _tag: "Assert"; readonly kind: "^" | "$" | "\\b" | "\\B" }
  | { readonly _tag: "Seq"; readonly items: ReadonlyArray<Node> }
  | { readonly _tag: "Alt"; readonly options: ReadonlyArray<Node> }
  | { readonly _tag: "Repeat"; readonly body: Node; readonly min: number; readonly max: number; readonly source: string }

/** The most NFA states a regex may compile to (a large `{n,m}` is copied `m` times). @category limits */
export const MAX_STATES = 10_000

/** Why a regex is refused: its `kind` is stable, its `reason` says how to rewrite it. @category errors */
export class RegexRefused extends Schema.TaggedError<RegexRefused>()("RegexRefused", {
  kind: Schema.Literals(["Backreference", "Lookaround", "UnsupportedGroup", "NestedRepetition", "TooLarge", "Unsupported"]),
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

const charTest = (source: string, flags: string): ((c: string) => boolean) => {
  const re = new RegExp(`^(?:${source})$`, flags.replace("m", ""))
  const seen = new Map<string, boolean>()
  return (c) => {
    let r = seen.get(c)
    if (r === undefined) {
      r = re.test(c)
      if (seen.size < 4096) seen.set(c, r)
    }
    return r
  }
}

const parse = (body: string, flags: string): Node => {
  const unicode = flags.includes("u")
  let i = 0
  const atomEnd = (start: number): number => {
    // the end of an escape `\…` starting at `start` that matches one character
    const c = body[start + 1]!
    const hex = (k: number) => (/^[0-9a-fA-F]+$/.test(body.slice(start + 2, start + 2 + k)) ? start + 2 + k : start + 2)
    if (c === "x") return hex(2)
    if (c === "u") {
      if (unicode && body[start + 2] === "{") return body.indexOf("}", start) + 1
      return hex(4)
    }
    if (c === "c" && /[A-Za-z]/.test(body[start + 2] ?? "")) return start + 3
    if ((c === "p" || c === "P") && unicode) return body.indexOf("}", start) + 1
    if (!unicode && c === "0") {
      let k = start + 2
      while (k < start + 4 && /[0-7]/.test(body[k] ?? "")) k++
      return k
    }
    return start + 1 + (unicode ? String.fromCodePoint(body.codePointAt(start + 1)!).length : 1)
  }
  const alternation = (): Node => {
    const options = [sequence()]
    while (body[i] === "|") {
      i++
      options.push(sequence())
    }
    return options.length === 1 ? options[0]! : { _tag: "Alt", options }
  }
  const sequence = (): Node => {
    const items: Array<Node> = []
    while (i < body.length && body[i] !== "|" && body[i] !== ")") {
      const start = i
      let atom = term()
      for (;;) {
        const q = quantifier()
        if (q === undefined) break
        if (body[i] === "?") i++
        atom = { _tag: "Repeat", body: atom, min: q[0], max: q[1], source: body.slice(start, i) }
      }
      items.push(atom)
    }
    return items.length === 1 ? items[0]! : { _tag: "Seq", items }
  }
  const quantifier = (): readonly [number, number] | undefined => {
    const c = body[i]
    if (c === "*" || c === "+" || c === "?") {
      i++
      return c === "*" ? [0, Infinity] : c === "+" ? [1, Infinity] : [0, 1]
    }
    const m = c === "{" ? /^\{(\d+)(,(\d*))?\}/.exec(body.slice(i)) : null
    if (m === null) return undefined
    i += m[0].length
    const min = Number(m[1])
    return [min, m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3])]
  }
  const term = (): Node => {
    const c = body[i]!
    if (c === "(") {
      if (/^\(\?<?[=!]/.test(body.slice(i))) {
        const fix = "order the rules instead: put a rule for the tensors to exclude first (first match wins)"
        throw new RegexRefused({ kind: "Lookaround", reason: `lookarounds ((?=…), (?!…), (?<=…), (?<!…)) are not supported; ${fix}` })
      }
      if (body[i + 1] === "?" && !/^\(\?(:|<[^=!])/.test(body.slice(i))) {
        throw new RegexRefused({ kind: "UnsupportedGroup", reason: `the group "${body.slice(i, i + 4)}…" is not supported; use (…), (?:…) or (?<name>…)` })
      }
      i += body.startsWith("(?:", i) ? 3 : body.startsWith("(?<", i) ? body.indexOf(">", i) + 1 - i : 1
      const inner = alternation()
      i++ // ")"
      return inner
    }
    if (c === "^" || c === "$") {
      i++
      return { _tag: "Assert", kind: c }
    }
    if (c === "\\") {
      const e = body[i + 1]!
      if (e === "b" || e === "B") {
        i += 2
        return { _tag: "Assert", kind: e === "b" ? "\\b" : "\\B" }
      }
      if (/[1-9]/.test(e) || (e === "k" && (unicode || /\(\?</.test(body)))) {
        throw new RegexRefused({ kind: "Backreference", reason: "backreferences (\\1, \\k<name>) are not supported; spell out the repeated text" })
      }
      if (!unicode && e === "c" && !/[A-Za-z]/.test(body[i + 2] ?? "")) {
        i += 1 // Annex B: a `\c` without a control letter is a literal backslash, then `c`
        return { _tag: "Char", test: charTest("\\\\", flags) }
      }
      const end = atomEnd(i)
      const source = body.slice(i, end)
      i = end
      return { _tag: "Char", test: charTest(source, flags) }
    }
    if (c === "[") {
      let k = i + 1
      if (body[k] === "^") k++
      while (body[k] !== "]") k += body[k] === "\\" ? 2 : 1
      const source = body.slice(i, k + 1)
      i = k + 1
      return { _tag: "Char", test: charTest(source, flags) }
    }
    const width = unicode ? String.fromCodePoint(body.codePointAt(i)!).length : 1
    const source = body.slice(i, i + width)
    i += width
    return { _tag: "Char", test: charTest(source === "." ? "." : source.replace(/[{}\]]/g, "\\$&"), flags) }
  }
  const tree = alternation()
  return tree
}

const repeats = (node: Node): Node | undefined => {
  switch (node._tag) {
    case "Repeat":
      return node.max > 1 ? node : repeats(node.body)
    case "Seq":
      return node.items.map(repeats).find((n) => n !== undefined)
    case "Alt":
      return node.options.map(repeats).find((n) => n !== undefined)
    default:
      return undefined
  }
}

const checkNesting = (node: Node): void => {
  switch (node._tag) {
    case "Repeat": {
      const inner = node.max === Infinity ? repeats(node.body) : undefined
      if (inner !== undefined && inner._tag === "Repeat") {
        throw new RegexRefused({
          kind: "NestedRepetition",
          reason: `"${node.source}" repeats "${inner.source}", a repetition inside a repetition, which backtracks exponentially in ` +
            `mergekit and most regex engines; repeat only once (e.g. "(a+)+" → "a+") or use a glob`
        })
      }
      return checkNesting(node.body)
    }
    case "Seq":
      return node.items.forEach(checkNesting)
    case "Alt":
      return node.options.forEach(checkNesting)
    default:
      return
  }
}

// The NFA: state k is a character test, an assertion, a split (two ε-edges) or the match state.
type State =
  | { kind: "char"; test: (c: string) => boolean; out: number }
  | { kind: "assert"; test: Node & { _tag: "Assert" }; out: number }
  | { kind: "split"; out: number; alt: number }
  | { kind: "match" }

const build = (tree: Node): ReadonlyArray<State> => {
  const states: Array<State> = []
  const add = (s: State): number => {
    if (states.length >= MAX_STATES) throw new RegexRefused({ kind: "TooLarge", reason: `the regex compiles to more than ${MAX_STATES} states; use smaller {n,m} counts` })
    return states.push(s) - 1
  }
  // emit(node, next) returns the entry state of `node` followed by `next` (built back to front)
  const emit = (node: Node, next: number): number => {
    switch (node._tag) {
      case "Char":
        return add({ kind: "char", test: node.test, out: next })
      case "Assert":
        return add({ kind: "assert", test: node, out: next })
      case "Seq":
        return node.items.reduceRight((out, item) => emit(item, out), next)
      case "Alt":
        return node.options.slice(1).reduce((alt, option) => add({ kind: "split", out: emit(option, next), alt }), emit(node.options[0]!, next))
      case "Repeat": {
        let entry = next
        if (node.max === Infinity) {
          const loop = add({ kind: "split", out: -1, alt: next })
          ;(states[loop] as { out: number }).out = emit(node.body, loop)
          entry = loop
        } else {
          for (let k = node.min; k < node.max; k++) entry = add({ kind: "split", out: emit(node.body, entry), alt: next })
        }
        for (let k = 0; k < node.min; k++) entry = emit(node.body, entry)
        return entry
      }
    }
  }
  const match = add({ kind: "match" })
  const start = emit(tree, match)
  states.push({ kind: "split", out: start, alt: start }) // the last state is the entry
  return states
}

const LINE = /[\n\r\u2028\u2029]/

const run = (states: ReadonlyArray<State>, chars: ArrayLike<string>, flags: string, word: (c: string) => boolean): boolean => {
  const multiline = flags.includes("m")
  const entry = states.length - 1
  const mark = new Int32Array(states.length).fill(-1)
  let current: Array<number> = []
  let next: Array<number> = []
  const holds = (kind: string, at: number): boolean => {
    const before = chars[at - 1]
    const after = chars[at]
    switch (kind) {
      case "^":
        return at === 0 || (multiline && LINE.test(before!))
      case "$":
        return at === chars.length || (multiline && LINE.test(after!))
      default: {
        const boundary = (before !== undefined && word(before)) !== (after !== undefined && word(after))
        return kind === "\\b" ? boundary : !boundary
      }
    }
  }
  // adds `s` and its ε-closure at position `at` (generation `at` in `mark`); true on reaching match
  const closure = (list: Array<number>, s: number, at: number): boolean => {
    const stack = [s]
    while (stack.length > 0) {
      const k = stack.pop()!
      if (mark[k] === at) continue
      mark[k] = at
      const state = states[k]!
      if (state.kind === "match") return true
      if (state.kind === "split") stack.push(state.alt, state.out)
      else if (state.kind === "assert") {
        if (holds(state.test.kind, at)) stack.push(state.out)
      } else list.push(k)
    }
    return false
  }
  for (let at = 0; ; at++) {
    if (closure(current, entry, at)) return true
    if (at === chars.length) return false
    const c = chars[at]!
    next = []
    for (const k of current) {
      const state = states[k] as { test: (c: string) => boolean; out: number }
      if (state.test(c) && closure(next, state.out, at + 1)) return true
    }
    ;[current, next] = [next, current]
  }
}

/**
 * Compiles a regex body and flags (already accepted by `new RegExp`) to a linear-time tester, or
 * says why it is refused. @category constructors
 */
export const compile = (body: string, flags: string): Result.Result<(name: string) => boolean, RegexRefused> => {
  try {
    const tree = parse(body, flags)
    checkNesting(tree)
    const states = build(tree)
    const word = charTest("\\w", flags)
    const unicode = flags.includes("u")
    // Without `u` a name is read by UTF-16 code unit, straight from the string (no copy per test).
    return Result.succeed((name) => run(states, unicode ? Array.from(name) : name, flags, word))
  } catch (e) {
    if (e instanceof RegexRefused) return Result.fail(e)
    const cause = e instanceof Error ? e.message : String(e)
    return Result.fail(new RegexRefused({ kind: "Unsupported", reason: `it uses syntax the filter engine does not take (${cause}); simplify it or use a glob` }))
  }
}
