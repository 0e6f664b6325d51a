// The distill stage through the real CLI: interrupted and resumed (same bytes as an uninterrupted run),
// reused when finished, teacher outputs shared through the cache, early stopping and the hint loss.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucibleAsync, startCrucible } from "../e2e/cli.ts"

const pipeline = `version: 1
name: distill-resume
stages:
  t: { uses: train, with: { arch: { type: mlp, layers: [784, 32, 10] }, data: mnist, seed: 1, epochs: 2 } }
  s:
    uses: distill
    with: { teacher: t, arch: { type: mlp, layers: [784, 16, 10] }, data: mnist, split: fit, validation: val, seed: 3, epochs: 4, batch_size: 64, augment: { shift: 1 }, temperature: 3, alpha: 0.8 }
  out: { uses: save, with: { model: s, path: out.safetensors } }
`

const early = `version: 1
name: distill-early
stages:
  t: { uses: train, with: { arch: { type: mlp, layers: [784, 32, 10] }, data: mnist, seed: 1, epochs: 2 } }
  s:
    uses: distill
    with:
      teacher: t
      arch: { type: mlp, layers: [784, 16, 10] }
      data: mnist
      split: fit
      validation: val
      epochs: 40
      optimizer: { type: sgd, lr: 0.5 }
      early_stopping: { patience: 1, metric: loss }
      hint: { student: act.0, teacher: act.0, weight: 0.1 }
  e: { uses: evaluate, with: { model: s, data: mnist, split: val } }
  out: { uses: save, with: { model: s, path: early.safetensors } }
`

const events = (runDir: string): Array<{ name: string; attributes: Record<string, unknown> }> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  return trace.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans.flatMap((sp: any) => (sp.events ?? []).map((e: any) => ({
    name: e.name,
    attributes: Object.fromEntries((e.attributes ?? []).map((a: any) => [a.key, Object.values(a.value)[0]]))
  })))))
}

describe("distill stage", () => {
  it("resumes an interrupted distillation from its last checkpoint with the same result; a finished one is reused", async () => {
    const full = fs.mkdtempSync(path.join(os.tmpdir(), "distill-full-"))
    const cut = fs.mkdtempSync(path.join(os.tmpdir(), "distill-cut-"))
    for (const dir of [full, cut]) fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
    const uninterrupted = await crucibleAsync(["run", path.join(full, "p.yaml"), "--runs-dir", path.join(full, "runs"), "--run-id", "full", "--quiet"])
    expect(uninterrupted.stderr).toBe("")
    expect(uninterrupted.code).toBe(0)

    // SIGINT after the student's first epoch.
    const child = startCrucible(["run", path.join(cut, "p.yaml"), "--runs-dir", path.join(cut, "runs"), "--run-id", "first", "--json"])
    let buffer = ""
    child.stdout.on("data", (c: Buffer) => {
      buffer += c.toString()
      const lines = buffer.split("\n")
      buffer = lines.pop() ?? ""
      for (const line of lines) {
        const event = JSON.parse(line)
        if (event.type === "stage-progress" && event.stage === "s" && event.unit === "epochs" && !child.killed) child.kill("SIGINT")
      }
    })
    expect(await new Promise<number | null>((resolve) => child.on("exit", resolve))).toBe(130)
    expect(fs.existsSync(path.join(cut, "out.safetensors"))).toBe(false)

    const second = await crucibleAsync(["run", path.join(cut, "p.yaml"), "--runs-dir", path.join(cut, "runs"), "--run-id", "second", "--quiet"])
    expect(second.code).toBe(0)
    const resumed = events(path.join(cut, "runs", "second"))
    expect(resumed.map((e) => e.name)).toContain("distill.resumed")
    // The teacher's outputs of the interrupted run were kept in the cache and reused.
    expect(resumed.find((e) => e.name === "distill.teacher")?.attributes.reused).toBe(true)
    expect(fs.readFileSync(path.join(cut, "out.safetensors")).equals(fs.readFileSync(path.join(full, "out.safetensors")))).toBe(true)

    const third = await crucibleAsync(["run", path.join(cut, "p.yaml"), "--runs-dir", path.join(cut, "runs"), "--run-id", "third", "--quiet"])
    expect(third.code).toBe(0)
    // A finished distillation is a stored result: taken as it is, no epoch trained again.
    expect(events(path.join(cut, "runs", "third")).map((e) => e.name)).not.toContain("distill.epoch")
    const manifest = JSON.parse(fs.readFileSync(path.join(cut, "runs", "third", "manifest.json"), "utf8"))
    expect(manifest.stages.filter((s: { kind: string }) => s.kind === "distill").map((s: { cached?: boolean }) => s.cached)).toEqual([true])
  }, 240_000)

  it("stops early on the validation loss and returns the best epoch's weights (with a hint loss)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "distill-early-"))
    fs.writeFileSync(path.join(dir, "p.yaml"), early)
    const run = await crucibleAsync(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r", "--quiet"])
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    const all = events(path.join(dir, "runs", "r"))
    const epochs = all.filter((e) => e.name === "distill.epoch").map((e) => e.attributes as { epoch: number; valLoss: number })
    const stop = all.find((e) => e.name === "distill.early_stop")
    expect(stop).toBeDefined()
    expect(epochs.length).toBeLessThan(40)
    const best = epochs.reduce((a, b) => (b.valLoss < a.valLoss ? b : a))
    expect(stop!.attributes.bestEpoch).toBe(best.epoch)
    expect(epochs.at(-1)!.epoch).toBe(best.epoch + 1) // patience 1
    // The returned weights are the best epoch's: evaluating them on val gives its validation loss.
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "runs", "r", "manifest.json"), "utf8"))
    const evaluated = manifest.stages.find((s: { id: string }) => s.id === "e").output.values
    expect(evaluated.loss).toBeCloseTo(best.valLoss, 6)
  }, 240_000)
})
