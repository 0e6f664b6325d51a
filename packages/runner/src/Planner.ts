/**
 * `crucible plan`: the DAG, what a run will read and write, and an estimate of its peak memory,
 * computed by running only the lazy stages (which read headers and compose lazy tensors) with
 * `dryRun` set — no tensor data is read and nothing is written.
 *
 * @since 0.1.0
 */
import { Cast, Model, type Port, type Yaml } from "@crucible/core"
import { Effect, References } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { Reporter } from "./Events.ts"
import { execute } from "./Executor.ts"
import * as Plan from "./Plan.ts"
import { bytes as formatBytes, table } from "./cli/Format.ts"

/** @category models */
export interface PlanReport {
  readonly pipeline: string
  readonly file: string
  readonly levels: ReadonlyArray<ReadonlyArray<string>>
  readonly stages: ReadonlyArray<{
    readonly id: string
    readonly kind: string
    readonly level: number
    readonly dependsOn: ReadonlyArray<string>
    readonly status: "ok" | "runs at run time" | "fails"
    readonly tensors?: number | undefined
    readonly bytes?: number | undefined
    readonly error?: string | undefined
  }>
  readonly reads: { readonly files: ReadonlyArray<string>; readonly bytes: number }
  readonly writes: { readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number }>; readonly bytes: number }
  /** Estimated peak of tensor memory for the streaming stages: the largest tensor, as float32, once per input model plus the output and a chunk being written. */
  readonly peakMemoryBytes: number
  readonly mermaid: string
  readonly problems: ReadonlyArray<string>
}

/** Plans a loaded pipeline. */
export const make = (loaded: Yaml.LoadedPipeline): Effect.Effect<PlanReport> =>
  Effect.gen(function* () {
    const { pipeline } = loaded
    const plan = Plan.make(pipeline)
    // A dry run's "stage started/succeeded" lines say nothing about the plan: only warnings and errors are logged.
    const outcomes = yield* execute({ pipeline, baseDir: loaded.baseDir, runDir: path.join(os.tmpdir(), "crucible-plan"), concurrency: 4, dryRun: true }).pipe(
      Effect.provideService(Reporter, Reporter.silent),
      Effect.provideService(References.MinimumLogLevel, "Warn")
    )
    const levelOf = new Map(plan.levels.flatMap((ids, level) => ids.map((id) => [id, level] as const)))
    const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
    const reads = new Map<string, number>()
    const writes: Array<{ path: string; bytes: number }> = []
    let largestTensor = 0
    let models = 0
    const stages = outcomes.map((o) => {
      const value = o.value as (Model.Model & Port.Files) | undefined
      const isModel = value?.tensors instanceof Map
      if (isModel && byId.get(o.id)!.dependsOn.length === 0) {
        models++
        for (const f of value.files) reads.set(f, Model.totalBytes(value))
        largestTensor = Math.max(largestTensor, Model.largestTensorBytes(Cast.cast(value, "F32")))
      }
      if (!isModel && Array.isArray(value?.files)) writes.push(...value.files.map((f) => ({ path: f.path, bytes: f.bytes })))
      return {
        id: o.id,
        kind: o.kind,
        level: levelOf.get(o.id) ?? 0,
        dependsOn: byId.get(o.id)!.dependsOn,
        status: o.status === "planned" ? ("runs at run time" as const) : o.status === "succeeded" ? ("ok" as const) : ("fails" as const),
        tensors: isModel ? value.tensors.size : undefined,
        bytes: isModel ? Model.totalBytes(value) : undefined,
        error: o.error === undefined ? undefined : `${o.error.tag}: ${o.error.message}`
      }
    })
    const problems = stages.flatMap((s) => (s.error === undefined ? [] : [`stage "${s.id}": ${s.error}`]))
    return {
      pipeline: pipeline.ir.name,
      file: loaded.file,
      levels: plan.levels,
      stages,
      reads: { files: [...reads.keys()], bytes: [...reads.values()].reduce((a, b) => a + b, 0) },
      writes: { files: writes, bytes: writes.reduce((a, w) => a + w.bytes, 0) },
      peakMemoryBytes: largestTensor * (models + 2),
      mermaid: mermaid(pipeline.stages),
      problems
    }
  })

/** The DAG as a Mermaid flowchart. */
export const mermaid = (stages: ReadonlyArray<{ readonly id: string; readonly kind: { readonly kind: string }; readonly dependsOn: ReadonlyArray<string> }>): string =>
  [
    "flowchart TD",
    ...stages.map((s) => `  ${s.id}["${s.id}<br/>${s.kind.kind}"]`),
    ...stages.flatMap((s) => s.dependsOn.map((d) => `  ${d} --> ${s.id}`))
  ].join("\n")

/** The plan as text for a terminal. */
export const format = (report: PlanReport): string =>
  [
    `pipeline ${report.pipeline} (${report.file})`,
    "",
    table(
      ["level", "stage", "kind", "after", "tensors", "size", "status"],
      report.stages.map((s) => [String(s.level), s.id, s.kind, s.dependsOn.join(", ") || "-", s.tensors === undefined ? "" : String(s.tensors), s.bytes === undefined ? "" : formatBytes(s.bytes), s.status])
    ),
    "",
    `reads:  ${report.reads.files.length} files, ${formatBytes(report.reads.bytes)}`,
    ...report.reads.files.map((f) => `        ${f}`),
    `writes: ${report.writes.files.length} files, ${formatBytes(report.writes.bytes)}`,
    ...report.writes.files.map((f) => `        ${f.path} (${formatBytes(f.bytes)})`),
    `estimated peak tensor memory: ${formatBytes(report.peakMemoryBytes)} (streaming, largest tensor × (models + 2))`,
    ...(report.problems.length > 0 ? ["", "problems:", ...report.problems.map((p) => `  - ${p}`)] : []),
    "",
    "mermaid:",
    report.mermaid
  ].join("\n")
