import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as OtlpReceiver from "../support/OtlpReceiver.ts"
import { crucible, crucibleAsync } from "./cli.ts"
import { writeModel } from "./models.ts"

// Two independent chains (load → save), each with enough tensors that a save takes a while.
const specs = Array.from({ length: 8 }, (_, i) => ({ name: `t${i}`, shape: [512, 1024] }))
let dir: string
let receiver: OtlpReceiver.OtlpReceiver

const pipeline = `version: 1
name: two-chains
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  out_a: { uses: save, with: { model: a, path: out/a.safetensors, dtype: bf16 } }
  out_b: { uses: save, with: { model: b, path: out/b.safetensors, dtype: bf16 } }
`

interface JsonSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; startTimeUnixNano: string; endTimeUnixNano: string; attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string } }> }

const traceSpans = (runDir: string): Array<JsonSpan> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  return trace.resourceSpans.flatMap((r: { scopeSpans: Array<{ spans: Array<JsonSpan> }> }) => r.scopeSpans.flatMap((s) => s.spans))
}
const attr = (s: JsonSpan, key: string) => s.attributes.find((a) => a.key === key)?.value.stringValue

const runWith = (concurrency: number, runId: string, env: Record<string, string> = {}) => {
  const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", runId, "--concurrency", String(concurrency), "--quiet", "--no-cache"], { env })
  expect(r.stderr).toBe("")
  expect(r.code).toBe(0)
  return path.join(dir, "runs", runId)
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-trace-"))
  await writeModel(path.join(dir, "a.safetensors"), specs, 1)
  await writeModel(path.join(dir, "b.safetensors"), specs, 2)
  fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
  receiver = await OtlpReceiver.start()
})
afterAll(async () => receiver?.close())

describe("tracing a run", () => {
  it("writes one trace per run to trace.json: a run span, a span per stage, child spans for I/O", () => {
    const spans = traceSpans(runWith(2, "tree"))
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1)
    const root = spans.find((s) => s.name === "run two-chains")!
    expect(root.parentSpanId ?? "").toBe("")
    expect(attr(root, "crucible.run.id")).toBe("tree")
    for (const id of ["a", "b", "out_a", "out_b"]) {
      const stage = spans.find((s) => s.name === `stage ${id}`)!
      expect(stage.parentSpanId).toBe(root.spanId)
      expect(attr(stage, "crucible.stage.id")).toBe(id)
      expect(attr(stage, "crucible.stage.kind")).toBe(id.startsWith("out") ? "save" : "load")
      const line = pipeline.split("\n").findIndex((l) => l.startsWith(`  ${id}:`)) + 1
      expect(attr(stage, "crucible.stage.source")).toBe(`${path.join(dir, "p.yaml")}:${line}:3`)
    }
    const save = spans.find((s) => s.name === "stage out_a")!
    const saveRun = spans.find((s) => s.name === "Save.run" && s.parentSpanId === save.spanId)!
    const write = spans.find((s) => s.name === "Save.write" && s.parentSpanId === saveRun.spanId)!
    expect(attr(write, "crucible.io.path")).toBe(path.join(dir, "out/a.safetensors"))
  })

  it("runs independent stages concurrently (their spans overlap), and one at a time with --concurrency 1", () => {
    const window = (spans: Array<JsonSpan>, name: string) => {
      const s = spans.find((x) => x.name === name)!
      return [BigInt(s.startTimeUnixNano), BigInt(s.endTimeUnixNano)] as const
    }
    const parallel = traceSpans(runWith(2, "parallel"))
    const [a0, a1] = window(parallel, "stage out_a")
    const [b0, b1] = window(parallel, "stage out_b")
    expect(a0 < b1 && b0 < a1).toBe(true)
    const serial = traceSpans(runWith(1, "serial"))
    const [s0, s1] = window(serial, "stage out_a")
    const [t0, t1] = window(serial, "stage out_b")
    expect(s1 <= t0 || t1 <= s0).toBe(true)
  })

  for (const protocol of ["http/json", "http/protobuf"] as const) {
    it(`exports the run's spans over OTLP ${protocol} to a receiver on 127.0.0.1`, async () => {
      const runId = `otlp-${protocol.replace("/", "-")}`
      const started = Date.now()
      const r = await crucibleAsync(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", runId, "--quiet"], {
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: protocol, OTEL_SERVICE_NAME: "crucible-test" }
      })
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      // Exported during the run's shutdown, before the process exits (no retry, no lingering sockets).
      expect(Date.now() - started).toBeLessThan(10_000)
      const mine = () => receiver.spans.filter((s) => s.resource["crucible.run.id"] === runId)
      await receiver.waitFor(() => mine().some((s) => s.name === "run two-chains"), 10_000)
      const spans = mine()
      expect(spans.every((s) => s.via === protocol)).toBe(true)
      expect(spans[0]!.resource["service.name"]).toBe("crucible-test")
      const root = spans.find((s) => s.name === "run two-chains")!
      const stages = spans.filter((s) => s.name.startsWith("stage "))
      expect(stages.map((s) => s.name).sort()).toEqual(["stage a", "stage b", "stage out_a", "stage out_b"])
      expect(stages.every((s) => s.parentSpanId === root.spanId && s.traceId === root.traceId)).toBe(true)
      expect(stages.find((s) => s.name === "stage out_b")!.attributes["crucible.stage.kind"]).toBe("save")
    })
  }

  it("exports training loss and accuracy per epoch, stage durations and bytes written as OTLP metrics", async () => {
    const runId = "metrics"
    fs.writeFileSync(path.join(dir, "train.yaml"), `version: 1
name: train-metrics
stages:
  m: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: iris, seed: 1, epochs: 3, batch_size: 16, validation: test } }
  out: { uses: save, with: { model: m, path: out/iris.safetensors } }
`)
    const r = await crucibleAsync(["run", path.join(dir, "train.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", runId, "--quiet"], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
    })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const mine = () => receiver.metrics.filter((m) => m.resource["crucible.run.id"] === runId)
    await receiver.waitFor(() => mine().some((m) => m.name === "crucible.training.loss"), 10_000)
    const loss = mine().filter((m) => m.name === "crucible.training.loss").flatMap((m) => m.points as ReadonlyArray<{ attributes: Record<string, unknown>; value: number }>)
    expect(loss.some((p) => p.attributes["crucible.stage.id"] === "m" && p.value > 0)).toBe(true)
    expect(mine().some((m) => m.name === "crucible.training.accuracy")).toBe(true)
    expect(mine().some((m) => m.name === "crucible.stage.duration")).toBe(true)
    expect(mine().some((m) => m.name === "crucible.io.written")).toBe(true)
  })
})
