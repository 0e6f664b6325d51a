import { afterAll, describe, expect, it } from "vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as RunDir from "../../src/RunDir.ts"
import { crucible } from "./cli.ts"
import { writeModel } from "./models.ts"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "crucible-rundir-"))

// Many tensors: the save reports progress per tensor, so the event log grows past a page.
const specs = Array.from({ length: 200 }, (_, i) => ({ name: `layers.${i}.a_long_tensor_name.weight`, shape: [4] }))

const setUp = async (dir: string) => {
  await writeModel(path.join(dir, "a.safetensors"), specs, 1)
  fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: record
stages:
  a: { uses: load, with: { path: a.safetensors } }
  out: { uses: save, with: { model: a, path: out.safetensors } }
`)
  return path.join(dir, "p.yaml")
}

const noStack = (text: string) => {
  expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/)
  expect(text).not.toContain("Defect")
}

describe("run ids", () => {
  it("refuses ids that are not one plain name, before writing anything, and never reuses a directory", async () => {
    const dir = tmp()
    const pipeline = await setUp(dir)
    const runs = path.join(dir, "runs")
    for (const id of ["..", "../x", path.join(dir, "abs"), "a b", ".hidden"]) {
      const r = crucible(["run", pipeline, "--runs-dir", runs, "--run-id", id])
      expect(r.code, id).toBe(2)
      expect(r.stderr, id).toContain("invalid run id")
      expect(r.stdout, id).toBe("")
      noStack(r.stderr)
    }
    expect(fs.existsSync(path.join(dir, "x"))).toBe(false)
    expect(fs.existsSync(path.join(dir, "abs"))).toBe(false)
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(false)
    expect(fs.existsSync(runs) ? fs.readdirSync(runs) : []).toEqual([])

    expect(crucible(["run", pipeline, "--runs-dir", runs, "--run-id", "v1.2_final-A"]).code).toBe(0)
    const events = fs.readFileSync(path.join(runs, "v1.2_final-A", "events.jsonl"), "utf8")
    const again = crucible(["run", pipeline, "--runs-dir", runs, "--run-id", "v1.2_final-A"])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain(`run id "v1.2_final-A" is taken: ${path.join(runs, "v1.2_final-A")} already exists`)
    noStack(again.stderr)
    expect(fs.readFileSync(path.join(runs, "v1.2_final-A", "events.jsonl"), "utf8")).toBe(events)
    // A symlink of that name is refused too, not written through.
    fs.mkdirSync(path.join(dir, "elsewhere"))
    fs.symlinkSync(path.join(dir, "elsewhere"), path.join(runs, "linked"))
    expect(crucible(["run", pipeline, "--runs-dir", runs, "--run-id", "linked"]).code).toBe(2)
    expect(fs.readdirSync(path.join(dir, "elsewhere"))).toEqual([])
  })

  it("accepts [A-Za-z0-9._-] without a leading dot", () => {
    for (const id of ["a", "run-1", "v1.2", "_x", "-x", "A.b_c-d"]) expect(RunDir.isRunId(id), id).toBe(true)
    for (const id of ["", ".", "..", ".a", "a/b", "a\\b", "a b", "a\0b", "x".repeat(201)]) expect(RunDir.isRunId(id), id).toBe(false)
  })
})

// A real full disk: a tmpfs of a few pages mounted for the test (CI runs as root). Where mounting
// is not allowed, these cases are skipped, and the /dev/full case below still checks the writer.
const mounts: Array<string> = []
const mountTmpfs = (bytes: number): string | undefined => {
  const dir = tmp()
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { stdio: "ignore" })
    mounts.push(dir)
    return dir
  } catch {
    return undefined
  }
}
/** Fills the file system of `dir` but `free` bytes (whole pages). */
const fill = (dir: string, free: number) => {
  const filler = path.join(dir, "filler")
  const fd = fs.openSync(filler, "w")
  const page = Buffer.alloc(4096)
  try {
    for (;;) fs.writeSync(fd, page)
  } catch (e) {
    expect((e as NodeJS.ErrnoException).code).toBe("ENOSPC")
  } finally {
    fs.closeSync(fd)
  }
  fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - free))
}
const probe = mountTmpfs(64 * 1024)
const canMount = probe !== undefined
afterAll(() => {
  for (const dir of mounts) execFileSync("umount", [dir])
})

describe("a full disk under the runs folder", () => {
  it.skipIf(!canMount)("with no space at all: exit 2, one clear message naming the event log, no stack trace", async () => {
    const dir = tmp()
    const pipeline = await setUp(dir)
    const disk = probe!
    fill(disk, 0)
    const r = crucible(["run", pipeline, "--runs-dir", path.join(disk, "runs"), "--run-id", "full"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`the run's events.jsonl could not be written (${path.join(disk, "runs", "full", "events.jsonl")}: cannot write: ENOSPC: no space left on device`)
    expect(r.stderr).not.toContain("ENOSPC: ENOSPC")
    noStack(r.stderr)
    noStack(r.stdout)
    // The stages' own writes are elsewhere and succeeded.
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(true)
  })

  it.skipIf(!canMount)("filling up during the run: the run ends, its manifest is the last whole one, the message names the file", async () => {
    const dir = tmp()
    const pipeline = await setUp(dir)
    const disk = mountTmpfs(64 * 1024)!
    fill(disk, 8192)
    const r = crucible(["run", pipeline, "--runs-dir", path.join(disk, "runs"), "--run-id", "filling"])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/the run's (events\.jsonl|manifest\.json) could not be written \(.*: cannot write: ENOSPC: no space left on device/)
    expect(r.stderr).not.toContain("ENOSPC: ENOSPC")
    noStack(r.stderr)
    const manifest = JSON.parse(fs.readFileSync(path.join(disk, "runs", "filling", "manifest.json"), "utf8"))
    expect(manifest.runId).toBe("filling")
    // Every line that made it into the event log is whole.
    const lines = fs.readFileSync(path.join(disk, "runs", "filling", "events.jsonl"), "utf8").split("\n")
    for (const line of lines.slice(0, -1)) expect(() => JSON.parse(line)).not.toThrow()
  })

  it.skipIf(!canMount)("a stage writing to a full disk fails with ENOSPC said once", async () => {
    const dir = tmp()
    await setUp(dir)
    const disk = mountTmpfs(64 * 1024)!
    fill(disk, 0)
    fs.writeFileSync(path.join(dir, "p.yaml"), fs.readFileSync(path.join(dir, "p.yaml"), "utf8").replace("path: out.safetensors", `path: ${path.join(disk, "out.safetensors")}`))
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r"])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(`IoError: ${path.join(disk, "out.safetensors")}: cannot write: ENOSPC: no space left on device`)
    expect(r.stdout + r.stderr).not.toContain("ENOSPC: ENOSPC")
    noStack(r.stdout)
  })

  it("the event log's writer keeps the first failed write (/dev/full) instead of throwing", () => {
    const log = RunDir.lineLogOf("/dev/full", fs.openSync("/dev/full", "w"))
    expect(() => log.append('{"type":"run-started"}')).not.toThrow()
    expect(() => log.append('{"type":"run-finished"}')).not.toThrow()
    const failure = log.failure()
    expect(failure?._tag).toBe("RunFileUnwritable")
    expect(failure?.message).toContain("/dev/full: cannot write: ENOSPC: no space left on device")
    expect(failure?.message).not.toContain("ENOSPC: ENOSPC")
    log.close()
    log.close()
  })
})
