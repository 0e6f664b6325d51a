import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Tfjs from "@crucible/core/io/tfjs/Tfjs"
import * as Model from "@crucible/core/model/Model"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Backend } from "../../src/backend/Backend.ts"
import * as Forward from "../../src/models/Forward.ts"
import * as Params from "../../src/models/Params.ts"
import * as Runnable from "../../src/models/Runnable.ts"
import * as TfjsTopology from "../../src/models/TfjsTopology.ts"
import * as Layout from "../../src/models/Layout.ts"
import * as Weights from "../../src/models/Weights.ts"
import * as Loss from "../../src/train/Loss.ts"
import { labels, uniform, worstError } from "./fixtures.ts"
import { crossEntropy64 } from "./reference.ts"

const FIXTURE = fileURLToPath(new URL("../../../core/fixtures/tfjs/mlp/model.json", import.meta.url))
const EXPECTED = JSON.parse(fs.readFileSync(path.join(path.dirname(FIXTURE), "expected.json"), "utf8")) as Record<string, { shape: Array<number>; values: Array<number> }>
const same = (p: string) => p

// ---- float64 reference written from the TF.js (Keras) definitions: NHWC, kernels [in, out] / [kh, kw, in, out] ----

interface Nhwc { readonly h: number; readonly w: number; readonly c: number; readonly data: Float64Array }

const dense64 = (x: ArrayLike<number>, n: number, kernel: ArrayLike<number>, bias: ArrayLike<number>, inF: number, out: number): Float64Array => {
  const y = new Float64Array(n * out)
  for (let s = 0; s < n; s++)
    for (let o = 0; o < out; o++) {
      let acc = bias[o]!
      for (let i = 0; i < inF; i++) acc += x[s * inF + i]! * kernel[i * out + o]!
      y[s * out + o] = acc
    }
  return y
}

const relu64 = (x: Float64Array): Float64Array => x.map((v) => Math.max(0, v))

/** Keras Conv2D, stride 1, padding "same" with an odd kernel (pad (k−1)/2 on every side). */
const convSame64 = (x: Nhwc, kernel: ArrayLike<number>, bias: ArrayLike<number>, k: number, out: number): Nhwc => {
  const pad = (k - 1) / 2
  const data = new Float64Array(x.h * x.w * out)
  for (let i = 0; i < x.h; i++)
    for (let j = 0; j < x.w; j++)
      for (let o = 0; o < out; o++) {
        let acc = bias[o]!
        for (let ki = 0; ki < k; ki++)
          for (let kj = 0; kj < k; kj++) {
            const hi = i + ki - pad
            const wj = j + kj - pad
            if (hi < 0 || hi >= x.h || wj < 0 || wj >= x.w) continue
            for (let c = 0; c < x.c; c++) acc += x.data[(hi * x.w + wj) * x.c + c]! * kernel[((ki * k + kj) * x.c + c) * out + o]!
          }
        data[(i * x.w + j) * out + o] = acc
      }
  return { h: x.h, w: x.w, c: out, data }
}

/** Keras BatchNormalization in inference, over the last axis of `data` (rows of `c`). */
const batchNorm64 = (data: Float64Array, c: number, gamma: ArrayLike<number>, beta: ArrayLike<number>, mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number): Float64Array =>
  data.map((v, i) => ((v - mean[i % c]!) / Math.sqrt(variance[i % c]! + eps)) * gamma[i % c]! + beta[i % c]!)

const maxPool64 = (x: Nhwc, k: number): Nhwc => {
  const [oh, ow] = [Math.floor(x.h / k), Math.floor(x.w / k)]
  const data = new Float64Array(oh * ow * x.c)
  for (let i = 0; i < oh; i++)
    for (let j = 0; j < ow; j++)
      for (let c = 0; c < x.c; c++) {
        let m = -Infinity
        for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) m = Math.max(m, x.data[((i * k + a) * x.w + j * k + b) * x.c + c]!)
        data[(i * ow + j) * x.c + c] = m
      }
  return { h: oh, w: ow, c: x.c, data }
}

// ---- the hand-written conv + flatten topology and its TF.js weights ----

const [H, W, C] = [5, 6, 2]
const cnnTopology = {
  class_name: "Sequential",
  config: {
    name: "cnn",
    layers: [
      { class_name: "InputLayer", config: { name: "input_1", batch_input_shape: [null, H, W, C], dtype: "float32" } },
      { class_name: "Conv2D", config: { name: "conv", filters: 3, kernel_size: [3, 3], strides: [1, 1], padding: "same", data_format: "channels_last", dilation_rate: [1, 1], activation: "relu", use_bias: true } },
      { class_name: "BatchNormalization", config: { name: "bn_img", axis: -1, momentum: 0.9, epsilon: 0.001, center: true, scale: true } },
      { class_name: "MaxPooling2D", config: { name: "pool", pool_size: [2, 2], strides: null, padding: "valid", data_format: "channels_last" } },
      { class_name: "Flatten", config: { name: "flat", data_format: "channels_last" } },
      { class_name: "BatchNormalization", config: { name: "bn_flat", axis: -1, momentum: 0.99, epsilon: 0.002 } },
      { class_name: "Dense", config: { name: "fc1", units: 4, activation: "relu", use_bias: true } },
      { class_name: "Dense", config: { name: "fc2", units: 3, activation: "softmax", use_bias: true } }
    ]
  }
}
const FLAT = 2 * 3 * 3 // pool gives 2×3×3
const cnnWeights: ReadonlyArray<readonly [string, ReadonlyArray<number>, Float32Array]> = [
  ["conv/kernel", [3, 3, C, 3], uniform(1, 9 * C * 3, -0.5, 0.5)],
  ["conv/bias", [3], uniform(2, 3, -0.2, 0.2)],
  ["bn_img/gamma", [3], uniform(3, 3, 0.5, 1.5)],
  ["bn_img/beta", [3], uniform(4, 3, -0.3, 0.3)],
  ["bn_img/moving_mean", [3], uniform(5, 3, -0.2, 0.4)],
  ["bn_img/moving_variance", [3], uniform(6, 3, 0.5, 1.5)],
  ["bn_flat/gamma", [FLAT], uniform(7, FLAT, 0.5, 1.5)],
  ["bn_flat/beta", [FLAT], uniform(8, FLAT, -0.3, 0.3)],
  ["bn_flat/moving_mean", [FLAT], uniform(9, FLAT, -0.2, 0.4)],
  ["bn_flat/moving_variance", [FLAT], uniform(10, FLAT, 0.5, 1.5)],
  ["fc1/kernel", [FLAT, 4], uniform(11, FLAT * 4, -0.6, 0.6)],
  ["fc1/bias", [4], uniform(12, 4, -0.2, 0.2)],
  ["fc2/kernel", [4, 3], uniform(13, 12, -0.6, 0.6)],
  ["fc2/bias", [3], uniform(14, 3, -0.2, 0.2)]
]
const tfjsWeight = (name: string): Float32Array => cnnWeights.find(([n]) => n === name)![2]
const weight = tfjsWeight

const tfjsModel = (topology: unknown, weights: typeof cnnWeights, source = "hand-written/model.json"): Model.Model =>
  Model.make(
    source,
    weights.map(([name, shape, data]) => TensorRef.fromBytes(name, "F32", shape, new Uint8Array(Float32Array.from(data).buffer))),
    { [TfjsTopology.TOPOLOGY_KEY]: JSON.stringify(topology) }
  )

/** What the TF.js model computes (logits: the final softmax left out), NHWC input. */
const cnnReference = (xNhwc: Float32Array, n: number, weight: (name: string) => ArrayLike<number> = tfjsWeight): Float64Array => {
  const out = new Float64Array(n * 3)
  for (let s = 0; s < n; s++) {
    const x: Nhwc = { h: H, w: W, c: C, data: Float64Array.from(xNhwc.subarray(s * H * W * C, (s + 1) * H * W * C)) }
    const conv = convSame64(x, weight("conv/kernel"), weight("conv/bias"), 3, 3)
    const bn = batchNorm64(relu64(conv.data), 3, weight("bn_img/gamma"), weight("bn_img/beta"), weight("bn_img/moving_mean"), weight("bn_img/moving_variance"), 0.001)
    const pooled = maxPool64({ ...conv, data: bn }, 2)
    const flat = batchNorm64(pooled.data, FLAT, weight("bn_flat/gamma"), weight("bn_flat/beta"), weight("bn_flat/moving_mean"), weight("bn_flat/moving_variance"), 0.002)
    const h1 = relu64(dense64(flat, 1, weight("fc1/kernel"), weight("fc1/bias"), FLAT, 4))
    out.set(dense64(h1, 1, weight("fc2/kernel"), weight("fc2/bias"), 4, 3), s * 3)
  }
  return out
}

/** NHWC samples → the NCHW batch Crucible takes. */
const toNchw = (x: Float32Array, n: number, h: number, w: number, c: number): Float32Array => {
  const y = new Float32Array(x.length)
  for (let s = 0; s < n; s++)
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let k = 0; k < c; k++) y[((s * c + k) * h + i) * w + j] = x[((s * h + i) * w + j) * c + k]!
  return y
}

layer(Backend.layer())("TF.js topologies run as Crucible networks", (it) => {
  it.effect("the fixture model.json loads without arch:, and its forward pass matches a float64 forward of its raw TF.js kernels", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const model = yield* Tfjs.read(FIXTURE)
        const { arch, network, params } = yield* Runnable.load(model, undefined, same)
        assert.deepStrictEqual(arch, {
          type: "sequential",
          input: [8],
          layers: [{ type: "dense", out: 16, bias: true }, { type: "relu" }, { type: "dense", out: 4, bias: true }]
        })
        assert.deepStrictEqual([...params.keys()], ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"])
        // PyTorch layout: weight[o][i] is the TF.js kernel[i][o].
        const k1 = EXPECTED["dense_Dense1/kernel"]!.values
        const w1 = params.get("layers.0.weight")!
        assert.deepStrictEqual(w1.shape, [16, 8])
        for (let o = 0; o < 16; o++) for (let i = 0; i < 8; i++) assert.strictEqual(w1.data[o * 8 + i], Math.fround(k1[i * 16 + o]!))

        const n = 7
        const x = uniform(21, n * 8, -2, 2)
        const result = yield* Forward.forward(network, params, { shape: [n, 8], data: x })
        const hidden = relu64(dense64(x, n, k1, EXPECTED["dense_Dense1/bias"]!.values, 8, 16))
        const want = dense64(hidden, n, EXPECTED["dense_Dense2/kernel"]!.values, EXPECTED["dense_Dense2/bias"]!.values, 16, 4)
        assert.deepStrictEqual(result.output.shape, [n, 4])
        expect(worstError(result.output.data, want, 1e-5, 0)).toBeLessThan(1)
      })
    )
  )

  it.effect("arch: a model.json path describes a PyTorch-named model (e.g. from safetensors)", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const fromJson = yield* Runnable.load(yield* Tfjs.read(FIXTURE), undefined, same)
        const torchModel = Params.toModel(fromJson.network, fromJson.params, "weights.safetensors")
        const again = yield* Runnable.load(torchModel, "model.json", (p) => path.join(path.dirname(FIXTURE), p))
        assert.deepStrictEqual(again.arch, fromJson.arch)
        for (const [name, t] of fromJson.params) assert.deepStrictEqual(again.params.get(name)!.data, t.data, name)
      })
    )
  )

  it.effect("conv + flatten: NHWC flatten order is permuted into the dense rows (and the BatchNorm between), matching the TF.js model", () =>
    Effect.gen(function* () {
      const converted = yield* TfjsTopology.fromTopology(cnnTopology, "hand-written")
      assert.strictEqual(converted.outputActivation, "softmax")
      assert.deepStrictEqual(converted.arch, {
        type: "sequential",
        input: [C, H, W],
        layers: [
          { type: "conv2d", out: 3, kernel: 3, stride: 1, padding: 1, bias: true },
          { type: "relu" },
          { type: "batchnorm", eps: 0.001, momentum: 1 - 0.9 },
          { type: "maxpool", kernel: 2, stride: 2 },
          { type: "flatten" },
          { type: "batchnorm", eps: 0.002, momentum: 1 - 0.99 },
          { type: "dense", out: 4, bias: true },
          { type: "relu" },
          { type: "dense", out: 3, bias: true }
        ]
      })
      const fc1 = converted.tensors.find((t) => t.tfjs === "fc1/kernel")
      assert.deepStrictEqual(fc1, { tfjs: "fc1/kernel", torch: "layers.6.weight", flattenedFrom: [2, 3, 3] })

      const { network, params } = yield* Runnable.load(tfjsModel(cnnTopology, cnnWeights), undefined, same)
      assert.strictEqual(params.get("layers.2.num_batches_tracked")!.data[0], 0)
      const n = 5
      const x = uniform(31, n * H * W * C, -1.5, 1.5)
      const result = yield* Forward.forward(network, params, { shape: [n, C, H, W], data: toNchw(x, n, H, W, C) })
      const want = cnnReference(x, n)
      expect(worstError(result.output.data, want, 1e-5, 0)).toBeLessThan(1)
      // The permutation matters: the same weights read in NHWC order compute something else.
      const unpermuted = new Map(params)
      const raw = weight("fc1/kernel")
      const rows = new Float32Array(4 * FLAT)
      for (let o = 0; o < 4; o++) for (let i = 0; i < FLAT; i++) rows[o * FLAT + i] = raw[i * 4 + o]!
      unpermuted.set("layers.6.weight", { shape: [4, FLAT], data: rows })
      const wrong = yield* Forward.forward(network, unpermuted, { shape: [n, C, H, W], data: toNchw(x, n, H, W, C) })
      expect(worstError(wrong.output.data, want, 1e-5, 0)).toBeGreaterThan(1)
    })
  )

  it.effect("backward: TF.js gradients of the converted model are the TF.js model's own, mapped to PyTorch layout", () =>
    Effect.gen(function* () {
      const { network, params } = yield* Runnable.load(tfjsModel(cnnTopology, cnnWeights), undefined, same)
      const n = 4
      const x = uniform(41, n * H * W * C, -1.5, 1.5)
      const y = labels(42, n, 3)
      const weights = Weights.upload(network, params, { variables: true })
      const got = new Map<string, Float32Array>()
      try {
        tf.tidy(() => {
          const batch = tf.tensor2d(toNchw(x, n, H, W, C), [n, H * W * C])
          const { grads } = tf.variableGrads(() => Loss.softmaxCrossEntropy(Forward.apply(network, weights, batch, { training: false }).output as tf.Tensor2D, tf.tensor1d(y, "int32")))
          for (const spec of network.params.filter((s) => s.name === "layers.0.weight" || s.name === "layers.6.weight")) {
            const g = grads[(weights.get(spec.name) as tf.Variable).name]!
            got.set(spec.name, Layout.paramToTorch({ shape: g.shape, data: g.dataSync() as Float32Array }, spec.layout).data)
          }
        })
      } finally {
        Weights.dispose(weights)
      }
      // Finite differences of the float64 TF.js-semantics reference, in TF.js layout.
      const w64 = new Map(cnnWeights.map(([name, , data]) => [name, Float64Array.from(data)] as const))
      const loss = () => crossEntropy64({ shape: [n, 3], data: cnnReference(x, n, (name) => w64.get(name)!) }, y)
      const numeric = (name: string): Float64Array => {
        const v = w64.get(name)!
        return v.map((_, i) => {
          const keep = v[i]!
          v[i] = keep + 1e-6
          const up = loss()
          v[i] = keep - 1e-6
          const down = loss()
          v[i] = keep
          return (up - down) / 2e-6
        })
      }
      // conv kernel [kh, kw, in, out] → weight [out, in, kh, kw]; dense kernel rows (h, w, c) → columns (c, h, w).
      const conv = numeric("conv/kernel")
      const convTorch = new Float64Array(conv.length)
      for (let ki = 0; ki < 3; ki++) for (let kj = 0; kj < 3; kj++) for (let c = 0; c < C; c++) for (let o = 0; o < 3; o++) convTorch[((o * C + c) * 3 + ki) * 3 + kj] = conv[((ki * 3 + kj) * C + c) * 3 + o]!
      const fc = numeric("fc1/kernel")
      const fcTorch = new Float64Array(fc.length)
      for (let h = 0; h < 2; h++) for (let w = 0; w < 3; w++) for (let c = 0; c < 3; c++) for (let o = 0; o < 4; o++) fcTorch[o * FLAT + (c * 2 + h) * 3 + w] = fc[((h * 3 + w) * 3 + c) * 4 + o]!
      expect(worstError(got.get("layers.0.weight")!, convTorch, 1e-4, 1e-3)).toBeLessThan(1)
      expect(worstError(got.get("layers.6.weight")!, fcTorch, 1e-4, 1e-3)).toBeLessThan(1)
    })
  )
})

describe("TF.js topologies that do not convert", () => {
  const withLayer = (extra: unknown) => ({ ...cnnTopology, config: { ...cnnTopology.config, layers: [...cnnTopology.config.layers.slice(0, 2), extra, ...cnnTopology.config.layers.slice(2)] } })
  const cases: ReadonlyArray<readonly [string, unknown, string]> = [
    ["an unsupported layer class", withLayer({ class_name: "LSTM", config: { name: "lstm_1", units: 4 } }), 'layers[2] "lstm_1" (LSTM)'],
    ["an uneven \"same\" padding", withLayer({ class_name: "Conv2D", config: { name: "conv_s2", filters: 2, kernel_size: 3, strides: 2, padding: "same" } }), 'layers[2] "conv_s2" (Conv2D)'],
    ["channels_first", withLayer({ class_name: "MaxPooling2D", config: { name: "p_cf", pool_size: 2, data_format: "channels_first" } }), "channels_first"],
    ["softmax before the last layer", withLayer({ class_name: "Activation", config: { name: "sm", activation: "softmax" } }), 'layers[2] "sm" (Activation)'],
    ["dense on an image", withLayer({ class_name: "Dense", config: { name: "d_img", units: 3 } }), "add a Flatten"],
    ["a functional model", { class_name: "Model", config: { layers: [] } }, '"Model" model'],
    ["no input shape", { class_name: "Sequential", config: { layers: [{ class_name: "Dense", config: { name: "d", units: 2 } }] } }, "no input shape"]
  ]
  for (const [label, topology, needle] of cases) {
    it.effect(`${label} is a TfjsTopologyError naming it`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(TfjsTopology.fromTopology(topology, "bad/model.json"))
        assert.strictEqual(error._tag, "TfjsTopologyError")
        expect(error.message).toContain("bad/model.json")
        expect(error.message).toContain(needle)
      })
    )
  }

  it.effect("arch: pointing at such a model.json fails as an ArchError naming file and layer", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-tfjs-topology-"))
      const file = path.join(dir, "model.json")
      fs.writeFileSync(file, JSON.stringify({ modelTopology: cases[0]![1], weightsManifest: [] }))
      const error = yield* Effect.flip(Runnable.decodeArch("model.json", (p) => path.join(dir, p)))
      fs.rmSync(dir, { recursive: true })
      assert.strictEqual(error._tag, "ArchError")
      expect(error.message).toContain(file)
      expect(error.message).toContain('"lstm_1" (LSTM)')
    })
  )

  it.effect("weights the topology needs but the model lacks, or does not name, are ParamErrors naming the tensor", () =>
    Effect.gen(function* () {
      const converted = yield* TfjsTopology.fromTopology(cnnTopology, "hand-written")
      const missing = yield* Effect.flip(TfjsTopology.toTorchModel(tfjsModel(cnnTopology, cnnWeights.filter(([n]) => n !== "fc1/bias")), converted))
      assert.strictEqual(missing._tag, "ParamError")
      expect(missing.message).toContain('"fc1/bias"')
      const extra = yield* Effect.flip(TfjsTopology.toTorchModel(tfjsModel(cnnTopology, [...cnnWeights, ["stray/kernel", [2], new Float32Array(2)]]), converted))
      expect(extra.message).toContain('"stray/kernel"')
    })
  )
})
