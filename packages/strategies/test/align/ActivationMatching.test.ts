import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ActivationMatching from "../../src/align/ActivationMatching.ts"
import type { Params } from "../../src/align/Params.ts"
import * as Permute from "../../src/align/Permute.ts"
import * as Spec from "../../src/align/PermutationSpec.ts"
import * as Random from "../../src/align/internal/Random.ts"
import { linear, mlp, randomPermutations, relu } from "./Reference.ts"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(effect)

const activations = (samples: number, units: number, value: (s: number, u: number) => number): ActivationMatching.Activations => {
  const data = new Float32Array(samples * units)
  for (let s = 0; s < samples; s++) for (let u = 0; u < units; u++) data[s * units + u] = value(s, u)
  return { samples, units, data }
}

/** Pearson correlation of two columns, float64, from its textbook definition. */
const pearson = (x: ActivationMatching.Activations, i: number, y: ActivationMatching.Activations, j: number): number => {
  const n = x.samples
  let mx = 0
  let my = 0
  for (let s = 0; s < n; s++) {
    mx += x.data[s * x.units + i]!
    my += y.data[s * y.units + j]!
  }
  mx /= n
  my /= n
  let sxy = 0
  let sxx = 0
  let syy = 0
  for (let s = 0; s < n; s++) {
    const dx = x.data[s * x.units + i]! - mx
    const dy = y.data[s * y.units + j]! - my
    sxy += dx * dy
    sxx += dx * dx
    syy += dy * dy
  }
  return sxy / Math.sqrt(sxx * syy)
}

describe("ActivationMatching.correlation", () => {
  it("equals the float64 Pearson correlation of every pair of units", () => {
    const random = Random.make(60)
    // Correlated, offset and scaled columns, so the means and scales matter.
    const base = activations(300, 7, () => random.normal())
    const a = activations(300, 7, (s, u) => 3 + u + (u + 1) * base.data[s * 7 + u]!)
    const b = activations(300, 7, (s, u) => -2 + 0.5 * base.data[s * 7 + ((u + 2) % 7)]! + random.normal())
    const c = run(ActivationMatching.correlation("layer", { a, b }))
    for (let i = 0; i < 7; i++) for (let j = 0; j < 7; j++) assert.closeTo(c[i * 7 + j]!, pearson(a, i, b, j), 1e-6)
  })

  it("takes a constant (dead) unit's correlation as 0", () => {
    const random = Random.make(61)
    const a = activations(50, 3, (_, u) => (u === 1 ? 0 : random.normal()))
    const c = run(ActivationMatching.correlation("layer", { a, b: a }))
    assert.deepStrictEqual([c[3], c[4], c[5], c[1], c[7]], [0, 0, 0, 0, 0])
    assert.closeTo(c[0]!, 1, 1e-6)
  })
})

describe("ActivationMatching.match", () => {
  it("pairs units of affinely transformed, permuted, noisy copies", () => {
    const random = Random.make(62)
    const units = 64
    const a = activations(500, units, () => random.normal())
    const sigma = Random.permutation(random, units)
    // B's unit j is A's unit sigma[j], rescaled, shifted and noisy.
    const b = activations(500, units, (s, j) => 2 * a.data[s * units + sigma[j]!]! + 1 + 0.3 * random.normal())
    const { permutations, layers } = run(ActivationMatching.match(new Map([["P_hidden", { a, b }]])))
    assert.deepStrictEqual(Array.from(permutations.get("P_hidden")!), Array.from(Permute.inverse(sigma)))
    const report = layers.get("P_hidden")!
    assert.isBelow(Math.abs(report.before), 0.1)
    assert.isAbove(report.after, 0.95)
  })

  it("aligns a permuted MLP exactly from its hidden activations", () => {
    const network = mlp([20, 16, 12, 4])
    const a = network.params(63)
    const resolved = run(Spec.resolve(network.spec, a))
    const b = run(Permute.apply(a, network.spec, randomPermutations(64, resolved.permutations)))
    // Centred inputs keep every ReLU alive on some samples: dead units are indistinguishable.
    const random = Random.make(65)
    const inputs = Array.from({ length: 200 }, () => Float64Array.from({ length: 20 }, () => random.normal()))
    const hidden = (params: Params) => {
      const h0 = inputs.map((x) => relu(linear(params, "layers.0", x)))
      const h1 = h0.map((h) => relu(linear(params, "layers.1", h)))
      return [h0, h1].map((rows) => activations(rows.length, rows[0]!.length, (s, u) => rows[s]![u]!))
    }
    const [a0, a1] = hidden(a)
    const [b0, b1] = hidden(b)
    const { permutations } = run(ActivationMatching.match(new Map([["P_layers.0", { a: a0!, b: b0! }], ["P_layers.1", { a: a1!, b: b1! }]])))
    const aligned = run(Permute.apply(b, network.spec, permutations))
    for (const [name, p] of a) assert.deepStrictEqual(aligned.get(name)!.data, p.data, name)
  })

  it("names the layer and model of malformed activations", () => {
    const good = activations(10, 4, (s, u) => s * u)
    const fail = (a: ActivationMatching.Activations, b: ActivationMatching.Activations) => {
      const error = run(Effect.flip(ActivationMatching.match(new Map([["P_x", { a, b }]]))))
      assert.strictEqual(error._tag, "InvalidActivations")
      return error.message
    }
    assert.include(fail(good, activations(9, 4, () => 1)), `layer "P_x" (model b): has 9 samples, model a has 10`)
    assert.include(fail(good, activations(10, 5, () => 1)), "has 5 units, model a has 4")
    assert.include(fail(activations(1, 4, () => 1), good), "(model a): needs at least 2 samples")
    assert.include(fail(good, { samples: 10, units: 4, data: new Float32Array(39) }), "need 40 values, the data has 39")
    assert.include(fail(good, activations(10, 4, (s, u) => (s === 2 && u === 3 ? Infinity : 0))), "value 11 (sample 2, unit 3) is Infinity")
  })
})
