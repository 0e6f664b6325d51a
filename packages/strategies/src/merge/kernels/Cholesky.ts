/**
 * A small dense Cholesky solver in float64 for symmetric positive (semi-)definite systems, with
 * diagonal jitter when a matrix is only semi-definite (a Gram matrix of inputs that never vary).
 * Row-major and row-oriented (each step is a dot product of two contiguous rows), O(n³/3).
 *
 * @since 0.1.0
 */

/** A lower-triangular factor L with A + jitter·I = L·Lᵀ. @category models */
export interface Factor {
  readonly n: number
  /** n×n row-major; only the lower triangle is meaningful. */
  readonly l: Float64Array
  /** Lᵀ, row-major, so back substitution also reads contiguous rows. */
  readonly lt: Float64Array
  /** The multiple of the identity that was added (0 when A itself was positive definite). */
  readonly jitter: number
}

/** Factors `a` (only its lower triangle is read) plus `jitter` on the diagonal; undefined when a pivot is not positive. @category solvers */
export const factor = (a: ArrayLike<number>, n: number, jitter = 0): Factor | undefined => {
  const l = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    const ri = i * n
    for (let j = 0; j <= i; j++) {
      const rj = j * n
      let s = a[ri + j]!
      for (let k = 0; k < j; k++) s -= l[ri + k]! * l[rj + k]!
      if (i === j) {
        s += jitter
        if (!(s > 0)) return undefined
        l[ri + i] = Math.sqrt(s)
      } else {
        l[ri + j] = s / l[rj + j]!
      }
    }
  }
  const lt = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) lt[j * n + i] = l[i * n + j]!
  return { n, l, lt, jitter }
}

/**
 * Factors with increasing jitter: 0, then `10^k · 1e-12 · mean(diag)` for k = 0…`tries − 1`
 * (scale 1 when the diagonal is zero). Undefined when every attempt fails.
 *
 * @category solvers
 */
export const factorWithJitter = (a: ArrayLike<number>, n: number, tries = 10): Factor | undefined => {
  const exact = factor(a, n)
  if (exact !== undefined) return exact
  let trace = 0
  for (let i = 0; i < n; i++) trace += Math.abs(a[i * n + i]!)
  const scale = trace > 0 ? trace / n : 1
  for (let k = 0; k < tries; k++) {
    const attempt = factor(a, n, scale * 1e-12 * 10 ** k)
    if (attempt !== undefined) return attempt
  }
  return undefined
}

/** Solves (L·Lᵀ)·x = b in place (`b` becomes x), reading `b` at `b[at + i]`. @category solvers */
export const solveInPlace = (f: Factor, b: Float64Array, at = 0): void => {
  const { n, l, lt } = f
  for (let i = 0; i < n; i++) {
    const ri = i * n
    let s = b[at + i]!
    for (let k = 0; k < i; k++) s -= l[ri + k]! * b[at + k]!
    b[at + i] = s / l[ri + i]!
  }
  for (let i = n - 1; i >= 0; i--) {
    const ri = i * n
    let s = b[at + i]!
    for (let k = i + 1; k < n; k++) s -= lt[ri + k]! * b[at + k]!
    b[at + i] = s / lt[ri + i]!
  }
}
