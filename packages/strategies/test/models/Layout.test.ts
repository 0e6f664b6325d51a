import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as Layout from "../../src/models/Layout.ts"

const iota = (n: number) => Float32Array.from({ length: n }, (_, i) => i)

describe("PyTorch ⇄ TF.js layout", () => {
  it("linear [out, in] → [in, out]: element (o, i) moves to (i, o)", () => {
    const w = { shape: [2, 3], data: iota(6) }
    const t = Layout.paramToTf(w, "linear")
    assert.deepStrictEqual(t.shape, [3, 2])
    for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) assert.strictEqual(t.data[i * 2 + o], w.data[o * 3 + i])
  })

  it("conv [out, in, kh, kw] → [kh, kw, in, out], sample [C, H, W] → [H, W, C], NHWC → NCHW", () => {
    const [O, I, KH, KW] = [4, 3, 2, 5]
    const w = { shape: [O, I, KH, KW], data: iota(O * I * KH * KW) }
    const t = Layout.paramToTf(w, "conv")
    assert.deepStrictEqual(t.shape, [KH, KW, I, O])
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++)
        for (let y = 0; y < KH; y++)
          for (let x = 0; x < KW; x++) assert.strictEqual(t.data[((y * KW + x) * I + i) * O + o], w.data[((o * I + i) * KH + y) * KW + x])
    const s = Layout.paramToTf({ shape: [3, 2, 4], data: iota(24) }, "sample")
    assert.deepStrictEqual(s.shape, [2, 4, 3])
    assert.strictEqual(s.data[(1 * 4 + 2) * 3 + 1], 1 * 8 + 1 * 4 + 2)
    const a = Layout.activationToTorch({ shape: [2, 2, 4, 3], data: iota(48) })
    assert.deepStrictEqual(a.shape, [2, 3, 2, 4])
    assert.strictEqual(a.data[((1 * 3 + 2) * 2 + 1) * 4 + 3], ((1 * 2 + 1) * 4 + 3) * 3 + 2)
    assert.strictEqual(Layout.paramToTf({ shape: [5], data: iota(5) }, "vector").shape[0], 5)
  })

  it("every conversion is inverted by its counterpart", () => {
    fc.assert(
      fc.property(fc.constantFrom("linear", "conv", "sample", "vector", "scalar" as const), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 4, maxLength: 4 }), (layout, dims) => {
        const rank = { linear: 2, conv: 4, sample: 3, vector: 1, scalar: 0 }[layout]
        const shape = dims.slice(0, rank)
        const size = shape.reduce((a, b) => a * b, 1)
        const x = { shape, data: iota(size) }
        const back = Layout.paramToTorch(Layout.paramToTf(x, layout), layout)
        assert.deepStrictEqual(back.shape, shape)
        assert.deepStrictEqual(Array.from(back.data), Array.from(x.data))
      })
    )
  })
})
