// examples/distill as an end-to-end test: the real CLI trains three augmented teachers, fuses them into an
// ensemble and distills it into 784-128-10 students (3 seeds), beside students trained on hard labels.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inspect, runPipeline, stageValues } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
const pct = (x: number) => `${(100 * x).toFixed(2)}%`

describe("examples/distill", () => {
  it("a KD student beats the hard-label student by at least 0.5 points (mean of 3 seeds)", () => {
    const r = runPipeline(here)
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const values = stageValues(r)
    const accuracy = (id: string): number => values(id).accuracy
    const teachers = accuracy("eval_teachers")
    const hard = [0, 1, 2].map((s) => accuracy(`eval_hard${s}`))
    const kd = [0, 1, 2].map((s) => accuracy(`eval_kd${s}`))
    console.log(`teacher ensemble ${pct(teachers)}; hard-label students ${hard.map(pct).join(" / ")} (mean ${pct(mean(hard))}); KD students ${kd.map(pct).join(" / ")} (mean ${pct(mean(kd))})`)
    expect(mean(kd)).toBeGreaterThanOrEqual(mean(hard) + 0.005)
    expect(teachers).toBeGreaterThan(Math.max(...kd))

    // The teacher outputs were computed once and reused by the other two students.
    const events = JSON.parse(fs.readFileSync(path.join(r.runDir, "trace.json"), "utf8")).resourceSpans
      .flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans.flatMap((sp: any) => sp.events ?? [])))
      .filter((e: any) => e.name === "distill.teacher")
    const reused = events.map((e: any) => e.attributes.find((a: any) => a.key === "reused").value.boolValue)
    expect(reused.filter((x: boolean) => !x)).toHaveLength(1)
    expect(reused).toHaveLength(3)

    // Outputs are PyTorch state dicts; the ensemble bundle holds its members.
    const inspectOut = (file: string) => inspect(path.join(here, "out", file))
    expect(inspectOut("student-kd.safetensors").tensors.map((t: { name: string; shape: Array<number> }) => [t.name, t.shape])).toEqual([
      ["layers.0.weight", [128, 784]], ["layers.0.bias", [128]], ["layers.1.weight", [10, 128]], ["layers.1.bias", [10]]
    ])
    expect(inspectOut("student-hard.safetensors").tensors).toHaveLength(4)
    const bundle = inspectOut("teacher-ensemble.safetensors").tensors.map((t: { name: string }) => t.name)
    expect(bundle).toHaveLength(18)
    expect(bundle).toContain("members.2.layers.2.weight")
  })
})
