/**
 * Fuzzy name matching for messages: "did you mean …?" for a misspelt name, and how close a
 * pattern's literal part comes to a name.
 *
 * @since 0.1.0
 */
/** "did you mean …?" for a misspelt name: the closest candidate within a small edit distance. */
export const closest = (name: string, candidates: Iterable<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const c of candidates) {
    const d = distance(name, c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best
}

/** `" (did you mean "x"?)"` or the empty string. */
export const didYouMean = (name: string, candidates: Iterable<string>): string => {
  const c = closest(name, candidates)
  return c === undefined ? "" : ` (did you mean "${c}"?)`
}

/**
 * The fewest edits that turn `needle` into some substring of `haystack` (Sellers' approximate
 * substring search): 0 when it occurs as is. How close a filter's literal part (`self_atn` of
 * `*self_atn*`) comes to a tensor name.
 */
export const substringDistance = (needle: string, haystack: string): number => {
  // row[j]: edits to match needle[0..i) ending at haystack[j]; a match may start anywhere (row 0 is all 0).
  let row = new Array<number>(haystack.length + 1).fill(0)
  for (let i = 1; i <= needle.length; i++) {
    const next = [i]
    for (let j = 1; j <= haystack.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (needle[i - 1] === haystack[j - 1] ? 0 : 1))
    }
    row = next
  }
  return Math.min(...row)
}

/** Levenshtein distance. */
export const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]!
}
