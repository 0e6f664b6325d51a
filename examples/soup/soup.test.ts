// examples/soup as an end-to-end test: a base, 12 fine-tunes, the uniform and greedy soups and the ensemble.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inspect, runPipeline, stageValues } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const pct = (x: number) => `${(100 * x).toFixed(2)}%`

describe("examples/soup", () => {
  it("the greedy soup is at least as good as the best single ingredient", () => {
    const r = runPipeline(here)
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const values = stageValues(r)
    const names = Array.from({ length: 12 }, (_, i) => `ft${String(i).padStart(2, "0")}`)
    const test = names.map((n) => values(`test_${n}`).accuracy as number)
    const valLoss = names.map((n) => values(`val_${n}`).loss as number)
    // The best single ingredient is chosen as the soup chooses: on validation (here: lowest validation loss).
    const best = valLoss.indexOf(Math.min(...valLoss))
    const greedy = values("test_greedy").accuracy as number
    const uniform = values("test_uniform").accuracy as number
    const ensemble = values("test_ensemble").accuracy as number
    console.log(`base ${pct(values("test_base").accuracy)}; ingredients ${pct(Math.min(...test))}–${pct(Math.max(...test))}; best single (by validation) ${names[best]} ${pct(test[best]!)}; uniform soup ${pct(uniform)}; greedy soup ${pct(greedy)}; ensemble of 12 ${pct(ensemble)}`)
    expect(greedy).toBeGreaterThanOrEqual(test[best]!)

    const recipe = JSON.parse(inspect(path.join(here, "out", "greedy-soup.safetensors")).metadata["crucible.soup"])
    expect(recipe.method).toBe("greedy")
    expect(recipe.chosen[0]).toBe(best)
    console.log(`greedy soup ingredients: ${recipe.chosen.map((i: number) => names[i]).join(", ")}`)
    expect(fs.existsSync(path.join(here, "out", "uniform-soup.safetensors"))).toBe(true)
  })
})
