import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFile from "../../src/io/AtomicFile.ts"
import * as DirectRead from "../../src/io/DirectRead.ts"
import { seededBytes, tempDir, withDirectReads } from "./helpers.ts"

// Direct writes apply to files of at least DirectRead.MIN_FILE_BYTES: the smallest such file plus
// an odd tail, so the last block is partial. Seeded bytes (xorshift32).
const SIZE = DirectRead.MIN_FILE_BYTES + 12_345
// A writer's pattern: a header of 77 bytes, then chunks of a few sizes (none a multiple of the
// alignment), two writes in flight, each chunk in its own buffer until its write is done.
const cuts = (): Array<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = [[0, 77]]
  const sizes = [2 * 1024 * 1024, 3 * 1024 * 1024 + 1, 4097, 6 * 1024 * 1024 - 3]
  for (let at = 77, k = 0; at < SIZE; k++) {
    const n = Math.min(sizes[k % sizes.length]!, SIZE - at)
    out.push([at, n])
    at += n
  }
  return out
}

const writeWith = (env: string | undefined, direct: boolean, file: string, bytes: Uint8Array) =>
  withDirectReads(env, Effect.scoped(Effect.gen(function* () {
    const out = yield* AtomicFile.open(file, { expectedBytes: SIZE, direct })
    yield* Effect.forEach(cuts(), ([at, n]) => out.write(bytes.slice(at, at + n)), { concurrency: 2, discard: true })
    const sha256 = yield* out.digest
    yield* out.commit
    return { sha256, written: out.written(), direct: out.writtenDirectly() }
  })))

describe("DirectWrite (AtomicFile around the page cache)", () => {
  it.effect("an output larger than the cache (direct: true) and one under CRUCIBLE_DIRECT_READS=on are the bytes written, with their sha256, as through the cache", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("directw-")
      const bytes = seededBytes(SIZE, 0x2545f491)
      const expected = createHash("sha256").update(bytes).digest("hex")
      // Where the filesystem refuses O_DIRECT, everything goes through the cache: only the bytes are checked.
      const probeFile = path.join(dir, "probe.bin")
      fs.writeFileSync(probeFile, "")
      const probe = DirectRead.open(probeFile, "write")
      if (probe !== undefined) fs.closeSync(probe)
      fs.rmSync(probeFile)
      for (const [name, env, direct] of [["auto-direct", undefined, true], ["on", "on", false], ["off", "off", true]] as const) {
        const file = path.join(dir, `${name}.bin`)
        const { sha256, written, direct: writtenDirectly } = yield* writeWith(env, direct, file, bytes)
        // auto-direct and on: the aligned bulk around the cache; off: nothing, whatever the caller asked.
        if (name === "off") assert.strictEqual(writtenDirectly, 0, name)
        else if (probe !== undefined) assert.isAbove(writtenDirectly, 0, name)
        assert.strictEqual(sha256, expected, name)
        assert.strictEqual(written, SIZE, name)
        assert.strictEqual(Buffer.compare(fs.readFileSync(file), bytes), 0, name)
        // Nothing left beside it: the temporary was renamed into place.
        assert.deepStrictEqual(fs.readdirSync(dir).filter((f) => f.endsWith(".partial")), [], name)
        fs.rmSync(file)
      }
    })))
})
