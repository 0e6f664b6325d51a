// Independent float64 references of mergekit's nuslerp, karcher, sce, nearswap and arcee_fusion,
// written as plainly as possible (nested arrays, whole-array passes, sorts with comparators) so
// that they share no code or structure with the kernels they check.

type Vector = Array<number>

const norm = (x: Vector) => Math.sqrt(x.reduce((s, v) => s + v * v, 0))
const dot = (x: Vector, y: Vector) => x.reduce((s, v, i) => s + v * y[i]!, 0)
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x))

/** The vectors a tensor splits into, as lists of flat indices: whole, rows (last axis) or columns (first axis). */
const groups = (shape: ReadonlyArray<number>, mode: "whole" | "rows" | "columns"): Array<Array<number>> => {
  const n = shape.reduce((a, b) => a * b, 1)
  const all = Array.from({ length: n }, (_, i) => i)
  if (mode === "whole" || shape.length < 2) return [all]
  if (mode === "rows") {
    const length = shape[shape.length - 1]!
    return Array.from({ length: n / length }, (_, r) => all.slice(r * length, (r + 1) * length))
  }
  const rest = n / shape[0]!
  return Array.from({ length: rest }, (_, c) => Array.from({ length: shape[0]! }, (_, k) => k * rest + c))
}

const slerpVectors = (t: number, x: Vector, y: Vector): Vector => {
  const cos = dot(x, y) / (Math.max(norm(x), 1e-7) * Math.max(norm(y), 1e-7))
  const theta = Math.acos(clamp(cos, -1, 1))
  if (Math.abs(Math.sin(theta)) < 1e-8) return x.map((v, i) => (1 - t) * v + t * y[i]!)
  return x.map((v, i) => (Math.sin((1 - t) * theta) * v + Math.sin(t * theta) * y[i]!) / Math.sin(theta))
}

export const nuslerp = (shape: ReadonlyArray<number>, models: ReadonlyArray<Vector>, base: Vector | undefined, weight: [number, number], rowWise = false, flatten = true): Vector => {
  const t = Math.abs(weight[0] + weight[1]) < 1e-6 ? 0.5 : weight[1] / (weight[0] + weight[1])
  const origin = base ?? models[0]!.map(() => 0)
  const out = origin.slice()
  for (const group of groups(shape, flatten ? "whole" : rowWise ? "columns" : "rows")) {
    const res = slerpVectors(t, group.map((j) => models[0]![j]! - origin[j]!), group.map((j) => models[1]![j]! - origin[j]!))
    group.forEach((j, k) => (out[j] = origin[j]! + res[k]!))
  }
  return out
}

export const karcher = (models: ReadonlyArray<Vector>, maxIter = 10, tol = 1e-5): Vector => {
  const norms = models.map(norm)
  const units = models.filter((_, i) => norms[i]! > tol).map((m, i) => m.map((v) => v / norms.filter((x) => x > tol)[i]!))
  const scale = norms.reduce((s, v) => s + v / models.length, 0)
  if (units.length === 0) return models[0]!.map(() => 0)
  const a = 1 / units.length
  let u = units[0]!.map((_, j) => units.reduce((s, x) => s + a * x[j]!, 0))
  const mean = norm(u)
  u = mean < tol ? units[0]!.slice() : u.map((v) => v / mean)
  for (let it = 0; it < maxIter; it++) {
    const tangent = u.map(() => 0)
    for (const x of units) {
      const c = clamp(dot(u, x), -1, 1)
      const theta = Math.acos(c)
      if (theta < tol) continue
      x.forEach((v, j) => (tangent[j] = tangent[j]! + a * (theta / Math.sin(theta)) * (v - c * u[j]!)))
    }
    const length = norm(tangent)
    if (length < tol) break
    u = u.map((v, j) => Math.cos(length) * v + Math.sin(length) * tangent[j]! / length)
    const n = norm(u)
    if (n > tol) u = u.map((v) => v / n)
  }
  return u.map((v) => scale * v)
}

export const sce = (models: ReadonlyArray<Vector>, base: Vector, selectTopk = 1): Vector => {
  let tvs = models.map((m) => m.map((v, j) => v - base[j]!))
  if (selectTopk < 1) {
    const variance = base.map((_, j) => {
      const mean = tvs.reduce((s, tv) => s + tv[j]!, 0) / tvs.length
      return tvs.reduce((s, tv) => s + (tv[j]! - mean) ** 2, 0) / tvs.length
    })
    const k = selectTopk <= 0 ? 0 : Math.floor(variance.filter((v) => v !== 0).length * selectTopk)
    const chosen = new Set(variance.map((v, j) => [v, j] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, k).map(([, j]) => j))
    tvs = tvs.map((tv) => tv.map((v, j) => (chosen.has(j) ? v : 0)))
  }
  const squares = tvs.map((tv) => tv.reduce((s, v) => s + v * v, 0) / tv.length)
  const total = squares.reduce((s, v) => s + v, 0)
  const weights = Math.abs(total) < 1e-6 ? squares.map(() => 1 / squares.length) : squares.map((s) => s / total)
  return base.map((b, j) => {
    const majority = tvs.reduce((s, tv) => s + tv[j]!, 0) >= 0 ? 1 : -1
    const agree = tvs.map((tv) => (Math.sign(tv[j]!) === majority ? 1 : 0))
    const divisor = Math.max(agree.reduce((s: number, m, i) => s + m * weights[i]!, 0), 1e-6)
    return b + tvs.reduce((s, tv, i) => s + agree[i]! * weights[i]! * tv[j]!, 0) / divisor
  })
}

export const nearswap = (model: Vector, base: Vector, t: number): Vector =>
  base.map((a, j) => {
    const w = clamp(t / Math.max(Math.abs(a - model[j]!), 1e-6), 0, 1)
    return w * model[j]! + (1 - w) * a
  })

const softmax = (x: Vector) => {
  const e = x.map((v) => Math.exp(v - Math.max(...x)))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / s + 1e-8)
}

export const arceeFusion = (shape: ReadonlyArray<number>, model: Vector, base: Vector): Vector => {
  const importance = base.map(() => 0)
  for (const row of groups(shape, "rows")) {
    const p = softmax(row.map((j) => model[j]!)), q = softmax(row.map((j) => base[j]!))
    const kl = p.reduce((s, pk, k) => s + pk * Math.log(pk / q[k]!), 0)
    for (const j of row) importance[j] = Math.abs(model[j]! - base[j]!) * kl
  }
  const sorted = importance.slice().sort((a, b) => a - b)
  const quantile = (q: number) => sorted[Math.floor(q * (sorted.length - 1))]!
  const threshold = quantile(0.5) + 1.5 * (quantile(0.75) - quantile(0.25))
  return base.map((b, j) => (importance[j]! >= threshold ? model[j]! : b))
}
