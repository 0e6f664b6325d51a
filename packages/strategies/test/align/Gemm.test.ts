import { assert, describe, it } from "@effect/vitest"
import * as Gemm from "../../src/align/internal/Gemm.ts"
import * as Random from "../../src/align/internal/Random.ts"

/** out += a·(b − c)ᵀ, one float64 dot product per cell. */
const reference = (a: Float32Array, b: Float32Array, c: Float32Array | undefined, m: number, n: number, k: number, out: Float64Array) => {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0
      for (let t = 0; t < k; t++) s += a[i * k + t]! * (b[j * k + t]! - (c === undefined ? 0 : c[j * k + t]!))
      out[i * n + j] = out[i * n + j]! + s
    }
  }
}

const kernels = (): Array<Gemm.Gemm> => [Gemm.make(), Gemm.js]

describe("Gemm", () => {
  it("uses WebAssembly SIMD on Node 22", () => {
    assert.strictEqual(Gemm.make().kind, "wasm")
  })

  for (const gemm of kernels()) {
    it(`${gemm.kind}: adds A·Bᵀ and A·(B₁ − B₂)ᵀ into out, for ragged sizes`, () => {
      const random = Random.make(11)
      for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [4, 4, 4], [9, 6, 13], [17, 33, 2], [64, 12, 100], [2, 3, 0]] as const) {
        const a = Random.normals(random, m * k)
        const b = Random.normals(random, n * k)
        const c = Random.normals(random, n * k)
        const start = Float64Array.from({ length: m * n }, () => random.normal())
        for (const previous of [undefined, c]) {
          const expected = Float64Array.from(start)
          reference(a, b, previous, m, n, k, expected)
          const actual = Float64Array.from(start)
          if (previous === undefined) gemm.addABt(a, b, m, n, k, actual)
          else gemm.addABtDifference(a, b, previous, m, n, k, actual)
          // Products of float32 values are exact in float64; only the summation order differs.
          for (let q = 0; q < m * n; q++) assert.closeTo(actual[q]!, expected[q]!, 1e-12 * (1 + k), `${m}×${n}×${k} cell ${q}`)
        }
      }
    })
  }

  it("wasm: splits A into row blocks under a memory cap, and falls back to JS when B alone exceeds it", () => {
    const random = Random.make(13)
    const [m, n, k] = [37, 10, 50]
    const a = Random.normals(random, m * k)
    const b = Random.normals(random, n * k)
    const c = Random.normals(random, n * k)
    // B (padded 12×52 floats) takes 2,496 bytes, each pair of A rows 608: room for 3 pairs, or none.
    for (const maxCallBytes of [2496 + 3 * 608, 3 * 2496 + 10 * 608, 1000]) {
      const gemm = Gemm.make({ maxCallBytes })
      for (const previous of [undefined, c]) {
        const expected = new Float64Array(m * n)
        reference(a, b, previous, m, n, k, expected)
        const actual = new Float64Array(m * n)
        if (previous === undefined) gemm.addABt(a, b, m, n, k, actual)
        else gemm.addABtDifference(a, b, previous, m, n, k, actual)
        for (let q = 0; q < m * n; q++) assert.closeTo(actual[q]!, expected[q]!, 1e-10, `cap ${maxCallBytes} cell ${q}`)
      }
    }
  })

  it("wasm and js agree to 1e-11 on a 128×96×300 product", () => {
    const random = Random.make(12)
    const [m, n, k] = [128, 96, 300]
    const a = Random.normals(random, m * k)
    const b = Random.normals(random, n * k)
    const viaWasm = new Float64Array(m * n)
    const viaJs = new Float64Array(m * n)
    Gemm.make().addABt(a, b, m, n, k, viaWasm)
    Gemm.js.addABt(a, b, m, n, k, viaJs)
    for (let q = 0; q < m * n; q++) assert.closeTo(viaWasm[q]!, viaJs[q]!, 1e-11)
  })
})
