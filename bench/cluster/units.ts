// What a cluster run left in the store, read back: each unit's run folder
// (<store>/runs/<run id>/<unit>[-n]/) holds its events.jsonl (`run-started` and `run-finished` times)
// and trace.json (spans carrying `crucible.worker.id`); <store>/runs/<run id>/run.json holds the
// payload as submitted (submittedAt, units and what each waits for).
import * as fs from "node:fs"
import * as path from "node:path"

export interface UnitTiming {
  readonly unit: string
  readonly worker: string
  readonly startedAt: number
  readonly endedAt: number
  /**
   * ms from the moment the unit could have started — the units it waits for have ended, and the
   * worker's slot is free (the unit it ran before has ended; workers run with `--slots 1`) — to its
   * `run-started`: the workflow's, the entity's and the worker's own cost of starting it.
   */
  readonly waitMs: number
}

interface RunRecord {
  readonly submittedAt: number
  readonly units: ReadonlyArray<{ readonly id: string; readonly dependsOn: ReadonlyArray<string> }>
}

const eventTime = (file: string, type: string): number | undefined => {
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.includes(`"${type}"`)) continue
    const e = JSON.parse(line) as { type: string; time: number }
    if (e.type === type) return e.time
  }
  return undefined
}

const workerOf = (folder: string): string => {
  const trace = path.join(folder, "trace.json")
  if (!fs.existsSync(trace)) return "?"
  const m = /"crucible\.worker\.id","value":\{"stringValue":"([^"]*)"/.exec(fs.readFileSync(trace, "utf8"))
  return m?.[1] ?? "?"
}

/** Each unit's last try (a folder `<unit>-n` is a unit sent again), with its wait. */
export const unitTimings = (store: string, runId: string): ReadonlyArray<UnitTiming> => {
  const runDir = path.join(store, "runs", runId)
  const record = JSON.parse(fs.readFileSync(path.join(runDir, "run.json"), "utf8")) as RunRecord
  const raw = record.units.flatMap((u) => {
    const tries = fs.readdirSync(runDir).filter((n) => n === u.id || new RegExp(`^${u.id}-\\d+$`).test(n)).sort()
    const folder = tries.at(-1)
    if (folder === undefined) return []
    const events = path.join(runDir, folder, "events.jsonl")
    if (!fs.existsSync(events)) return []
    const startedAt = eventTime(events, "run-started")
    const endedAt = eventTime(events, "run-finished")
    if (startedAt === undefined || endedAt === undefined) return []
    return [{ unit: u.id, dependsOn: u.dependsOn, worker: workerOf(path.join(runDir, folder)), startedAt, endedAt }]
  })
  const byUnit = new Map(raw.map((u) => [u.unit, u] as const))
  const byWorker = new Map<string, Array<(typeof raw)[number]>>()
  for (const u of raw) byWorker.set(u.worker, [...(byWorker.get(u.worker) ?? []), u])
  return raw.map((u) => {
    const ready = Math.max(record.submittedAt, ...u.dependsOn.map((d) => byUnit.get(d)?.endedAt ?? record.submittedAt))
    // The latest end on this worker before it started; a unit still running then (the worker ran more
    // at once than its one slot, see maxAtOnce) does not hold the start back.
    const before = (byWorker.get(u.worker) ?? []).filter((o) => o !== u && o.endedAt <= u.startedAt).map((o) => o.endedAt)
    const slotFree = before.length === 0 ? 0 : Math.max(...before)
    return { unit: u.unit, worker: u.worker, startedAt: u.startedAt, endedAt: u.endedAt, waitMs: u.startedAt - Math.max(ready, slotFree) }
  })
}

/** The most units each worker ran at the same time (1 where `--slots 1` is honoured). */
export const maxAtOnce = (units: ReadonlyArray<UnitTiming>): Record<string, number> => {
  const most: Record<string, number> = {}
  for (const u of units) {
    const running = units.filter((o) => o.worker === u.worker && o.startedAt <= u.startedAt && o.endedAt > u.startedAt).length
    most[u.worker] = Math.max(most[u.worker] ?? 0, running)
  }
  return most
}

/** Median, p90 and max of a list of numbers (undefined when empty). */
export const summary = (xs: ReadonlyArray<number>) => {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!
  return { n: s.length, median: at(0.5), p90: at(0.9), max: s.at(-1)! }
}
