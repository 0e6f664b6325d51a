import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Params } from "../../src/align/Params.ts"
import * as Permute from "../../src/align/Permute.ts"
import type { PermutationSpec } from "../../src/align/PermutationSpec.ts"
import * as Random from "../../src/align/internal/Random.ts"

const random = Random.make(21)
// w: [5, 6, 3, 2] with axis 0 on P (5 units) and axis 1 on Q viewed as [outer 1, 3 units, inner 2];
// v: [4, 3] with axis 0 on R viewed as [outer 2, 2 units, 1] and axis 1 on Q; u is untouched.
const params: Params = new Map([
  ["w", { shape: [5, 6, 3, 2], data: Random.normals(random, 5 * 6 * 3 * 2) }],
  ["v", { shape: [4, 3], data: Random.normals(random, 12) }],
  ["u", { shape: [7], data: Random.normals(random, 7) }]
])
const spec: PermutationSpec = {
  P: [{ tensor: "w", axis: 0 }],
  Q: [{ tensor: "w", axis: 1, inner: 2 }, { tensor: "v", axis: 1 }],
  R: [{ tensor: "v", axis: 0, outer: 2 }]
}
const permutations = new Map([
  ["P", Int32Array.of(3, 0, 4, 1, 2)],
  ["Q", Int32Array.of(2, 0, 1)],
  ["R", Int32Array.of(1, 0)]
])

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(effect)

describe("Permute.apply", () => {
  it("gathers every permuted axis, block layouts included (checked element by element)", () => {
    const out = run(Permute.apply(params, spec, permutations))
    const P = permutations.get("P")!
    const Q = permutations.get("Q")!
    const R = permutations.get("R")!
    const w = params.get("w")!.data
    const pw = out.get("w")!.data
    for (let a = 0; a < 5; a++) for (let b = 0; b < 6; b++) for (let c = 0; c < 3; c++) for (let d = 0; d < 2; d++) {
      // Axis 1 position b = unit·2 + r reads unit Q[unit], same r.
      const sourceB = Q[Math.floor(b / 2)]! * 2 + (b % 2)
      assert.strictEqual(pw[((a * 6 + b) * 3 + c) * 2 + d], w[((P[a]! * 6 + sourceB) * 3 + c) * 2 + d])
    }
    const v = params.get("v")!.data
    const pv = out.get("v")!.data
    for (let a = 0; a < 4; a++) for (let b = 0; b < 3; b++) {
      // Axis 0 position a = outer·2 + unit reads outer·2 + R[unit].
      const sourceA = Math.floor(a / 2) * 2 + R[a % 2]!
      assert.strictEqual(pv[a * 3 + b], v[sourceA * 3 + Q[b]!])
    }
    assert.strictEqual(out.get("u"), params.get("u"), "tensors outside the spec are shared, not copied")
  })

  it("is pure and undone by the inverse permutations", () => {
    const before = new Map([...params].map(([k, p]) => [k, Float32Array.from(p.data)]))
    const out = run(Permute.apply(params, spec, permutations))
    for (const [k, p] of params) assert.deepStrictEqual(p.data, before.get(k))
    const inverses = new Map([...permutations].map(([k, p]) => [k, Permute.inverse(p)]))
    const back = run(Permute.apply(out, spec, inverses))
    for (const [k, p] of params) assert.deepStrictEqual(back.get(k)!.data, p.data)
  })

  it("rejects missing, mis-sized and non-bijective permutations", () => {
    const fail = (override: ReadonlyArray<[string, Int32Array<ArrayBuffer>]>, drop?: string) => {
      const given = new Map(permutations)
      for (const [k, p] of override) given.set(k, p)
      if (drop !== undefined) given.delete(drop)
      const error = run(Effect.flip(Permute.apply(params, spec, given)))
      assert.strictEqual(error._tag, "InvalidPermutation")
      return error.message
    }
    assert.include(fail([], "Q"), `permutation "Q": not given`)
    assert.include(fail([["P", Int32Array.of(0, 1, 2)]]), "has 3 entries, the spec permutes 5 units")
    assert.include(fail([["Q", Int32Array.of(0, 0, 1)]]), "not a bijection")
    assert.include(fail([["R", Int32Array.of(0, 2)]]), "not a bijection")
  })
})

describe("permutation helpers", () => {
  it("identity, inverse and isPermutation", () => {
    assert.deepStrictEqual(Array.from(Permute.identity(4)), [0, 1, 2, 3])
    const p = Int32Array.of(2, 0, 3, 1)
    const q = Permute.inverse(p)
    for (let i = 0; i < 4; i++) assert.strictEqual(q[p[i]!], i)
    assert.isTrue(Permute.isPermutation(p, 4))
    assert.isFalse(Permute.isPermutation(p, 5))
    assert.isFalse(Permute.isPermutation(Int32Array.of(0, 4, 1, 2), 4))
    assert.isFalse(Permute.isPermutation(Int32Array.of(-1, 0, 1, 2), 4))
  })
})
