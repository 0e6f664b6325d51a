import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Init from "../../src/models/Init.ts"
import * as Network from "../../src/models/Network.ts"
import { cnnArch } from "./fixtures.ts"

const moments = (data: Float32Array) => {
  let sum = 0
  let sq = 0
  for (const v of data) {
    sum += v
    sq += v * v
  }
  return { mean: sum / data.length, variance: sq / data.length - (sum / data.length) ** 2 }
}

describe("PyTorch default initialisation", () => {
  it.effect("weights and biases are U(−1/√fan_in, 1/√fan_in) (kaiming_uniform a=√5)", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [784, 512, 10] })
      const params = Init.initNetwork(network, 0)
      for (const spec of network.params) {
        const { data } = params.get(spec.name)!
        const bound = 1 / Math.sqrt(spec.fanIn)
        let max = 0
        for (const v of data) max = Math.max(max, Math.abs(v))
        expect(max, spec.name).toBeLessThanOrEqual(bound)
        if (data.length > 1000) {
          // uniform on [−b, b]: mean 0, variance b²/3, and the extremes are reached
          const m = moments(data)
          expect(Math.abs(m.mean) / bound, spec.name).toBeLessThan(0.01)
          expect(Math.abs(m.variance / (bound * bound / 3) - 1), spec.name).toBeLessThan(0.02)
          expect(max / bound).toBeGreaterThan(0.999)
        }
      }
      expect(Init.defaultBound(784)).toBeCloseTo(1 / 28, 12)
    })
  )

  it.effect("norms start at weight 1, bias 0; BatchNorm buffers at mean 0, var 1, count 0; conv fan_in is in·kh·kw", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      const params = Init.initNetwork(network, 3)
      const values = (name: string) => Array.from(params.get(name)!.data)
      assert.deepStrictEqual(values("layers.1.weight"), [1, 1, 1])
      assert.deepStrictEqual(values("layers.1.bias"), [0, 0, 0])
      assert.deepStrictEqual(values("layers.1.running_mean"), [0, 0, 0])
      assert.deepStrictEqual(values("layers.1.running_var"), [1, 1, 1])
      assert.deepStrictEqual(values("layers.1.num_batches_tracked"), [0])
      expect(values("layers.7.weight").every((v) => v === 1)).toBe(true)
      const conv = values("layers.0.weight")
      expect(Math.max(...conv.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(2 * 3 * 3))
    })
  )

  it.effect("is deterministic per seed, and a tensor's values do not depend on the other layers", () =>
    Effect.gen(function* () {
      const a = yield* Init.init({ type: "mlp", layers: [20, 16, 4] }, 7)
      const b = yield* Init.init({ type: "mlp", layers: [20, 16, 4] }, 7)
      const c = yield* Init.init({ type: "mlp", layers: [20, 16, 4] }, 8)
      const deeper = yield* Init.init({ type: "mlp", layers: [20, 16, 16, 4] }, 7)
      assert.deepStrictEqual(Array.from(a.get("layers.1.weight")!.data), Array.from(b.get("layers.1.weight")!.data))
      expect(Array.from(a.get("layers.1.weight")!.data)).not.toEqual(Array.from(c.get("layers.1.weight")!.data))
      assert.deepStrictEqual(Array.from(a.get("layers.0.weight")!.data), Array.from(deeper.get("layers.0.weight")!.data))
    })
  )
})
