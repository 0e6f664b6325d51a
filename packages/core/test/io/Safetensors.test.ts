import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { FormatError } from "../../src/io/IoError.ts"
import * as Safetensors from "../../src/io/safetensors/Safetensors.ts"
import * as Sharded from "../../src/io/safetensors/Sharded.ts"
import * as Torch from "../../src/io/torch/Torch.ts"
import * as Model from "../../src/model/Model.ts"
import * as TensorRef from "../../src/tensor/TensorRef.ts"
import { failure, fixture, json, readAll, sameTensors, tempDir, writeFile } from "./helpers.ts"

const dtypes = json("safetensors", "dtypes.json")

describe("safetensors", () => {
  it.effect("reads every dtype of the spec, a 0-dim and a zero-size tensor, metadata and a padded header", () =>
    Effect.gen(function* () {
      const file = fixture("safetensors", "dtypes.safetensors")
      const model = yield* Safetensors.read(file)
      assert.deepStrictEqual(sameTensors(yield* readAll(model), dtypes.tensors), [])
      assert.deepStrictEqual(model.metadata, dtypes.metadata)
      assert.deepStrictEqual(model.tensors.get("scalar")!.shape, [])
      assert.deepStrictEqual(model.tensors.get("empty")!.shape, [0, 3])
      const bytes = fs.readFileSync(file)
      const headerLength = Number(bytes.readBigUInt64LE(0))
      assert.strictEqual(headerLength % 8, 0)
      assert.strictEqual(bytes[8 + headerLength - 1], 0x20, "the fixture's header ends in padding spaces")
    }))

  it.effect("writes a file byte-identical to the independent Python writer's", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const source = fixture("safetensors", "dtypes.safetensors")
      const out = path.join(dir, "copy.safetensors")
      const written = yield* Safetensors.write(out, yield* Safetensors.read(source), { chunkElements: 5 })
      const bytes = fs.readFileSync(out)
      assert.isTrue(bytes.equals(fs.readFileSync(source)))
      assert.strictEqual(written.sha256, createHash("sha256").update(bytes).digest("hex"))
      assert.strictEqual(written.bytes, bytes.byteLength)
      assert.deepStrictEqual(fs.readdirSync(dir), ["copy.safetensors"])
    }))

  it.effect("takes its chunk buffers from the memory a tensor's fast path offers, writes the same bytes, and gives them back", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const source = fixture("safetensors", "dtypes.safetensors")
      const model = yield* Safetensors.read(source)
      // A memory that hands out views of one shared buffer (as an arena does) and records what it lent;
      // the fast path fills a target from it and says so, so the test sees which buffers were used.
      const pool = new SharedArrayBuffer(1 << 16)
      const lent: Array<number> = [], returned: Array<number> = [], filledInMemory: Array<boolean> = []
      let next = 0
      const memory: TensorRef.TargetMemory = {
        take: (byteLength) => {
          const view = new Uint8Array(pool, next, byteLength)
          lent.push(next)
          next += Math.ceil(byteLength / 64) * 64
          return view
        },
        give: (bytes) => void returned.push(bytes.byteOffset)
      }
      const tensors = [...model.tensors.values()].map((t, i) =>
        i === 1
          ? TensorRef.withReadInto({ ...t }, (range, target) => {
            filledInMemory.push(target.buffer === pool)
            return Effect.map(t.read(range), (bytes) => target.set(bytes))
          }, memory)
          : t)
      const out = path.join(dir, "copy.safetensors")
      const written = yield* Safetensors.write(out, Model.make("mem", tensors, model.metadata), { chunkElements: 5 })
      assert.isTrue(fs.readFileSync(out).equals(fs.readFileSync(source)))
      assert.strictEqual(written.sha256, createHash("sha256").update(fs.readFileSync(source)).digest("hex"))
      // Three buffers, each taken once at the largest chunk, all given back; the fast path wrote into them.
      assert.strictEqual(lent.length, 3)
      assert.deepStrictEqual([...returned].sort((a, b) => a - b), lent)
      assert.isAbove(filledInMemory.length, 0)
      assert.isTrue(filledInMemory.every((inMemory) => inMemory))
    }))

  it.effect("reads a sharded checkpoint through its index, equal to the same weights saved by torch", () =>
    Effect.gen(function* () {
      const model = yield* Sharded.read(fixture("safetensors", "sharded", "model.safetensors.index.json"))
      const torch = yield* Torch.read(fixture("torch", "merge_a.pt"))
      const a = yield* readAll(model)
      const b = yield* readAll(torch)
      assert.deepStrictEqual(Object.keys(a), Object.keys(b))
      for (const name of Object.keys(a)) assert.deepStrictEqual([...a[name]!.values], [...b[name]!.values], name)
      assert.strictEqual(model.files.length, 3)
    }))

  it.effect("shards by size, writes the index, and reads back what it wrote", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const source = yield* Torch.read(fixture("torch", "merge_a.pt")) // 512 + 64 + 256 + 16 bytes
      const target = path.join(dir, "model.safetensors")
      const written = yield* Sharded.write(target, source, { shardSize: 600, metadata: { note: "sharded" } })
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"])
      for (const w of written) assert.strictEqual(w.sha256, createHash("sha256").update(fs.readFileSync(w.path)).digest("hex"))
      const index = JSON.parse(fs.readFileSync(path.join(dir, "model.safetensors.index.json"), "utf8"))
      assert.deepStrictEqual(index.weight_map, {
        "fc1.weight": "model-00001-of-00002.safetensors", "fc1.bias": "model-00001-of-00002.safetensors",
        "fc2.weight": "model-00002-of-00002.safetensors", "fc2.bias": "model-00002-of-00002.safetensors"
      })
      assert.strictEqual(index.metadata.total_size, 848)
      const back = yield* Sharded.read(path.join(dir, "model.safetensors.index.json"))
      assert.strictEqual(back.metadata.note, "sharded")
      const a = yield* readAll(back)
      const b = yield* readAll(source)
      for (const name of Object.keys(b)) assert.deepStrictEqual([...a[name]!.values], [...b[name]!.values], name)
      // Under the shard size: one plain file, no index.
      const single = path.join(dir, "single.safetensors")
      assert.strictEqual((yield* Sharded.write(single, source, { shardSize: 10_000 })).length, 1)
      assert.isTrue(fs.existsSync(single) && !fs.existsSync(`${single}.index.json`))
    }))

  it.effect("leaves nothing behind when a tensor fails midway through a sharded write", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const good = TensorRef.fromBytes("good", "F32", [64], new Uint8Array(256))
      const broken: TensorRef.TensorRef = { name: "broken", dtype: "F32", shape: [64], read: () => Effect.fail(new FormatError({ file: "src", format: "test", detail: "disk gone" })) }
      const model = Model.make("mem", [good, good, { ...good, name: "good2" }, broken].map((t, i) => ({ ...t, name: `${t.name}.${i}` })))
      const error = yield* failure(Sharded.write(path.join(dir, "m.safetensors"), model, { shardSize: 256 }))
      assert.match(error.message, /disk gone/)
      assert.deepStrictEqual(fs.readdirSync(dir), [], "no shard, no index, no temporary file")
    }))

  it.effect("leaves nothing behind when a sharded write is interrupted mid-tensor", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const reached = yield* Deferred.make<void>()
      const good = TensorRef.fromBytes("good", "F32", [64], new Uint8Array(256))
      const stuck: TensorRef.TensorRef = { name: "stuck", dtype: "F32", shape: [64], read: () => Effect.andThen(Deferred.succeed(reached, undefined), Effect.never) }
      const model = Model.make("mem", [good, { ...good, name: "good2" }, stuck])
      const fiber = yield* Effect.forkChild(Sharded.write(path.join(dir, "m.safetensors"), model, { shardSize: 256 }))
      yield* Deferred.await(reached)
      assert.isAbove(fs.readdirSync(dir).length, 0, "the first shard's temporary file exists while writing")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(fs.readdirSync(dir), [])
    }))

  it.effect("refuses to overwrite a file the model is read from", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const file = path.join(dir, "m.safetensors")
      fs.copyFileSync(fixture("safetensors", "hf-single", "model.safetensors"), file)
      const model = yield* Safetensors.read(file)
      const error = yield* failure(Sharded.write(file, model))
      assert.strictEqual(error._tag, "IoError")
      assert.match(error.message, /m\.safetensors: cannot overwrite: it is one of the files this model is read from/)
    }))

  it.effect("checks an index against its shards", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      for (const f of fs.readdirSync(fixture("safetensors", "sharded"))) fs.copyFileSync(fixture("safetensors", "sharded", f), path.join(dir, f))
      const index = path.join(dir, "model.safetensors.index.json")
      const original = JSON.parse(fs.readFileSync(index, "utf8"))
      const variants: Array<[string, unknown, RegExp]> = [
        ["missing shard", { ...original, weight_map: { ...original.weight_map, "fc2.bias": "model-00009-of-00009.safetensors" } }, /refers to shard "model-00009-of-00009.safetensors", which does not exist/],
        ["tensor not in its shard", { ...original, weight_map: { ...original.weight_map, "extra.weight": "model-00001-of-00002.safetensors" } }, /maps tensor "extra.weight" to shard "model-00001-of-00002.safetensors", which does not hold it/],
        ["shard tensor missing from index", { weight_map: { "fc1.weight": "model-00001-of-00002.safetensors" } }, /holds tensor "fc1.bias", which the index maps nowhere/],
        ["path traversal", { weight_map: { "fc1.weight": "../../etc/passwd" } }, /points outside the checkpoint's folder/],
        ["no weight_map", { metadata: {} }, /has no weight_map object/]
      ]
      for (const [name, content, pattern] of variants) {
        fs.writeFileSync(index, JSON.stringify(content))
        const error = yield* failure(Sharded.read(index))
        assert.strictEqual(error._tag, "FormatError", name)
        assert.match(error.message, pattern, name)
        assert.include(error.message, index, name)
      }
      writeFile(dir, "model.safetensors.index.json", "{ not json")
      assert.match((yield* failure(Sharded.read(index))).message, /not valid JSON/)
    }))
})
