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

const distance = (a: string, b: string): number => {
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
