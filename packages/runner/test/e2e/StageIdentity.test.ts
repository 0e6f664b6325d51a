// Stage identity as a value: keys from decoded params (defaults applied), input keys and the
// contents of what stages read; results reused across runs and shared by equal stages of one run.
import { describe, expect, it } from "vitest"
import { DType, Model, Port, Registry, Stage, type TensorRef, Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect, Schema } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { RunEvent } from "../../src/Events.ts"
import * as Runner from "../../src/Runner.ts"
import * as FileDigests from "../../src/store/FileDigests.ts"
import * as Identity from "../../src/store/Identity.ts"
import { writeModel } from "./models.ts"

// A seeded 4-feature, 3-class CSV: `seed` changes every value, so two seeds are two data sets.
const csv = (seed: number, rows = 60): string => {
  let s = seed * 7919 + 1
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648)
  const lines = ["a,b,c,d,label"]
  for (let i = 0; i < rows; i++) {
    const label = i % 3
    lines.push([0, 1, 2, 3].map((j) => (label + j * 0.1 + next()).toFixed(4)).concat(String(label)).join(","))
  }
  return `${lines.join("\n")}\n`
}

const trainPipeline = `version: 1
name: identity
stages:
  t: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: { csv: data.csv }, epochs: 2, batch_size: 16, seed: 1 } }
  acc: { uses: evaluate, with: { model: t, data: { csv: data.csv } } }
  out: { uses: save, with: { model: t, path: out.safetensors } }
`

const folder = (name: string, files: Readonly<Record<string, string>>): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `identity-${name}-`))
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text)
  return dir
}

const run = (file: string, options: Runner.RunOptions & { readonly events?: Array<RunEvent> }) =>
  Runner.runPromise(file, { telemetry: "none", ...options, ...(options.events === undefined ? {} : { onEvent: (e) => void options.events!.push(e) }) })

const outcome = (result: Runner.RunResult, id: string) => result.outcomes.find((o) => o.id === id)!
const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

describe("stage identity", () => {
  it("gives the same relative data path in two folders two keys and two models, and reuses each folder's own result", async () => {
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-runs-"))
    const a = folder("a", { "p.yaml": trainPipeline, "data.csv": csv(1) })
    const b = folder("b", { "p.yaml": trainPipeline, "data.csv": csv(2) })
    const first = await run(path.join(a, "p.yaml"), { runsDir })
    const second = await run(path.join(b, "p.yaml"), { runsDir })
    expect([first.status, second.status]).toEqual(["succeeded", "succeeded"])
    expect(outcome(second, "t").key).not.toBe(outcome(first, "t").key)
    expect(outcome(second, "t").cached).toBeUndefined()
    expect(sha(path.join(b, "out.safetensors"))).not.toBe(sha(path.join(a, "out.safetensors")))

    // Each folder's rerun reuses its own results: the same weights, the same metrics, the save skipped.
    const before = sha(path.join(a, "out.safetensors"))
    const again = await run(path.join(a, "p.yaml"), { runsDir })
    expect(["t", "acc", "out"].map((id) => outcome(again, id).cached)).toEqual([true, true, true])
    expect(outcome(again, "acc").value).toEqual(outcome(first, "acc").value)
    expect(sha(path.join(a, "out.safetensors"))).toBe(before)
    const manifest = JSON.parse(fs.readFileSync(path.join(again.runDir, "manifest.json"), "utf8"))
    expect(manifest.stages.find((s: { id: string }) => s.id === "t").cached).toBe(true)
  })

  it("changes a key when a read file's contents change, not when it is only re-saved", async () => {
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-runs-"))
    const dir = folder("resave", { "p.yaml": trainPipeline, "data.csv": csv(3) })
    const first = await run(path.join(dir, "p.yaml"), { runsDir })
    const weights = sha(path.join(dir, "out.safetensors"))

    fs.writeFileSync(path.join(dir, "data.csv"), csv(4))
    const changed = await run(path.join(dir, "p.yaml"), { runsDir })
    expect(outcome(changed, "t").key).not.toBe(outcome(first, "t").key)
    expect(outcome(changed, "t").cached).toBeUndefined()
    expect(sha(path.join(dir, "out.safetensors"))).not.toBe(weights)

    // The first contents again (a new inode and mtime): the first key, its stored result reused.
    fs.rmSync(path.join(dir, "data.csv"))
    fs.writeFileSync(path.join(dir, "data.csv"), csv(3))
    const back = await run(path.join(dir, "p.yaml"), { runsDir })
    expect(outcome(back, "t").key).toBe(outcome(first, "t").key)
    expect(outcome(back, "t").cached).toBe(true)
    // The save's output was the other model's: it is written again, not skipped.
    expect(outcome(back, "out").cached).toBeUndefined()
    expect(sha(path.join(dir, "out.safetensors"))).toBe(weights)
  })

  it("keys decoded params: an omitted param and its default are one key; a changed default is another", async () => {
    const scale = (defaultFactor: number) =>
      Stage.define({
        kind: "user/scale",
        version: 1,
        description: "scales a model",
        params: Schema.Struct({ factor: Schema.Finite.pipe(Stage.withDefault(defaultFactor)) }),
        inputs: { model: Port.one(Port.ModelPort) },
        output: Port.ModelPort,
        resources: { lazy: true },
        run: ({ params, inputs }) =>
          Effect.succeed(Model.make("scaled", Array.from(inputs.model.tensors.values(), (t): TensorRef.TensorRef => ({
            ...t,
            read: (range) => Effect.map(t.read(range), (bytes) => DType.fromNumbers(DType.toFloat64(bytes, t.dtype).map((x) => x * params.factor), "F32"))
          }))))
      })
    const dir = folder("defaults", { "m.safetensors": "" })
    const keyOf = (registry: Registry.Registry, withFactor: string) =>
      Effect.runPromise(Effect.gen(function* () {
        const pipeline = yield* Yaml.decode(`version: 1
name: d
stages:
  m: { uses: load, with: { path: m.safetensors } }
  s: { uses: user/scale, with: { model: m${withFactor} } }
  t: { uses: train, with: { arch: { type: mlp, layers: [4, 3] }, epochs: 1, data: mnist${withFactor === "" ? "" : ", seed: 0, split: train"} } }
`, registry)
        const keys = yield* Identity.stageKeys(pipeline, dir, yield* FileDigests.make(path.join(dir, ".digests")))
        return { s: keys.get("s")!, t: keys.get("t")! }
      }))
    const two = Registry.extend(builtinRegistry, [scale(2)])
    const omitted = await keyOf(two, "")
    const explicit = await keyOf(two, ", factor: 2")
    expect(explicit.s).toBe(omitted.s)
    // train's seed and split defaults (0, train) are in its Schema: writing them changes nothing.
    expect(explicit.t).toBe(omitted.t)
    const three = await keyOf(Registry.extend(builtinRegistry, [scale(3)]), "")
    expect(three.s).not.toBe(omitted.s)
  })

  it("runs equal stages of one run once: the second takes the first's value", async () => {
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-runs-"))
    const dir = folder("twins", {
      "data.csv": csv(5),
      "p.yaml": `version: 1
name: twins
stages:
  t1: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: { csv: data.csv }, epochs: 2, batch_size: 16 } }
  t2: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: { csv: ./data.csv }, epochs: 2, batch_size: 16, seed: 0 } }
  o1: { uses: save, with: { model: t1, path: one.safetensors } }
  o2: { uses: save, with: { model: t2, path: two.safetensors } }
`
    })
    const events: Array<RunEvent> = []
    const result = await run(path.join(dir, "p.yaml"), { runsDir, events })
    expect(result.status).toBe("succeeded")
    expect(outcome(result, "t2").key).toBe(outcome(result, "t1").key)
    expect(outcome(result, "t2").sameAs).toBe("t1")
    // Only t1 trained: only it reported epochs.
    const trained = new Set(events.flatMap((e) => (e.type === "stage-progress" && e.unit === "epochs" ? [e.stage] : [])))
    expect([...trained]).toEqual(["t1"])
    const finished = events.find((e) => e.type === "stage-finished" && e.stage === "t2")
    expect(finished).toMatchObject({ status: "succeeded", sameAs: "t1" })
    // Two saves to two paths: two keys, the same tensors.
    expect(outcome(result, "o2").key).not.toBe(outcome(result, "o1").key)
    const tensors = (file: string) => fs.readFileSync(file).subarray(8 + Number(fs.readFileSync(file).readBigUInt64LE(0)))
    expect(tensors(path.join(dir, "two.safetensors")).equals(tensors(path.join(dir, "one.safetensors")))).toBe(true)
  })

  it("--rerun computes a stage and its dependents afresh; --no-cache computes everything", async () => {
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-runs-"))
    const dir = folder("rerun", { "p.yaml": trainPipeline, "data.csv": csv(6) })
    const first = await run(path.join(dir, "p.yaml"), { runsDir })
    const rerun = await run(path.join(dir, "p.yaml"), { runsDir, rerun: ["acc"] })
    expect(["t", "acc", "out"].map((id) => outcome(rerun, id).cached)).toEqual([true, undefined, true])
    const fresh = await run(path.join(dir, "p.yaml"), { runsDir, rerun: ["t"] })
    expect(["t", "acc", "out"].map((id) => outcome(fresh, id).cached)).toEqual([undefined, undefined, undefined])
    // Computed afresh, from the same seed: the same weights.
    expect(outcome(fresh, "acc").value).toEqual(outcome(first, "acc").value)
    const none = await run(path.join(dir, "p.yaml"), { runsDir, cache: false })
    expect(none.outcomes.some((o) => o.cached === true)).toBe(false)

    const unknown = await Effect.runPromise(Effect.flip(Runner.run(path.join(dir, "p.yaml"), { runsDir, telemetry: "none", rerun: ["tt"] })))
    expect(unknown._tag).toBe("RerunUnknownStage")
    expect(unknown.message).toContain(`--rerun tt: the pipeline has no stage "tt" (did you mean "t"?)`)
  })

  it("a rerun whose saves are stored computes no merge: the merge says nothing was computed", async () => {
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-runs-"))
    const dir = folder("lazy", {
      "p.yaml": `version: 1
name: lazy
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  m: { uses: merge/linear, with: { models: [a, b] } }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`
    })
    await writeModel(path.join(dir, "a.safetensors"), [{ name: "w", shape: [8, 8] }], 1)
    await writeModel(path.join(dir, "b.safetensors"), [{ name: "w", shape: [8, 8] }], 2)
    const summaries = async () => {
      const events: Array<RunEvent> = []
      await run(path.join(dir, "p.yaml"), { runsDir, events })
      return Object.fromEntries(events.flatMap((e) => (e.type === "stage-finished" ? [[e.stage, e.summary]] : [])))
    }
    expect((await summaries()).m).toMatch(/^1 tensors, 256 B computed/)
    expect((await summaries()).m).toBe("nothing computed: every stage reading it took a stored result")
  })

  it("a stored metrics result brings its plot back into the new run's folder, whole", async () => {
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-runs-"))
    const dir = folder("artifacts", {
      "data.csv": csv(7),
      "p.yaml": `version: 1
name: artifacts
stages:
  t1: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: { csv: data.csv }, epochs: 1, batch_size: 16, seed: 1 } }
  t2: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: { csv: data.csv }, epochs: 1, batch_size: 16, seed: 2 } }
  line: { uses: evaluate/interpolation, with: { a: t1, b: t2, data: { csv: data.csv }, points: 3 } }
`
    })
    const first = await run(path.join(dir, "p.yaml"), { runsDir })
    const again = await run(path.join(dir, "p.yaml"), { runsDir })
    expect(outcome(again, "line").cached).toBe(true)
    expect(outcome(again, "line").value).toEqual(outcome(first, "line").value)
    expect(fs.readFileSync(path.join(again.runDir, "line.svg")).equals(fs.readFileSync(path.join(first.runDir, "line.svg")))).toBe(true)
    expect(fs.readdirSync(again.runDir).filter((f) => f.endsWith(".partial"))).toEqual([])
  })
})
