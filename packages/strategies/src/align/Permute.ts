/**
 * Applying permutations to a parameter set. Convention, used by every module of `align/`: a
 * permutation `p` of size n moves unit `p[i]` of the input to position `i` of the output, i.e.
 * `out[…, i, …] = in[…, p[i], …]` along every axis the spec ties to `p`. Weight and activation
 * matching return the `p` that, applied to model B, puts B into model A's basin.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { InvalidPermutation, type SpecMismatch } from "./AlignError.ts"
import type { Param, Params } from "./Params.ts"
import { type PermutationSpec, type Resolved, type ResolvedAxis, resolve } from "./PermutationSpec.ts"

/** A permutation of `0..n-1`. @category models */
export type Permutation = Int32Array<ArrayBuffer>

/** Permutations by name, as a spec names them. @category models */
export type Permutations = ReadonlyMap<string, Permutation>

/** `[0, 1, …, n-1]`. @category constructors */
export const identity = (n: number): Permutation => {
  const p = new Int32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  return p
}

/** The permutation that undoes `p`: `apply(apply(x, p), inverse(p)) = x`. */
export const inverse = (p: Int32Array): Permutation => {
  const q = new Int32Array(p.length)
  for (let i = 0; i < p.length; i++) q[p[i]!] = i
  return q
}

/** Whether `p` is a bijection of `0..n-1`. */
export const isPermutation = (p: Int32Array, n: number): boolean => {
  if (p.length !== n) return false
  const seen = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const j = p[i]!
    if (j < 0 || j >= n || seen[j] === 1) return false
    seen[j] = 1
  }
  return true
}

/**
 * Checks that `permutations` has a bijection of the right size for every permutation of the
 * resolved spec.
 *
 * @category validation
 */
export const check = (resolved: Resolved, permutations: Permutations): Effect.Effect<void, InvalidPermutation> =>
  Effect.suspend(() => {
    for (const { name, size } of resolved.permutations) {
      const p = permutations.get(name)
      if (p === undefined) {
        return Effect.fail(new InvalidPermutation({ permutation: name, detail: "not given; pass one permutation per name of the spec" }))
      }
      if (!isPermutation(p, size)) {
        return Effect.fail(new InvalidPermutation({
          permutation: name,
          detail: p.length !== size
            ? `has ${p.length} entries, the spec permutes ${size} units`
            : `is not a bijection of 0..${size - 1} (an index repeats or is out of range)`
        }))
      }
    }
    return Effect.void
  })

/**
 * A new parameter set with every permuted axis of every tensor in `spec` rearranged. Tensors the
 * spec does not name are shared with the input, not copied; the input is never modified.
 *
 * @category combinators
 */
export const apply = (
  params: Params,
  spec: PermutationSpec,
  permutations: Permutations
): Effect.Effect<Params, SpecMismatch | InvalidPermutation> =>
  Effect.gen(function* () {
    const resolved = yield* resolve(spec, params)
    yield* check(resolved, permutations)
    return applyResolved(params, resolved, permutations)
  })

/** `apply` for a spec already resolved against `params` and permutations already checked. @category combinators */
export const applyResolved = (params: Params, resolved: Resolved, permutations: Permutations): Params => {
  const out = new Map(params)
  for (const [tensor, axes] of resolved.byTensor) {
    const param = params.get(tensor)!
    out.set(tensor, permuteTensor(param, axes.map((axis) => ({ axis: axis.axis, index: axisIndex(axis, permutations.get(axis.permutation)!, param.shape[axis.axis]!) }))))
  }
  return out
}

/**
 * The gather map of a whole axis: position `x = (o·n + u)·inner + r` reads `(o·n + p[u])·inner + r`,
 * where the axis reads as `[outer, n, inner]`.
 */
export const axisIndex = (axis: Pick<ResolvedAxis, "inner">, p: Int32Array, length: number): Int32Array<ArrayBuffer> => {
  const n = p.length
  const inner = axis.inner
  const index = new Int32Array(length)
  for (let x = 0; x < length; x++) {
    const u = Math.floor(x / inner) % n
    index[x] = x + (p[u]! - u) * inner
  }
  return index
}

/** Gathers `param` along each listed axis: `out[…, x, …] = in[…, index[x], …]`. */
export const permuteTensor = (param: Param, axes: ReadonlyArray<{ readonly axis: number; readonly index: Int32Array }>): Param => {
  const { shape, data } = param
  const rank = shape.length
  const strides = new Array<number>(rank)
  let stride = 1
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = stride
    stride *= shape[d]!
  }
  // offsets[d][c]: where coordinate c of dim d reads from, in elements of the flat input.
  const offsets: Array<Int32Array | undefined> = new Array(rank).fill(undefined)
  for (const { axis, index } of axes) {
    const table = new Int32Array(shape[axis]!)
    for (let c = 0; c < table.length; c++) table[c] = index[c]! * strides[axis]!
    offsets[axis] = table
  }
  // Unpermuted trailing dims are copied as contiguous runs.
  let prefix = rank
  while (prefix > 0 && offsets[prefix - 1] === undefined) prefix--
  const out = new Float32Array(data.length)
  if (data.length === 0) return { shape, data: out }
  if (prefix === 0) {
    out.set(data)
    return { shape, data: out }
  }
  const run = strides[prefix - 1]!
  // The last permuted dim is walked in the inner loop; the dims before it by an odometer.
  const last = prefix - 1
  const lastTable = offsets[last]!
  const lastLength = shape[last]!
  const coord = new Array<number>(last).fill(0)
  for (let target = 0; target < data.length; target += run * lastLength) {
    let base = 0
    for (let d = 0; d < last; d++) {
      const table = offsets[d]
      base += table === undefined ? coord[d]! * strides[d]! : table[coord[d]!]!
    }
    if (run === 1) {
      for (let c = 0; c < lastLength; c++) out[target + c] = data[base + lastTable[c]!]!
    } else {
      for (let c = 0; c < lastLength; c++) {
        const source = base + lastTable[c]!
        out.set(data.subarray(source, source + run), target + c * run)
      }
    }
    for (let d = last - 1; d >= 0; d--) {
      if (++coord[d]! < shape[d]!) break
      coord[d] = 0
    }
  }
  return { shape, data: out }
}
