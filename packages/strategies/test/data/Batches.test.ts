import { assert, describe, expect, it } from "@effect/vitest"
import * as Random from "../../src/backend/Random.ts"
import * as Batches from "../../src/data/Batches.ts"
import type { Dataset } from "../../src/data/Dataset.ts"

const dataset = (count: number, shape: ReadonlyArray<number>): Dataset => {
  const size = shape.reduce((a, b) => a * b, 1)
  return { name: "d", shape, count, x: Float32Array.from({ length: count * size }, (_, i) => i), y: Int32Array.from({ length: count }, (_, i) => i % 3), classes: 3 }
}

describe("batches", () => {
  it("cover every sample exactly once per epoch, in a seeded order that changes with the epoch", () => {
    const d = dataset(23, [2])
    const epoch = (e: number, seed = 1) => [...Batches.batches(d, { batchSize: 5, seed, epoch: e })]
    const e0 = epoch(0)
    assert.deepStrictEqual(e0.map((b) => b.indices.length), [5, 5, 5, 5, 3])
    const seen = e0.flatMap((b) => Array.from(b.indices))
    assert.deepStrictEqual([...seen].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i))
    expect(seen).not.toEqual(Array.from({ length: 23 }, (_, i) => i))
    assert.deepStrictEqual(epoch(0).map((b) => Array.from(b.indices)), e0.map((b) => Array.from(b.indices)))
    expect(epoch(1).flatMap((b) => Array.from(b.indices))).not.toEqual(seen)
    expect(epoch(0, 2).flatMap((b) => Array.from(b.indices))).not.toEqual(seen)
    for (const b of e0) {
      b.indices.forEach((j, k) => {
        assert.deepStrictEqual([b.x[2 * k], b.x[2 * k + 1]], [2 * j, 2 * j + 1])
        assert.strictEqual(b.y[k], j % 3)
      })
    }
    assert.strictEqual([...Batches.batches(d, { batchSize: 5, seed: 1, epoch: 0, dropLast: true })].length, 4)
    assert.deepStrictEqual(Array.from(Batches.order(4, { shuffle: false, seed: 1, epoch: 3 })), [0, 1, 2, 3])
    assert.strictEqual(Batches.batchCount(23, 5), 5)
    assert.strictEqual(Batches.batchCount(23, 5, true), 4)
  })

  it("shift images by whole pixels with zero fill", () => {
    // one 1×3×4 image 1..12; a generator whose draws we replay to know (dy, dx)
    const image = Float32Array.from({ length: 12 }, (_, i) => i + 1)
    for (let seed = 0; seed < 20; seed++) {
      const replay = Random.make(seed)
      const dy = replay.int(5) - 2
      const dx = replay.int(5) - 2
      const out = Batches.shiftImages(image, 1, [1, 3, 4], 2, Random.make(seed))
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 4; j++) {
          const si = i - dy
          const sj = j - dx
          const want = si >= 0 && si < 3 && sj >= 0 && sj < 4 ? image[si * 4 + sj]! : 0
          assert.strictEqual(out[i * 4 + j], want, `seed ${seed} (${dy}, ${dx}) at ${i},${j}`)
        }
    }
    assert.deepStrictEqual(Array.from(Batches.shiftImages(image, 1, [1, 3, 4], 0, Random.make(0))), Array.from(image))
    expect(() => Batches.shiftImages(image, 1, [12], 1, Random.make(0))).toThrow(RangeError)
  })

  it("draws every shift in [−k, k]² and keeps channels aligned", () => {
    const d = dataset(400, [2, 5, 5])
    const seen = new Set<string>()
    for (const b of Batches.batches(d, { batchSize: 100, seed: 3, epoch: 0, shift: 1, shuffle: false })) {
      for (let s = 0; s < b.indices.length; s++) {
        const base = s * 50
        // locate the shift from where the original centre pixel (2, 2) of channel 0 landed
        const centre = b.indices[s]! * 50 + 12
        let found = ""
        for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) if (b.x[base + i * 5 + j] === centre) found = `${i - 2},${j - 2}`
        seen.add(found)
        const [dy, dx] = found.split(",").map(Number) as [number, number]
        assert.strictEqual(b.x[base + 25 + (2 + dy) * 5 + 2 + dx], centre + 25)
      }
    }
    assert.deepStrictEqual([...seen].sort(), ["-1,-1", "-1,0", "-1,1", "0,-1", "0,0", "0,1", "1,-1", "1,0", "1,1"])
  })
})
