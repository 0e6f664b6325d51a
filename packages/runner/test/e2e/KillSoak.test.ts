// kill -9 soak: a pipeline that trains, merges two ~48 MiB models and saves both results, killed
// with SIGKILL at seeded random moments, each kill followed by a re-run in the same runs folder.
// Whatever the moments, the last run ends with the bytes of an uninterrupted run, and nothing is
// left behind: no temporaries, no half-published results, no locks, no training scratch.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucibleAsync, startCrucible } from "./cli.ts"
import { cachedStages, eventsOf, filesUnder, keepIfFailed, leftovers, manifestOf, OUTPUTS, outputDigests, partialsUnder, rng, soakPipeline, writeSoakModels } from "./soak.ts"

/** Kills that must land on a running process. */
const KILLS = 10
/** Kills of one round before it gives up waiting for a run that ends on its own. */
const MAX_ATTEMPTS = 8
/**
 * The kill moments are spread over the reference run's duration, at most this long: on a loaded
 * machine (a parallel test run) the reference can take many times longer, and kills spread that
 * far would not fit the time limit. Earlier kills still land in every stage: reruns pick up there.
 */
const SPREAD_MAX_MS = 8_000
/** No new round starts after this long (the test's timeout is 180 s). */
const BUDGET_MS = 110_000
/** Stages whose results the store keeps: a re-run after they finished reuses them. */
const STORED = ["m", "merged", "trained", "score"]

const runArgs = (pipeline: string, runsDir: string, runId: string) => ["run", pipeline, "--runs-dir", runsDir, "--run-id", runId, "--quiet"]

/** Starts a run and SIGKILLs it after `delayMs`; resolves whether the kill landed before it ended. */
const runKilledAfter = (args: ReadonlyArray<string>, delayMs: number): Promise<{ readonly killed: boolean; readonly code: number | null }> =>
  new Promise((resolve) => {
    const child = startCrucible(args)
    child.stdout.resume()
    child.stderr.resume()
    const timer = setTimeout(() => child.kill("SIGKILL"), delayMs)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      resolve({ killed: signal === "SIGKILL", code })
    })
  })

interface Attempt {
  readonly runId: string
  readonly delayMs: number
  readonly killed: boolean
  readonly code: number | null
}

/**
 * What a round's runs folder and output folder hold once its last run has succeeded (soft
 * assertions: a failing round reports everything it broke); returns the stages the final run
 * had to reuse.
 */
const checkRound = (runsDir: string, outDir: string, kills: ReadonlyArray<Attempt>, expected: Record<string, string | undefined>, log: string): Array<string> => {
  // The same bytes as the uninterrupted run, and nothing else in the output folder.
  expect.soft(outputDigests(outDir), log).toEqual(expected)
  expect.soft(filesUnder(outDir).sort(), log).toEqual([...OUTPUTS].sort())

  // No temporaries of any killed run, and nothing half-done in the store.
  expect.soft(partialsUnder(runsDir), log).toEqual([])
  expect.soft(partialsUnder(outDir), log).toEqual([])
  expect.soft(leftovers(runsDir), log).toEqual({ tmp: [], locks: [] })
  const results = path.join(runsDir, ".cache", "results")
  expect.soft(fs.existsSync(results), `${log}: no results store at ${results}`).toBe(true)
  for (const key of fs.existsSync(results) ? fs.readdirSync(results) : []) expect.soft(fs.existsSync(path.join(results, key, "result.json")), `${log}: results/${key}`).toBe(true)
  // The training finished: its checkpoints (the stage's scratch) went when its result was stored.
  expect.soft(filesUnder(path.join(runsDir, ".cache", "work")), log).toEqual([])

  // Every killed run reads crashed, or succeeded (the kill came after it ended); none reads running.
  for (const k of kills) {
    const found = manifestOf(runsDir, k.runId)
    if (found === undefined) continue // killed before its run directory was written
    expect.soft(k.killed ? ["crashed", "succeeded"] : ["succeeded"], `${log}: ${k.runId} reads ${found.shown}`).toContain(found.shown)
  }

  // A stage that finished in any earlier run is reused by the final run, not computed again.
  const finishedBefore = new Set(kills.flatMap((k) => eventsOf(runsDir, k.runId).filter((e) => e.type === "stage-finished" && e.status === "succeeded").map((e) => e.stage!)))
  const final = manifestOf(runsDir, "final")!
  expect.soft(final.shown, log).toBe("succeeded")
  const cached = cachedStages(final.manifest)
  const reused = STORED.filter((s) => finishedBefore.has(s))
  for (const stage of reused) expect.soft(cached[stage], `${log}: ${stage} finished before the final run`).toBe(true)
  return reused
}

describe("kill -9 soak", () => {
  it(`${KILLS} SIGKILLs at random moments, each followed by a re-run: the bytes of an uninterrupted run, nothing left behind`, async ({ onTestFinished }) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-soak-"))
    onTestFinished(keepIfFailed(dir))
    const models = await writeSoakModels(dir)

    // The reference: one uninterrupted run, timed to spread the kills over its duration.
    const refOut = path.join(dir, "out-ref")
    fs.writeFileSync(path.join(dir, "ref.yaml"), soakPipeline(models, refOut))
    const began = performance.now()
    const reference = await crucibleAsync(runArgs(path.join(dir, "ref.yaml"), path.join(dir, "runs-ref"), "ref"))
    const durationMs = performance.now() - began
    expect(reference.code, reference.stderr).toBe(0)
    const expected = outputDigests(refOut)
    for (const name of OUTPUTS) expect(expected[name], name).toBeDefined()

    // The soak, in rounds: each round a fresh runs folder and output folder, SIGKILLs at seeded
    // moments over the uninterrupted run's duration, each followed by a re-run, until one run ends
    // on its own; then a last run. Rounds go on until KILLS kills have landed on running processes.
    const next = rng(20261206)
    const all: Array<string> = []
    let landed = 0
    for (let round = 0; landed < KILLS && performance.now() - began < BUDGET_MS; round++) {
      const runsDir = path.join(dir, `runs-${round}`)
      const outDir = path.join(dir, `out-${round}`)
      const pipeline = path.join(dir, `soak-${round}.yaml`)
      fs.writeFileSync(pipeline, soakPipeline(models, outDir))
      const kills: Array<Attempt> = []
      for (let i = 0; kills.at(-1)?.killed !== false && i < MAX_ATTEMPTS; i++) {
        const delayMs = Math.round(300 + next() * Math.max(0, Math.min(durationMs, SPREAD_MAX_MS) - 300))
        const runId = `kill-${String(i).padStart(2, "0")}`
        kills.push({ runId, delayMs, ...(await runKilledAfter(runArgs(pipeline, runsDir, runId), delayMs)) })
      }
      landed += kills.filter((k) => k.killed).length
      const final = await crucibleAsync(runArgs(pipeline, runsDir, "final"))
      let log = `round ${round}: ${kills.map((k) => `${k.runId}@${k.delayMs}ms:${k.killed ? "killed" : `exit ${k.code}`}`).join(", ")}`
      expect(final.code, `${log}\n${final.stderr}`).toBe(0)
      log += `; reused by the final run: ${checkRound(runsDir, outDir, kills, expected, log).join(", ") || "none"}`
      all.push(log)
      fs.rmSync(outDir, { recursive: true, force: true }) // 96 MiB a round; its runs folder stays until the test passes
    }
    console.log(`kill soak: reference ${Math.round(durationMs)} ms, ${landed} kills landed in ${Math.round((performance.now() - began) / 1000)} s\n${all.join("\n")}`)
    expect(landed, all.join("\n")).toBeGreaterThanOrEqual(KILLS)
  }, 180_000)

  // The soak's rarest moment, made by hand: a kill after a training's result is stored, before
  // (or while) its checkpoints are removed. The next run reuses the result; its scratch must go too.
  it("a kill between storing a training's result and removing its checkpoints leaves nothing behind after the next run", async ({ onTestFinished }) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-soak-work-"))
    onTestFinished(keepIfFailed(dir))
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: soak-work
stages:
  m: { uses: train, with: { arch: { type: mlp, layers: [784, 16, 10] }, data: mnist, split: fit, seed: 3, epochs: 2, batch_size: 100 } }
  trained: { uses: save, with: { model: m, path: out/trained.safetensors } }
`)
    const runsDir = path.join(dir, "runs")
    expect((await crucibleAsync(runArgs(path.join(dir, "p.yaml"), runsDir, "first"))).code).toBe(0)
    const key = manifestOf(runsDir, "first")!.manifest.stages.find((s) => s.id === "m")!.key
    expect(fs.existsSync(path.join(runsDir, ".cache", "results", key, "result.json"))).toBe(true)
    // What such a kill leaves: the result in place, part of the checkpoints still there.
    const work = path.join(runsDir, ".cache", "work", key)
    fs.mkdirSync(work, { recursive: true })
    fs.writeFileSync(path.join(work, "history.json"), "[]")
    const second = await crucibleAsync(runArgs(path.join(dir, "p.yaml"), runsDir, "second"))
    expect(second.code, second.stderr).toBe(0)
    expect(cachedStages(manifestOf(runsDir, "second")!.manifest)["m"]).toBe(true)
    expect(filesUnder(path.join(runsDir, ".cache", "work"))).toEqual([])
  }, 60_000)
})
