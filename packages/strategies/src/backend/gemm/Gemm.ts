/**
 * A batched float32 matrix product on {@link Threads}: C[o] = op(A[ia(o)]) · op(B[ib(o)]) (+ bias)
 * (ReLU), op a transpose or not, for row-major inputs anywhere (TF.js's wasm heap in practice).
 *
 * The inputs are copied as stored into the shared memory, then two dispatches:
 * 1. packing: A into panels of `MR` rows (k-major), B into panels of 8 columns (k-major), both
 *    zero-padded, from any of the four layouts — so a transposed operand costs nothing more;
 * 2. products: each task one block of row panels × column panels of one output, over k in
 *    chunks of `KC` (its B panels stay in L1, A streams from L2), the bias and ReLU applied as the
 *    last chunk is stored.
 * C lives in the shared memory padded to whole panels and is copied out row by row.
 *
 * @since 0.1.0
 */
import { BIAS, MR, NR, RELU } from "./Kernel.ts"
import { GEMM, KC, PACK, ROW, TABLE, type Threads, TRANSPOSE } from "./Threads.ts"

/** One product (float32 throughout). @category models */
export interface Problem {
  /** A as stored: `batchA` matrices, each M×K (K×M when `transposeA`). */
  readonly a: Float32Array
  readonly b: Float32Array
  readonly batchA: number
  readonly batchB: number
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transposeA: boolean
  readonly transposeB: boolean
  /** Per output matrix, the index of its A and its B (broadcasting resolved by the caller). */
  readonly pairs: ReadonlyArray<readonly [number, number]>
  /** N floats, or 1 broadcast over the columns. */
  readonly bias?: Float32Array | undefined
  readonly relu?: boolean | undefined
}

const ceilDiv = (x: number, y: number) => Math.ceil(x / y)
const align = (bytes: number) => ceilDiv(bytes, 64) * 64

/**
 * Computes the product and writes it into the array `output()` returns (called once the inputs
 * are copied, so the caller may allocate it then: growing TF.js's heap detaches views of it).
 *
 * @category operations
 */
export const multiply = (threads: Threads, p: Problem, output: () => Float32Array): Float32Array => {
  const { m, n, k, batchA, batchB } = p
  const mPanels = ceilDiv(m, MR), nPanels = ceilDiv(n, NR)
  const ldc = nPanels * NR
  const batchOut = p.pairs.length
  const paStride = k * MR * 4, pbStride = k * NR * 4
  const aBytes = align(batchA * m * k * 4), bBytes = align(batchB * k * n * 4)
  const paBytes = align(batchA * mPanels * paStride), pbBytes = align(batchB * nPanels * pbStride)
  const cBytes = align(mPanels * MR * ldc * 4), biasBytes = align(ldc * 4)
  const base = threads.data(aBytes + bBytes + paBytes + pbBytes + batchOut * cBytes + biasBytes)
  const aAt = base, bAt = aAt + aBytes, paAt = bAt + bBytes, pbAt = paAt + paBytes, cAt = pbAt + pbBytes, biasAt = cAt + batchOut * cBytes
  const buffer = threads.memory.buffer
  new Float32Array(buffer, aAt, batchA * m * k).set(p.a.subarray(0, batchA * m * k))
  new Float32Array(buffer, bAt, batchB * k * n).set(p.b.subarray(0, batchB * k * n))
  let flags = 0
  if (p.bias !== undefined) {
    const bias = new Float32Array(buffer, biasAt, ldc)
    if (p.bias.length === 1) bias.fill(p.bias[0]!, 0, n)
    else bias.set(p.bias.subarray(0, n))
    flags |= BIAS
  }
  if (p.relu === true) flags |= RELU
  const workers = threads.threads

  // 1. packing. Element (r, kk) of A is at r·rowA + kk·colA bytes from its matrix; (kk, c) of B at kk·rowB + c·colB.
  const [rowA, colA] = p.transposeA ? [4, m * 4] : [k * 4, 4]
  const [colB, rowB] = p.transposeB ? [k * 4, 4] : [4, n * 4]
  let table = threads.table()
  let tasks = 0
  const flush = () => {
    threads.run(tasks)
    table = threads.table()
    tasks = 0
  }
  const pack = (src: number, outer: number, inner: number, dst: number, lanes: number, width: number, panels: number, srcPanel: number, dstPanel: number) => {
    // Panels in groups, a few per thread, so that threads share the packing evenly.
    const group = Math.max(1, ceilDiv(panels, 2 * workers))
    for (let p0 = 0; p0 < panels; p0 += group) {
      if (TABLE + (tasks + 1) * ROW > table.length) flush()
      const at = TABLE + tasks++ * ROW
      const here = Math.min(group, panels - p0)
      table.set([PACK, src + p0 * srcPanel, outer, inner, dst + p0 * dstPanel, lanes - p0 * width, k, width, width * 4, srcPanel, dstPanel, here], at)
    }
  }
  for (let i = 0; i < batchA; i++) pack(aAt + i * m * k * 4, rowA, colA, paAt + i * mPanels * paStride, m, MR, mPanels, MR * rowA, paStride)
  for (let i = 0; i < batchB; i++) pack(bAt + i * k * n * 4, colB, rowB, pbAt + i * nPanels * pbStride, n, NR, nPanels, NR * colB, pbStride)
  flush()

  // 2. products: split the column panels, then the row panels, until there are a few tasks per thread.
  const want = 3 * workers
  const nSplit = Math.min(nPanels, Math.max(1, ceilDiv(want, batchOut)))
  const mSplit = Math.min(mPanels, Math.max(1, ceilDiv(want, batchOut * nSplit)))
  const nGroup = ceilDiv(nPanels, nSplit), mGroup = ceilDiv(mPanels, mSplit)
  for (let o = 0; o < batchOut; o++) {
    const [ia, ib] = p.pairs[o]!
    for (let j0 = 0; j0 < nPanels; j0 += nGroup) {
      for (let i0 = 0; i0 < mPanels; i0 += mGroup) {
        if (TABLE + (tasks + 1) * ROW > table.length) flush()
        table.set(
          [
            GEMM,
            paAt + ia * mPanels * paStride + i0 * paStride,
            pbAt + ib * nPanels * pbStride + j0 * pbStride,
            cAt + o * cBytes + (i0 * MR * ldc + j0 * NR) * 4,
            ldc * 4,
            k,
            flags,
            biasAt + j0 * NR * 4,
            Math.min(mGroup, mPanels - i0),
            Math.min(nGroup, nPanels - j0),
            paStride,
            pbStride,
            KC,
            MR
          ],
          TABLE + tasks++ * ROW
        )
      }
    }
  }
  flush()

  const out = output()
  const c = threads.memory.buffer
  for (let o = 0; o < batchOut; o++) {
    if (ldc === n) out.set(new Float32Array(c, cAt + o * cBytes, m * n), o * m * n)
    else for (let r = 0; r < m; r++) out.set(new Float32Array(c, cAt + o * cBytes + r * ldc * 4, n), (o * m + r) * n)
  }
  return out
}

/**
 * The (A, B) matrix indices of each output matrix for batch shapes broadcast as NumPy does
 * (TF.js's `assertAndGetBroadcastShape`), or undefined when they do not broadcast.
 *
 * @category operations
 */
export const broadcastPairs = (
  batchShapeA: ReadonlyArray<number>,
  batchShapeB: ReadonlyArray<number>
): { readonly shape: ReadonlyArray<number>; readonly pairs: ReadonlyArray<readonly [number, number]> } | undefined => {
  const rank = Math.max(batchShapeA.length, batchShapeB.length)
  const dimA = (i: number) => batchShapeA[i - (rank - batchShapeA.length)] ?? 1
  const dimB = (i: number) => batchShapeB[i - (rank - batchShapeB.length)] ?? 1
  const shape: Array<number> = []
  for (let i = 0; i < rank; i++) {
    const a = dimA(i), b = dimB(i)
    if (a !== b && a !== 1 && b !== 1) return undefined
    shape.push(Math.max(a, b))
  }
  const total = shape.reduce((t, d) => t * d, 1)
  const pairs: Array<readonly [number, number]> = []
  for (let o = 0; o < total; o++) {
    let rest = o, ia = 0, ib = 0, strideA = 1, strideB = 1
    for (let i = rank - 1; i >= 0; i--) {
      const d = shape[i]!
      const idx = rest % d
      rest = Math.floor(rest / d)
      if (dimA(i) !== 1) ia += idx * strideA
      if (dimB(i) !== 1) ib += idx * strideB
      strideA *= dimA(i)
      strideB *= dimB(i)
    }
    pairs.push([ia, ib])
  }
  return { shape, pairs }
}

/**
 * Transposes `batch` row-major rows×cols float32 matrices of `x` into cols×rows ones, written into
 * the array `output()` returns (called once `x` is copied). Bits are moved, never computed.
 *
 * @category operations
 */
export const transpose = (threads: Threads, x: Float32Array, batch: number, rows: number, cols: number, output: () => Float32Array): Float32Array => {
  const size = rows * cols
  const bytes = align(batch * size * 4)
  const base = threads.data(2 * bytes)
  const src = base, dst = base + bytes
  new Float32Array(threads.memory.buffer, src, batch * size).set(x.subarray(0, batch * size))
  let table = threads.table()
  let tasks = 0
  // Row blocks of whole 16-row tiles, a few per thread.
  const block = Math.max(16, Math.ceil(rows / (3 * threads.threads) / 16) * 16)
  for (let b = 0; b < batch; b++) {
    for (let r0 = 0; r0 < rows; r0 += block) {
      if (TABLE + (tasks + 1) * ROW > table.length) {
        threads.run(tasks)
        table = threads.table()
        tasks = 0
      }
      table.set([TRANSPOSE, src + b * size * 4, dst + b * size * 4, rows, cols, r0, Math.min(rows, r0 + block)], TABLE + tasks++ * ROW)
    }
  }
  threads.run(tasks)
  const out = output()
  out.set(new Float32Array(threads.memory.buffer, dst, batch * size))
  return out
}

/**
 * When `perm` moves a trailing group of axes in front of the group before it (after the axes it
 * keeps): `[0, 2, 1]`, `[1, 0]`, `[0, 1, 3, 2]`, `[2, 0, 1]`…, the batch × rows × cols transpose it
 * is; else undefined. Axes of size 1 are dropped first.
 *
 * @category operations
 */
export const asBatchTranspose = (shape: ReadonlyArray<number>, perm: ReadonlyArray<number>): { readonly batch: number; readonly rows: number; readonly cols: number } | undefined => {
  const keep = shape.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0)
  const dims = keep.map((i) => shape[i]!)
  const p = perm.filter((i) => shape[i] !== 1).map((i) => keep.indexOf(i))
  let a = 0
  while (a < p.length && p[a] === a) a++
  if (a === p.length) return undefined
  const t = p[a]!
  const r = p.length
  for (let i = a; i < r; i++) {
    const want = i - a < r - t ? t + (i - a) : a + (i - a - (r - t))
    if (p[i] !== want) return undefined
  }
  const product = (from: number, to: number) => dims.slice(from, to).reduce((x, d) => x * d, 1)
  return { batch: product(0, a), rows: product(a, t), cols: product(t, r) }
}
