// Two runs of one pipeline started at the same moment in one runs folder, writing the same
// outputs: the per-key locks make the second wait for the first and reuse what it stored, so
// both succeed with the bytes of a lone run and the training is computed once.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucibleAsync } from "./cli.ts"
import { cachedStages, eventsOf, filesUnder, keepIfFailed, leftovers, manifestOf, OUTPUTS, outputDigests, partialsUnder, soakPipeline, writeSoakModels } from "./soak.ts"

const runArgs = (pipeline: string, runsDir: string, runId: string) => ["run", pipeline, "--runs-dir", runsDir, "--run-id", runId, "--quiet"]

describe("concurrent runs", () => {
  it("two runs of one pipeline at once, same runs folder and outputs: both succeed, same bytes, the training computed once", async ({ onTestFinished }) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-concurrent-"))
    onTestFinished(keepIfFailed(dir))
    const models = await writeSoakModels(dir)

    const refOut = path.join(dir, "out-ref")
    fs.writeFileSync(path.join(dir, "ref.yaml"), soakPipeline(models, refOut))
    const reference = await crucibleAsync(runArgs(path.join(dir, "ref.yaml"), path.join(dir, "runs-ref"), "ref"))
    expect(reference.code, reference.stderr).toBe(0)
    const expected = outputDigests(refOut)

    const runsDir = path.join(dir, "runs")
    const outDir = path.join(dir, "out")
    const pipeline = path.join(dir, "p.yaml")
    fs.writeFileSync(pipeline, soakPipeline(models, outDir))
    const [one, two] = await Promise.all([crucibleAsync(runArgs(pipeline, runsDir, "one")), crucibleAsync(runArgs(pipeline, runsDir, "two"))])
    expect(one.code, one.stderr).toBe(0)
    expect(two.code, two.stderr).toBe(0)
    expect(outputDigests(outDir)).toEqual(expected)
    expect(fs.readdirSync(outDir).sort()).toEqual([...OUTPUTS].sort())
    expect(partialsUnder(dir)).toEqual([])
    expect(leftovers(runsDir)).toEqual({ tmp: [], locks: [] })
    expect(filesUnder(path.join(runsDir, ".cache", "work"))).toEqual([])

    const manifests = ["one", "two"].map((id) => manifestOf(runsDir, id)!)
    expect(manifests.map((m) => m.shown)).toEqual(["succeeded", "succeeded"])
    // Exactly one run trained; the other reused the stored training (it waited on its lock).
    const cached = manifests.map((m) => cachedStages(m.manifest))
    expect(cached.map((c) => c["m"]).sort()).toEqual([false, true])
    // The run that reused it trained no epoch.
    const reuser = cached[0]!["m"] ? "one" : "two"
    expect(eventsOf(runsDir, reuser).filter((e) => e.type === "stage-progress" && e.stage === "m" && e.unit === "epochs")).toEqual([])
    // The other stored stages are computed once too: both saves and the evaluation (the lazy merge
    // is not stored: it is computed as the save that reads it writes, and that save is reused).
    for (const stage of ["merged", "trained", "score"]) expect(cached.map((c) => c[stage]).sort(), stage).toEqual([false, true])
  }, 120_000)
})
