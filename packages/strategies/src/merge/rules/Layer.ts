/**
 * Layer positions from tensor names, for gradients: the index in `model.layers.3.mlp…`,
 * `transformer.h.3.attn…`, `blocks.3.…`, `encoder.layer.3.…` (the first such segment pair wins),
 * and the position t ∈ [0, 1] a gradient is evaluated at.
 *
 * @since 0.1.0
 */

const LAYER = /(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)/

/** The layer index in a tensor name, or undefined for tensors outside the layer stack (embeddings, heads). @category layers */
export const layerIndex = (tensorName: string): number | undefined => {
  const m = LAYER.exec(tensorName)
  return m === null ? undefined : Number(m[1])
}

/** The number of layers the names span: the largest layer index + 1 (0 when none has one). @category layers */
export const layerCount = (tensorNames: Iterable<string>): number => {
  let count = 0
  for (const name of tensorNames) {
    const i = layerIndex(name)
    if (i !== undefined && i + 1 > count) count = i + 1
  }
  return count
}

/**
 * Where a gradient is evaluated, as mergekit does: `index / (count − 1)` (the first layer gets
 * the first value, the last layer the last), 1 for a single layer, and 0 for tensors outside the
 * layer stack. Clamped to [0, 1].
 *
 * @category layers
 */
export const position = (index: number | undefined, count: number): number => {
  if (index === undefined) return 0
  if (count <= 1) return 1
  return Math.min(1, Math.max(0, index / (count - 1)))
}

/** A gradient's value at t: piecewise-linear between equally spaced points (mergekit's interpolation). @category layers */
export const interpolate = (values: ReadonlyArray<number>, t: number): number => {
  const scaled = t * (values.length - 1)
  const i0 = Math.floor(scaled)
  const i1 = Math.min(values.length - 1, i0 + 1)
  const frac = scaled - i0
  return frac === 0 ? values[i0]! : (1 - frac) * values[i0]! + frac * values[i1]!
}
