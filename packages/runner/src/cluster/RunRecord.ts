/**
 * The cluster run's own folder, `<store>/runs/<run id>/`, made a run folder like a local one: the
 * follower writes the run's events to `events.jsonl` as it passes them on (so `crucible ui
 * <store>/runs` shows the run live) and a `manifest.json` — `running` at the start, then every
 * stage as the worker that ran it recorded it (in its unit's folder), with the worker's id, and
 * the outputs — and a `trace.json` joining the units' traces (one trace: the workflow's context
 * travels with every unit), so the dashboard shows every stage and the worker that ran it. Following again (`attach`) writes both afresh: the follower reads every unit's
 * events from their start.
 *
 * @since 0.2.0
 */
import { AtomicFile } from "@crucible/core"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { RunEvent } from "../Events.ts"
import * as Manifest from "../Manifest.ts"
import * as RunDir from "../RunDir.ts"
import type { RunPayload, RunSummary } from "./Protocol.ts"

/** @category models */
export interface RunRecord {
  readonly append: (event: RunEvent) => void
  /** Writes the final manifest from the units' own manifests and the workflow's summary. */
  readonly finish: (summary: RunSummary) => Effect.Effect<void>
  readonly close: () => void
}

/** Starts the record of `payload`'s run in `folder` (events afresh, manifest `running`). */
export const start = (payload: RunPayload, folder: string): Effect.Effect<RunRecord, RunDir.RunFileUnwritable> =>
  Effect.gen(function* () {
    const eventsFile = path.join(folder, "events.jsonl")
    yield* Effect.sync(() => fs.rmSync(eventsFile, { force: true }))
    const events = yield* RunDir.lineLog(eventsFile)
    const ir = JSON.parse(payload.ir) as { readonly stages: ReadonlyArray<{ readonly id: string; readonly uses: string; readonly with: unknown }> }
    const base = {
      crucible: { manifestVersion: 1 as const },
      runId: payload.runId,
      startedAt: new Date(payload.submittedAt).toISOString(),
      pipeline: { name: payload.pipeline, file: payload.file, ir },
      tools: Manifest.toolVersions()
    }
    const manifestFile = path.join(folder, "manifest.json")
    yield* Effect.ignore(Manifest.write(manifestFile, { ...base, status: "running", stages: [], inputs: [], outputs: [] }))
    const finish = (summary: RunSummary) =>
      Effect.gen(function* () {
        const stages: Array<Manifest.Manifest["stages"][number]> = []
        const outputs: Array<Manifest.FileRecord> = []
        const inputs = new Map<string, Manifest.FileRecord>()
        for (const report of summary.units) {
          const unit = payload.units.find((u) => u.id === report.unit)
          const own = new Set(unit?.runs ?? [report.unit])
          // A unit whose worker died before writing its manifest has a rerun's folder with one.
          const manifest = report.runDir === "" ? undefined : Option.getOrUndefined(yield* Effect.option(Manifest.read(path.join(report.runDir, "manifest.json"))))
          for (const s of manifest?.stages ?? []) {
            if (own.has(s.id) && !stages.some((x) => x.id === s.id)) stages.push({ ...s, worker: report.worker, host: report.host })
          }
          for (const f of manifest?.outputs ?? []) if (!outputs.some((o) => o.path === f.path)) outputs.push(f)
          for (const f of manifest?.inputs ?? []) if (!inputs.has(f.path)) inputs.set(f.path, f)
          if (report.status === "skipped") stages.push({ id: report.unit, kind: ir.stages.find((s) => s.id === report.unit)?.uses ?? "", version: 0, key: "", params: undefined, status: "skipped", ...(report.blockedBy === undefined ? {} : { blockedBy: report.blockedBy }) })
        }
        const order = new Map(ir.stages.map((s, i) => [s.id, i] as const))
        stages.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0))
        yield* Effect.ignore(joinTraces(folder))
        yield* Effect.ignore(Manifest.write(manifestFile, { ...base, status: summary.status, endedAt: new Date().toISOString(), stages, inputs: [...inputs.values()], outputs }))
      })
    return { append: (event) => events.append(JSON.stringify(event)), finish, close: events.close }
  })

// Every unit folder's trace.json (first tries and reruns), as one OTLP JSON document.
const joinTraces = (folder: string) =>
  Effect.gen(function* () {
    const resourceSpans: Array<unknown> = []
    for (const sub of fs.readdirSync(folder, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
      try {
        const doc = JSON.parse(fs.readFileSync(path.join(folder, sub, "trace.json"), "utf8")) as { resourceSpans?: Array<unknown> }
        resourceSpans.push(...(doc.resourceSpans ?? []))
      } catch {
        // A unit whose worker died before writing its trace: its rerun's trace is there.
      }
    }
    yield* AtomicFile.writeWhole(path.join(folder, "trace.json"), `${JSON.stringify({ resourceSpans })}\n`)
  })
