import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ReadCounter from "../../src/io/ReadCounter.ts"
import * as Safetensors from "../../src/io/safetensors/Safetensors.ts"
import * as Cast from "../../src/model/Cast.ts"
import * as Model from "../../src/model/Model.ts"
import * as Lineage from "../../src/tensor/Lineage.ts"
import * as TensorRef from "../../src/tensor/TensorRef.ts"
import { tempDir } from "./helpers.ts"

const model = (file: string) =>
  Model.make(file, [
    TensorRef.fromBytes("w", "F32", [3, 4], new Uint8Array(48)),
    TensorRef.fromBytes("b", "F16", [4], new Uint8Array(8))
  ])

describe("ReadCounter", () => {
  it.effect("counts what a reader reads from each file, where the file was opened, whichever fiber reads", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "m.safetensors")
      yield* Safetensors.write(file, model(file))
      const tally = ReadCounter.tally()
      const read = yield* Safetensors.read(file).pipe(Effect.provideService(ReadCounter.ReadCounter, tally))
      const header = tally.totals().get(file)!
      // The header: its 8-byte length and the JSON.
      assert.strictEqual(header, Number(fs.readFileSync(file).readBigUInt64LE(0)) + 8)
      // Read outside the counter's context: still counted, to the file it was opened in.
      yield* read.tensors.get("w")!.read({ start: 2, end: 7 })
      yield* TensorRef.readInto(read.tensors.get("b")!, undefined, new Uint8Array(8))
      assert.deepStrictEqual([...tally.totals()], [[file, header + 5 * 4 + 8]])
    }).pipe(Effect.scoped))

  it.effect("counts nothing by default", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "m.safetensors")
      yield* Safetensors.write(file, model(file))
      const read = yield* Safetensors.read(file)
      assert.strictEqual((yield* read.tensors.get("w")!.read()).byteLength, 48)
    }).pipe(Effect.scoped))
})

describe("Lineage", () => {
  it.effect("a full read of derived tensors reads each input once per use; memory follows the range", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "m.safetensors")
      yield* Safetensors.write(file, model(file))
      const read = yield* Safetensors.read(file)
      const w = read.tensors.get("w")!
      const b = read.tensors.get("b")!
      assert.deepStrictEqual(w.lineage, Lineage.stored(file, 48))
      // A cast keeps its source's reads (in the source's dtype) and its fast path.
      const cast = Cast.castTensor(b, "F32")
      const twice = TensorRef.withLineage({ name: "x", dtype: "F32", shape: [3, 4], read: w.read }, Lineage.derived([w, w, cast], { perElement: 10, bytes: 3 }))
      assert.deepStrictEqual(Lineage.reads([twice, b]), { files: new Map([[file, 48 + 48 + 8 + 8]]), unknown: 0, inexact: new Set<string>() })
      assert.strictEqual(Lineage.workingSet(twice, 5), 3 + 10 * 5)
      assert.strictEqual(Lineage.workingSet(twice, 1_000), 3 + 10 * 12)
      assert.strictEqual(Lineage.workingSet(w, 5), 0)
      // Without a lineage: unknown, at its own size; in memory: no file.
      assert.deepStrictEqual(Lineage.reads([{ name: "u", dtype: "F32", shape: [2], read: w.read }, TensorRef.fromBytes("m", "F32", [2], new Uint8Array(8))]), { files: new Map(), unknown: 8, inexact: new Set<string>() })
      const fast = TensorRef.withReadInto({ name: "f", dtype: "F32", shape: [12], read: w.read }, (range, target) => TensorRef.readInto(w, range, target))
      assert.isTrue(TensorRef.hasReadInto(TensorRef.withLineage(fast, Lineage.derived([w], {}))))
    }).pipe(Effect.scoped))
})
