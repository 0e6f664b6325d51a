/**
 * A deterministic thin SVD in float64 (one-sided Jacobi, Hestenes 1958), and the low-rank
 * factors a LoRA adapter stores.
 *
 * One-sided Jacobi rotates pairs of the k = min(m, n) vectors of the matrix until every pair is
 * orthogonal; their norms are then the singular values. It works on the matrix itself, not on a
 * Gram matrix, so small singular values keep their relative accuracy (a Gram matrix squares the
 * condition number), and its fixed sweep order makes it deterministic: equal inputs give equal
 * bits. Cost: about 4·max(m,n)·k² flops per sweep, 12–18 sweeps for a full-rank matrix — 0.7 s
 * for 256×256, 3–9 s for 512×512 here — and O(n³): a 4096×4096 layer would take over an hour.
 * `RandomizedSvd.ts` takes larger layers (seconds at 4096×4096) and uses this on its small sketch.
 *
 * @since 0.1.0
 */

/** A thin SVD `A = U·diag(s)·Vᵀ` of an m×n matrix, k = min(m, n). @category models */
export interface Svd {
  readonly rows: number
  readonly cols: number
  /** Singular values, descending (k). */
  readonly s: Float64Array
  /** Left singular vectors, m×k row-major (columns are the vectors). */
  readonly u: Float64Array
  /** Right singular vectors, n×k row-major (columns are the vectors). */
  readonly v: Float64Array
  /** Jacobi sweeps it took. */
  readonly sweeps: number
}

/** Sweeps before giving up on convergence (it converges quadratically; under 20 is typical). */
const MAX_SWEEPS = 60

/**
 * The thin SVD of the row-major m×n matrix `a` (not modified).
 *
 * @category constructors
 */
export const svd = (a: Float64Array, rows: number, cols: number): Svd => {
  if (a.length !== rows * cols) throw new RangeError(`svd: ${a.length} values for a ${rows}×${cols} matrix`)
  // Work on k vectors of length len, stored as rows: the rows of A when A is wide (A = W Σ Zᵀ
  // with the vectors being Aᵀ's columns), else the columns of A.
  const wide = rows < cols
  const k = Math.min(rows, cols)
  const len = Math.max(rows, cols)
  const x = new Float64Array(k * len)
  if (wide) x.set(a)
  else for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) x[j * len + i] = a[i * cols + j]!
  // Rotations accumulated: row j of `z` is column j of the orthogonal k×k factor.
  const z = new Float64Array(k * k)
  for (let j = 0; j < k; j++) z[j * k + j] = 1
  const sweeps = orthogonalize(x, z, k, len)
  // Norms are the singular values; order them descending, ties by index (deterministic).
  const norms = new Float64Array(k)
  for (let j = 0; j < k; j++) norms[j] = Math.sqrt(dot(x, j * len, x, j * len, len))
  const order = Array.from({ length: k }, (_, j) => j).sort((p, q) => norms[q]! - norms[p]! || p - q)
  const s = new Float64Array(k)
  // The normalised rotated vectors live in the long space, the rotations in the short one.
  const long = new Float64Array(len * k)
  const short = new Float64Array(k * k)
  order.forEach((j, c) => {
    const sigma = norms[j]!
    s[c] = sigma
    if (sigma > 0) for (let i = 0; i < len; i++) long[i * k + c] = x[j * len + i]! / sigma
    for (let i = 0; i < k; i++) short[i * k + c] = z[j * k + i]!
  })
  // Tall: A·Z = X ⇒ U = X/σ (long), V = Z (short). Wide: Aᵀ·Z = Xᵀ ⇒ V = X/σ, U = Z.
  return wide ? { rows, cols, s, u: short, v: long, sweeps } : { rows, cols, s, u: long, v: short, sweeps }
}

// Cyclic sweeps of Jacobi rotations over all pairs of rows of x (k×len), applied to z too. The
// squared norms are updated by each rotation (α' = α − tγ, β' = β + tγ) instead of recomputed,
// which saves two of the three dot products per pair; they are recomputed at every sweep's start
// so rounding cannot accumulate.
const orthogonalize = (x: Float64Array, z: Float64Array, k: number, len: number): number => {
  const norms = new Float64Array(k)
  for (let sweep = 1; sweep <= MAX_SWEEPS; sweep++) {
    for (let j = 0; j < k; j++) norms[j] = dot(x, j * len, x, j * len, len)
    let rotated = false
    for (let p = 0; p < k - 1; p++) {
      for (let q = p + 1; q < k; q++) {
        const alpha = norms[p]!
        const beta = norms[q]!
        const gamma = dot(x, p * len, x, q * len, len)
        // Orthogonal to working precision (or a zero vector): nothing to do for this pair.
        if (gamma === 0 || Math.abs(gamma) <= Number.EPSILON * Math.sqrt(alpha * beta)) continue
        rotated = true
        const zeta = (beta - alpha) / (2 * gamma)
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta))
        const c = 1 / Math.sqrt(1 + t * t)
        const sn = c * t
        rotate(x, p * len, q * len, len, c, sn)
        rotate(z, p * k, q * k, k, c, sn)
        norms[p] = alpha - t * gamma
        norms[q] = beta + t * gamma
      }
    }
    if (!rotated) return sweep
  }
  return MAX_SWEEPS
}

const dot = (a: Float64Array, ia: number, b: Float64Array, ib: number, n: number): number => {
  let sum = 0
  for (let i = 0; i < n; i++) sum += a[ia + i]! * b[ib + i]!
  return sum
}

// (row p, row q) ← (c·p − s·q, s·p + c·q)
const rotate = (m: Float64Array, p: number, q: number, n: number, c: number, s: number): void => {
  for (let i = 0; i < n; i++) {
    const xp = m[p + i]!
    const xq = m[q + i]!
    m[p + i] = c * xp - s * xq
    m[q + i] = s * xp + c * xq
  }
}

/**
 * The smallest rank r whose leading singular values keep at least `energy` of Σσ² (at least 1;
 * a zero matrix gives 1).
 *
 * @category rank
 */
export const rankForEnergy = (s: ArrayLike<number>, energy: number): number => {
  let total = 0
  for (let i = 0; i < s.length; i++) total += s[i]! * s[i]!
  if (total === 0) return 1
  let kept = 0
  for (let r = 1; r <= s.length; r++) {
    kept += s[r - 1]! * s[r - 1]!
    // A relative slack of a few ulps, so `energy: 1` stops at the last non-zero value.
    if (kept >= energy * total * (1 - 4 * Number.EPSILON)) return r
  }
  return s.length
}

/** LoRA factors `ΔW ≈ B·A`: A is r×n, B is m×r, row-major float64. @category models */
export interface Factors {
  readonly rank: number
  readonly a: Float64Array
  readonly b: Float64Array
}

/**
 * Truncates `d` (the SVD of ΔW) to rank `rank` (clamped to 1…k) and splits the singular values
 * evenly, as mergekit's `extract_lora` does by default (`--distribute-scale`):
 * B = U_r·√S_r, A = √S_r·V_rᵀ, so both factors have the same scale.
 *
 * @category constructors
 */
export const factors = (d: Svd, rank: number): Factors => {
  const { rows: m, cols: n, s, u, v } = d
  const k = s.length
  const r = Math.max(1, Math.min(rank, k))
  const a = new Float64Array(r * n)
  const b = new Float64Array(m * r)
  for (let c = 0; c < r; c++) {
    const root = Math.sqrt(s[c]!)
    for (let i = 0; i < m; i++) b[i * r + c] = u[i * k + c]! * root
    for (let j = 0; j < n; j++) a[c * n + j] = v[j * k + c]! * root
  }
  return { rank: r, a, b }
}

/** The Frobenius norms of a reconstruction's residual and of its target. @category models */
export interface Reconstruction {
  /** ‖ΔW − B·A‖_F */
  readonly residual: number
  /** ‖ΔW‖_F */
  readonly norm: number
}

/**
 * How well factors B (m×r) and A (r×n) reconstruct the m×n `delta`, in float64, from the factors
 * as given (so it measures what an adapter stores, after its dtype).
 *
 * @category measures
 */
export const reconstruction = (delta: ArrayLike<number>, b: ArrayLike<number>, a: ArrayLike<number>, m: number, n: number, r: number): Reconstruction => {
  let residual = 0
  let norm = 0
  const row = new Float64Array(n)
  for (let i = 0; i < m; i++) {
    row.fill(0)
    for (let c = 0; c < r; c++) {
      const bic = b[i * r + c]!
      if (bic !== 0) for (let j = 0; j < n; j++) row[j] = row[j]! + bic * a[c * n + j]!
    }
    for (let j = 0; j < n; j++) {
      const d = delta[i * n + j]!
      norm += d * d
      residual += (d - row[j]!) ** 2
    }
  }
  return { residual: Math.sqrt(residual), norm: Math.sqrt(norm) }
}

/** ‖ΔW − B·A‖_F / ‖ΔW‖_F; 0 for an exact reconstruction of a zero ΔW. @category measures */
export const relativeError = (r: Reconstruction): number => (r.norm === 0 ? (r.residual === 0 ? 0 : Infinity) : r.residual / r.norm)
