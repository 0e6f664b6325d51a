import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Formats from "../../src/io/Formats.ts"
import { failure, fixture, readAll, tempDir } from "./helpers.ts"

/** The tensors of merge_a.pt, which several fixtures hold in other formats. */
const reference = Effect.flatMap(Formats.readModel(fixture("torch", "merge_a.pt")), readAll)

describe("Formats: one entry point for every model path", () => {
  const same: Array<[string, string, Formats.FormatName]> = [
    ["a PyTorch zip checkpoint", fixture("torch", "merge_a.pt"), "pytorch"],
    ["a sharded safetensors index", fixture("safetensors", "sharded", "model.safetensors.index.json"), "safetensors-sharded"],
    ["a Hugging Face folder with a sharded safetensors index", fixture("safetensors", "hf-sharded"), "safetensors-sharded"],
    ["a Hugging Face folder with one model.safetensors", fixture("safetensors", "hf-single"), "safetensors"],
    ["a Hugging Face folder with pytorch_model.bin", fixture("safetensors", "hf-pytorch"), "pytorch"],
    ["a Hugging Face folder with sharded pytorch_model.bin", fixture("safetensors", "hf-pytorch-sharded"), "pytorch-sharded"],
    ["a single safetensors file", fixture("safetensors", "hf-single", "model.safetensors"), "safetensors"]
  ]
  for (const [what, target, format] of same) {
    it.effect(`reads ${what} to the same tensors`, () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* Formats.detect(target)).format, format)
        const got = yield* readAll(yield* Formats.readModel(target))
        const want = yield* reference
        assert.deepStrictEqual(Object.keys(got).sort(), Object.keys(want).sort())
        for (const name of Object.keys(want)) assert.deepStrictEqual([...got[name]!.values], [...want[name]!.values], name)
      }))
  }

  it.effect("detects by content, not extension, and finds TF.js and legacy checkpoints", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const disguised = path.join(dir, "weights.bin")
      fs.copyFileSync(fixture("safetensors", "hf-single", "model.safetensors"), disguised)
      assert.strictEqual((yield* Formats.detect(disguised)).format, "safetensors")
      const zipNamedSafetensors = path.join(dir, "x.safetensors")
      fs.copyFileSync(fixture("torch", "module.pt"), zipNamedSafetensors)
      assert.strictEqual((yield* Formats.detect(zipNamedSafetensors)).format, "pytorch")
      assert.strictEqual((yield* Formats.detect(fixture("torch", "legacy.pt"))).format, "pytorch")
      assert.deepStrictEqual(yield* Formats.detect(fixture("tfjs", "mlp")), { format: "tfjs", file: fixture("tfjs", "mlp", "model.json") })
      assert.strictEqual((yield* Formats.readModel(fixture("tfjs", "mlp"))).tensors.size, 4)
      assert.strictEqual((yield* Formats.readModel(fixture("torch", "nested.pt"), { key: "optimizer.state" })).tensors.size, 5)
    }))

  it.effect("says what is wrong with a path that is no model", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const missing = yield* failure(Formats.readModel(path.join(dir, "nope.safetensors")))
      assert.strictEqual(missing._tag, "IoError")
      assert.match(missing.message, /nope\.safetensors: cannot open: ENOENT/)
      fs.writeFileSync(path.join(dir, "notes.txt"), "hello")
      const folder = yield* failure(Formats.readModel(dir))
      assert.match(folder.message, /no model found \(looked for model\.safetensors\.index\.json, .*\); it holds notes\.txt/)
      const text = yield* failure(Formats.readModel(path.join(dir, "notes.txt")))
      assert.match(text.message, /notes\.txt: invalid model: not a safetensors file, a PyTorch checkpoint or a TF\.js model\.json/)
      const key = yield* failure(Formats.readModel(fixture("safetensors", "hf-single"), { key: "model" }))
      assert.strictEqual(key._tag, "InvalidArgument")
      assert.match(key.message, /key selects one inside a PyTorch checkpoint/)
    }))

  it.effect("writes safetensors (sharded on request) with provenance, and TF.js for model.json", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const model = yield* Formats.readModel(fixture("torch", "merge_a.pt"))
      const shardSize = Result.getOrThrow(Formats.parseByteSize("0.6KB"))
      const { files } = yield* Formats.writeModel(path.join(dir, "out", "merged.safetensors"), model, { shardSize, metadata: { "crucible.stage": "mid" } })
      assert.deepStrictEqual(files.map((f) => path.basename(f.path)), ["merged-00001-of-00002.safetensors", "merged-00002-of-00002.safetensors", "merged.safetensors.index.json"])
      const back = yield* Formats.inspect(path.join(dir, "out"))
      assert.strictEqual(back.format, "safetensors-sharded")
      assert.strictEqual(back.totalBytes, 848)
      assert.deepStrictEqual(back.tensors[0], { name: "fc1.weight", dtype: "F32", shape: [16, 8], bytes: 512 })
      assert.strictEqual(back.metadata.format, "pt")
      assert.strictEqual(back.metadata["crucible.source"], fixture("torch", "merge_a.pt"))
      assert.strictEqual(back.metadata["crucible.stage"], "mid")
      const tfjs = yield* Formats.writeModel(path.join(dir, "web", "model.json"), model)
      assert.deepStrictEqual(tfjs.files.map((f) => path.basename(f.path)), ["model.json", "group1-shard1of1.bin"])
      const web = yield* Formats.inspect(path.join(dir, "web"))
      assert.strictEqual(web.format, "tfjs")
      assert.strictEqual(web.totalBytes, 848)
    }))

  it("parses byte sizes as Hugging Face does", () => {
    const ok: Array<[string | number, number]> = [["2GB", 2e9], ["500MB", 5e8], ["64MiB", 64 * 2 ** 20], ["1.5 gib", 1.5 * 2 ** 30], ["4096", 4096], [4096, 4096], ["10kb", 10_000], ["1TB", 1e12]]
    for (const [input, bytes] of ok) assert.strictEqual(Result.getOrThrow(Formats.parseByteSize(input)), bytes, String(input))
    for (const bad of ["", "GB", "2 parsecs", "-1GB", "0", 0, -5, 1.5, Number.NaN, "1e3MB"]) {
      const result = Formats.parseByteSize(bad)
      assert.isTrue(Result.isFailure(result), String(bad))
      if (Result.isFailure(result)) assert.strictEqual(result.failure._tag, "InvalidArgument")
    }
  })
})
