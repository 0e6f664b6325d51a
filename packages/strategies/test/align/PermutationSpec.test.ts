import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Params } from "../../src/align/Params.ts"
import * as Spec from "../../src/align/PermutationSpec.ts"
import { resnet } from "./Reference.ts"

const params = (shapes: Record<string, ReadonlyArray<number>>): Params =>
  new Map(Object.entries(shapes).map(([name, shape]) => [name, { shape, data: new Float32Array(shape.reduce((n, d) => n * d, 1)) }]))

const mismatch = (spec: Spec.PermutationSpec, shapes: Record<string, ReadonlyArray<number>>) => {
  const error = Effect.runSync(Effect.flip(Spec.resolve(spec, params(shapes))))
  assert.strictEqual(error._tag, "SpecMismatch")
  return error
}

/** Each permutation's axes as "tensor:axis[/outer×inner]" strings, for compact comparison. */
const summary = (spec: Spec.PermutationSpec) =>
  Object.fromEntries(Object.entries(spec).map(([name, refs]) => [
    name,
    refs.map((r) => `${r.tensor}:${r.axis}${r.outer === undefined && r.inner === undefined ? "" : `/${r.outer ?? 1}×${r.inner ?? 1}`}`)
  ]))

describe("PermutationSpec builders", () => {
  it("mlp: one permutation between consecutive layers", () => {
    assert.deepStrictEqual(Spec.mlp(["layers.0", "layers.1", "layers.2"]), {
      "P_layers.0": [
        { tensor: "layers.0.weight", axis: 0 },
        { tensor: "layers.0.bias", axis: 0 },
        { tensor: "layers.1.weight", axis: 1 }
      ],
      "P_layers.1": [
        { tensor: "layers.1.weight", axis: 0 },
        { tensor: "layers.1.bias", axis: 0 },
        { tensor: "layers.2.weight", axis: 1 }
      ]
    })
    assert.deepStrictEqual(summary(Spec.mlp(["a", "b"], { bias: false })), { P_a: ["a.weight:0", "b.weight:1"] })
  })

  it("chain: conv → BatchNorm → flatten expands each channel into a block of the dense input", () => {
    const spec = Spec.chain([Spec.conv("c1"), Spec.batchNorm("bn"), Spec.conv("c2", { bias: false }), Spec.flatten(49), Spec.linear("fc"), Spec.linear("out")])
    assert.deepStrictEqual(summary(spec), {
      P_c1: ["c1.weight:0", "c1.bias:0", "bn.weight:0", "bn.bias:0", "bn.running_mean:0", "bn.running_var:0", "c2.weight:1"],
      P_c2: ["c2.weight:0", "fc.weight:1/1×49"],
      P_fc: ["fc.weight:0", "fc.bias:0", "out.weight:1"]
    })
    const last = Spec.chain([Spec.conv("c"), Spec.flatten(9, { channelsLast: true }), Spec.linear("fc")])
    assert.deepStrictEqual(summary(last), { P_c: ["c.weight:0", "c.bias:0", "fc.weight:1/9×1"] })
  })

  it("residual: the stream permutation is shared by every block and reopened by a projection", () => {
    assert.deepStrictEqual(summary(resnet.spec), {
      P_conv1: [
        "conv1.weight:0", "bn1.weight:0", "bn1.bias:0", "bn1.running_mean:0", "bn1.running_var:0",
        "layer1.0.conv1.weight:1",
        "layer1.0.conv2.weight:0", "layer1.0.bn2.weight:0", "layer1.0.bn2.bias:0", "layer1.0.bn2.running_mean:0", "layer1.0.bn2.running_var:0",
        "layer2.0.downsample.0.weight:1", "layer2.0.conv1.weight:1"
      ],
      "P_layer1.0.conv1": [
        "layer1.0.conv1.weight:0", "layer1.0.bn1.weight:0", "layer1.0.bn1.bias:0", "layer1.0.bn1.running_mean:0", "layer1.0.bn1.running_var:0",
        "layer1.0.conv2.weight:1"
      ],
      "P_layer2.0.downsample.0": [
        "layer2.0.downsample.0.weight:0", "layer2.0.downsample.1.weight:0", "layer2.0.downsample.1.bias:0",
        "layer2.0.downsample.1.running_mean:0", "layer2.0.downsample.1.running_var:0",
        "layer2.0.conv2.weight:0", "layer2.0.bn2.weight:0", "layer2.0.bn2.bias:0", "layer2.0.bn2.running_mean:0", "layer2.0.bn2.running_var:0",
        "layer2.1.conv1.weight:1",
        "layer2.1.conv2.weight:0", "layer2.1.bn2.weight:0", "layer2.1.bn2.bias:0", "layer2.1.bn2.running_mean:0", "layer2.1.bn2.running_var:0",
        "norm.weight:0", "norm.bias:0", "fc.weight:1"
      ],
      "P_layer2.0.conv1": [
        "layer2.0.conv1.weight:0", "layer2.0.bn1.weight:0", "layer2.0.bn1.bias:0", "layer2.0.bn1.running_mean:0", "layer2.0.bn1.running_var:0",
        "layer2.0.conv2.weight:1"
      ],
      "P_layer2.1.conv1": [
        "layer2.1.conv1.weight:0", "layer2.1.bn1.weight:0", "layer2.1.bn1.bias:0", "layer2.1.bn1.running_mean:0", "layer2.1.bn1.running_var:0",
        "layer2.1.conv2.weight:1"
      ]
    })
  })

  it("residual: pre-norm LayerNorms read the stream; LayerNorm without affine adds nothing", () => {
    const spec = Spec.residual({
      stem: [Spec.linear("embed")],
      blocks: [{ main: [Spec.layerNorm("ln"), Spec.linear("fc1"), Spec.linear("fc2")] }, { main: [Spec.layerNorm("plain", { affine: false }), Spec.linear("fc3")] }],
      head: [Spec.linear("head")]
    })
    assert.deepStrictEqual(summary(spec), {
      P_embed: ["embed.weight:0", "embed.bias:0", "ln.weight:0", "ln.bias:0", "fc1.weight:1", "fc2.weight:0", "fc2.bias:0", "fc3.weight:1", "fc3.weight:0", "fc3.bias:0", "head.weight:1"],
      P_fc1: ["fc1.weight:0", "fc1.bias:0", "fc2.weight:1"]
    })
  })
})

describe("PermutationSpec schema", () => {
  it("decodes a hand-written spec (as parsed from YAML)", () => {
    const input = { P_hidden: [{ tensor: "l0.weight", axis: 0 }, { tensor: "l1.weight", axis: 1, inner: 4 }] }
    assert.deepStrictEqual(Effect.runSync(Spec.decode(input)), input)
  })

  it("rejects malformed specs", () => {
    for (const bad of [
      { P: [] },
      { P: [{ tensor: "w", axis: -1 }] },
      { P: [{ tensor: "w", axis: 0.5 }] },
      { P: [{ axis: 0 }] },
      { P: [{ tensor: "w", axis: 0, inner: 0 }] },
      { P: "w:0" }
    ]) {
      const error = Effect.runSync(Effect.flip(Spec.decode(bad)))
      assert.strictEqual(error._tag, "SchemaError", JSON.stringify(bad))
    }
  })
})

describe("PermutationSpec.resolve", () => {
  const shapes = { "c.weight": [6, 3, 3, 3], "c.bias": [6], "fc.weight": [10, 6 * 4] }

  it("computes sizes and block layouts", () => {
    const resolved = Effect.runSync(Spec.resolve(Spec.chain([Spec.conv("c"), Spec.flatten(4), Spec.linear("fc")]), params(shapes)))
    assert.deepStrictEqual(resolved.permutations.map(({ name, size }) => [name, size]), [["P_c", 6]])
    assert.deepStrictEqual(resolved.byTensor.get("fc.weight"), [{ permutation: "P_c", tensor: "fc.weight", axis: 1, outer: 1, inner: 4 }])
  })

  it("names the permutation, tensor and axis at fault", () => {
    let error = mismatch({ P: [{ tensor: "c.weigth", axis: 0 }] }, shapes)
    assert.include(error.message, `tensor "c.weigth"`)
    assert.include(error.message, "no such tensor")
    error = mismatch({ P: [{ tensor: "c.bias", axis: 1 }] }, shapes)
    assert.include(error.message, "axis out of range for shape [6] (rank 1)")
    error = mismatch({ P: [{ tensor: "c.weight", axis: 0 }, { tensor: "fc.weight", axis: 1, inner: 5 }] }, shapes)
    assert.include(error.message, "not a multiple of outer × inner = 5")
    error = mismatch({ P: [{ tensor: "c.weight", axis: 0 }, { tensor: "fc.weight", axis: 1 }] }, shapes)
    assert.include(error.message, "permutes 24 units here but 6 at c.weight axis 0")
    assert.strictEqual(error.axis, 1)
    error = mismatch({ P: [{ tensor: "c.weight", axis: 0 }], Q: [{ tensor: "c.weight", axis: 0 }] }, shapes)
    assert.include(error.message, `already permuted by permutation "P"`)
    assert.strictEqual(error.permutation, "Q")
    error = mismatch({ P: [{ tensor: "c.weight", axis: 0 }, { tensor: "c.weight", axis: 0 }] }, shapes)
    assert.include(error.message, "listed twice")
    error = mismatch({ P: [] }, shapes)
    assert.include(error.message, "lists no axes")
    error = mismatch({ P: [{ tensor: "c.bias", axis: 0, outer: 0 }] }, shapes)
    assert.include(error.message, "must be positive integers")
  })
})
