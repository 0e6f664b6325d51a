import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as LockFile from "../../src/io/LockFile.ts"
import * as Owner from "../../src/io/Owner.ts"
import { tempDir } from "./helpers.ts"
import { child } from "./processes.ts"

describe("LockFile", () => {
  it.live("takes a free lock, creating its folders, names us with our info, and releases it with the scope", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "locks", "deep", "k.lock")
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* LockFile.acquire(file, { info: { runId: "r1", stage: "merge" } })
          const h = LockFile.holder(file)!
          assert.strictEqual(h.pid, process.pid)
          assert.strictEqual(h.start, Owner.current().start)
          assert.deepStrictEqual(h.info, { runId: "r1", stage: "merge" })
        })
      )
      assert.isFalse(fs.existsSync(file))
      assert.isUndefined(LockFile.holder(file))
    }))

  it.live("a lock held by a SIGKILLed process is taken over", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "k.lock")
      const c = yield* child("lock", file)
      assert.strictEqual(LockFile.holder(file)?.pid, c.pid)
      yield* c.kill
      let waited = false
      const started = Date.now()
      yield* LockFile.acquire(file, { onWait: () => Effect.sync(() => { waited = true }) })
      assert.isFalse(waited)
      assert.isBelow(Date.now() - started, 1000)
      assert.strictEqual(LockFile.holder(file)?.pid, process.pid)
      assert.deepStrictEqual(fs.readdirSync(path.dirname(file)), ["k.lock"])
    }))

  // Cluster workers share the store over NFS: a holder on another host is judged by its lease.
  const otherHostHolder = (file: string, ageMs: number) => {
    fs.writeFileSync(file, JSON.stringify({ pid: 12345, start: "1", host: "another-machine.invalid", acquiredAt: new Date().toISOString(), info: { runId: "r", stage: "s" } }))
    const at = new Date(Date.now() - ageMs)
    fs.utimesSync(file, at, at)
  }

  it.live("a holder on another host whose lease ran out (its file untouched for over 2 minutes) is taken over", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "k.lock")
      otherHostHolder(file, 3 * 60_000)
      yield* Effect.scoped(LockFile.acquire(file))
      assert.isFalse(fs.existsSync(file))
    }))

  it.live("a holder on another host with a fresh lease is waited for; our own lease is renewed while we hold", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const file = path.join(dir, "k.lock")
      otherHostHolder(file, 30_000)
      let waitedFor: string | undefined
      const taken = yield* Effect.scoped(LockFile.acquire(file, { onWait: (h) => Effect.sync(() => { waitedFor = h.host }) })).pipe(Effect.timeoutOption("600 millis"))
      assert.isTrue(taken._tag === "None")
      assert.strictEqual(waitedFor, "another-machine.invalid")
      // Ours: the file's mtime moves on while the lock is held (renewed every 10 s).
      const mine = path.join(dir, "mine.lock")
      yield* Effect.scoped(Effect.gen(function* () {
        yield* LockFile.acquire(mine)
        const old = new Date(Date.now() - 60_000)
        fs.utimesSync(mine, old, old)
        yield* Effect.sleep("10500 millis")
        assert.isAbove(fs.statSync(mine).mtimeMs, Date.now() - 5_000)
      }))
    }), 30_000)

  it.live("removeIfStale removes a dead holder's lock, never a live one's", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const dead = path.join(dir, "dead.lock")
      const c = yield* child("lock", dead)
      assert.isFalse(LockFile.removeIfStale(dead)) // alive still
      yield* c.kill
      assert.isTrue(LockFile.removeIfStale(dead))
      assert.isFalse(fs.existsSync(dead))
      const ours = path.join(dir, "ours.lock")
      yield* Effect.scoped(Effect.gen(function* () {
        yield* LockFile.acquire(ours)
        assert.isFalse(LockFile.removeIfStale(ours))
        assert.isTrue(fs.existsSync(ours))
      }))
      assert.isFalse(LockFile.removeIfStale(path.join(dir, "none.lock")))
    }))

  it.live("a lock held by a live process is waited for until it is released", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "k.lock")
      const c = yield* child("lock", file, "600")
      const waitedFor: Array<LockFile.Holder> = []
      const started = Date.now()
      yield* LockFile.acquire(file, { onWait: (h) => Effect.sync(() => void waitedFor.push(h)) })
      assert.isAtLeast(Date.now() - started, 300)
      assert.strictEqual(waitedFor.length, 1)
      assert.strictEqual(waitedFor[0]!.pid, c.pid)
      assert.deepStrictEqual(waitedFor[0]!.info, { stage: "child" })
      assert.strictEqual(LockFile.holder(file)?.pid, process.pid)
    }))

  it.live("two fibers of one process take turns", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "k.lock")
      const events: Array<string> = []
      const critical = (name: string) =>
        Effect.scoped(
          Effect.gen(function* () {
            yield* LockFile.acquire(file, { info: { stage: name } })
            events.push(`${name} in`)
            yield* Effect.sleep("250 millis")
            events.push(`${name} out`)
          })
        )
      const a = yield* Effect.forkChild(critical("a"))
      yield* Effect.sleep("50 millis")
      yield* critical("b")
      yield* Fiber.join(a)
      assert.deepStrictEqual(events, ["a in", "a out", "b in", "b out"])
      assert.isFalse(fs.existsSync(file))
    }))

  it.live("release removes only our own file", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "k.lock")
      const theirs = JSON.stringify({ pid: 1, start: "", host: "elsewhere", acquiredAt: "", info: {} })
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* LockFile.acquire(file)
          fs.rmSync(file)
          fs.writeFileSync(file, theirs)
        })
      )
      assert.strictEqual(fs.readFileSync(file, "utf8"), theirs)
    }))

  it.live("an empty lock file is stale after 2 s; a stale .break of a dead breaker does not block", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const file = path.join(dir, "k.lock")
      const c = yield* child("lock", path.join(dir, "k.lock.break"))
      yield* c.kill
      fs.writeFileSync(file, "")
      const old = new Date(Date.now() - 10_000)
      fs.utimesSync(file, old, old)
      yield* LockFile.acquire(file)
      assert.strictEqual(LockFile.holder(file)?.pid, process.pid)
      assert.deepStrictEqual(fs.readdirSync(dir), ["k.lock"])
    }))

  it.live("waiting is interruptible", () =>
    Effect.gen(function* () {
      const file = path.join(yield* tempDir(), "k.lock")
      yield* LockFile.acquire(file)
      const waiter = yield* Effect.forkChild(Effect.scoped(LockFile.acquire(file)))
      yield* Effect.sleep("150 millis")
      yield* Fiber.interrupt(waiter)
      assert.strictEqual(LockFile.holder(file)?.pid, process.pid)
    }))
})
