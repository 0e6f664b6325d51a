// examples/rebasin as an end-to-end test: the real CLI trains, aligns, merges and evaluates on MNIST.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inspect, runPipeline, stageValues } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))

interface Metrics { accuracy: number; loss: number }
interface Curve { midpoint: Metrics & { lambda: number }; barrier: { loss: number }; curve: Array<Metrics & { lambda: number }> }

describe("examples/rebasin", () => {
  it("weight matching turns a poor naive midpoint into a good one", () => {
    const r = runPipeline(here)
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const values = stageValues(r)
    const naive = values("naive_curve") as Curve
    const aligned = values("aligned_curve") as Curve
    const byActivations = values("act_curve") as Curve
    const a = values("eval_a") as Metrics
    const b = values("eval_b") as Metrics
    console.log(`endpoints ${(100 * a.accuracy).toFixed(1)}% / ${(100 * b.accuracy).toFixed(1)}%; midpoint naive ${(100 * naive.midpoint.accuracy).toFixed(1)}% (barrier ${naive.barrier.loss.toFixed(3)}), aligned ${(100 * aligned.midpoint.accuracy).toFixed(1)}% (barrier ${aligned.barrier.loss.toFixed(3)})`)
    expect(a.accuracy).toBeGreaterThan(0.93)
    expect(b.accuracy).toBeGreaterThan(0.93)
    expect(aligned.midpoint.accuracy).toBeGreaterThanOrEqual(0.9)
    expect(aligned.midpoint.accuracy).toBeGreaterThanOrEqual(naive.midpoint.accuracy + 0.25)
    expect(aligned.barrier.loss).toBeLessThan(naive.barrier.loss / 10)
    // Activation matching (correlations on 2,000 training images) lands in the same basin, less precisely.
    console.log(`activation matching: midpoint ${(100 * byActivations.midpoint.accuracy).toFixed(1)}% (barrier ${byActivations.barrier.loss.toFixed(3)})`)
    expect(byActivations.midpoint.accuracy).toBeGreaterThanOrEqual(naive.midpoint.accuracy + 0.15)
    expect(byActivations.curve.at(-1)!.accuracy).toBeCloseTo(b.accuracy, 10)
    // Both endpoints of each curve are the trained models themselves.
    expect(naive.curve[0]!.accuracy).toBeCloseTo(a.accuracy, 10)
    expect(aligned.curve.at(-1)!.accuracy).toBeCloseTo(b.accuracy, 10) // a permuted B computes what B computes
    expect(fs.readFileSync(path.join(r.runDir, "aligned_curve.svg"), "utf8")).toMatch(/^<svg/)

    // The saved midpoints are PyTorch state dicts: layers.i.weight [out, in].
    const tensors = inspect(path.join(here, "out", "aligned-mid.safetensors")).tensors.map((t: { name: string; shape: Array<number> }) => [t.name, t.shape])
    expect(tensors).toEqual([
      ["layers.0.weight", [128, 784]], ["layers.0.bias", [128]], ["layers.1.weight", [128, 128]], ["layers.1.bias", [128]],
      ["layers.2.weight", [128, 128]], ["layers.2.bias", [128]], ["layers.3.weight", [10, 128]], ["layers.3.bias", [10]]
    ])
  })
})
