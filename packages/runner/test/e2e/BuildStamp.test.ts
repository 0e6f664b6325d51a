// scripts/build-cli.mjs decides when the CLI bundle must be rebuilt (`npm run crucible`, the test
// setup): fresh exactly while its inputs are as they were at the build. Checked on a copy of the
// inputs in a temporary root (the script finds the root from its own location), so this test never
// makes the repository's bundle stale under the tests running beside it.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")

interface BuildCli {
  readonly build: () => Promise<void>
  readonly ensureBuilt: () => Promise<string>
  readonly isFresh: () => boolean
}

describe("the CLI bundle's stamp (scripts/build-cli.mjs)", () => {
  let root: string
  let script: BuildCli
  const file = (p: string) => path.join(root, p)

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-stamp-"))
    fs.cpSync(path.join(repo, "scripts/build-cli.mjs"), file("scripts/build-cli.mjs"))
    fs.cpSync(path.join(repo, "pnpm-lock.yaml"), file("pnpm-lock.yaml"))
    fs.symlinkSync(path.join(repo, "node_modules"), file("node_modules"))
    for (const pkg of ["core", "strategies", "runner"]) {
      fs.cpSync(path.join(repo, "packages", pkg, "src"), file(`packages/${pkg}/src`), { recursive: true })
      fs.cpSync(path.join(repo, "packages", pkg, "package.json"), file(`packages/${pkg}/package.json`))
      fs.symlinkSync(path.join(repo, "packages", pkg, "node_modules"), file(`packages/${pkg}/node_modules`))
    }
    script = (await import(pathToFileURL(file("scripts/build-cli.mjs")).href)) as BuildCli
  })

  afterAll(() => {
    if (root !== undefined) fs.rmSync(root, { recursive: true, force: true })
  })

  it("is fresh after a build, stale after a source is touched, fresh again after ensureBuilt", async () => {
    expect(script.isFresh()).toBe(false)
    await script.build()
    expect(fs.existsSync(file("packages/runner/dist/crucible.mjs"))).toBe(true)
    expect(script.isFresh()).toBe(true)
    expect(script.isFresh()).toBe(true)

    const now = new Date()
    fs.utimesSync(file("packages/core/src/index.ts"), now, now)
    expect(script.isFresh()).toBe(false)

    await script.ensureBuilt()
    expect(script.isFresh()).toBe(true)
  })

  it("is stale when a file is deleted, even with no input newer than the build", () => {
    expect(script.isFresh()).toBe(true)
    const folder = file("packages/runner/src/cli")
    fs.rmSync(path.join(folder, "ExitCode.ts"))
    const old = new Date("2001-01-01")
    fs.utimesSync(folder, old, old)
    expect(script.isFresh()).toBe(false)
  })
})
