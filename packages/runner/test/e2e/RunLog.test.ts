import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucible } from "./cli.ts"
import { writeModel } from "./models.ts"

describe("run log", () => {
  it("writes log.jsonl lines that carry the trace and span ids of the stage they come from", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-log-"))
    await writeModel(path.join(dir, "a.safetensors"), [{ name: "w", shape: [4] }], 1)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: logged
stages:
  a: { uses: load, with: { path: a.safetensors } }
  gone: { uses: load, with: { path: missing.safetensors }, needs: [a] }
  out: { uses: save, with: { model: a, path: out.safetensors } }
`)
    // `needs:` leaves gone's input to the run (an earlier stage may write it), so it fails there.
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r"])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe("") // the failure is shown by the reporter, not logged twice
    const lines = fs.readFileSync(path.join(dir, "runs/r/log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    const trace = JSON.parse(fs.readFileSync(path.join(dir, "runs/r/trace.json"), "utf8"))
    const spans = trace.resourceSpans.flatMap((x: any) => x.scopeSpans.flatMap((s: any) => s.spans)) as Array<{ name: string; traceId: string; spanId: string }>
    const failed = lines.find((l) => l.level === "Error")
    expect(failed).toMatchObject({ stage: "gone" })
    expect(failed.message).toContain("missing.safetensors")
    const gone = spans.find((s) => s.name === "stage gone")!
    expect(failed.traceId).toBe(gone.traceId)
    expect(failed.spanId).toBe(gone.spanId)
    const goneSpan = trace.resourceSpans.flatMap((x: any) => x.scopeSpans.flatMap((s: any) => s.spans)).find((s: any) => s.name === "stage gone")
    const attrOf = (key: string) => goneSpan.attributes.find((a: any) => a.key === key)?.value.stringValue
    expect(attrOf("crucible.error.tag")).toBe("IoError")
    expect(attrOf("crucible.stage.source")).toBe(`${path.join(dir, "p.yaml")}:5:3`)
    expect(goneSpan.status.code).toBe(2) // ERROR
    const started = lines.find((l) => l.message === "stage out (save) started")
    expect(started.spanId).toBe(spans.find((s) => s.name === "stage out")!.spanId)
  })
})
