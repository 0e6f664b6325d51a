import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import * as Init from "../../src/models/Init.ts"
import * as Network from "../../src/models/Network.ts"
import * as Params from "../../src/models/Params.ts"
import { cnnArch, randomParams } from "./fixtures.ts"

describe("parameter sets", () => {
  it.effect("round-trip through a safetensors file, num_batches_tracked as int64", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      const params = new Map(randomParams(network, 4))
      params.set("layers.1.num_batches_tracked", { shape: [], data: Float32Array.of(37) })
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "params-"))
      const file = path.join(dir, "cnn.safetensors")
      const model = Params.toModel(network, params, "test", { note: "x" })
      assert.strictEqual(model.tensors.get("layers.1.num_batches_tracked")!.dtype, "I64")
      assert.strictEqual(model.tensors.get("layers.0.weight")!.dtype, "F32")
      yield* Safetensors.write(file, model)
      const back = yield* Effect.scoped(Effect.flatMap(Safetensors.read(file), (m) => Params.fromModel(network, m)))
      assert.deepStrictEqual([...back.keys()], network.params.map((p) => p.name))
      for (const [name, t] of params) assert.deepStrictEqual(Array.from(back.get(name)!.data), Array.from(t.data), name)
      fs.rmSync(dir, { recursive: true })
    })
  )

  it.effect("strictly match the architecture, naming the offending tensor", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [4, 3, 2] })
      const params = Init.initNetwork(network, 0)
      const missing = new Map(params)
      missing.delete("layers.1.weight")
      const e1 = yield* Effect.flip(Params.validate(network, missing, "m.safetensors"))
      assert.strictEqual(e1.tensor, "layers.1.weight")
      expect(e1.message).toBe('m.safetensors: tensor "layers.1.weight": missing; the architecture expects [2, 3]')
      const extra = new Map(params).set("head.weight", { shape: [1], data: new Float32Array(1) })
      expect((yield* Effect.flip(Params.validate(network, extra))).tensor).toBe("head.weight")
      const misshapen = new Map(params).set("layers.0.weight", { shape: [4, 3], data: new Float32Array(12) })
      expect((yield* Effect.flip(Params.validate(network, misshapen))).detail).toContain("has shape [4, 3], the architecture expects [3, 4]")
      const wrongModel = Params.toModel(yield* Network.resolve({ type: "mlp", layers: [4, 5, 2] }), Init.initNetwork(yield* Network.resolve({ type: "mlp", layers: [4, 5, 2] }), 0), "other.safetensors")
      const e2 = yield* Effect.flip(Params.fromModel(network, wrongModel))
      assert.strictEqual(e2._tag, "ParamError")
      expect(e2.message).toContain("other.safetensors")
    })
  )

  it("interpolate tensor by tensor in float64", () => {
    const a = new Map([["w", { shape: [3], data: Float32Array.of(0, 1, -2) }]])
    const b = new Map([["w", { shape: [3], data: Float32Array.of(4, 1, 2) }]])
    assert.deepStrictEqual(Array.from(Params.lerp(a, b, 0.25).get("w")!.data), [1, 1, -1])
    assert.deepStrictEqual(Array.from(Params.lerp(a, b, 0).get("w")!.data), [0, 1, -2])
    assert.deepStrictEqual(Array.from(Params.lerp(a, b, 1).get("w")!.data), [4, 1, 2])
    const copy = Params.clone(a)
    copy.get("w")!.data[0] = 9
    assert.strictEqual(a.get("w")!.data[0], 0)
  })
})
