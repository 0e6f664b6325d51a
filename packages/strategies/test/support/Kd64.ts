// Float64 references for the distillation-loss tests (distill/KdLoss, lm/LmTrain's distillLoss):
// the tempered softmax, Hinton's loss from its definition, and central finite differences.

/** `softmax(z/t)` of row `row` of `z` `[rows, k]`, in float64. */
export const softmax64 = (z: ArrayLike<number>, row: number, k: number, t: number): Array<number> => {
  const xs = Array.from({ length: k }, (_, j) => z[row * k + j]! / t)
  const max = Math.max(...xs)
  const e = xs.map((x) => Math.exp(x - max))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / s)
}

/** α·T²·KL(p ‖ softmax(z/T)) + (1 − α)·CE(y, z), mean over the `p.length` rows of `z` `[rows, k]`, in float64. */
export const hinton64 = (z: ArrayLike<number>, k: number, p: ReadonlyArray<ReadonlyArray<number>>, y: Int32Array, t: number, alpha: number): number => {
  const rows = p.length
  let kl = 0
  let ce = 0
  for (let n = 0; n < rows; n++) {
    const q = softmax64(z, n, k, t)
    for (let j = 0; j < k; j++) if (p[n]![j]! > 0) kl += (p[n]![j]! * (Math.log(p[n]![j]!) - Math.log(q[j]!))) / rows
    ce -= Math.log(softmax64(z, n, k, 1)[y[n]!]!) / rows
  }
  return alpha * t * t * kl + (1 - alpha) * ce
}

/** `∂f/∂x` by central differences in float64 (step `h`: ~h² truncation, far below float32's error). */
export const numericGrad = (x: Float32Array, f: (v: Float64Array) => number, h = 1e-6): Array<number> => {
  const x64 = Float64Array.from(x)
  return Array.from(x64, (_, i) => {
    const up = Float64Array.from(x64)
    up[i]! += h
    const down = Float64Array.from(x64)
    down[i]! -= h
    return (f(up) - f(down)) / (2 * h)
  })
}
