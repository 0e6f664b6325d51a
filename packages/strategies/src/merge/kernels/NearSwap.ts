/**
 * mergekit's NearSwap: where a model is near the base it takes the model's value, elsewhere it
 * stays near the base. Per element, `w = clamp(t / max(|base − θ|, 1e-6), 0, 1)` and
 * `out = w·θ + (1 − w)·base`; so entries that differ by at most `t` are swapped in whole.
 * Elementwise, so any range split (the pool's `nearSwap` op) gives the same bytes.
 *
 * @since 0.1.0
 */

const MIN_DIFFERENCE = 1e-6

/** Writes `out[start, end)`. @category kernels */
export const apply = (t: number, out: Float32Array, base: Float32Array, model: Float32Array, start = 0, end = out.length): void => {
  for (let j = start; j < end; j++) {
    const a = base[j]!, b = model[j]!
    const w = Math.min(1, Math.max(0, t / Math.max(Math.abs(a - b), MIN_DIFFERENCE)))
    out[j] = w * b + (1 - w) * a
  }
}
