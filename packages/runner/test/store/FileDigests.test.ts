// A folder's digest follows its contents: files reached through a symlinked folder count, hidden ones do not.
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FileDigests from "../../src/store/FileDigests.ts"

const digestOf = (dir: string, target: string) =>
  Effect.runPromise(Effect.flatMap(FileDigests.make(path.join(dir, "digests")), (d) => d.of(target)))

describe("FileDigests", () => {
  it("hashes a symlinked folder's files (a change there changes the digest); hidden names and link cycles are left out", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "digests-"))
    const shared = path.join(dir, "shared")
    const model = path.join(dir, "model")
    fs.mkdirSync(shared)
    fs.mkdirSync(model)
    fs.writeFileSync(path.join(shared, "weights.bin"), "one")
    fs.writeFileSync(path.join(model, "config.json"), "{}")
    fs.symlinkSync(shared, path.join(model, "sub"))
    // A link back up: followed once, never in a loop.
    fs.symlinkSync(model, path.join(shared, "up"))
    const before = await digestOf(dir, model)
    expect(before.sha256).not.toBe(FileDigests.MISSING)

    fs.writeFileSync(path.join(model, ".hidden"), "temporary")
    expect((await digestOf(dir, model)).sha256).toBe(before.sha256)

    fs.writeFileSync(path.join(shared, "weights.bin"), "two")
    const after = await digestOf(dir, model)
    expect(after.sha256).not.toBe(before.sha256)
    expect(after.bytes).toBe(before.bytes)
  })
})
