import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as ReadCounter from "../../src/io/ReadCounter.ts"
import * as ReadTap from "../../src/io/ReadTap.ts"
import { tempDir } from "./helpers.ts"

// A file of `size` random bytes and its sha256 computed independently (node:crypto over the whole buffer).
const randomFile = (dir: string, name: string, size: number) => {
  const bytes = randomBytes(size)
  const file = path.join(dir, name)
  fs.writeFileSync(file, bytes)
  return { file, sha256: createHash("sha256").update(bytes).digest("hex") }
}

// Reads the given ranges of `file` through a ByteSource opened under `taps` (and a tally).
const readRanges = (file: string, taps: ReadTap.Taps, tally: ReadCounter.Tally, ranges: ReadonlyArray<readonly [number, number]>, concurrency: number | "unbounded" = 1) =>
  Effect.scoped(
    Effect.gen(function* () {
      const source = yield* ByteSource.open(file)
      yield* Effect.forEach(ranges, ([offset, length]) => source.read(offset, length), { concurrency, discard: true })
    })
  ).pipe(Effect.provideService(ReadTap.ReadTap, taps), Effect.provideService(ReadCounter.ReadCounter, tally))

const chunks = (size: number, step: number): Array<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = []
  for (let at = 0; at < size; at += step) out.push([at, Math.min(step, size - at)])
  return out
}

describe("ReadTap", () => {
  it.effect("a file read once in order is hashed from those reads: nothing is read again, the digest is sha256 of the file", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("readtap-")
      const { file, sha256 } = randomFile(dir, "a.bin", 3 * 1024 * 1024 + 17)
      const taps = yield* ReadTap.make()
      assert.isTrue(taps.want(file))
      const tally = ReadCounter.tally()
      yield* readRanges(file, taps, tally, [[0, 8], [8, 100], ...chunks(3 * 1024 * 1024 + 17 - 108, 500_000).map(([o, l]) => [o + 108, l] as const)])
      const digest = yield* taps.finish(file)
      assert.strictEqual(digest?.sha256, sha256)
      assert.strictEqual(digest?.bytes, 3 * 1024 * 1024 + 17)
      assert.isTrue(digest?.unchanged)
      assert.strictEqual(taps.stats().reread, 0)
      assert.strictEqual(tally.totals().get(file), 3 * 1024 * 1024 + 17)
    })))

  it.effect("reads out of order: the hash goes on from where it stands and finish hashes the rest", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("readtap-")
      const size = 1_000_000
      const { file, sha256 } = randomFile(dir, "b.bin", size)
      const taps = yield* ReadTap.make()
      taps.want(file)
      // [0, 1000) fed; [5000, …) skipped (a gap); [500, 3000) overlaps the hash's point and feeds its tail.
      yield* readRanges(file, taps, ReadCounter.tally(), [[0, 1000], [5000, 10_000], [500, 2500], [200_000, 1000]])
      const digest = yield* taps.finish(file)
      assert.strictEqual(digest?.sha256, sha256)
      assert.strictEqual(digest?.fed, 3000)
      assert.strictEqual(taps.stats().reread, size - 3000)
    })))

  it.effect("concurrent reads of consecutive ranges and a queue smaller than one read: all fed, in order, readers wait for room", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("readtap-")
      const size = 20 * 1024 * 1024 + 3
      const { file, sha256 } = randomFile(dir, "c.bin", size)
      const taps = yield* ReadTap.make({ queueBytes: ReadTap.PIECE_BYTES })
      taps.want(file)
      yield* readRanges(file, taps, ReadCounter.tally(), chunks(size, 3 * 1024 * 1024), "unbounded")
      const digest = yield* taps.finish(file)
      assert.strictEqual(digest?.sha256, sha256)
      assert.strictEqual(taps.stats().reread, 0)
      assert.isAbove(taps.stats().waits, 0)
    })))

  it.effect("a file not wanted is not fed; a file changed after `want` is not fed and finishes as changed", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("readtap-")
      const a = randomFile(dir, "a.bin", 10_000)
      const b = randomFile(dir, "b.bin", 10_000)
      const taps = yield* ReadTap.make()
      taps.want(b.file)
      yield* readRanges(a.file, taps, ReadCounter.tally(), [[0, 10_000]])
      assert.strictEqual(taps.stats().fed, 0)
      assert.isUndefined(yield* taps.finish(a.file))
      fs.appendFileSync(b.file, "more")
      yield* readRanges(b.file, taps, ReadCounter.tally(), [[0, 10_004]])
      assert.strictEqual(taps.stats().fed, 0)
      const digest = yield* taps.finish(b.file)
      assert.isFalse(digest?.unchanged)
      assert.strictEqual(digest?.sha256, createHash("sha256").update(fs.readFileSync(b.file)).digest("hex"))
    })))
})
