import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { startCrucible } from "./cli.ts"
import { writeModel } from "./models.ts"
import { tempDir } from "../support/TempDir.ts"

describe("interruption", () => {
  it("SIGINT during a save stops the run, leaves no partial output, and exits 130", async () => {
    const dir = tempDir("crucible-sigint-")
    // Three 48 MB models and the runs folder: removed however the test ends.
    // 12 tensors of 1M floats per model: enough work that the signal lands mid-write.
    const specs = Array.from({ length: 12 }, (_, i) => ({ name: `t${i}`, shape: [1024, 1024] }))
    for (const [i, m] of ["a", "b", "c"].entries()) await writeModel(path.join(dir, `${m}.safetensors`), specs, i)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: interrupt
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b, c], dtype: float64 } }
  out: { uses: save, with: { model: avg, path: out/merged.safetensors, dtype: bf16 } }
`)
    const child = startCrucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r", "--json"])
    let stdout = ""
    let stderr = ""
    let signalled = false
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (!signalled && /"type":"stage-progress".*"stage":"out"/.test(stdout)) {
        signalled = true
        child.kill("SIGINT")
      }
    })
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)))
    expect(signalled).toBe(true)
    expect(code).toBe(130)
    expect(stdout).not.toContain('"type":"run-finished"')
    // What was interrupted and how to run it again: a --json event, and the same on stderr.
    const told = stdout.split("\n").filter((line) => line.includes('"type":"run-interrupted"')).map((line) => JSON.parse(line))
    expect(told).toHaveLength(1)
    const runDir = path.join(dir, "runs", "r")
    expect(told[0]).toMatchObject({
      runDir,
      failed: [],
      notStarted: [],
      saved: [],
      // The same command, without --run-id (a new run, not the interrupted one's directory).
      resume: `crucible run ${path.join(dir, "p.yaml")} --runs-dir ${path.join(dir, "runs")} --json`
    })
    // The loads had finished and the save was stopped; the lazy merge counts as whichever it was.
    expect(told[0].finished.slice(0, 3)).toEqual([{ stage: "a", kind: "load" }, { stage: "b", kind: "load" }, { stage: "c", kind: "load" }])
    expect(told[0].interrupted).toContainEqual({ stage: "out", kind: "save" })
    expect([...told[0].finished, ...told[0].interrupted].map((s: { stage: string }) => s.stage).sort()).toEqual(["a", "avg", "b", "c", "out"])
    expect(stderr).toContain("interrupted after ")
    expect(stderr).toMatch(/\n {2}finished: {4}a \(load\), b \(load\), c \(load\)/)
    expect(stderr).toMatch(/\n {2}stopped: {5}(avg \(merge\/linear\), )?out \(save\)\n/)
    expect(stderr).toContain(`  run directory: ${runDir} (manifest.json has each stage's state)\n`)
    expect(stderr).toContain("  nothing was stored or checkpointed: a re-run runs every stage again\n")
    expect(stderr).toContain(`  to run it again: crucible run ${path.join(dir, "p.yaml")} --runs-dir ${path.join(dir, "runs")} --json\n`)
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "runs/r/manifest.json"), "utf8"))
    expect(manifest.status).toBe("interrupted")
    expect(manifest.stages.find((s: { id: string }) => s.id === "out").status).toBe("interrupted")
    expect(fs.existsSync(path.join(dir, "out/merged.safetensors"))).toBe(false)
    const leftovers = fs.existsSync(path.join(dir, "out")) ? fs.readdirSync(path.join(dir, "out")) : []
    expect(leftovers).toEqual([])
  }, 60_000)
})
