/**
 * mergekit's Karcher merge: the Riemannian (Karcher) mean of the models' directions on the unit
 * sphere, scaled by their mean norm: `θ = (Σ αᵢ‖θᵢ‖)·u`, `u = argmin Σ αᵢ d(u, θᵢ/‖θᵢ‖)²` with
 * equal αᵢ = 1/N, each tensor flattened to one vector. `u` starts at the normalized mean of the
 * unit vectors and moves along the exponential map of the mean log map,
 * `T = Σ αᵢ·(ϑᵢ / sin ϑᵢ)·(uᵢ − cos ϑᵢ·u)`, `u ← cos‖T‖·u + sin‖T‖·T/‖T‖`, at most `maxIter`
 * times, until `‖T‖ < tol`. Models of norm ≤ `tol` take no part in the direction. Float64 throughout.
 *
 * @since 0.1.0
 */

/** @category params */
export interface KarcherParams {
  readonly maxIter: number
  readonly tol: number
}

/** What the iteration did, for the tensor's diagnostics. @category models */
export interface KarcherResult {
  readonly out: Float32Array
  /** Update steps taken. */
  readonly iterations: number
  /** Whether ‖T‖ fell below `tol` before `maxIter` steps. */
  readonly converged: boolean
}

const dot = (x: Float64Array, y: Float64Array): number => {
  let s = 0
  for (let j = 0; j < x.length; j++) s += x[j]! * y[j]!
  return s
}

/** ⟨u, m⟩·scale: the dot product with a model's unit vector, read from the float32 model. */
const dotScaled = (u: Float64Array, m: Float32Array, scale: number): number => {
  let s = 0
  for (let j = 0; j < u.length; j++) s += u[j]! * m[j]!
  return s * scale
}

/**
 * Memory: the mean `u` and the step `T` in float64 beside the inputs; the unit vectors are read
 * from the float32 models with their 1/‖θᵢ‖, never copied.
 *
 * @category kernels
 */
export const apply = (params: KarcherParams, models: ReadonlyArray<Float32Array>): KarcherResult => {
  const n = models[0]!.length
  const alpha = 1 / models.length
  const norms = models.map((m) => {
    let s = 0
    for (let j = 0; j < n; j++) s += m[j]! * m[j]!
    return Math.sqrt(s)
  })
  // The global scale counts every model, zero ones included (as mergekit).
  const scale = norms.reduce((s, v) => s + alpha * v, 0)
  const valid = models.flatMap((m, i) => (norms[i]! > params.tol ? [{ m, inverse: 1 / norms[i]! }] : []))
  if (valid.length === 0) return { out: new Float32Array(n), iterations: 0, converged: true }
  const weight = 1 / valid.length
  const u = new Float64Array(n)
  for (const { m, inverse } of valid) for (let j = 0; j < n; j++) u[j] = u[j]! + weight * (m[j]! * inverse)
  const mean = Math.sqrt(dot(u, u))
  if (mean < params.tol) for (let j = 0; j < n; j++) u[j] = valid[0]!.m[j]! * valid[0]!.inverse
  else for (let j = 0; j < n; j++) u[j] = u[j]! / mean
  const tangent = new Float64Array(n)
  let iterations = 0
  let converged = false
  for (let step = 0; step < params.maxIter; step++) {
    tangent.fill(0)
    for (const { m, inverse } of valid) {
      const cos = Math.min(1, Math.max(-1, dotScaled(u, m, inverse)))
      const angle = Math.acos(cos)
      if (angle < params.tol) continue
      const c = (weight * angle) / Math.sin(angle)
      for (let j = 0; j < n; j++) tangent[j] = tangent[j]! + c * (m[j]! * inverse - cos * u[j]!)
    }
    const length = Math.sqrt(dot(tangent, tangent))
    if (length < params.tol) {
      converged = true
      break
    }
    const cosT = Math.cos(length), sinT = Math.sin(length) / length
    for (let j = 0; j < n; j++) u[j] = cosT * u[j]! + sinT * tangent[j]!
    iterations++
    const norm = Math.sqrt(dot(u, u))
    if (norm > params.tol) for (let j = 0; j < n; j++) u[j] = u[j]! / norm
  }
  return { out: Float32Array.from(u, (x) => scale * x), iterations, converged }
}
