/**
 * A truncated SVD for LLM-sized matrices: the randomized range finder of Halko, Martinsson &
 * Tropp (2011, "Finding structure with randomness", algorithms 4.4 and 5.1), with the exact
 * one-sided Jacobi of `Svd.ts` kept for small matrices and as the fallback.
 *
 * For k = r + oversampling columns: Y = A·Ω with a seeded Gaussian Ω (n×k), then q rounds of
 * subspace iteration (Q ← orth(A·orth(AᵀQ))), which sharpen the spectrum like (AAᵀ)^q A·Ω but
 * re-orthonormalise between products so the small singular directions are not lost to rounding;
 * then B = QᵀA (k×n) and the exact Jacobi SVD of that small B: A ≈ (Q·U_B)·S·V_Bᵀ.
 * Cost: 2·(2q + 2)·m·n·k flops in four dense products plus O((m + n)·k²), against O(n³) for
 * Jacobi: seconds instead of hours for a 4096×4096 layer at rank 16–64.
 *
 * Everything is float64 on the host in a fixed order, and Ω comes from the repository's seeded
 * generator, so equal inputs (and seed) give equal bits on every machine.
 *
 * @since 0.1.0
 */
import * as Random from "../backend/Random.ts"
import * as Svd from "./Svd.ts"

/** What to keep: a fixed rank, or the smallest rank keeping an `energy` share of ‖A‖²_F. @category models */
export type Target = { readonly rank: number } | { readonly energy: number }

/** Knobs of the randomized path; the defaults are Halko et al.'s usual choices. @category models */
export interface Options {
  /** Extra columns beyond the rank (default 10). */
  readonly oversampling?: number
  /** Subspace-iteration rounds q (default 2). */
  readonly powerIterations?: number
  /** Seed of Ω (default 0). */
  readonly seed?: number
  /** Matrices whose smaller side is at most this take the exact path (default 256). */
  readonly exactBelow?: number
  /** The first sketch width when growing k for an `energy` target (default 32; doubled). */
  readonly initialWidth?: number
}

/** A truncated decomposition and the rank chosen from it. @category models */
export interface Truncated {
  /** The leading singular triplets (all k = min(m, n) of them on the exact path). */
  readonly svd: Svd.Svd
  /** The rank to keep (≤ svd.s.length). */
  readonly rank: number
  readonly method: "exact" | "randomized"
  /** ‖A‖²_F, the energy the `energy` target is a share of. */
  readonly total: number
}

const DEFAULTS = { oversampling: 10, powerIterations: 2, seed: 0, exactBelow: 256, initialWidth: 32 }

/**
 * The rank-r (or energy-e) truncation of the row-major m×n `a` (not modified). Exact Jacobi when
 * min(m, n) ≤ `exactBelow` or the sketch would be at least half of min(m, n) (where a sketch
 * saves little); otherwise randomized. For `energy`, the sketch width k doubles from
 * `initialWidth` until the captured Σσ² reaches e·‖A‖²_F with the chosen rank at most
 * k − oversampling (so the last kept values are not the least accurate ones of the sketch), and
 * falls back to Jacobi once k reaches min(m, n)/2.
 *
 * @category constructors
 */
export const truncated = (a: Float64Array, rows: number, cols: number, target: Target, options?: Options): Truncated => {
  const o = { ...DEFAULTS, ...options }
  const small = Math.min(rows, cols)
  const total = sumOfSquares(a)
  const exact = (): Truncated => {
    const d = Svd.svd(a, rows, cols)
    const rank = "rank" in target ? Math.max(1, Math.min(target.rank, small)) : Svd.rankForEnergy(d.s, target.energy)
    return { svd: d, rank, method: "exact", total }
  }
  if (small <= o.exactBelow) return exact()
  if ("rank" in target) {
    const rank = Math.max(1, Math.min(target.rank, small))
    const k = rank + o.oversampling
    if (2 * k >= small) return exact()
    return { svd: randomized(a, rows, cols, k, o), rank, method: "randomized", total }
  }
  for (let k = o.initialWidth; 2 * k < small; k *= 2) {
    const d = randomized(a, rows, cols, k, o)
    const rank = rankReaching(d.s, target.energy * total)
    if (rank !== undefined && rank + o.oversampling <= k) return { svd: d, rank, method: "randomized", total }
    // An all-zero matrix: nothing to capture, any k says so.
    if (total === 0) return { svd: d, rank: 1, method: "randomized", total }
  }
  return exact()
}

/**
 * The k leading singular triplets of the row-major m×n `a` by the randomized range finder
 * (k clamped to 1…min(m, n)); `sweeps` is the small Jacobi's.
 *
 * @category constructors
 */
export const randomized = (a: Float64Array, rows: number, cols: number, width: number, options?: Pick<Options, "powerIterations" | "seed">): Svd.Svd => {
  if (a.length !== rows * cols) throw new RangeError(`randomized svd: ${a.length} values for a ${rows}×${cols} matrix`)
  const k = Math.max(1, Math.min(width, rows, cols))
  const random = Random.make(options?.seed ?? DEFAULTS.seed)
  const omega = new Float64Array(cols * k)
  for (let i = 0; i < omega.length; i++) omega[i] = random.normal()
  let q = orthonormalColumns(times(a, rows, cols, omega, k), rows, k)
  for (let round = 0; round < (options?.powerIterations ?? DEFAULTS.powerIterations); round++) {
    const z = orthonormalColumns(transposeTimes(a, rows, cols, q, k), cols, k)
    q = orthonormalColumns(times(a, rows, cols, z, k), rows, k)
  }
  // Bᵀ = AᵀQ (n×k) = V_B·S·U_Bᵀ, so A ≈ Q·B = (Q·U_B)·S·V_Bᵀ.
  const small = Svd.svd(transposeTimes(a, rows, cols, q, k), cols, k)
  return { rows, cols, s: small.s, u: times(q, rows, k, small.v, k), v: small.u, sweeps: small.sweeps }
}

const sumOfSquares = (a: Float64Array): number => {
  let sum = 0
  for (let i = 0; i < a.length; i++) sum += a[i]! * a[i]!
  return sum
}

// The smallest r with σ₁² + … + σ_r² ≥ goal (a few ulps of slack), or undefined if all fall short.
const rankReaching = (s: Float64Array, goal: number): number | undefined => {
  let kept = 0
  for (let r = 1; r <= s.length; r++) {
    kept += s[r - 1]! * s[r - 1]!
    if (kept >= goal * (1 - 4 * Number.EPSILON)) return r
  }
  return undefined
}

/**
 * Y (m×k) = A (m×n) · X (n×k), all row-major. i-t-c order: each A element scales a contiguous row
 * of X into a contiguous row of Y; four A elements per pass so Y's row is loaded and stored a
 * quarter as often.
 */
const times = (a: Float64Array, m: number, n: number, x: Float64Array, k: number): Float64Array => {
  const y = new Float64Array(m * k)
  for (let i = 0; i < m; i++) {
    const ai = i * n
    const yi = i * k
    let t = 0
    for (; t + 4 <= n; t += 4) {
      const a0 = a[ai + t]!, a1 = a[ai + t + 1]!, a2 = a[ai + t + 2]!, a3 = a[ai + t + 3]!
      const x0 = t * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k
      for (let c = 0; c < k; c++) y[yi + c] = y[yi + c]! + a0 * x[x0 + c]! + a1 * x[x1 + c]! + a2 * x[x2 + c]! + a3 * x[x3 + c]!
    }
    for (; t < n; t++) {
      const at = a[ai + t]!
      const xt = t * k
      for (let c = 0; c < k; c++) y[yi + c] = y[yi + c]! + at * x[xt + c]!
    }
  }
  return y
}

/** Z (n×k) = Aᵀ · Q for row-major A (m×n) and Q (m×k): four rows of A per pass over Z. */
const transposeTimes = (a: Float64Array, m: number, n: number, q: Float64Array, k: number): Float64Array => {
  const z = new Float64Array(n * k)
  let i = 0
  for (; i + 4 <= m; i += 4) {
    const r0 = i * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n
    const q0 = i * k, q1 = q0 + k, q2 = q1 + k, q3 = q2 + k
    for (let t = 0; t < n; t++) {
      const b0 = a[r0 + t]!, b1 = a[r1 + t]!, b2 = a[r2 + t]!, b3 = a[r3 + t]!
      const zt = t * k
      for (let c = 0; c < k; c++) z[zt + c] = z[zt + c]! + b0 * q[q0 + c]! + b1 * q[q1 + c]! + b2 * q[q2 + c]! + b3 * q[q3 + c]!
    }
  }
  for (; i < m; i++) {
    const ri = i * n
    const qi = i * k
    for (let t = 0; t < n; t++) {
      const b = a[ri + t]!
      const zt = t * k
      for (let c = 0; c < k; c++) z[zt + c] = z[zt + c]! + b * q[qi + c]!
    }
  }
  return z
}

/**
 * An orthonormal basis of the columns of the row-major m×k `y`, as m×k row-major: modified
 * Gram–Schmidt run twice ("twice is enough", Giraud et al. 2005), on a transposed copy so each
 * column is contiguous. A column with nothing left after projection (the range has rank < k)
 * becomes zero, which later only yields zero singular values.
 */
const orthonormalColumns = (y: Float64Array, m: number, k: number): Float64Array => {
  const v = new Float64Array(k * m)
  for (let i = 0; i < m; i++) for (let c = 0; c < k; c++) v[c * m + i] = y[i * k + c]!
  for (let c = 0; c < k; c++) {
    const vc = c * m
    const before = Math.sqrt(dot(v, vc, v, vc, m))
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        const d = dot(v, p * m, v, vc, m)
        if (d !== 0) for (let i = 0; i < m; i++) v[vc + i] = v[vc + i]! - d * v[p * m + i]!
      }
    }
    const norm = Math.sqrt(dot(v, vc, v, vc, m))
    // Left with rounding noise only: the column was (numerically) in the span of the previous ones.
    if (norm <= 1e-13 * before || norm === 0) v.fill(0, vc, vc + m)
    else for (let i = 0; i < m; i++) v[vc + i] = v[vc + i]! / norm
  }
  const q = new Float64Array(m * k)
  for (let c = 0; c < k; c++) for (let i = 0; i < m; i++) q[i * k + c] = v[c * m + i]!
  return q
}

const dot = (a: Float64Array, ia: number, b: Float64Array, ib: number, n: number): number => {
  let sum = 0
  for (let i = 0; i < n; i++) sum += a[ia + i]! * b[ib + i]!
  return sum
}
