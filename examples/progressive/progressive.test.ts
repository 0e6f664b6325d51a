// examples/progressive as an end-to-end test: iterative fusion of four fine-tunes and a cascade of two
// architectures, each evaluated against its inputs. The pipeline runs once for both tests.
import { beforeAll, describe, expect, it } from "vitest"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inspect, runPipeline, stageValues } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const pct = (x: number) => `${(100 * x).toFixed(2)}%`

const inspectOut = (file: string) => inspect(path.join(here, "out", file))

describe("examples/progressive", () => {
  let values: (id: string) => Record<string, number>
  const accuracy = (id: string): number => values(id).accuracy!
  beforeAll(() => {
    const r = runPipeline(here)
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    values = stageValues(r)
  }, 300_000)

  it("iterative fusion records its path and ends at least as good on validation as its first model (test accuracies are reported)", () => {
    const inputs = [0, 1, 2, 3].map((i) => accuracy(`test_ft${i}`))
    const fused = accuracy("test_fused")
    const record = JSON.parse(inspectOut("iterative-fusion.safetensors").metadata["crucible.progressive"])
    console.log(`base ${pct(accuracy("test_base"))}; inputs ${inputs.map(pct).join(" / ")}; iterative fusion ${pct(fused)} (kept ${record.kept.map((i: number) => `ft${i}`).join(", ")})`)
    expect(record.path).toHaveLength(4)
    expect(record.kept[0]).toBe(0)
    const scores = record.path.map((s: { accumulatorScore: number }) => s.accumulatorScore)
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeGreaterThanOrEqual(scores[i - 1])
    // The recorded path agrees with independent evaluations on validation: the first model's, and the result's.
    const valLoss = (id: string): number => values(id).loss!
    expect(-record.path[0].score).toBeCloseTo(valLoss("val_ft0"), 6)
    expect(-scores.at(-1)).toBeCloseTo(valLoss("val_fused"), 6)
    expect(valLoss("val_fused")).toBeLessThanOrEqual(valLoss("val_ft0"))
    expect(fused).toBeGreaterThan(0.9)
  })

  it("the cascade (784-128-64-10's act.1 → adapter 64→32 → 32-32-10) comes within 2 points of its first model; evaluate agrees with training's validation", () => {
    const saved = inspectOut("cascade.safetensors")
    const deep = accuracy("test_deep")
    const cascade = accuracy("test_cascade")
    console.log(`cascade: first model 784-128-64-10 ${pct(deep)}; cascade ${pct(cascade)}`)
    expect(JSON.parse(saved.metadata["crucible.cascade"])).toEqual({ layer: "act.1", adapter: true })
    const shapes = new Map(saved.tensors.map((t: { name: string; shape: Array<number> }) => [t.name, t.shape]))
    expect(shapes.get("stages.0.layers.1.weight")).toEqual([64, 128])
    expect(shapes.get("stages.1.layers.0.weight")).toEqual([32, 64])
    expect(shapes.get("stages.1.layers.3.weight")).toEqual([10, 32])
    expect(cascade).toBeGreaterThan(0.9)
    expect(cascade).toBeGreaterThan(deep - 0.02)
    // Training scored the second model on precomputed features; evaluate runs the bundle on raw images.
    const history = JSON.parse(saved.metadata["crucible.cascade.history"]) as Array<{ valAccuracy: number; valLoss: number }>
    expect(history).toHaveLength(5)
    expect(values("val_cascade").accuracy).toBeCloseTo(history.at(-1)!.valAccuracy, 9)
    expect(values("val_cascade").loss).toBeCloseTo(history.at(-1)!.valLoss, 4)
  })
})
