/**
 * Where each row of an embedding (or lm_head) permuted to a target vocabulary comes from, as
 * mergekit's `PermutedEmbeddings` (`mergekit/tokenizer/embed.py`, commit a6e4028): row k of a model
 * is its own row for token k's string when it has one; otherwise the token's default row, chosen
 * over all the models of the merge:
 * - one model has the token → that model's row;
 * - no model has it → zeros;
 * - the base has it → the base's row;
 * - else → the mean of the rows of the models that have it;
 * unless the token's source is given (mergekit's `tokenizer.tokens`): a model's row, or zeros.
 * Rows past the vocabulary (`pad_to_multiple_of`) are the mean of the model's first rows.
 *
 * @since 0.1.0
 */

/** One model's view of the target vocabulary: `rows[k]` is its row for target token k, or -1. @category models */
export interface Permutation {
  readonly rows: Int32Array
}

/**
 * A model's permutation to `target` (token → id): the model's id for each target token, or -1
 * when it lacks the token or its id has no row (id ≥ `rowCount`, mergekit's padding warning).
 *
 * @category constructors
 */
export const permutation = (target: ReadonlyMap<string, number>, targetSize: number, own: ReadonlyMap<string, number>, rowCount: number): Permutation => {
  const rows = new Int32Array(targetSize).fill(-1)
  for (const [token, k] of target) {
    const id = own.get(token)
    if (id !== undefined && id < rowCount) rows[k] = id
  }
  return { rows }
}

/**
 * Where a token's default row comes from: a model's row (by its own id), zeros, or the mean of the
 * models that have the token. `force` gives every model the default, even those that have the
 * token (mergekit's `tokens: {…: {force: true}}`).
 *
 * @category models
 */
export type Default = (
  | { readonly _tag: "Row"; readonly model: number; readonly row: number }
  | { readonly _tag: "Zero" }
  | { readonly _tag: "Mean"; readonly models: ReadonlyArray<number> }
) & { readonly force?: boolean }

/** The default row of every target token (mergekit's `assign_embedding_sources`); `base` indexes `perms`. @category constructors */
export const defaults = (perms: ReadonlyArray<Permutation>, base: number | undefined, targetSize: number): ReadonlyArray<Default> => {
  const out: Array<Default> = []
  for (let k = 0; k < targetSize; k++) {
    const present = perms.flatMap((p, m) => (p.rows[k]! >= 0 ? [m] : []))
    if (present.length === 1) out.push({ _tag: "Row", model: present[0]!, row: perms[present[0]!]!.rows[k]! })
    else if (present.length === 0) out.push({ _tag: "Zero" })
    else if (base !== undefined && perms[base]!.rows[k]! >= 0) out.push({ _tag: "Row", model: base, row: perms[base]!.rows[k]! })
    else out.push({ _tag: "Mean", models: present })
  }
  return out
}

/** A row of a model's source matrix: `(model, row)` → its `hidden` values. */
export type RowSource = (model: number, row: number) => Float64Array

/**
 * Rows `[from, to)` of model `m`'s permuted matrix (float64, row-major, `hidden` wide; every row
 * below the vocabulary's size), reading source rows through `row`.
 *
 * @category constructors
 */
export const permuteRows = (
  m: number,
  perms: ReadonlyArray<Permutation>,
  defaultRows: ReadonlyArray<Default>,
  row: RowSource,
  hidden: number,
  from: number,
  to: number
): Float64Array => {
  const out = new Float64Array((to - from) * hidden)
  for (let k = from; k < to; k++) {
    const at = (k - from) * hidden
    const own = perms[m]!.rows[k]!
    const d = defaultRows[k]!
    if (own >= 0 && d.force !== true) out.set(row(m, own), at)
    else if (d._tag === "Row") out.set(row(d.model, d.row), at)
    else if (d._tag === "Mean") {
      // mergekit sums, then divides by the count
      for (const i of d.models) {
        const source = row(i, perms[i]!.rows[k]!)
        for (let j = 0; j < hidden; j++) out[at + j]! += source[j]!
      }
      for (let j = 0; j < hidden; j++) out[at + j]! /= d.models.length
    }
  }
  return out
}

/** The rows of model `m` that rows `[from, to)` of its permuted matrix read, by model. @category getters */
export const rowsRead = (m: number, perms: ReadonlyArray<Permutation>, defaultRows: ReadonlyArray<Default>, from: number, to: number): ReadonlyArray<ReadonlyArray<number>> => {
  const need: Array<Array<number>> = perms.map(() => [])
  for (let k = from; k < to; k++) {
    const own = perms[m]!.rows[k]!
    const d = defaultRows[k]!
    if (own >= 0 && d.force !== true) need[m]!.push(own)
    else if (d._tag === "Row") need[d.model]!.push(d.row)
    else if (d._tag === "Mean") for (const i of d.models) need[i]!.push(perms[i]!.rows[k]!)
  }
  return need
}

/**
 * `rows` (any order, repeats allowed) as sorted half-open runs `[lo, hi)`, joining rows less than
 * `gap` apart.
 *
 * @category getters
 */
export const runs = (rows: ReadonlyArray<number>, gap: number): ReadonlyArray<{ readonly lo: number; readonly hi: number }> => {
  const sorted = Int32Array.from(rows).sort()
  const out: Array<{ lo: number; hi: number }> = []
  for (const r of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && r < last.hi + gap) last.hi = Math.max(last.hi, r + 1)
    else out.push({ lo: r, hi: r + 1 })
  }
  return out
}

/** The run of `runs` (sorted, disjoint) holding row `r`, by bisection; it must be there. @category getters */
export const runOf = <R extends { readonly lo: number; readonly hi: number }>(runs: ReadonlyArray<R>, r: number): R => {
  let lo = 0
  let hi = runs.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (runs[mid]!.lo <= r) lo = mid
    else hi = mid - 1
  }
  return runs[lo]!
}

/** The mean of the rows of a row-major matrix (`hidden` wide): the value of padding rows. @category getters */
export const meanRow = (matrix: Float64Array, hidden: number): Float64Array => {
  const rows = matrix.length / hidden
  const mean = new Float64Array(hidden)
  for (let k = 0; k < rows; k++) for (let j = 0; j < hidden; j++) mean[j]! += matrix[k * hidden + j]!
  for (let j = 0; j < hidden; j++) mean[j]! /= rows
  return mean
}

/** `size` rounded up to a multiple of `multiple` (mergekit's `pad_to_multiple_of`). @category getters */
export const padded = (size: number, multiple: number | undefined): number =>
  multiple === undefined || size % multiple === 0 ? size : (Math.floor(size / multiple) + 1) * multiple
