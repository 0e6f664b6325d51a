import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import * as Model from "@crucible/core/model/Model"
import * as DType from "@crucible/core/tensor/DType"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import * as Csv from "../../src/data/Csv.ts"
import * as Dataset from "../../src/data/Dataset.ts"
import * as TensorFile from "../../src/data/TensorFile.ts"

describe("CSV datasets", () => {
  it.effect("reads a header, a named label column and string labels (numbered in sorted order)", () =>
    Effect.gen(function* () {
      const text = 'sepal,species,petal\n1.5,"virginica",2\n\n-3e-1, setosa ,4\n7,versicolor,8\n'
      const d = yield* Csv.parse(text, "flowers.csv", { label: "species" })
      assert.deepStrictEqual([d.count, d.classes, d.shape], [3, 3, [2]])
      assert.deepStrictEqual(d.classNames, ["setosa", "versicolor", "virginica"])
      assert.deepStrictEqual(Array.from(d.y), [2, 0, 1])
      assert.deepStrictEqual(Array.from(d.x), Array.from(Float32Array.of(1.5, 2, -0.3, 4, 7, 8)))
    })
  )

  it.effect("detects the absence of a header, takes the last column as integer labels, honours shape and classes", () =>
    Effect.gen(function* () {
      const d = yield* Csv.parse("0.1,0.2,0.3,0.4,1\n0.5,0.6,0.7,0.8,0\n", "x.csv", { shape: [1, 2, 2], classes: 4 })
      assert.deepStrictEqual([d.count, d.classes, d.shape], [2, 4, [1, 2, 2]])
      assert.deepStrictEqual(Array.from(d.y), [1, 0])
      assert.isUndefined(d.classNames)
      const first = yield* Csv.parse("3;1;2\n4;0;1\n", "y.csv", { label: 0, delimiter: ";" })
      assert.deepStrictEqual(Array.from(first.y), [3, 4])
      assert.deepStrictEqual(Array.from(first.x), [1, 2, 0, 1])
    })
  )

  it.effect("reports bad rows with file and line", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[string, Csv.CsvOptions, RegExp, number | undefined]> = [
        ["a,b,label\n1,2,0\n1,x,1\n", {}, /column 2 \("x"\) is not a number/, 3],
        ["a,b,label\n1,2,0\n1,2\n", {}, /has 2 columns, the first row has 3/, 3],
        ["a,b\n1,0\n", { label: "c" }, /no column "c"/, 1],
        ["1,2\n", { label: "c" }, /no column "c"/, 1],
        ['a,b\n1,"0\n', {}, /unterminated quoted field/, 2],
        ["a,b\n1,5\n", { classes: 3 }, /label 5 is not below classes = 3/, 2],
        ["a,b\n1,cat\n", { classNames: ["dog"] }, /"cat" is not one of/, 2],
        ["", {}, /no rows/, undefined],
        ["a,b,c\n1,2,0\n", { shape: [3] }, /does not hold the 2 feature columns/, undefined]
      ]
      for (const [text, options, detail, line] of cases) {
        const error = yield* Effect.flip(Csv.parse(text, "data.csv", options))
        assert.strictEqual(error._tag, "DataError")
        expect(error.detail, text).toMatch(detail)
        assert.strictEqual(error.line, line, text)
        expect(error.message).toMatch(/^data\.csv/)
      }
      const missing = yield* Effect.flip(Csv.read("/nonexistent/data.csv"))
      expect(missing.message).toContain("/nonexistent/data.csv: cannot read")
    })
  )
})

const writeTensors = (file: string, tensors: ReadonlyArray<TensorRef.TensorRef>) => Safetensors.write(file, Model.make("test", tensors))

describe("safetensors datasets (x, y)", () => {
  it.effect("reads x of any float dtype and integer labels y", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tf-data-"))
      const file = path.join(dir, "d.safetensors")
      const x = [0.5, -1, 2, 0.25, 3, -0.75, 1, 0, 0.125, 4, -2, 8]
      yield* writeTensors(file, [TensorRef.fromBytes("x", "F16", [3, 1, 2, 2], DType.fromNumbers(x, "F16")), TensorRef.fromBytes("y", "I64", [3], DType.fromNumbers([2, 0, 1], "I64"))])
      const d = yield* TensorFile.read(file)
      assert.deepStrictEqual([d.count, d.shape, d.classes], [3, [1, 2, 2], 3])
      assert.deepStrictEqual(Array.from(d.x), x)
      assert.deepStrictEqual(Array.from(d.y), [2, 0, 1])
      fs.rmSync(dir, { recursive: true })
    })
  )

  it.effect("names the missing or inconsistent tensor", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tf-data-"))
      const file = path.join(dir, "d.safetensors")
      const x = TensorRef.fromBytes("x", "F32", [2, 3], DType.fromNumbers([1, 2, 3, 4, 5, 6], "F32"))
      yield* writeTensors(file, [x])
      const noY = yield* Effect.flip(TensorFile.read(file))
      assert.strictEqual(noY._tag, "DataError")
      expect(noY.message).toContain('(tensor "y"): missing (the file holds "x")')
      yield* writeTensors(file, [x, TensorRef.fromBytes("y", "I32", [3], DType.fromNumbers([0, 1, 1], "I32"))])
      expect((yield* Effect.flip(TensorFile.read(file))).message).toContain("holds 3 labels for 2 samples")
      yield* writeTensors(file, [x, TensorRef.fromBytes("y", "F32", [2], DType.fromNumbers([0, 1.5], "F32"))])
      expect((yield* Effect.flip(TensorFile.read(file))).message).toContain("label 1.5 of sample 1")
      yield* writeTensors(file, [x, TensorRef.fromBytes("labels", "U8", [2], DType.fromNumbers([0, 1], "U8"))])
      const renamed = yield* TensorFile.read(file, { y: "labels", classes: 5 })
      assert.strictEqual(renamed.classes, 5)
      fs.writeFileSync(file, "garbage")
      assert.strictEqual((yield* Effect.flip(TensorFile.read(file)))._tag, "FormatError")
      fs.rmSync(dir, { recursive: true })
    })
  )
})

describe("datasets", () => {
  it.effect("check their invariants, subset, standardise and split", () =>
    Effect.gen(function* () {
      const base = { name: "d", shape: [2], count: 3, x: Float32Array.of(1, 10, 2, 20, 3, 30), y: Int32Array.of(0, 1, 1), classes: 2 }
      yield* Dataset.make(base)
      expect((yield* Effect.flip(Dataset.make({ ...base, y: Int32Array.of(0, 2, 1) }))).detail).toContain("label 2 of sample 1")
      expect((yield* Effect.flip(Dataset.make({ ...base, x: new Float32Array(5) }))).detail).toContain("need 6")
      expect((yield* Effect.flip(Dataset.make({ ...base, x: Float32Array.of(1, 2, 3, NaN, 5, 6) }))).detail).toContain("sample 1")
      const sub = Dataset.subset(base, [2, 0])
      assert.deepStrictEqual(Array.from(sub.x), [3, 30, 1, 10])
      assert.deepStrictEqual(Array.from(sub.y), [1, 0])
      const stats = Dataset.featureStats(base)
      assert.deepStrictEqual(Array.from(stats.mean), [2, 20])
      const z = Dataset.standardize(base, stats)
      const sd = Math.sqrt(2 / 3)
      expect(z.x[0]).toBeCloseTo(-1 / sd, 6)
      expect(z.x[5]).toBeCloseTo(10 / (10 * sd), 6)
      const { train, test } = Dataset.splitEvery(base, 2)
      assert.deepStrictEqual([train.count, test.count], [2, 1])
      assert.deepStrictEqual(Array.from(test.x), [2, 20])
    })
  )
})
