/**
 * Glob matching in linear space and O(n·m) worst-case time, with no regex and no backtracking
 * beyond the last `*`: the classic greedy two-pointer wildcard match. `*` is any run of characters
 * (dots included), `?` exactly one UTF-16 code unit, every other character itself (case-sensitive);
 * the glob is anchored at both ends of the name.
 *
 * @since 0.1.0
 */

/**
 * Whether `glob` matches the whole of `name`. On a mismatch after a `*`, the star absorbs one more
 * character and matching resumes just after it; earlier stars never need revisiting, because a
 * later star can absorb anything an earlier one could.
 *
 * @category matching
 */
export const matches = (glob: string, name: string): boolean => {
  let p = 0
  let n = 0
  let star = -1
  let resume = 0
  while (n < name.length) {
    const c = glob.charCodeAt(p)
    if (p < glob.length && c !== 42 /* * */ && (c === 63 /* ? */ || c === name.charCodeAt(n))) {
      p++
      n++
    } else if (p < glob.length && c === 42) {
      star = p++
      resume = n
    } else if (star >= 0) {
      p = star + 1
      n = ++resume
    } else {
      return false
    }
  }
  while (p < glob.length && glob.charCodeAt(p) === 42) p++
  return p === glob.length
}
