// Fuzz of tensor-name filters (part of the hostile-inputs suite): seeded by vitest.setup.ts, bounded
// to a few seconds. Globs are compared with a memoised reference matcher; every case, adversarial
// ones included, must finish within a time bound; random regexes from a small grammar are either
// refused when compiled (with a reason) or agree with JavaScript's own engine, within the bound.
import { Result } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Filter from "../../../src/merge/rules/Filter.ts"
import * as Glob from "../../../src/merge/rules/Glob.ts"
import * as Regex from "../../../src/merge/rules/Regex.ts"

/** The reference: the textbook dynamic program over (glob position, name position), memoised. */
const reference = (glob: string, name: string): boolean => {
  const memo = new Map<number, boolean>()
  const go = (p: number, n: number): boolean => {
    const key = p * (name.length + 1) + n
    const known = memo.get(key)
    if (known !== undefined) return known
    let r: boolean
    if (p === glob.length) r = n === name.length
    else if (glob[p] === "*") r = go(p + 1, n) || (n < name.length && go(p, n + 1))
    else r = n < name.length && (glob[p] === "?" || glob[p] === name[n]) && go(p + 1, n + 1)
    memo.set(key, r)
    return r
  }
  return go(0, 0)
}

// generous for a loaded CI machine; a backtracking hang takes seconds to hours
const BOUND_MS = 100
const timed = <A>(f: () => A): A => {
  const start = performance.now()
  const a = f()
  expect(performance.now() - start).toBeLessThan(BOUND_MS)
  return a
}

const alphabet = fc.constantFrom("a", "b", ".", "_", "0")
const name = fc.array(alphabet, { maxLength: 60 }).map((cs) => cs.join(""))
const glob = fc.array(fc.oneof(alphabet, fc.constantFrom("*", "?", "*", "*a", "b*")), { maxLength: 30 }).map((cs) => cs.join(""))

describe("glob fuzz", () => {
  it("the two-pointer matcher agrees with the reference", () => {
    fc.assert(fc.property(glob, name, (g, n) => timed(() => Glob.matches(g, n)) === reference(g, n)), { numRuns: 3000 })
  })

  it("Filter.compile keeps its documented meaning for random patterns", () => {
    fc.assert(
      fc.property(glob.filter((g) => g.length > 0), name, (g, n) => {
        const matcher = Result.getOrThrow(Filter.compile(g))
        const expected = /[*?]/.test(g) ? reference(g, n) : n.includes(g)
        return timed(() => matcher(n)) === expected
      }),
      { numRuns: 2000 }
    )
  })

  it("adversarial globs (*a*a*a…b and friends) finish within the bound on long names", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 400 }), fc.constantFrom("a", "ab", "a?"), (k, len, unit) => {
        const g = `*${unit}`.repeat(k) + "*b"
        const n = "a".repeat(len)
        return timed(() => Glob.matches(g, n)) === reference(g, n)
      }),
      { numRuns: 300 }
    )
  })
})

// A small regex grammar whose every output is valid JavaScript; it produces nested repetitions,
// overlapping alternations, anchors and classes, the raw material of catastrophic backtracking.
const regex: fc.Arbitrary<string> = fc.letrec<{ re: string; atom: string }>((tie) => ({
  re: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    tie("atom"),
    fc.array(tie("atom"), { minLength: 2, maxLength: 4 }).map((xs) => xs.join("")),
    fc.tuple(tie("re"), tie("re")).map(([a, b]) => `${a}|${b}`)
  ),
  atom: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom("a", "b", ".", "\\.", "[ab]", "[^b]", "\\d", "\\w", "^", "$", "\\b"),
    fc.tuple(tie("re"), fc.constantFrom("", "*", "+", "?", "{2}", "{1,3}", "*?")).map(([r, q]) => `(${r})${q}`),
    fc.tuple(fc.constantFrom("a", "b", "[ab]", "."), fc.constantFrom("*", "+", "?", "{0,2}")).map(([a, q]) => a + q)
  )
})).re

const hostileName = fc.oneof(name, fc.tuple(fc.integer({ min: 0, max: 50 }), fc.constantFrom("", "!", "b", "\n")).map(([k, end]) => "a".repeat(k) + end))

describe("regex fuzz", () => {
  it("a random regex is refused with a reason, or matches like JavaScript within the bound", () => {
    let refused = 0
    let run = 0
    fc.assert(
      fc.property(regex, fc.constantFrom("", "i", "m", "s"), fc.array(hostileName, { minLength: 1, maxLength: 4 }), (body, flags, names) => {
        const compiled = timed(() => Filter.compile(`/${body}/${flags}`))
        if (Result.isFailure(compiled)) {
          refused++
          const typed = Regex.compile(body, flags)
          // the grammar has no backreference, lookaround or huge count: only nesting is refused
          return Result.isFailure(typed) && typed.failure._tag === "RegexRefused" && typed.failure.kind === "NestedRepetition" &&
            compiled.failure.endsWith(typed.failure.reason)
        }
        run++
        const native = new RegExp(body, flags)
        // the native engine is the oracle on short names only: it is the one that backtracks
        return names.every((n) => {
          const got = timed(() => compiled.success(n))
          return n.length > 16 || got === native.test(n)
        })
      }),
      { numRuns: 1500 }
    )
    expect(refused).toBeGreaterThan(0)
    expect(run).toBeGreaterThan(0)
  })

  it("token soup: any body JavaScript accepts is refused with a reason or matches like JavaScript", () => {
    const tokens = ["a", "A", "\\", "\\d", "\\w", "\\b", "\\B", "\\.", "\\c", "\\cA", "\\0", "\\x41", "\\u0041", "\\u{61}",
      "\\p{L}", "\\k<n>", "\\1", "(", "(?:", "(?<n>", "(?=", ")", "|", "*", "+", "?", "{", "}", "{2}", "{1,}", "[", "]", "[^",
      "-", "^", "$", ".", "é", "😀", "\n"]
    const names = ["", "a", "aab", "A", "b\na", "é", "😀", "1", "a.b", "{2}", "]", "\\", "k", "aaaaaaaaaaaa!"]
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...tokens), { minLength: 1, maxLength: 6 }), fc.constantFrom("", "i", "m", "s", "u", "iu"), (parts, flags) => {
        const body = parts.join("")
        let native: RegExp
        try {
          native = new RegExp(body, flags)
        } catch {
          return Result.isFailure(Filter.compile(`/${body}/${flags}`))
        }
        const compiled = timed(() => Filter.compile(`/${body}/${flags}`))
        if (Result.isFailure(compiled)) return /is refused: .+/.test(compiled.failure)
        return names.every((n) => timed(() => compiled.success(n)) === native.test(n))
      }),
      { numRuns: 5000 }
    )
  })

  it("what is accepted stays fast on long hostile names", () => {
    fc.assert(
      fc.property(regex, fc.integer({ min: 50, max: 300 }), (body, len) => {
        const compiled = Filter.compile(`/${body}/`)
        return Result.isFailure(compiled) || typeof timed(() => compiled.success("a".repeat(len) + "!")) === "boolean"
      }),
      { numRuns: 500 }
    )
  })
})
