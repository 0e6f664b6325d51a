/**
 * The dense kernels alignment needs: `out += A·Bᵀ` and `out += A·(B₁ − B₂)ᵀ` for row-major float32
 * `A` (m×k) and `B` (n×k) into a float64 `out` (m×n). Both operands are read along contiguous rows
 * (dot-product form), the layout the score matrices of weight and activation matching come in.
 *
 * Two implementations with one precision (exact float32 products, float64 sums): WebAssembly SIMD
 * (`WasmGemm.ts`, ~11 GFLOP/s on one thread here) where available, else plain JS with a 4×4
 * register tile (~4.5 GFLOP/s; a naive triple loop gives ~1). The JS kernels only ever see
 * Float32Array operands: a call site fed both float32 and float64 arrays runs ~30% slower in V8.
 *
 * @since 0.1.0
 */
import * as WasmGemm from "./WasmGemm.ts"

/** A workspace that multiplies; the WebAssembly one owns memory, so make one per job and drop it. */
export interface Gemm {
  readonly kind: "wasm" | "js"
  /** `out[i·n + j] += Σₜ a[i·k + t] · b[j·k + t]`. */
  readonly addABt: (a: Float32Array, b: Float32Array, m: number, n: number, k: number, out: Float64Array) => void
  /** `out[i·n + j] += Σₜ a[i·k + t] · (next[j·k + t] − previous[j·k + t])`. */
  readonly addABtDifference: (
    a: Float32Array,
    next: Float32Array,
    previous: Float32Array,
    m: number,
    n: number,
    k: number,
    out: Float64Array
  ) => void
}

/**
 * The fastest kernels this runtime has. `maxCallBytes` caps the WebAssembly memory one call may
 * use (default 1 GiB): A is processed in blocks of rows under it, and operands whose B alone
 * exceeds it go to the JS kernels.
 */
export const make = (options?: { readonly maxCallBytes?: number }): Gemm => {
  const instance = WasmGemm.instantiate()
  return instance === undefined ? js : wasm(instance, options?.maxCallBytes ?? 1 << 30)
}

const roundUp = (value: number, multiple: number): number => Math.ceil(value / multiple) * multiple

/**
 * Copies operands into the instance's memory, padded with zeros to the kernel's multiples (rows of
 * A to 2, rows of B to 4, k to 4), runs it on blocks of A's rows, and adds the result into `out`.
 */
const wasm = (instance: WasmGemm.Instance, maxCallBytes: number): Gemm => {
  const run = (a: Float32Array, bs: ReadonlyArray<Float32Array>, m: number, n: number, k: number, out: Float64Array): void => {
    const kp = roundUp(k, 4)
    const np = roundUp(n, 4)
    const bBytes = bs.length * np * kp * 4
    // Each pair of A rows costs its operand row and its output rows.
    const pairBytes = 2 * kp * 4 + 2 * np * 8
    const pairs = Math.floor((maxCallBytes - bBytes) / pairBytes)
    if (pairs < 1) {
      if (bs.length === 1) addABt(a, bs[0]!, m, n, k, out)
      else addABtDifference(a, bs[0]!, bs[1]!, m, n, k, out)
      return
    }
    const blockRows = Math.min(roundUp(m, 2), pairs * 2)
    const need = bBytes + blockRows * kp * 4 + blockRows * np * 8
    const { memory } = instance
    if (memory.buffer.byteLength < need) {
      try {
        memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536))
      } catch {
        // The engine refused more memory: the JS kernel needs none beyond its operands.
        if (bs.length === 1) addABt(a, bs[0]!, m, n, k, out)
        else addABtDifference(a, bs[0]!, bs[1]!, m, n, k, out)
        return
      }
    }
    const floats = new Float32Array(memory.buffer)
    const copyRows = (source: Float32Array, rows: number, paddedRows: number, at: number, from: number) => {
      if (kp === k) floats.set(source.subarray(from * k, (from + rows) * k), at / 4)
      else for (let r = 0; r < rows; r++) {
        floats.set(source.subarray((from + r) * k, (from + r + 1) * k), at / 4 + r * kp)
        floats.fill(0, at / 4 + r * kp + k, at / 4 + (r + 1) * kp)
      }
      floats.fill(0, at / 4 + rows * kp, at / 4 + paddedRows * kp)
    }
    bs.forEach((b, index) => copyRows(b, n, np, index * np * kp * 4, 0))
    const aAt = bBytes
    const outAt = aAt + blockRows * kp * 4
    for (let first = 0; first < m; first += blockRows) {
      const rows = Math.min(blockRows, m - first)
      const paddedRows = roundUp(rows, 2)
      copyRows(a, rows, paddedRows, aAt, first)
      if (bs.length === 1) instance.abt(aAt, 0, outAt, paddedRows, np, kp)
      else instance.abtDifference(aAt, 0, np * kp * 4, outAt, paddedRows, np, kp)
      const result = new Float64Array(memory.buffer, outAt, paddedRows * np)
      for (let r = 0; r < rows; r++) {
        const into = (first + r) * n
        const from = r * np
        for (let j = 0; j < n; j++) out[into + j] = out[into + j]! + result[from + j]!
      }
    }
  }
  return {
    kind: "wasm",
    addABt: (a, b, m, n, k, out) => run(a, [b], m, n, k, out),
    addABtDifference: (a, next, previous, m, n, k, out) => run(a, [next, previous], m, n, k, out)
  }
}

/** `out[i·n + j] += Σₜ a[i·k + t] · b[j·k + t]` in plain JS. */
const addABt = (
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out: Float64Array
): void => {
  const m4 = m - (m % 4)
  const n4 = n - (n % 4)
  for (let i = 0; i < m4; i += 4) {
    const a0 = i * k
    const a1 = a0 + k
    const a2 = a1 + k
    const a3 = a2 + k
    for (let j = 0; j < n4; j += 4) {
      const b0 = j * k
      const b1 = b0 + k
      const b2 = b1 + k
      const b3 = b2 + k
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0
      for (let t = 0; t < k; t++) {
        const x0 = a[a0 + t]!, x1 = a[a1 + t]!, x2 = a[a2 + t]!, x3 = a[a3 + t]!
        const y0 = b[b0 + t]!, y1 = b[b1 + t]!, y2 = b[b2 + t]!, y3 = b[b3 + t]!
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3
      }
      let o = i * n + j
      out[o] = out[o]! + c00; out[o + 1] = out[o + 1]! + c01
      out[o + 2] = out[o + 2]! + c02; out[o + 3] = out[o + 3]! + c03
      o += n
      out[o] = out[o]! + c10; out[o + 1] = out[o + 1]! + c11
      out[o + 2] = out[o + 2]! + c12; out[o + 3] = out[o + 3]! + c13
      o += n
      out[o] = out[o]! + c20; out[o + 1] = out[o + 1]! + c21
      out[o + 2] = out[o + 2]! + c22; out[o + 3] = out[o + 3]! + c23
      o += n
      out[o] = out[o]! + c30; out[o + 1] = out[o + 1]! + c31
      out[o + 2] = out[o + 2]! + c32; out[o + 3] = out[o + 3]! + c33
    }
  }
  // The ragged right and bottom edges, one dot product per cell.
  for (let i = 0; i < m; i++) {
    for (let j = i < m4 ? n4 : 0; j < n; j++) {
      const ai = i * k
      const bj = j * k
      let c = 0
      for (let t = 0; t < k; t++) c += a[ai + t]! * b[bj + t]!
      out[i * n + j] = out[i * n + j]! + c
    }
  }
}

/**
 * `out[i·n + j] += Σₜ a[i·k + t] · (next[j·k + t] − previous[j·k + t])` in plain JS, the
 * correction of a score matrix whose B columns moved. The difference is taken in float64, where it
 * is exact for float32 values within 2²⁹ of each other, so one pass (1.3× an `addABt`) replaces two.
 */
const addABtDifference = (
  a: Float32Array,
  next: Float32Array,
  previous: Float32Array,
  m: number,
  n: number,
  k: number,
  out: Float64Array
): void => {
  const m4 = m - (m % 4)
  const n4 = n - (n % 4)
  for (let i = 0; i < m4; i += 4) {
    const a0 = i * k
    const a1 = a0 + k
    const a2 = a1 + k
    const a3 = a2 + k
    for (let j = 0; j < n4; j += 4) {
      const b0 = j * k
      const b1 = b0 + k
      const b2 = b1 + k
      const b3 = b2 + k
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0
      for (let t = 0; t < k; t++) {
        const x0 = a[a0 + t]!, x1 = a[a1 + t]!, x2 = a[a2 + t]!, x3 = a[a3 + t]!
        const y0 = next[b0 + t]! - previous[b0 + t]!, y1 = next[b1 + t]! - previous[b1 + t]!
        const y2 = next[b2 + t]! - previous[b2 + t]!, y3 = next[b3 + t]! - previous[b3 + t]!
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3
      }
      let o = i * n + j
      out[o] = out[o]! + c00; out[o + 1] = out[o + 1]! + c01; out[o + 2] = out[o + 2]! + c02; out[o + 3] = out[o + 3]! + c03
      o += n
      out[o] = out[o]! + c10; out[o + 1] = out[o + 1]! + c11; out[o + 2] = out[o + 2]! + c12; out[o + 3] = out[o + 3]! + c13
      o += n
      out[o] = out[o]! + c20; out[o + 1] = out[o + 1]! + c21; out[o + 2] = out[o + 2]! + c22; out[o + 3] = out[o + 3]! + c23
      o += n
      out[o] = out[o]! + c30; out[o + 1] = out[o + 1]! + c31; out[o + 2] = out[o + 2]! + c32; out[o + 3] = out[o + 3]! + c33
    }
  }
  for (let i = 0; i < m; i++) {
    for (let j = i < m4 ? n4 : 0; j < n; j++) {
      const ai = i * k
      const bj = j * k
      let c = 0
      for (let t = 0; t < k; t++) c += a[ai + t]! * (next[bj + t]! - previous[bj + t]!)
      out[i * n + j] = out[i * n + j]! + c
    }
  }
}

/** The plain-JS kernels. */
export const js: Gemm = { kind: "js", addABt, addABtDifference }
