/**
 * Follows a cluster run from the shared store: every unit's worker writes a run folder under
 * `<store>/runs/<run id>/` whose `events.jsonl` grows as the unit runs. The follower reads what is
 * new in each (a poll: NFS has no reliable file watching) and passes on the events of the stages
 * each unit runs itself — the same events a local run emits, so the same reporters (progress line,
 * plain lines, `--json`) show a cluster run. Events of stages a unit only found stored (its
 * ancestors, run by other units) are not passed on; a stage run by two units (a lazy `load` two
 * saves read through) or twice (a unit sent again after its worker died) starts and ends once.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { RunEvent } from "../Events.ts"
import type { PlannedUnit } from "./Protocol.ts"

/** @category models */
export interface Follower {
  /** Reads what is new and returns its events, in file order per unit folder. */
  readonly poll: Effect.Effect<ReadonlyArray<RunEvent>>
}

/** The unit a worker's run folder belongs to: `<unit>` for a first try, `<unit>-<n>` for a later one. */
export const unitOfFolder = (units: ReadonlyArray<Pick<PlannedUnit, "id">>, folder: string): string | undefined =>
  units.find((u) => u.id === folder)?.id ?? units.find((u) => folder.startsWith(`${u.id}-`) && /^\d+$/.test(folder.slice(u.id.length + 1)))?.id

/** A follower of run `folder` (`<store>/runs/<run id>`). */
export const make = (folder: string, units: ReadonlyArray<Pick<PlannedUnit, "id" | "runs">>): Follower => {
  const offsets = new Map<string, number>()
  const partial = new Map<string, string>()
  const runsOf = new Map(units.map((u) => [u.id, new Set(u.runs)] as const))
  const started = new Set<string>()
  const finished = new Set<string>()
  const firstTime = (event: RunEvent): boolean => {
    if (event.type === "stage-started") return started.has(event.stage) ? false : (started.add(event.stage), true)
    if (event.type === "stage-finished") return finished.has(event.stage) ? false : (finished.add(event.stage), true)
    return event.type === "stage-progress" && !finished.has(event.stage)
  }
  const readNew = (sub: string): ReadonlyArray<RunEvent> => {
    const file = path.join(folder, sub, "events.jsonl")
    let fd: number
    try {
      fd = fs.openSync(file, "r")
    } catch {
      return []
    }
    try {
      const from = offsets.get(sub) ?? 0
      const size = fs.fstatSync(fd).size
      if (size <= from) return []
      const buffer = Buffer.alloc(size - from)
      const n = fs.readSync(fd, buffer, 0, buffer.length, from)
      offsets.set(sub, from + n)
      const text = (partial.get(sub) ?? "") + buffer.subarray(0, n).toString("utf8")
      const lines = text.split("\n")
      // A line the worker is still writing waits for its end.
      partial.set(sub, lines.pop() ?? "")
      return lines.flatMap((line) => {
        try {
          return line.trim() === "" ? [] : [JSON.parse(line) as RunEvent]
        } catch {
          return []
        }
      })
    } finally {
      fs.closeSync(fd)
    }
  }
  const poll = Effect.sync(() => {
    let subs: Array<string>
    try {
      subs = fs.readdirSync(folder, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()
    } catch {
      return []
    }
    return subs.flatMap((sub) => {
      const unit = unitOfFolder(units, sub)
      const own = unit === undefined ? undefined : runsOf.get(unit)
      if (own === undefined) return []
      return readNew(sub).filter((e) => "stage" in e && own.has(e.stage) && firstTime(e))
    })
  })
  return { poll }
}
