import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as Torch from "../../src/io/torch/Torch.ts"
import * as Zip from "../../src/io/zip/Zip.ts"
import type { Dict } from "../../src/io/pickle/Values.ts"
import { toFloat64 } from "../../src/tensor/DType.ts"
import { failure, fixture, json, readAll, sameTensors, tempDir, type ExpectedJson } from "./helpers.ts"
import { P, sparseZip64Checkpoint, torchTensor, torchZip } from "./builders.ts"

const expected = json<Record<string, Record<string, ExpectedJson>>>("torch", "expected.json")

/** A byte source that records every positional read. */
const counting = (file: string) =>
  Effect.map(ByteSource.open(file), (source) => {
    const reads: Array<readonly [number, number]> = []
    const counted: ByteSource.ByteSource = { ...source, read: (offset, length) => (reads.push([offset, length]), source.read(offset, length)) }
    return { source: counted, reads }
  })

describe("PyTorch checkpoints", () => {
  const cases: Array<[string, string, string?]> = [
    ["module.pt", "module.pt"],
    ["dtypes.pt", "dtypes.pt"],
    ["views.pt", "views.pt"],
    ["protocol4.pt", "dtypes.pt"],
    ["protocol5.pt", "views.pt"],
    ["nested.pt", "nested.pt#model"],
    ["nested.pt", "nested.pt#optimizer", "optimizer"],
    ["legacy.pt", "legacy.pt"]
  ]
  for (const [file, key, stateKey] of cases) {
    it.effect(`reads ${file}${stateKey ? ` (key: ${stateKey})` : ""} exactly as torch saved it`, () =>
      Effect.gen(function* () {
        const model = yield* Torch.read(fixture("torch", file), stateKey === undefined ? {} : { key: stateKey })
        assert.deepStrictEqual(sameTensors(yield* readAll(model), expected[key]!), [])
        assert.deepStrictEqual(model.files, [fixture("torch", file)])
      }))
  }

  it.effect("keeps the OrderedDict's _metadata (module versions) apart from the tensors", () =>
    Effect.gen(function* () {
      const archive = yield* Zip.open(yield* ByteSource.open(fixture("torch", "module.pt")))
      const { value } = yield* Torch.unpickle("module.pt", yield* archive.readWhole(archive.entries.get("module/data.pkl")!, 1 << 20))
      const root = value as Dict
      assert.isTrue(root.ordered)
      const versions = root.attributes?.entries.get("_metadata") as Dict
      assert.deepStrictEqual((versions.entries.get("bn") as Dict).entries.get("version"), 2) // BatchNorm's num_batches_tracked era
      assert.isFalse(root.entries.has("_metadata"))
    }))

  it.effect("reads tied weights (one storage, two names) from disk once, as independent copies", () =>
    Effect.gen(function* () {
      const { source, reads } = yield* counting(fixture("torch", "module.pt"))
      const model = yield* Torch.fromSource(source)
      const before = reads.length
      const emb = yield* model.tensors.get("emb.weight")!.read()
      const afterFirst = reads.length
      const head = yield* model.tensors.get("head.weight")!.read()
      assert.deepStrictEqual(reads.slice(before).filter(([, n]) => n > 30).map(([, n]) => n), [160], "one read of the 10×4 f32 storage")
      assert.strictEqual(reads.length, afterFirst, "the second tied tensor reads nothing")
      assert.deepStrictEqual([...head], [...emb])
      emb.fill(0) // a caller computing in place must not corrupt the other name
      assert.notStrictEqual(head[0], 0)
    }))

  it.effect("reads only the storage a tensor needs, by byte range", () =>
    Effect.gen(function* () {
      const { source, reads } = yield* counting(fixture("torch", "merge_a.pt"))
      const model = yield* Torch.fromSource(source)
      const before = reads.length
      const bias = yield* model.tensors.get("fc2.bias")!.read()
      const tensorReads = reads.slice(before).filter(([, length]) => length === 16)
      assert.strictEqual(bias.byteLength, 16)
      assert.strictEqual(tensorReads.length, 1, "one read of the 4-float storage")
      // The rest are the entry's local header (30 bytes and its name), read once per entry.
      assert.isTrue(reads.slice(before).every(([, length]) => length <= 30 || length === 16))
    }))

  it.effect("reads parts of non-contiguous views in row-major order", () =>
    Effect.gen(function* () {
      const model = yield* Torch.read(fixture("torch", "views.pt"))
      const want = expected["views.pt"]!
      for (const name of ["transposed", "sliced", "column", "expanded", "window"]) {
        const t = model.tensors.get(name)!
        const all = want[name]!.values as Array<number>
        for (const [start, end] of [[0, 1], [1, 4], [3, all.length], [all.length - 1, all.length]] as const) {
          const part = toFloat64(yield* t.read({ start, end }), t.dtype)
          assert.deepStrictEqual([...part], all.slice(start, end), `${name}[${start}, ${end})`)
        }
      }
      const bad = yield* failure(model.tensors.get("base")!.read({ start: 3, end: 99 }))
      assert.strictEqual(bad._tag, "FormatError")
      assert.match(bad.message, /tensor "base".*outside its 24 elements/)
    }))

  it.effect("the 0.3/0.7 merge fixture matches a float64 merge of the two checkpoints", () =>
    Effect.gen(function* () {
      const merge = json("merge_expected.json")
      const a = yield* readAll(yield* Torch.read(fixture(merge.models[0])))
      const b = yield* readAll(yield* Torch.read(fixture(merge.models[1])))
      for (const [name, e] of Object.entries<any>(merge.tensors)) {
        const f64 = a[name]!.values.map((x, i) => 0.3 * x + 0.7 * b[name]!.values[i]!)
        assert.deepStrictEqual([...f64], e.values_f64, name)
        const f32 = a[name]!.values.map((x, i) => Math.fround(Math.fround(Math.fround(0.3) * x) + Math.fround(Math.fround(0.7) * b[name]!.values[i]!)))
        assert.deepStrictEqual([...f32], e.values_f32, name)
      }
    }))

  it.effect("selects a state dict by key, and says what is there when the key is wrong", () =>
    Effect.gen(function* () {
      const file = fixture("torch", "nested.pt")
      const optimizer = yield* Torch.read(file, { key: "optimizer.state" })
      assert.deepStrictEqual([...optimizer.tensors.keys()].slice(0, 2), ["0.momentum_buffer", "1.momentum_buffer"])
      const missing = yield* failure(Torch.read(file, { key: "ema" }))
      assert.strictEqual(missing._tag, "InvalidArgument")
      assert.match(missing.message, /no entry "ema".*"model", "optimizer", "epoch", "best_accuracy", "config"/)
      const empty = yield* failure(Torch.read(file, { key: "config" }))
      assert.match(empty.message, /"config" holds no tensors/)
      const one = yield* Torch.read(file, { key: "model.bn.num_batches_tracked" })
      assert.deepStrictEqual([...one.tensors.keys()], ["num_batches_tracked"])
    }))

  it.effect("asks for a key when several entries hold state dicts, and finds one under an integer key", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const weights = new Uint8Array(new Float32Array([1, 2]).buffer)
      const tensor = torchTensor({ storage: "FloatStorage", key: "0", numel: 2, shape: [2], stride: [1] })
      const two = path.join(dir, "gan.pt")
      fs.writeFileSync(two, torchZip(P.pickle(P.dict([P.str("generator"), P.dict([P.str("w"), tensor])], [P.str("discriminator"), P.dict([P.str("w"), tensor])])), { "0": weights }))
      const error = yield* failure(Torch.read(two))
      assert.match(error.message, /several entries hold tensors \("generator", "discriminator"\): choose one with key/)
      assert.deepStrictEqual([...(yield* Torch.read(two, { key: "discriminator" })).tensors.keys()], ["w"])
      const numbered = path.join(dir, "numbered.pt")
      fs.writeFileSync(numbered, torchZip(P.pickle(P.dict([P.int(3), P.dict([P.str("w"), tensor])], [P.str("epoch"), P.int(9)])), { "0": weights }))
      assert.deepStrictEqual([...toFloat64(yield* (yield* Torch.read(numbered)).tensors.get("w")!.read(), "F32")], [1, 2])
    }))

  it.effect("refuses a pickle that would run os.system, and nothing runs", () =>
    Effect.gen(function* () {
      const marker = "/tmp/crucible-pickle-was-executed" // the fixture's command would create it
      fs.rmSync(marker, { force: true })
      const error = yield* failure(Torch.read(fixture("torch", "evil_os_system.pt")))
      assert.strictEqual(error._tag, "UnsafePickle")
      assert.match(error.message, /evil_os_system\.pt.*"posix\.system"/)
      assert.isFalse(fs.existsSync(marker))
    }))

  it.effect("reads a ZIP64 checkpoint larger than 4 GiB (sparse on disk)", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const file = path.join(dir, "huge.pt")
      const huge = 4.5 * 2 ** 30
      const pickle = P.pickle(P.dict(
        [P.str("huge"), torchTensor({ storage: "FloatStorage", key: "0", numel: huge / 4, shape: [huge / 4], stride: [1] })],
        [P.str("after"), torchTensor({ storage: "FloatStorage", key: "1", numel: 2, shape: [2], stride: [1] })]
      ))
      sparseZip64Checkpoint(file, huge, pickle, new Uint8Array(new Float32Array([5, 6]).buffer))
      const model = yield* Torch.read(file)
      assert.deepStrictEqual(model.tensors.get("huge")!.shape, [huge / 4])
      const end = toFloat64(yield* model.tensors.get("huge")!.read({ start: huge / 4 - 2, end: huge / 4 }), "F32")
      assert.deepStrictEqual([...end], [0, 0])
      assert.deepStrictEqual([...toFloat64(yield* model.tensors.get("after")!.read(), "F32")], [5, 6])
    }))
})
