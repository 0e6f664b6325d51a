import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFile from "../../src/io/AtomicFile.ts"
import * as Owner from "../../src/io/Owner.ts"
import { tempDir } from "./helpers.ts"
import { child } from "./processes.ts"

describe("AtomicFile", () => {
  it.effect("the temporary beside the target names its owner; it is kept by a sweep while we write", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const target = path.join(dir, "model.safetensors")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const file = yield* AtomicFile.open(target)
          assert.strictEqual(path.dirname(file.temporary), dir)
          assert.match(path.basename(file.temporary), new RegExp(`^\\.model\\.safetensors\\.${Owner.token(Owner.current())}\\.[0-9a-f]{12}\\.partial$`))
          yield* file.write(new Uint8Array([1, 2, 3]))
          assert.deepStrictEqual(yield* AtomicFile.sweepOrphans(dir), [])
          assert.isTrue(fs.existsSync(file.temporary))
          yield* file.commit
        })
      )
      assert.deepStrictEqual(fs.readdirSync(dir), ["model.safetensors"])
    }))

  it.effect("sweepOrphans removes the temporary of a SIGKILLed writer and keeps a live writer's", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const dead = yield* child("partial", path.join(dir, "a.safetensors"))
      const live = yield* child("partial", path.join(dir, "b.safetensors"))
      assert.deepStrictEqual(yield* AtomicFile.sweepOrphans(dir), [])
      yield* dead.kill
      assert.deepStrictEqual(yield* AtomicFile.sweepOrphans(dir), [dead.line])
      assert.isFalse(fs.existsSync(dead.line))
      assert.isTrue(fs.existsSync(live.line))
      assert.deepStrictEqual(Owner.ownerOfName(path.basename(live.line)), { pid: live.pid, start: live.start })
    }))

  it.effect("old-format temporaries (no owner) are removed once an hour old; other files are left alone", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const old = path.join(dir, ".m.safetensors.0123456789ab.partial")
      const fresh = path.join(dir, ".n.safetensors.ba9876543210.partial")
      const others = [".m.partial", "m.safetensors", ".x.1-2.partial.json", "plain.partial"].map((n) => path.join(dir, n))
      for (const f of [old, fresh, ...others]) fs.writeFileSync(f, "x")
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000)
      for (const f of [old, ...others]) fs.utimesSync(f, twoHoursAgo, twoHoursAgo)
      assert.deepStrictEqual(yield* AtomicFile.sweepOrphans(dir), [old])
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), [fresh, ...others].map((f) => path.basename(f)).sort())
    }))

  it.effect("sweeping a missing folder finds nothing", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      assert.deepStrictEqual(yield* AtomicFile.sweepOrphans(path.join(dir, "missing")), [])
    }))
})
