/**
 * What an interrupted run (Ctrl-C) tells: which stages had finished, which were stopped while
 * running and which had not started, where the run directory is, and which stages left state in
 * the runs folder's cache that running the pipeline again picks up. Stages that train (`train`,
 * `distill`, `progressive/cascade`) write a checkpoint every epoch to `<runs>/.cache/<stage key>/`:
 * stopped, they resume from their last checkpoint; finished, they are reused. Every other stage
 * runs again.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { RunEvent } from "./Events.ts"
import type { StageOutcome } from "./Executor.ts"

/** The event of an interrupted run. @category models */
export type Interrupted = Extract<RunEvent, { readonly type: "run-interrupted" }>

/** Which stages a run has started, from its events (an interrupted stage's outcome does not say). @category models */
export interface StartedStages {
  readonly observe: (event: RunEvent) => void
  readonly has: (stage: string) => boolean
}

/** An empty record of started stages. @category constructors */
export const startedStages = (): StartedStages => {
  const started = new Set<string>()
  return {
    observe: (event) => {
      if (event.type === "stage-started") started.add(event.stage)
    },
    has: (stage) => started.has(stage)
  }
}

/** Whether a stage's cache folder holds anything: only stages that keep state across runs write there. */
const holdsState = (dir: string): boolean => {
  try {
    return fs.readdirSync(dir).length > 0
  } catch {
    return false
  }
}

/**
 * The `run-interrupted` event, from each stage's outcome (in pipeline order) and whether it had
 * started. `cacheRoot` is where stages keep state by stage key (the executor's default:
 * `<runs>/.cache`).
 *
 * @category constructors
 */
export const event = (input: {
  readonly outcomes: ReadonlyArray<StageOutcome>
  readonly started: StartedStages
  readonly runDir: string
  readonly cacheRoot: string
  readonly durationMs: number
  readonly time: number
}): Interrupted => {
  const named = (o: StageOutcome) => ({ stage: o.id, kind: o.kind })
  const stopped = (o: StageOutcome) => o.status === "interrupted" && input.started.has(o.id)
  return {
    type: "run-interrupted",
    time: input.time,
    runDir: input.runDir,
    durationMs: input.durationMs,
    finished: input.outcomes.filter((o) => o.status === "succeeded").map(named),
    failed: input.outcomes.filter((o) => o.status === "failed" || o.status === "skipped").map(named),
    interrupted: input.outcomes.filter(stopped).map(named),
    notStarted: input.outcomes.filter((o) => o.status !== "succeeded" && o.status !== "failed" && o.status !== "skipped" && !stopped(o)).map(named),
    saved: input.outcomes.flatMap((o) => {
      const dir = path.join(input.cacheRoot, o.key)
      if (!holdsState(dir)) return []
      return [{ stage: o.id, kind: o.kind, dir, use: o.status === "succeeded" ? ("reused" as const) : ("resumed" as const) }]
    })
  }
}
