import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucibleAsync, startCrucible } from "./cli.ts"

const pipeline = `version: 1
name: train-resume
stages:
  m:
    uses: train
    with: { arch: { type: mlp, layers: [784, 64, 10] }, data: mnist, seed: 3, epochs: 4, batch_size: 64 }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`

const spanEvents = (runDir: string): Array<string> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  return trace.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans.flatMap((sp: any) => (sp.events ?? []).map((e: any) => e.name))))
}

describe("train stage", () => {
  it("resumes an interrupted training from its last checkpoint, ending with the same weights; a finished one is reused", async () => {
    const uninterrupted = fs.mkdtempSync(path.join(os.tmpdir(), "train-full-"))
    const interrupted = fs.mkdtempSync(path.join(os.tmpdir(), "train-int-"))
    for (const dir of [uninterrupted, interrupted]) fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)

    const full = await crucibleAsync(["run", path.join(uninterrupted, "p.yaml"), "--runs-dir", path.join(uninterrupted, "runs"), "--run-id", "full", "--quiet"])
    expect(full.code).toBe(0)

    // Interrupt after the first epoch's checkpoint.
    const child = startCrucible(["run", path.join(interrupted, "p.yaml"), "--runs-dir", path.join(interrupted, "runs"), "--run-id", "first", "--json"])
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      if (/"type":"stage-progress".*"unit":"epochs"/.test(stdout) && !child.killed) child.kill("SIGINT")
    })
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    expect(code).toBe(130)
    expect(fs.existsSync(path.join(interrupted, "out.safetensors"))).toBe(false)
    // The interruption names the checkpoint the next run resumes from (checked just below).
    const told = JSON.parse(stdout.split("\n").find((line) => line.includes('"type":"run-interrupted"'))!)
    expect(told.interrupted).toEqual([{ stage: "m", kind: "train" }])
    expect(told.notStarted).toEqual([{ stage: "out", kind: "save" }])
    expect(told.saved).toEqual([{ stage: "m", kind: "train", dir: expect.stringContaining(path.join(interrupted, "runs", ".cache")), use: "resumed" }])
    expect(fs.readdirSync(told.saved[0].dir)).toContainEqual(expect.stringMatching(/^epoch-\d+\.safetensors$/))
    expect(stderr).toMatch(/\n {4}m \(train\): resumes from its last checkpoint \(.*\.cache.*\)\n/)

    const second = await crucibleAsync(["run", path.join(interrupted, "p.yaml"), "--runs-dir", path.join(interrupted, "runs"), "--run-id", "second", "--quiet"])
    expect(second.code).toBe(0)
    expect(spanEvents(path.join(interrupted, "runs", "second"))).toContain("train.resumed")
    expect(fs.readFileSync(path.join(interrupted, "out.safetensors")).equals(fs.readFileSync(path.join(uninterrupted, "out.safetensors")))).toBe(true)

    const third = await crucibleAsync(["run", path.join(interrupted, "p.yaml"), "--runs-dir", path.join(interrupted, "runs"), "--run-id", "third", "--quiet"])
    expect(third.code).toBe(0)
    // A finished training is a stored result: taken as it is, no epoch trained again.
    expect(spanEvents(path.join(interrupted, "runs", "third"))).not.toContain("train.epoch")
    const manifest = JSON.parse(fs.readFileSync(path.join(interrupted, "runs", "third", "manifest.json"), "utf8"))
    expect(manifest.stages.find((s: { id: string }) => s.id === "m").cached).toBe(true)
  }, 180_000)
  // A kill can fall between the two writes of an epoch's checkpoint (its history, its state): the
  // states such kills leave, made by hand, must resume to the same bytes as an uninterrupted run.
  it("a kill between an epoch's history and its state still resumes byte-identically", async () => {
    const full = fs.mkdtempSync(path.join(os.tmpdir(), "train-full-"))
    const killed = fs.mkdtempSync(path.join(os.tmpdir(), "train-killed-"))
    for (const dir of [full, killed]) fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
    const runIn = (dir: string, id: string) => crucibleAsync(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", id, "--quiet"])
    const cacheOf = (dir: string) => {
      const root = path.join(dir, "runs", ".cache", "work")
      const found = fs.readdirSync(root, { recursive: true, encoding: "utf8" }).find((f) => path.basename(f) === "history.json")
      return path.dirname(path.join(root, found!))
    }
    const manifestOf = (dir: string, id: string) => JSON.parse(fs.readFileSync(path.join(dir, "runs", id, "manifest.json"), "utf8"))
    expect((await runIn(full, "full")).code).toBe(0)
    // A finished training's checkpoints are spent: its history is in the stored model's metadata.
    const key = manifestOf(full, "full").stages.find((s: { id: string }) => s.id === "m").key
    const stored = JSON.parse(fs.readFileSync(path.join(full, "runs", ".cache", "results", key, "result.json"), "utf8"))
    const history = JSON.parse(stored.metadata["crucible.train.history"]) as Array<unknown>
    expect(history).toHaveLength(4)
    const expected = fs.readFileSync(path.join(full, "out.safetensors"))

    // Stop after the first checkpoint, then leave what a kill inside the next save leaves: the
    // next epoch's history written, its state not yet renamed into place.
    const child = startCrucible(["run", path.join(killed, "p.yaml"), "--runs-dir", path.join(killed, "runs"), "--run-id", "first", "--json"])
    let stdout = ""
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      if (/"type":"stage-progress".*"unit":"epochs"/.test(stdout) && !child.killed) child.kill("SIGINT")
    })
    expect(await new Promise<number | null>((resolve) => child.on("exit", resolve))).toBe(130)
    const cache = cacheOf(killed)
    const epochs = fs.readdirSync(cache).filter((f) => /^epoch-\d+\.safetensors$/.test(f))
    expect(epochs).toHaveLength(1)
    const done = Number(/\d+/.exec(epochs[0]!)![0])
    expect(done).toBeLessThan(4)
    fs.writeFileSync(path.join(cache, "history.json"), JSON.stringify(history.slice(0, done + 1)))
    const checkpoints = `${cache}.kept`
    fs.cpSync(cache, checkpoints, { recursive: true })
    expect((await runIn(killed, "resumed")).code).toBe(0)
    expect(fs.readFileSync(path.join(killed, "out.safetensors")).equals(expected)).toBe(true)

    // What an older Crucible left on such a kill: the last state in place, its history one epoch
    // short. It is not reused with a short history: the training starts again, to the same bytes.
    // (The resumed run stored its result and spent its checkpoints: put them back, drop the result.)
    fs.rmSync(path.join(killed, "runs", ".cache", "results"), { recursive: true })
    fs.rmSync(cache, { recursive: true, force: true })
    fs.renameSync(checkpoints, cache)
    fs.writeFileSync(path.join(cache, "history.json"), JSON.stringify(history.slice(0, 3)))
    fs.rmSync(path.join(killed, "out.safetensors"))
    expect((await runIn(killed, "short-history")).code).toBe(0)
    expect(spanEvents(path.join(killed, "runs", "short-history"))).not.toContain("train.reused")
    expect(fs.readFileSync(path.join(killed, "out.safetensors")).equals(expected)).toBe(true)
  }, 240_000)
})
