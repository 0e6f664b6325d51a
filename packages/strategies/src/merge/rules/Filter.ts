/**
 * Tensor-name filters of parameter rules: a `/regex/flags` (searched anywhere in the name), or a
 * glob matched against the whole name, where `*` is any run of characters (dots included) and
 * `?` one character. A pattern with neither `*` nor `?` matches as a substring, which is what
 * mergekit's filters do (`filter: self_attn`), so its configurations keep their meaning; `*`
 * alone matches everything. Matching is case-sensitive (regexes take the `i` flag).
 *
 * No filter can pin a core: globs run on a greedy two-pointer matcher (`Glob.ts`, O(n·m) at worst)
 * and regexes on a linear-time NFA (`Regex.ts`), which refuses backreferences, lookarounds and
 * nested repetitions such as `(a+)+` when the filter is compiled, so validation reports them.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import * as Glob from "./Glob.ts"
import * as Regex from "./Regex.ts"

/** A compiled filter. @category models */
export type Matcher = (tensorName: string) => boolean

const REGEX = /^\/(.*)\/([a-z]*)$/s
const ALLOWED_FLAGS = /^[imsu]*$/

/** Compiles a pattern, or explains why it is not one. @category constructors */
export const compile = (pattern: string): Result.Result<Matcher, string> => {
  if (pattern.length === 0) return Result.fail("the filter is empty (use \"*\" to match every tensor)")
  const regex = REGEX.exec(pattern)
  if (regex !== null) {
    const [, body, flags] = regex as unknown as [string, string, string]
    if (!ALLOWED_FLAGS.test(flags)) return Result.fail(`regex flags "${flags}" are not allowed (use i, m, s or u)`)
    try {
      new RegExp(body, flags)
    } catch (cause) {
      return Result.fail(`invalid regex ${pattern}: ${cause instanceof Error ? cause.message : String(cause)}`)
    }
    return Result.mapError(Regex.compile(body, flags), (refused) => `regex ${pattern} is refused: ${refused.reason}`)
  }
  if (pattern === "*") return Result.succeed(() => true)
  if (!/[*?]/.test(pattern)) return Result.succeed((name) => name.includes(pattern))
  return Result.succeed((name) => Glob.matches(pattern, name))
}

/** A filter string that compiles. @category schemas */
export const FilterPattern = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => {
    const r = compile(s)
    return Result.isSuccess(r) ? true : r.failure
  }))
)
