import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Layout from "../../src/io/tfjs/Layout.ts"
import * as Tfjs from "../../src/io/tfjs/Tfjs.ts"
import * as Torch from "../../src/io/torch/Torch.ts"
import * as Model from "../../src/model/Model.ts"
import { fromNumbers, toFloat64 } from "../../src/tensor/DType.ts"
import * as TensorRef from "../../src/tensor/TensorRef.ts"
import { failure, fixture, json, readAll, sameTensors, tempDir, writeFile } from "./helpers.ts"

const mlp = fixture("tfjs", "mlp", "model.json")

describe("TF.js layers models", () => {
  it.effect("reads model.json and weight shards split in the middle of a float", () =>
    Effect.gen(function* () {
      const model = yield* Tfjs.read(mlp)
      assert.deepStrictEqual(sameTensors(yield* readAll(model), json("tfjs", "mlp", "expected.json")), [])
      assert.strictEqual(JSON.parse(model.metadata["tfjs.modelTopology"]!).class_name, "Sequential")
      assert.strictEqual(model.metadata["tfjs.format"], '"layers-model"')
      // A range that straddles the two shard files (byte 500 is inside element 125 of the first kernel).
      const kernel = model.tensors.get("dense_Dense1/kernel")!
      const all = json("tfjs", "mlp", "expected.json")["dense_Dense1/kernel"].values
      assert.deepStrictEqual([...toFloat64(yield* kernel.read({ start: 120, end: 128 }), "F32")], all.slice(120, 128))
    }))

  it.effect("dequantizes uint8/uint16 weights and keeps float16 ones exact", () =>
    Effect.gen(function* () {
      const model = yield* Tfjs.read(fixture("tfjs", "quantized", "model.json"))
      assert.deepStrictEqual(sameTensors(yield* readAll(model), json("tfjs", "quantized", "expected.json")), [])
    }))

  it.effect("round-trips: what it reads it writes back as the same model.json and weight bytes", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const original = yield* Tfjs.read(mlp)
      const written = yield* Tfjs.write(dir, original)
      assert.deepStrictEqual(written.map((w) => path.basename(w.path)), ["model.json", "group1-shard1of1.bin"])
      const a = JSON.parse(fs.readFileSync(mlp, "utf8"))
      const b = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"))
      assert.deepStrictEqual(b.modelTopology, a.modelTopology)
      assert.deepStrictEqual([b.format, b.generatedBy, b.convertedBy], [a.format, a.generatedBy, a.convertedBy])
      assert.deepStrictEqual(b.weightsManifest[0].weights, a.weightsManifest[0].weights)
      const originalBytes = Buffer.concat(["group1-shard1of2.bin", "group1-shard2of2.bin"].map((f) => fs.readFileSync(fixture("tfjs", "mlp", f))))
      assert.isTrue(fs.readFileSync(path.join(dir, "group1-shard1of1.bin")).equals(originalBytes))
      const back = yield* Tfjs.read(path.join(dir, "model.json"))
      assert.deepStrictEqual(sameTensors(yield* readAll(back), json("tfjs", "mlp", "expected.json")), [])
    }))

  it.effect("writes other dtypes as TF.js stores them, sharded, and refuses int64 values beyond int32", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const model = Model.make("mem", [
        TensorRef.fromBytes("f64", "F64", [3], fromNumbers([0.1, -2, 1e40], "F64")),
        TensorRef.fromBytes("f16", "F16", [2], fromNumbers([0.5, 65504], "F16")),
        TensorRef.fromBytes("i64", "I64", [2], fromNumbers([-5, 2 ** 31 - 1], "I64")),
        TensorRef.fromBytes("u8", "U8", [2], fromNumbers([0, 255], "U8"))
      ], { note: "kept" })
      const written = yield* Tfjs.write(path.join(dir, "m", "model.json"), model, { shardSize: 7 })
      assert.strictEqual(written.length, 1 + Math.ceil((12 + 4 + 8 + 8) / 7))
      const back = yield* Tfjs.read(path.join(dir, "m", "model.json"))
      const values = yield* readAll(back)
      assert.deepStrictEqual(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, [v.dtype, [...v.values]]])), {
        f64: ["F32", [Math.fround(0.1), -2, Infinity]],
        f16: ["F16", [0.5, 65504]],
        i64: ["I32", [-5, 2 ** 31 - 1]],
        u8: ["I32", [0, 255]]
      })
      assert.strictEqual(back.metadata.note, "kept")
      const big = Model.make("mem", [TensorRef.fromBytes("big", "I64", [1], fromNumbers([2 ** 40], "I64"))])
      const error = yield* failure(Tfjs.write(path.join(dir, "big"), big))
      assert.match(error.message, /tensor "big".*does not fit in TF\.js's int32/)
      assert.isFalse(fs.existsSync(path.join(dir, "big", "model.json")))
    }))

  it.effect("maps TF.js kernels to PyTorch's layout: the fixture equals the same weights saved by torch", () =>
    Effect.gen(function* () {
      const names: Record<string, string> = { dense_Dense1: "fc1", dense_Dense2: "fc2" }
      const torchLike = Layout.tfjsToTorch(yield* Tfjs.read(mlp), { rename: (n) => n.replace(/^dense_Dense\d/, (l) => names[l]!) })
      const reference = yield* Torch.read(fixture("torch", "merge_a.pt"))
      const a = yield* readAll(torchLike)
      const b = yield* readAll(reference)
      assert.deepStrictEqual(Object.keys(a), Object.keys(b))
      for (const name of Object.keys(b)) {
        assert.deepStrictEqual(a[name]!.shape, b[name]!.shape, name)
        assert.deepStrictEqual([...a[name]!.values], [...b[name]!.values], name)
      }
      // And back: torch → TF.js restores the TF.js kernels.
      const tfjsAgain = yield* readAll(Layout.torchToTfjs(reference))
      const original = yield* readAll(yield* Tfjs.read(mlp))
      assert.deepStrictEqual([...tfjsAgain["fc1/kernel"]!.values], [...original["dense_Dense1/kernel"]!.values])
    }))

  it.effect("permutes conv kernels element by element as the layouts define", () =>
    Effect.gen(function* () {
      const [kh, kw, cin, cout] = [2, 3, 4, 5]
      const values = Array.from({ length: kh * kw * cin * cout }, (_, i) => i * 1.5 - 7)
      const kernel = TensorRef.fromBytes("conv/kernel", "F64", [kh, kw, cin, cout], fromNumbers(values, "F64"))
      const bn = ["gamma", "beta", "moving_mean", "moving_variance"].map((leaf) => TensorRef.fromBytes(`bn/${leaf}`, "F32", [5], fromNumbers([1, 2, 3, 4, 5], "F32")))
      const torch = Layout.tfjsToTorch(Model.make("mem", [kernel, ...bn]))
      assert.deepStrictEqual([...torch.tensors.keys()], ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"])
      const w = torch.tensors.get("conv.weight")!
      assert.deepStrictEqual(w.shape, [cout, cin, kh, kw])
      const got = toFloat64(yield* w.read(), "F64")
      for (let o = 0; o < cout; o++) for (let c = 0; c < cin; c++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
        assert.strictEqual(got[((o * cin + c) * kh + i) * kw + j], values[((i * kw + j) * cin + c) * cout + o])
      }
      // Chunked reads (as a streaming writer does) agree with the whole read.
      const chunks = [[0, 7], [7, 50], [50, 120]].map(([s, e]) => [...toFloat64(Effect.runSync(w.read({ start: s!, end: e! })), "F64")])
      assert.deepStrictEqual(chunks.flat(), [...got])
      const back = Layout.torchToTfjs(torch)
      assert.deepStrictEqual([...back.tensors.keys()], ["conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"])
      assert.deepStrictEqual([...toFloat64(yield* back.tensors.get("conv/kernel")!.read(), "F64")], values)
    }))

  it.effect("refuses broken models with the file and the problem", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const original = JSON.parse(fs.readFileSync(mlp, "utf8"))
      for (const f of ["group1-shard1of2.bin", "group1-shard2of2.bin"]) fs.copyFileSync(fixture("tfjs", "mlp", f), path.join(dir, f))
      const cases: Array<[string, unknown, RegExp]> = [
        ["missing shard", { ...original, weightsManifest: [{ ...original.weightsManifest[0], paths: ["./group1-shard1of2.bin", "gone.bin"] }] }, /refers to weight shard "gone.bin", which does not exist/],
        ["short shards", { ...original, weightsManifest: [{ ...original.weightsManifest[0], paths: ["./group1-shard1of2.bin"] }] }, /shards hold 500 bytes but its weights need 848.*truncated or missing/],
        ["string weights", { ...original, weightsManifest: [{ paths: [], weights: [{ name: "s", shape: [1], dtype: "string" }] }] }, /tensor "s".*string weights are not supported/],
        ["traversal", { ...original, weightsManifest: [{ paths: ["../../x.bin"], weights: [] }] }, /points outside the model's folder/],
        ["no manifest", { modelTopology: {} }, /has no weightsManifest/]
      ]
      for (const [name, content, pattern] of cases) {
        const file = writeFile(dir, `${name}.json`, JSON.stringify(content))
        const error = yield* failure(Tfjs.read(file))
        assert.strictEqual(error._tag, "FormatError", name)
        assert.include(error.message, file, name)
        assert.match(error.message, pattern, name)
      }
      assert.match((yield* failure(Tfjs.read(writeFile(dir, "bad.json", "{")))).message, /not valid JSON/)
    }))
})
