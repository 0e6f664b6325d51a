import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as DirectRead from "../../src/io/DirectRead.ts"
import * as ReadCounter from "../../src/io/ReadCounter.ts"
import * as ReadTap from "../../src/io/ReadTap.ts"
import { seededBytes, tempDir, withDirectReads } from "./helpers.ts"

// Direct reads apply to files of at least DirectRead.MIN_FILE_BYTES: the smallest such file, plus
// an odd tail so the end is not aligned. Seeded bytes (xorshift32), sha256 computed by node:crypto.
const SIZE = DirectRead.MIN_FILE_BYTES + 12_345
const seededFile = (dir: string) => {
  const bytes = seededBytes(SIZE, 0x9e3779b9)
  const file = path.join(dir, "big.bin")
  fs.writeFileSync(file, bytes)
  return { file, bytes, sha256: createHash("sha256").update(bytes).digest("hex") }
}

// Whether the filesystem takes O_DIRECT for `file`. Where it refuses, ByteSource reads everything through the
// cache (nothing is lent, nothing counted direct): the tests then check only the bytes.
const takesDirect = (file: string): boolean => {
  const probe = DirectRead.open(file)
  if (probe === undefined) return false
  fs.closeSync(probe)
  return true
}

// A first run over inputs larger than the cache: the seeded file, a tap with cacheBytes 0, and the O_DIRECT probe.
const coldRun = Effect.gen(function* () {
  const seeded = seededFile(yield* tempDir("direct-"))
  const taps = yield* ReadTap.make({ cacheBytes: 0 })
  return { ...seeded, taps, direct: takesDirect(seeded.file) }
})

// Reads `ranges` through a ByteSource opened under `taps` (and `tally`), checking each against the file's bytes.
const readAndCheck = (file: string, bytes: Uint8Array, taps: ReadTap.ReadTap, tally: ReadCounter.Tally, ranges: ReadonlyArray<readonly [number, number]>, concurrency: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const source = yield* ByteSource.open(file)
      let wrong = 0
      yield* Effect.forEach(ranges, ([offset, length]) =>
        Effect.map(source.read(offset, length), (got) => {
          if (Buffer.compare(got, bytes.subarray(offset, offset + length)) !== 0) wrong++
        }), { concurrency, discard: true })
      return wrong
    })
  ).pipe(Effect.provideService(ReadTap.ReadTap, taps), Effect.provideService(ReadCounter.ReadCounter, tally))

// A merge's pattern: a small header read, then 2 MiB ranges from an unaligned offset, a few in flight.
const mergeRanges = (): Array<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = [[0, 8], [8, 69]]
  for (let at = 77; at < SIZE; at += 2 * 1024 * 1024) out.push([at, Math.min(2 * 1024 * 1024, SIZE - at)])
  return out
}

describe("DirectRead", () => {
  it("the aligned range around a read covers it and starts and ends on ALIGN", () => {
    for (const [offset, length] of [[0, 1], [77, 2 * 1024 * 1024], [4096, 4096], [4095, 2], [10_000_001, 3]] as const) {
      const a = DirectRead.aligned(offset, length)
      assert.strictEqual(a.start % DirectRead.ALIGN, 0)
      assert.strictEqual(a.length % DirectRead.ALIGN, 0)
      assert.strictEqual(a.start + a.skip, offset)
      assert.isAtLeast(a.start + a.length, offset + length)
      assert.isBelow(a.skip, DirectRead.ALIGN)
    }
  })

  it("the policy comes from CRUCIBLE_DIRECT_READS: on/1, off/0, anything else auto", () => {
    assert.strictEqual(DirectRead.policy({ CRUCIBLE_DIRECT_READS: "1" }), "on")
    assert.strictEqual(DirectRead.policy({ CRUCIBLE_DIRECT_READS: " ON " }), "on")
    assert.strictEqual(DirectRead.policy({ CRUCIBLE_DIRECT_READS: "off" }), "off")
    assert.strictEqual(DirectRead.policy({ CRUCIBLE_DIRECT_READS: "0" }), "off")
    assert.strictEqual(DirectRead.policy({}), "auto")
  })

  it("a file goes direct when at least MIN_FILE_BYTES and on, or auto with a reason; never off or smaller", () => {
    const big = DirectRead.MIN_FILE_BYTES, small = DirectRead.MIN_FILE_BYTES - 1
    assert.isTrue(DirectRead.wanted(big, false, "on"))
    assert.isTrue(DirectRead.wanted(big, true, "auto"))
    assert.isFalse(DirectRead.wanted(big, false, "auto"))
    assert.isFalse(DirectRead.wanted(big, true, "off"))
    for (const p of ["on", "auto", "off"] as const) assert.isFalse(DirectRead.wanted(small, true, p))
  })

  it.effect("pieces read O_DIRECT at unaligned offsets and lengths, up to an unaligned end of file, are the file's bytes", () =>
    Effect.scoped(Effect.gen(function* () {
      const { file, bytes } = seededFile(yield* tempDir("direct-"))
      const fd = DirectRead.open(file)
      // A filesystem that refuses O_DIRECT (ByteSource then reads through the cache): nothing to check here.
      if (fd === undefined) return
      const slot = DirectRead.slots(1).take()!
      try {
        for (const [offset, length] of [[0, 8], [77, DirectRead.PIECE_BYTES], [4096, 4096], [SIZE - 5000, 5000], [SIZE - DirectRead.PIECE_BYTES, DirectRead.PIECE_BYTES]] as const) {
          const got = yield* Effect.callback<Uint8Array, Error>((resume) =>
            DirectRead.readPiece(fd, slot, offset, length, (error, view) => resume(error ? Effect.fail(error) : Effect.succeed(view!)))
          )
          assert.strictEqual(Buffer.compare(got, bytes.subarray(offset, offset + length)), 0, `${length} bytes at ${offset}`)
        }
      } finally {
        fs.closeSync(fd)
      }
    })))

  it.effect("a first run over inputs larger than the cache (Taps cacheBytes 0): reads read directly are the file's bytes, counted exactly, and hash it whole from the reads", () =>
    Effect.scoped(Effect.gen(function* () {
      const { file, bytes, sha256, taps, direct } = yield* coldRun
      assert.isTrue(taps.want(file))
      const tally = ReadCounter.tally()
      // More reads in flight than a file has slots (a merge keeps ~4): some wait for a slot; later reads that
      // finish first are copied into the ring instead of lent (how many depends on timing: not asserted).
      const wrong = yield* withDirectReads(undefined, readAndCheck(file, bytes, taps, tally, mergeRanges(), DirectRead.SLOTS + 4))
      assert.strictEqual(wrong, 0)
      const digest = yield* taps.finish(file)
      assert.strictEqual(digest?.sha256, sha256)
      assert.strictEqual(digest?.fed, SIZE)
      assert.strictEqual(taps.stats().reread, 0)
      assert.strictEqual(tally.totals().get(file), SIZE)
      // The tap asked for the file around the cache (auto): its large reads went directly.
      if (direct) assert.isAbove(tally.directTotals().get(file) ?? 0, 0)
    })))

  it.effect("reads spanning several pieces and out of order, one at a time: the same bytes; the hash goes on from where the reads left it", () =>
    Effect.scoped(Effect.gen(function* () {
      const { file, bytes, sha256, taps, direct } = yield* coldRun
      taps.want(file)
      const big = 2 * DirectRead.PIECE_BYTES + 4099
      const ranges: Array<readonly [number, number]> = [[0, 1001], [1001, big], [40_000_000, 300_000], [1001 + big - 10, 1_000_000]]
      const wrong = yield* withDirectReads(undefined, readAndCheck(file, bytes, taps, ReadCounter.tally(), ranges, 1))
      assert.strictEqual(wrong, 0)
      const digest = yield* taps.finish(file)
      assert.strictEqual(digest?.sha256, sha256)
      assert.strictEqual(digest?.fed, 1001 + big - 10 + 1_000_000)
      // One read at a time, so each direct read's bytes are lent to the hash (hashed in place): all but the first
      // read (under MIN_READ_BYTES: through the cache and the ring) and the 10 bytes the last one shares with the one before.
      if (direct) assert.strictEqual(taps.stats().lent, big + 1_000_000 - 10)
    })))

  it.effect("CRUCIBLE_DIRECT_READS=on reads an untapped large file directly (the same bytes); off and a small cache-sized run read through the cache", () =>
    Effect.scoped(Effect.gen(function* () {
      const { file, bytes } = seededFile(yield* tempDir("direct-"))
      // Where the filesystem refuses O_DIRECT, `on` reads through the cache too: only the bytes are checked.
      const direct = takesDirect(file)
      for (const env of ["on", "off", undefined]) {
        const tally = ReadCounter.tally()
        const wrong = yield* withDirectReads(env, readAndCheck(file, bytes, ReadTap.none, tally, mergeRanges(), 4))
        assert.strictEqual(wrong, 0, `CRUCIBLE_DIRECT_READS=${env}`)
        assert.strictEqual(tally.totals().get(file), SIZE, `CRUCIBLE_DIRECT_READS=${env}`)
        // `on`: every 2 MiB range directly (the header reads are under MIN_READ_BYTES); off, and auto with no tap asking: none.
        const readDirectly = tally.directTotals().get(file) ?? 0
        if (env === "on" && direct) assert.isAbove(readDirectly, 0, "CRUCIBLE_DIRECT_READS=on")
        if (env !== "on") assert.strictEqual(readDirectly, 0, `CRUCIBLE_DIRECT_READS=${env}`)
      }
    })))
})
