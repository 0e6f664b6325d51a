/**
 * `crucible plan`: the DAG, what a run will read from each file and write, its peak memory, and
 * which stages would fail and why — computed by running only the lazy stages (which read headers
 * and compose lazy tensors) with `dryRun` set: no tensor data is read and nothing is written.
 *
 * - Reads (`planner/Reads.ts`): the bytes the dry run read (headers, indexes), counted by a
 *   `ReadCounter` as a run counts them, plus the tensor data each writer will pull, from the
 *   tensors' lineage.
 * - Writes: every file each writer would make (shards and index, model.json and its shards), sized
 *   from the headers by the writers' own layout (`Formats.planWrite`).
 * - Memory (`planner/Memory.ts`): per stage and for the run, with the formula documented there.
 * - Status: `ok`; `fails` (what the headers show would fail, with the reason: the plan then
 *   exits 2); `runs at run time` (a stage that is not lazy, or that needs one: it cannot be
 *   planned from headers); `skipped` (after a stage that fails).
 *
 * @since 0.1.0
 */
import { Model, type Port, ReadCounter, type Yaml } from "@crucible/core"
import { Effect, Logger } from "effect"
import { dryRun, type StageOutcome } from "./Executor.ts"
import * as Plan from "./Plan.ts"
import * as RunLog from "./RunLog.ts"
import * as Memory from "./planner/Memory.ts"
import * as Reads from "./planner/Reads.ts"
import { bytes as formatBytes, table } from "./cli/Format.ts"

/** @category models */
export type PlanStatus = "ok" | "runs at run time" | "fails" | "skipped"

/** @category models */
export interface PlannedStage {
  readonly id: string
  readonly kind: string
  readonly level: number
  readonly dependsOn: ReadonlyArray<string>
  readonly status: PlanStatus
  /** Why a stage fails, is skipped, or runs only at run time. */
  readonly reason?: string | undefined
  /** A stage that fails: its error, as `Tag: message`. */
  readonly error?: string | undefined
  readonly tensors?: number | undefined
  readonly bytes?: number | undefined
  /** Estimated peak working memory (see `planner/Memory.ts`); absent for stages the plan does not run. */
  readonly peakMemoryBytes?: number | undefined
}

/** @category models */
export interface PlanReport {
  readonly pipeline: string
  readonly file: string
  readonly levels: ReadonlyArray<ReadonlyArray<string>>
  readonly stages: ReadonlyArray<PlannedStage>
  readonly reads: Reads.Reads
  readonly writes: { readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number; readonly stage: string }>; readonly bytes: number }
  /** The run's estimated peak: the `concurrency` largest pulls (a writer and the merges it pulls through) together. */
  readonly peakMemoryBytes: number
  readonly pulls: ReadonlyArray<Memory.Pull>
  /** The concurrency the peak assumes (`crucible run`'s default). */
  readonly concurrency: number
  readonly mermaid: string
  /** One line per stage that fails: the plan exits 2 when there is any. */
  readonly problems: ReadonlyArray<string>
}

/** Options of {@link make}. */
export interface PlanOptions {
  /** Stages the run will let work at once (default 2, as `crucible run`). */
  readonly concurrency?: number
}

/** Plans a loaded pipeline. */
export const make = (loaded: Yaml.LoadedPipeline, options: PlanOptions = {}): Effect.Effect<PlanReport> =>
  Effect.gen(function* () {
    const { pipeline } = loaded
    const concurrency = options.concurrency ?? 2
    const plan = Plan.make(pipeline)
    const headers = ReadCounter.tally()
    // A dry run's "stage started/succeeded" lines say nothing about the plan, and its failures are
    // the plan's own report: only other warnings and errors are logged.
    const outcomes = yield* dryRun(pipeline, loaded.baseDir, "crucible-plan").pipe(
      Effect.provide(Logger.layer([RunLog.consoleLogger], { mergeWithExisting: false })),
      Effect.provideService(ReadCounter.ReadCounter, headers)
    )
    const levelOf = new Map(plan.levels.flatMap((ids, level) => ids.map((id) => [id, level] as const)))
    const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
    const outcomeOf = new Map(outcomes.map((o) => [o.id, o] as const))
    const memory = Memory.of(outcomes, concurrency)
    const stages = outcomes.map((o): PlannedStage => {
      const model = Model.isModel(o.value) ? o.value : undefined
      return {
        id: o.id,
        kind: o.kind,
        level: levelOf.get(o.id) ?? 0,
        dependsOn: byId.get(o.id)!.dependsOn,
        ...statusOf(o, outcomeOf),
        error: o.error === undefined ? undefined : `${o.error.tag}: ${o.error.message}`,
        tensors: model?.tensors.size,
        bytes: model === undefined ? undefined : Model.totalBytes(model),
        peakMemoryBytes: memory.stages.get(o.id)
      }
    })
    const writes = outcomes.flatMap((o) => (plannedFiles(o.value) ?? []).map((f) => ({ path: f.path, bytes: f.bytes, stage: o.id })))
    return {
      pipeline: pipeline.ir.name,
      file: loaded.file,
      levels: plan.levels,
      stages,
      reads: Reads.of(pipeline, outcomes, headers.totals(), new Set(stages.flatMap((s) => (s.status === "runs at run time" ? [s.id] : [])))),
      writes: { files: writes, bytes: writes.reduce((n, w) => n + w.bytes, 0) },
      peakMemoryBytes: memory.peakBytes,
      pulls: memory.pulls,
      concurrency,
      mermaid: mermaid(pipeline.stages),
      problems: stages.flatMap((s) => (s.status === "fails" ? [`stage "${s.id}": ${s.error ?? s.reason}`] : []))
    }
  })

// A dry run skips what is not lazy ("planned") and everything after it; it is run at run time,
// not a failure. A stage after a real failure is skipped, as the run would skip it.
const statusOf = (o: StageOutcome, outcomes: ReadonlyMap<string, StageOutcome>): { readonly status: PlanStatus; readonly reason?: string } => {
  switch (o.status) {
    case "succeeded": return { status: "ok" }
    case "planned": return { status: "runs at run time", reason: "not lazy: it reads tensor data, so it is not run by a plan" }
    case "skipped": {
      const root = o.blockedBy === undefined ? undefined : outcomes.get(o.blockedBy)
      return root?.status === "planned"
        ? { status: "runs at run time", reason: `needs "${root.id}", which runs at run time` }
        : { status: "skipped", reason: `"${o.blockedBy}" fails` }
    }
    default: return { status: "fails", reason: o.error === undefined ? o.status : `${o.error.tag}: ${o.error.message}` }
  }
}

const plannedFiles = (value: unknown): Port.Files["files"] | undefined => {
  const files = value as Port.Files | undefined
  return files?.planned === undefined ? undefined : files.files
}

/** The DAG as a Mermaid flowchart. */
export const mermaid = (stages: ReadonlyArray<{ readonly id: string; readonly kind: { readonly kind: string }; readonly dependsOn: ReadonlyArray<string> }>): string =>
  [
    "flowchart TD",
    ...stages.map((s) => `  ${s.id}["${s.id}<br/>${s.kind.kind}"]`),
    ...stages.flatMap((s) => s.dependsOn.map((d) => `  ${d} --> ${s.id}`))
  ].join("\n")

/** The plan as text for a terminal. */
export const format = (report: PlanReport): string => {
  const { reads, writes } = report
  const estimate = (f: Reads.FileRead) => (f.exact ? "" : ", estimated")
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`
  const largest = [...report.pulls].sort((a, b) => b.bytes - a.bytes).slice(0, report.concurrency)
  return [
    `pipeline ${report.pipeline} (${report.file})`,
    "",
    table(
      ["level", "stage", "kind", "after", "tensors", "size", "peak memory", "status"],
      report.stages.map((s) => [
        String(s.level), s.id, s.kind, s.dependsOn.join(", ") || "-",
        s.tensors === undefined ? "" : String(s.tensors),
        s.bytes === undefined ? "" : formatBytes(s.bytes),
        s.peakMemoryBytes === undefined ? "" : formatBytes(s.peakMemoryBytes),
        s.status
      ])
    ),
    "",
    `reads:  ${plural(reads.files.length, "file")}, ${formatBytes(reads.bytes)}${reads.exact ? "" : " (not exact: see below)"}`,
    ...reads.files.map((f) => `        ${f.path}  ${formatBytes(f.bytes)} (headers ${formatBytes(f.headerBytes)}, tensor data ${formatBytes(f.dataBytes)}${estimate(f)})`),
    ...(reads.unknownBytes > 0 ? [`        + ${formatBytes(reads.unknownBytes)} of tensors from unknown files (a kind that gives its tensors no lineage)`] : []),
    ...(reads.files.some((f) => !f.exact) ? ["        estimated: read by a stage that runs at run time, or by a reader whose reads are close, not exact (PyTorch)"] : []),
    `writes: ${plural(writes.files.length, "file")}, ${formatBytes(writes.bytes)}`,
    ...writes.files.map((f) => `        ${f.path}  ${formatBytes(f.bytes)}`),
    `peak memory: ${formatBytes(report.peakMemoryBytes)}${largest.length === 0 ? "" : ` (${largest.map((p) => `${p.stage}${p.stages.length > 1 ? ` pulling through ${p.stages.slice(1).join(", ")}` : ""}: ${formatBytes(p.bytes)}`).join("; ")}; at most ${report.concurrency} writers at once)`}`,
    ...(report.stages.some((s) => s.status === "runs at run time") ? ["        stages that run at run time are not in these figures"] : []),
    ...(report.problems.length > 0 ? ["", "problems:", ...report.problems.map((p) => `  - ${p}`)] : []),
    "",
    "mermaid:",
    report.mermaid
  ].join("\n")
}
