import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import * as Owner from "../../src/io/Owner.ts"
import { tempDir } from "./helpers.ts"
import { child } from "./processes.ts"

describe("Owner", () => {
  it("current() names this process and is alive", () => {
    const me = Owner.current()
    assert.strictEqual(me.pid, process.pid)
    assert.strictEqual(me.host, os.hostname())
    assert.match(me.start, /^\d+$/)
    assert.isTrue(Owner.isAlive(me))
  })

  it("tokens are filename-safe and read back", () => {
    assert.strictEqual(Owner.token({ pid: 12345, start: "987654" }), "12345-987654")
    assert.strictEqual(Owner.token({ pid: 12345, start: "" }), "12345-0")
    assert.deepStrictEqual(Owner.parseToken("12345-987654"), { pid: 12345, start: "987654" })
    assert.isUndefined(Owner.parseToken("12345"))
    assert.isUndefined(Owner.parseToken("0-1"))
    assert.isUndefined(Owner.parseToken("a-1"))
  })

  it("a temporary name carries its owner; an old-format one has none", () => {
    const name = Owner.temporaryName(".model.safetensors")
    assert.match(name, /^\.model\.safetensors\.\d+-\d+\.[0-9a-f]{12}$/)
    assert.deepStrictEqual(Owner.ownerOfName(name), { pid: process.pid, start: Owner.current().start })
    assert.deepStrictEqual(Owner.ownerOfName(`${name}.partial`), Owner.ownerOfName(name))
    assert.isUndefined(Owner.ownerOfName(".model.safetensors.0123456789ab.partial"))
  })

  it("our own pid with another start time is another process (pid reuse): dead", () => {
    assert.isFalse(Owner.isAlive({ pid: process.pid, start: "1" }))
    // Unknown start: the pid alone decides.
    assert.isTrue(Owner.isAlive({ pid: process.pid, start: "" }))
    assert.isTrue(Owner.isAlive({ pid: process.pid, start: "0" }))
  })

  it("another host cannot be checked: taken as alive", () => {
    assert.isTrue(Owner.isAlive({ pid: 999999999, start: "1", host: `not-${os.hostname()}` }))
    assert.isFalse(Owner.isAlive({ pid: 999999999, start: "1", host: os.hostname() }))
  })

  it.effect("a live child is alive; once SIGKILLed it is dead", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const c = yield* child("lock", path.join(dir, "x.lock"))
      assert.isTrue(Owner.isAlive({ pid: c.pid, start: c.start, host: os.hostname() }))
      assert.isFalse(Owner.isAlive({ pid: c.pid, start: String(Number(c.start) + 1) }))
      yield* c.kill
      assert.isFalse(Owner.isAlive({ pid: c.pid, start: c.start, host: os.hostname() }))
      assert.isFalse(Owner.isAlive({ pid: c.pid, start: "" }))
    }))
})
