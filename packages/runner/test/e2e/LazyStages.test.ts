// Work is shown where it happens: a lazy stage's tensors are computed when `save` reads them, and
// that compute is the lazy stage's — its span covers it (the tensor spans and the kernels' spans
// are its descendants, not save's), its progress, its duration, its failure with the tensor
// named — through the real CLI and its trace.json. Also a user's lazy kind (examples/typescript).
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as OtlpDecode from "../support/OtlpDecode.ts"
import { crucibleAsync } from "./cli.ts"

const kinds = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../examples/typescript/kinds.ts")

// A hand-checkable tensor "w" (task vectors over a base of ones), and one large enough (2¹⁹
// elements) to be merged on the worker pool.
const BIG = 1 << 19
const tau = { a: [3, -1, 2, -4, 0.5, 1], b: [-2, -3, 1, 1, 0.25, -0.5] }
const wave = (seed: number) => Float32Array.from({ length: BIG }, (_, i) => Math.sin(i * 0.001 + seed) + 0.01 * Math.cos(i * (seed + 1)))
const values = {
  base: { w: [1, 1, 1, 1, 1, 1], big: wave(0) },
  a: { w: tau.a.map((t) => 1 + t), big: wave(1) },
  b: { w: tau.b.map((t) => 1 + t), big: wave(2) }
}

const write = (file: string, tensors: Record<string, ArrayLike<number>>) =>
  Effect.runPromise(Safetensors.write(file, Model.make(file, Object.entries(tensors).map(([name, v]) => TensorRef.fromBytes(name, "F32", [v.length], DType.fromNumbers(v, "F32"))))))

const pipeline = `version: 1
name: lazy
kinds: [${JSON.stringify(kinds)}]
stages:
  base: { uses: load, with: { path: base.safetensors } }
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  m: { uses: merge/ties, with: { base: base, models: [a, b], density: 0.5 } }
  half: { uses: user/scale, with: { model: m, factor: 0.5 } }
  out: { uses: save, with: { model: half, path: out/half.safetensors } }
  s: { uses: merge/slerp, with: { models: [a, b], t: 0.3 } }
  out_s: { uses: save, with: { model: s, path: out/slerp.safetensors } }
`

let dir: string
const runsDir = () => path.join(dir, "runs")
// Every run computes (--no-cache): these tests watch the compute, which a stored save would skip.
const run = async (file: string, runId: string, extra: ReadonlyArray<string> = []) => {
  const r = await crucibleAsync(["run", path.join(dir, file), "--runs-dir", runsDir(), "--run-id", runId, "--quiet", "--no-cache", ...extra])
  const runDir = path.join(runsDir(), runId)
  const spans = OtlpDecode.spansOf(JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8")), "file")
  const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")) as { stages: Array<{ id: string; status: string; startedAt?: string; durationMs?: number; blockedBy?: string; error?: { tag: string; message: string } }> }
  const events = fs.readFileSync(path.join(runDir, "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
  return { ...r, spans, manifest, events, stage: (id: string) => manifest.stages.find((s) => s.id === id)! }
}

type Span = OtlpDecode.ReceivedSpan
const byName = (spans: ReadonlyArray<Span>, name: string) => spans.find((s) => s.name === name)!
/** The nearest `stage …` span above `span`. */
const stageOf = (spans: ReadonlyArray<Span>, span: Span): string | undefined => {
  const byId = new Map(spans.map((s) => [s.spanId, s] as const))
  for (let s = byId.get(span.parentSpanId ?? ""); s !== undefined; s = byId.get(s.parentSpanId ?? "")) if (s.name.startsWith("stage ")) return s.name.slice(6)
  return undefined
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-lazy-"))
  for (const [name, tensors] of Object.entries(values)) await write(path.join(dir, `${name}.safetensors`), tensors)
  fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("a lazy merge's work belongs to the merge", () => {
  it("its span covers its tensors' computation, which are its descendants, not save's (also one stage at a time)", async () => {
    for (const concurrency of ["2", "1"]) {
      const r = await run("p.yaml", `spans-${concurrency}`, ["--concurrency", concurrency])
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      const { spans } = r
      for (const [stage, tensors] of [["m", ["w", "big"]], ["half", ["w", "big"]], ["s", ["w", "big"]]] as const) {
        const own = byName(spans, `stage ${stage}`)
        for (const t of tensors) {
          const tensor = spans.find((s) => s.name === `tensor ${t}` && s.parentSpanId === own.spanId)!
          expect(tensor, `tensor ${t} of ${stage}`).toBeDefined()
          expect(tensor.startTimeUnixNano >= own.startTimeUnixNano && tensor.endTimeUnixNano <= own.endTimeUnixNano).toBe(true)
        }
        expect(own.attributes["crucible.tensors.computed"]).toBe(2)
        expect(own.attributes["crucible.compute.ms"]).toBeGreaterThan(0)
      }
      // The big tensor runs on the pool: the kernels' spans are the merge's, though `save` pulled them.
      const kernels = spans.filter((s) => s.name === "Parallel.taskArithmetic")
      expect(kernels.length).toBe(1)
      expect(stageOf(spans, kernels[0]!)).toBe("m")
      expect(spans.filter((s) => s.name.startsWith("Parallel.")).every((s) => stageOf(spans, s) !== "out" && stageOf(spans, s) !== "out_s")).toBe(true)
      // The recorded duration is the span's, and it ends after the last tensor was computed.
      const m = byName(spans, "stage m")
      const recorded = r.stage("m")
      expect(Math.abs(Date.parse(recorded.startedAt!) + recorded.durationMs! - Number(m.endTimeUnixNano / 1_000_000n))).toBeLessThan(15)
      expect(m.events.some((e) => e.name === "crucible.output.ready")).toBe(true)
      // Its progress is its own, in bytes, to the last byte.
      const progress = r.events.filter((e) => e.type === "stage-progress" && e.stage === "m")
      expect(progress.at(-1)).toMatchObject({ unit: "bytes", done: (BIG + 6) * 4, total: (BIG + 6) * 4 })
      // A source (load) is not tracked: its reads are the reader's.
      expect(spans.some((s) => s.name.startsWith("tensor ") && stageOf(spans, s) === "a")).toBe(false)
    }
  })

  it("records TIES and SLERP diagnostics per tensor as span events, as a float64 computation gives them", async () => {
    const { spans } = await run("p.yaml", "diagnostics")
    const diagnostics = (stage: string, tensor: string) =>
      spans.filter((s) => s.parentSpanId === byName(spans, `stage ${stage}`).spanId).flatMap((s) => s.events).find((e) => e.name === "merge.diagnostics" && e.attributes.tensor === tensor)!.attributes
    // TIES, density 0.5 of 6: each model keeps 3; elected signs +, −, +, −; 5 of the 6 kept entries agree.
    const ties = diagnostics("m", "w")
    expect(ties["kept.0"]).toBe(0.5)
    expect(ties["kept.1"]).toBe(0.5)
    expect(ties.agreement).toBe(5 / 6)
    const norm = (v: ReadonlyArray<number>) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
    expect(ties["tau_norm.0"]).toBeCloseTo(norm(tau.a), 12)
    expect(ties["tau_norm.1"]).toBeCloseTo(norm(tau.b), 12)
    // SLERP of a and b (no base): Ω between them, and their norms.
    const slerp = diagnostics("s", "w")
    const dot = values.a.w.reduce((s, x, i) => s + x * values.b.w[i]!, 0)
    expect(slerp.omega as number).toBeCloseTo(Math.acos(dot / (norm(values.a.w) * norm(values.b.w))), 12)
    expect(slerp.colinear).toBe(false)
    expect(slerp["norm.0"]).toBeCloseTo(norm(values.a.w), 12)
    expect(slerp["norm.1"]).toBeCloseTo(norm(values.b.w), 12)
    // The pooled tensor reports too.
    expect(diagnostics("m", "big")["kept.0"]).toBe(0.5)
  })

  it("a NaN input fails the merge, naming the tensor; the stages reading it fail because of it", async () => {
    const dirty = { ...values.a, w: [4, Number.NaN, 3, -3, 1.5, 2] }
    await write(path.join(dir, "nan.safetensors"), dirty)
    fs.writeFileSync(path.join(dir, "nan.yaml"), pipeline.replace("name: lazy", "name: nan").replace("a: { uses: load, with: { path: a.safetensors } }", "a: { uses: load, with: { path: nan.safetensors } }"))
    const r = await run("nan.yaml", "nan")
    expect(r.code).toBe(1)
    expect(r.stage("m")).toMatchObject({ status: "failed", error: { tag: "NonFiniteTensor" } })
    expect(r.stage("m").error!.message).toContain('tensor "w"')
    expect(r.stage("m").blockedBy).toBeUndefined()
    // The user's lazy kind in between, and the save, name the merge as the cause.
    for (const id of ["half", "out"]) expect(r.stage(id)).toMatchObject({ status: "failed", blockedBy: "m", error: { tag: "UpstreamFailed" } })
    expect(r.stage("out").error!.message).toContain('stage "m" failed (NonFiniteTensor)')
    const m = byName(r.spans, "stage m")
    expect(m.status.code).toBe("ERROR")
    expect(m.attributes["crucible.error.tensor"]).toBe("w")
    expect(r.spans.find((s) => s.name === "tensor w" && s.parentSpanId === m.spanId)!.status.code).toBe("ERROR")
    const finished = r.events.filter((e) => e.type === "stage-finished")
    expect(finished.find((e) => e.stage === "out")).toMatchObject({ status: "failed", summary: 'failed because "m" failed' })
  })
})
