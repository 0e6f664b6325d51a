/**
 * The score matrix of one permutation in weight matching,
 * `S[i, j] = Σ_{tensors t, axes of t in p} ⟨A_t[unit i], π(B_t)[unit j]⟩`, where `π` applies the
 * current permutations to every other permuted axis of `B_t`.
 *
 * Each tensor axis is viewed as an `n × K` matrix (units × everything else). B's columns are
 * gathered through the other permutations, so a change of those permutations only moves columns.
 * `S` is linear in the gathered columns: when few of them moved since `S` was last built (the
 * usual case after the first sweeps), `S` is corrected by `A_c·(B_new,c − B_old,c)ᵀ` over the moved
 * columns `c` instead of being rebuilt, which cuts later sweeps to a fraction of the first.
 *
 * @since 0.1.0
 */
import type { Param } from "../Params.ts"
import type { Permutations } from "../Permute.ts"
import type { ResolvedAxis } from "../PermutationSpec.ts"
import type { Gemm } from "./Gemm.ts"

/** One (tensor, axis) of the permutation, as an n × K pair of views. */
interface Entry {
  readonly shape: ReadonlyArray<number>
  readonly axis: ResolvedAxis
  /** The other permuted axes of the tensor (their permutations may change between updates). */
  readonly others: ReadonlyArray<ResolvedAxis>
  readonly columns: number
  /** Elements between unit u and unit u + 1 along the axis, in the flat tensor. */
  readonly rowStride: number
  /** A's n × K view, row-major. */
  readonly a: Float32Array
  /** B's flat data. */
  readonly b: Float32Array
  /** Where each of the K columns of B's view was read from when `S` was last updated. */
  offsets: Int32Array | undefined
}

/** The cached score matrix of one permutation. */
export interface Scores {
  readonly gemm: Gemm
  readonly size: number
  readonly entries: ReadonlyArray<Entry>
  /** n × n, valid once `update` has run. */
  readonly matrix: Float64Array
  built: boolean
}

const stridesOf = (shape: ReadonlyArray<number>): Array<number> => {
  const strides = new Array<number>(shape.length)
  let stride = 1
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = stride
    stride *= shape[d]!
  }
  return strides
}

/**
 * The flat offset of each of the K columns, in row-major order over (dims before the axis, outer,
 * inner, dims after the axis); other permuted axes read through `permutations` (identity when
 * `permutations` is undefined, which gives A's layout).
 */
const columnOffsets = (
  shape: ReadonlyArray<number>,
  axis: ResolvedAxis,
  others: ReadonlyArray<ResolvedAxis>,
  permutations: Permutations | undefined
): Int32Array => {
  const strides = stridesOf(shape)
  const n = shape[axis.axis]! / (axis.outer * axis.inner)
  const tables: Array<Int32Array> = []
  const dimensionTable = (d: number): Int32Array => {
    const table = new Int32Array(shape[d]!)
    const other = others.find((o) => o.axis === d)
    const p = other === undefined || permutations === undefined ? undefined : permutations.get(other.permutation)!
    for (let c = 0; c < table.length; c++) {
      let source = c
      if (p !== undefined) {
        const u = Math.floor(c / other!.inner) % p.length
        source = c + (p[u]! - u) * other!.inner
      }
      table[c] = source * strides[d]!
    }
    return table
  }
  for (let d = 0; d < axis.axis; d++) tables.push(dimensionTable(d))
  tables.push(Int32Array.from({ length: axis.outer }, (_, o) => o * n * axis.inner * strides[axis.axis]!))
  tables.push(Int32Array.from({ length: axis.inner }, (_, r) => r * strides[axis.axis]!))
  for (let d = axis.axis + 1; d < shape.length; d++) tables.push(dimensionTable(d))
  let offsets = new Int32Array([0])
  for (const table of tables) {
    const next = new Int32Array(offsets.length * table.length)
    let k = 0
    for (let q = 0; q < offsets.length; q++) for (let t = 0; t < table.length; t++) next[k++] = offsets[q]! + table[t]!
    offsets = next
  }
  return offsets
}

/** Copies `columns` (all when undefined) of the n-row view at `offsets` out of `data`. */
const gather = (
  data: Float32Array,
  n: number,
  rowStride: number,
  offsets: Int32Array,
  columns: Int32Array | undefined
): Float32Array => {
  const width = columns === undefined ? offsets.length : columns.length
  const out = new Float32Array(n * width)
  for (let u = 0; u < n; u++) {
    const base = u * rowStride
    const row = u * width
    if (columns === undefined) for (let k = 0; k < width; k++) out[row + k] = data[base + offsets[k]!]!
    else for (let k = 0; k < width; k++) out[row + k] = data[base + offsets[columns[k]!]!]!
  }
  return out
}

/**
 * Prepares the score matrix of a permutation of `size` units over its axes, for models `a` and `b`
 * (same shapes); `byTensor` lists every permuted axis of each tensor.
 */
export const make = (
  gemm: Gemm,
  size: number,
  axes: ReadonlyArray<ResolvedAxis>,
  byTensor: ReadonlyMap<string, ReadonlyArray<ResolvedAxis>>,
  a: ReadonlyMap<string, Param>,
  b: ReadonlyMap<string, Param>
): Scores => {
  const entries = axes.map((axis): Entry => {
    const { shape, data } = a.get(axis.tensor)!
    const others = byTensor.get(axis.tensor)!.filter((o) => o !== axis)
    const rowStride = axis.inner * stridesOf(shape)[axis.axis]!
    const identity = columnOffsets(shape, axis, others, undefined)
    // A contiguous n × K layout (a row axis, no outer blocks) is used in place.
    const contiguous = rowStride === identity.length && identity.every((offset, k) => offset === k)
    return {
      shape,
      axis,
      others,
      columns: identity.length,
      rowStride,
      a: contiguous ? data : gather(data, size, rowStride, identity, undefined),
      b: b.get(axis.tensor)!.data,
      offsets: undefined
    }
  })
  return { gemm, size, entries, matrix: new Float64Array(size * size), built: false }
}

/**
 * Brings `scores.matrix` up to date with `permutations`, rebuilding or correcting, whichever is
 * cheaper; false when no column moved, i.e. the matrix is the one of the previous update.
 */
export const update = (scores: Scores, permutations: Permutations): boolean => {
  const n = scores.size
  const fresh = scores.entries.map((entry) => columnOffsets(entry.shape, entry.axis, entry.others, permutations))
  const moved = scores.entries.map((entry, e) => {
    const previous = entry.offsets
    if (previous === undefined) return undefined
    const now = fresh[e]!
    const columns: Array<number> = []
    for (let k = 0; k < now.length; k++) if (now[k] !== previous[k]) columns.push(k)
    return Int32Array.from(columns)
  })
  const movedCount = moved.reduce((sum, columns) => sum + (columns === undefined ? Infinity : columns.length), 0)
  if (scores.built && movedCount === 0) return false
  const rebuildCost = scores.entries.reduce((sum, entry) => sum + entry.columns, 0)
  // A column of a correction reads B twice: 1.06× a rebuild's column in WebAssembly, 1.3× in JS.
  if (!scores.built || 1.2 * movedCount >= rebuildCost) {
    scores.matrix.fill(0)
    scores.entries.forEach((entry, e) => {
      scores.gemm.addABt(entry.a, gather(entry.b, n, entry.rowStride, fresh[e]!, undefined), n, n, entry.columns, scores.matrix)
    })
  } else {
    scores.entries.forEach((entry, e) => {
      const columns = moved[e]!
      if (columns.length === 0) return
      scores.gemm.addABtDifference(
        gather(entry.a, n, entry.columns, identityOffsets(entry.columns), columns),
        gather(entry.b, n, entry.rowStride, fresh[e]!, columns),
        gather(entry.b, n, entry.rowStride, entry.offsets!, columns),
        n,
        n,
        columns.length,
        scores.matrix
      )
    })
  }
  scores.entries.forEach((entry, e) => {
    entry.offsets = fresh[e]!
  })
  scores.built = true
  return true
}

const identityOffsets = (length: number): Int32Array => Int32Array.from({ length }, (_, k) => k)
