import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Arch from "../../src/models/Arch.ts"
import * as Network from "../../src/models/Network.ts"
import { cnnArch } from "./fixtures.ts"

const namesAndShapes = (network: Network.Network) => network.params.map((p) => `${p.name} ${JSON.stringify(p.shape)}`)

describe("architecture specs", () => {
  // What `yaml` parses from the documented examples (strategies does not depend on `yaml`).
  it.effect("decodes the specs a user writes", () =>
    Effect.gen(function* () {
      const mlp = yield* Arch.decode(JSON.parse('{ "type": "mlp", "layers": [784, 128, 128, 10], "activation": "relu" }'))
      assert.deepStrictEqual(mlp, { type: "mlp", layers: [784, 128, 128, 10], activation: "relu" })
      const cnn = yield* Arch.decode({
        type: "sequential",
        input: [1, 28, 28],
        layers: [
          { type: "conv2d", out: 8, kernel: 3, padding: 1 },
          { type: "relu" },
          { type: "residual", body: [{ type: "conv2d", out: 8, kernel: 3, padding: 1 }, { type: "batchnorm", momentum: 0.01 }] },
          { type: "maxpool", kernel: 2 },
          { type: "flatten" },
          { type: "dense", out: 10 }
        ]
      })
      assert.strictEqual(cnn.type, "sequential")
      const bad = yield* Effect.flip(Arch.decode({ type: "sequential", input: [1, 2, 2], layers: [{ type: "batchnorm", momentum: 0 }] }))
      assert.strictEqual(bad._tag, "ArchError")
    })
  )

  it.effect("reports malformed specs with the path of the problem", () =>
    Effect.gen(function* () {
      const negative = yield* Effect.flip(Arch.decode({ type: "mlp", layers: [784, -1, 10] }))
      assert.strictEqual(negative._tag, "ArchError")
      expect(negative.message).toContain("layers")
      const nested = yield* Effect.flip(Arch.decode({ type: "sequential", input: [4], layers: [{ type: "residual", body: [{ type: "dense", out: 0 }] }] }))
      expect(nested.message).toMatch(/body.*0.*out|greater than 0/s)
      const unknown = yield* Effect.flip(Arch.decode({ type: "transformer" }))
      assert.strictEqual(unknown.path, "arch.type")
      expect(unknown.detail).toContain("mlp, sequential")
      const typo = yield* Effect.flip(Arch.decode({ type: "sequential", input: [4], layers: [{ type: "relu" }, { type: "residual", body: [{ type: "dens", out: 3 }] }] }))
      assert.strictEqual(typo.path, "arch.layers[1].body[0].type")
      expect(typo.detail).toContain('"dens"')
    })
  )
})

describe("resolving an architecture", () => {
  it.effect("names an MLP's tensors like a ModuleList of nn.Linear, shapes [out, in]", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [784, 128, 10] })
      assert.deepStrictEqual(namesAndShapes(network), ["layers.0.weight [128,784]", "layers.0.bias [128]", "layers.1.weight [10,128]", "layers.1.bias [10]"])
      assert.deepStrictEqual(network.outputShape, [10])
      assert.deepStrictEqual(network.activationNames, ["input", "layers.0:in", "layers.0", "act.0:in", "act.0", "layers.1:in", "layers.1"])
      const normed = yield* Network.resolve({ type: "mlp", layers: [4, 3, 2], norm: "batchnorm", bias: false })
      assert.deepStrictEqual(namesAndShapes(normed), [
        "layers.0.weight [3,4]",
        "norms.0.weight [3]",
        "norms.0.bias [3]",
        "norms.0.running_mean [3]",
        "norms.0.running_var [3]",
        "norms.0.num_batches_tracked []",
        "layers.1.weight [2,3]"
      ])
    })
  )

  it.effect("names a sequential network like nn.Sequential (parameter-free layers count), residuals as body/shortcut", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      assert.deepStrictEqual(namesAndShapes(network), [
        "layers.0.weight [3,2,3,3]",
        "layers.0.bias [3]",
        "layers.1.weight [3]",
        "layers.1.bias [3]",
        "layers.1.running_mean [3]",
        "layers.1.running_var [3]",
        "layers.1.num_batches_tracked []",
        "layers.3.body.0.weight [3,3,3,3]",
        "layers.3.body.0.bias [3]",
        "layers.3.body.1.weight [3]",
        "layers.3.body.1.bias [3]",
        "layers.3.body.1.running_mean [3]",
        "layers.3.body.1.running_var [3]",
        "layers.3.body.1.num_batches_tracked []",
        "layers.3.body.3.weight [3,3,3,3]",
        "layers.6.body.0.weight [4,3,3,3]",
        "layers.6.body.0.bias [4]",
        "layers.6.shortcut.0.weight [4,3,1,1]",
        "layers.6.shortcut.0.bias [4]",
        "layers.7.weight [4,2,2]",
        "layers.7.bias [4,2,2]",
        "layers.10.weight [5,4]",
        "layers.10.bias [5]",
        "layers.11.weight [5]",
        "layers.11.bias [5]",
        "layers.13.weight [3,5]",
        "layers.13.bias [3]"
      ])
      const shapes = network.nodes.map((n) => `${n.path} ${JSON.stringify(n.outShape)}`)
      assert.deepStrictEqual(shapes.slice(4, 10), ["layers.4 [3,6,6]", "layers.5 [3,3,3]", "layers.6 [4,2,2]", "layers.7 [4,2,2]", "layers.8 [4,1,1]", "layers.9 [4]"])
      expect(network.params.find((p) => p.name === "layers.0.weight")!.fanIn).toBe(18)
    })
  )

  it.effect("rejects layers that do not fit, naming the layer", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[Arch.Arch, string, RegExp]> = [
        [{ type: "sequential", input: [1, 8, 8], layers: [{ type: "dense", out: 3 }] }, "arch.layers[0]", /flatten/],
        [{ type: "sequential", input: [16], layers: [{ type: "conv2d", out: 3, kernel: 3 }] }, "arch.layers[0]", /\[C, H, W\]/],
        [{ type: "sequential", input: [1, 4, 4], layers: [{ type: "relu" }, { type: "conv2d", out: 3, kernel: 5 }] }, "arch.layers[1]", /larger than the input/],
        [{ type: "sequential", input: [1, 4, 4], layers: [{ type: "maxpool", kernel: 8 }] }, "arch.layers[0]", /larger/],
        [{ type: "sequential", input: [2, 4, 4], layers: [{ type: "residual", body: [{ type: "conv2d", out: 3, kernel: 1 }] }] }, "arch.layers[0]", /identity shortcut gives \[2, 4, 4\]/],
        [{ type: "sequential", input: [4, 4], layers: [{ type: "relu" }] }, "arch.input", /\[features\] or \[C, H, W\]/],
        [{ type: "sequential", input: [2, 4, 4], layers: [{ type: "residual", body: [{ type: "flatten" }, { type: "dense", out: 2 }] }] }, "arch.layers[0]", /residual body gives \[2\]/]
      ]
      for (const [arch, at, detail] of cases) {
        const error = yield* Effect.flip(Network.resolve(arch))
        assert.strictEqual(error._tag, "ArchError")
        assert.strictEqual(error.path, at, JSON.stringify(arch))
        expect(error.detail).toMatch(detail)
      }
    })
  )
})
