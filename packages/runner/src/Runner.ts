/**
 * The programmatic API: `Runner.run` loads a pipeline file (or takes a resolved pipeline),
 * creates its run directory, executes it under a trace, and records the manifest. The CLI is a
 * thin layer over this.
 *
 * @since 0.1.0
 */
import { type PipelineError, Registry, type Validate, Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect, Layer } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { emit, Reporter } from "./Events.ts"
import { execute, type StageOutcome } from "./Executor.ts"
import * as Manifest from "./Manifest.ts"
import * as RunLog from "./RunLog.ts"
import * as Telemetry from "./telemetry/Telemetry.ts"
import type { TelemetryError } from "./telemetry/TelemetryError.ts"
import * as Report from "./ui/Report.ts"
import { inputPortsOf } from "./ui/RunData.ts"

/** @category models */
export interface RunOptions {
  /** Where run directories are created (default `runs/` in the working directory). */
  readonly runsDir?: string
  readonly runId?: string
  /** Stages doing work at once (default: 2). */
  readonly concurrency?: number
  /** Bytes that tensor working sets of concurrent stages may hold at once (`--memory-limit`). */
  readonly memoryLimit?: number
  /** TF.js backend for stages that run models: wasm (default), cpu, tensorflow (tfjs-node[-gpu] when installed). */
  readonly backend?: string
  /** Extra stage kinds, added to the built-in ones. */
  readonly kinds?: Registry.Registry
  /** Telemetry for the run, given the run's id and directory (see {@link defaultTelemetry}). */
  readonly telemetry?: (run: { readonly runId: string; readonly runDir: string }) => ReturnType<typeof Telemetry.layer>
}

/** @category models */
export interface RunResult {
  readonly runId: string
  readonly runDir: string
  readonly status: "succeeded" | "failed" | "interrupted"
  readonly outcomes: ReadonlyArray<StageOutcome>
}

/** The registry a run uses: the built-in kinds plus the user's. */
export const registryFor = (options: Pick<RunOptions, "kinds">): Registry.Registry =>
  options.kinds === undefined ? builtinRegistry : Registry.extend(builtinRegistry, options.kinds.kinds.values())

/** Loads and validates a pipeline file with the run's registry. */
export const load = (file: string, options: Pick<RunOptions, "kinds"> = {}): Effect.Effect<Yaml.LoadedPipeline, PipelineError.PipelineInvalid | PipelineError.PipelineUnreadable> =>
  Yaml.load(file, registryFor(options))

/** Runs a pipeline file. Fails only when the file is invalid; stage failures are in the result. */
export const run = (file: string, options: RunOptions = {}): Effect.Effect<RunResult, PipelineError.PipelineInvalid | PipelineError.PipelineUnreadable | TelemetryError, Reporter> =>
  Effect.flatMap(load(file, options), (loaded) => runLoaded(loaded, options))

/** A new run id: time, pipeline name, and a random suffix. */
export const newRunId = (name: string): string => {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..+$/, "").replace("T", "-")
  return `${stamp}-${name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 40)}-${randomBytes(2).toString("hex")}`
}

/** Runs an already loaded pipeline. */
export const runLoaded = (loaded: Yaml.LoadedPipeline, options: RunOptions = {}): Effect.Effect<RunResult, TelemetryError, Reporter> =>
  Effect.gen(function* () {
    const outer = yield* Reporter
    const { pipeline } = loaded
    const runId = options.runId ?? newRunId(pipeline.ir.name)
    const runDir = path.resolve(options.runsDir ?? "runs", runId)
    fs.mkdirSync(runDir, { recursive: true })
    // Every event also goes to events.jsonl, which the dashboard follows while the run is live.
    const eventLog = fs.openSync(path.join(runDir, "events.jsonl"), "a")
    const reporter: Reporter["Service"] = {
      emit: (event) => Effect.andThen(Effect.sync(() => fs.writeSync(eventLog, `${JSON.stringify(event)}\n`)), outer.emit(event))
    }
    return yield* Effect.ensuring(runIn(loaded, options, runId, runDir), Effect.sync(() => fs.closeSync(eventLog))).pipe(Effect.provideService(Reporter, reporter))
  })

const runIn = (loaded: Yaml.LoadedPipeline, options: RunOptions, runId: string, runDir: string): Effect.Effect<RunResult, TelemetryError, Reporter> =>
  Effect.scoped(Effect.gen(function* () {
    const { pipeline } = loaded
    const startedAt = new Date()
    const base = {
      crucible: { manifestVersion: 1 as const },
      runId,
      startedAt: startedAt.toISOString(),
      pipeline: { name: pipeline.ir.name, file: loaded.file, sha256: createHash("sha256").update(loaded.text).digest("hex"), ir: pipeline.ir },
      tools: Manifest.toolVersions()
    }
    const manifestFile = path.join(runDir, "manifest.json")
    yield* Manifest.write(manifestFile, { ...base, status: "running", stages: [], inputs: [], outputs: [] }).pipe(Effect.ignore)
    yield* emit({ type: "run-started", time: Date.now(), runId, runDir, pipeline: pipeline.ir.name, stages: pipeline.stages.map((s) => s.id) })
    const telemetry = options.telemetry?.({ runId, runDir }) ?? Layer.empty
    // The manifest follows the run stage by stage, so a crash or a kill leaves the last state on disk.
    const known = new Map<string, StageOutcome>()
    // Input checkpoints are hashed for the manifest while the stages run (Manifest.inputDigests).
    const digests = yield* Manifest.inputDigests(path.join(path.dirname(runDir), ".cache", "digests.json"))
    const snapshot = (status: Manifest.Manifest["status"]) =>
      Manifest.write(manifestFile, {
        ...base,
        status,
        ...(status === "running" ? {} : { endedAt: new Date().toISOString() }),
        stages: Manifest.stageRecords(pipeline, pipeline.stages.flatMap((s) => known.get(s.id) ?? [])),
        inputs: [],
        outputs: Manifest.filesOf([...known.values()]).outputs
      }).pipe(Effect.ignore)
    const outcomes = yield* execute({
      pipeline,
      baseDir: loaded.baseDir,
      runDir,
      concurrency: options.concurrency ?? 2,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
      ...(options.memoryLimit === undefined ? {} : { memoryLimit: options.memoryLimit }),
      positions: stagePositions(loaded),
      onOutcome: (o) =>
        Effect.suspend(() => {
          known.set(o.id, o)
          return Effect.andThen(Effect.forEach(Manifest.filesOf([o]).inputs, digests.start, { discard: true }), snapshot("running"))
        })
    }).pipe(
      Effect.onInterrupt(() => Effect.andThen(snapshot("interrupted"), writeReport(runDir, options))),
      Effect.withSpan(`run ${pipeline.ir.name}`, { attributes: { "crucible.run.id": runId, "crucible.pipeline.name": pipeline.ir.name, "crucible.pipeline.file": loaded.file } }),
      Effect.provide(RunLog.layer(path.join(runDir, "log.jsonl"))),
      Effect.provide(telemetry)
    )
    const status = runStatus(outcomes)
    const files = Manifest.filesOf(outcomes)
    const inputs = yield* digests.finish(files.inputs)
    yield* Manifest.write(manifestFile, {
      ...base,
      status,
      endedAt: new Date().toISOString(),
      stages: Manifest.stageRecords(pipeline, outcomes),
      inputs,
      outputs: files.outputs
    }).pipe(Effect.ignore)
    yield* emit({ type: "run-finished", time: Date.now(), status, durationMs: Date.now() - startedAt.getTime(), runDir })
    yield* writeReport(runDir, options)
    return { runId, runDir, status, outcomes }
  }))

// report.html is a view of the run: failing to write it (or a bug in it) never fails the run.
const writeReport = (runDir: string, options: Pick<RunOptions, "kinds">) => Effect.ignoreCause(Report.write(runDir, { inputPorts: inputPortsOf(registryFor(options)) }))

/** `file:line:col` of every stage's id in the pipeline file. */
const stagePositions = (loaded: Yaml.LoadedPipeline): ReadonlyMap<string, string> => {
  const { locate } = Yaml.parse(loaded.text)
  return new Map(loaded.pipeline.stages.flatMap((s) => {
    const at = locate(["stages", s.id], { key: true })
    return at === undefined ? [] : [[s.id, `${loaded.file}:${at.line}:${at.col}`] as const]
  }))
}

const runStatus = (outcomes: ReadonlyArray<StageOutcome>): RunResult["status"] =>
  outcomes.some((o) => o.status === "interrupted") ? "interrupted" : outcomes.some((o) => o.status === "failed" || o.status === "skipped") ? "failed" : "succeeded"

/** Resolves a pipeline given as text (for tests and embedding). */
export const decode = (text: string, options: Pick<RunOptions, "kinds"> & { readonly file?: string } = {}): Effect.Effect<Validate.ResolvedPipeline, PipelineError.PipelineInvalid> =>
  Yaml.decode(text, registryFor(options), options.file)

/**
 * The telemetry of a CLI run: every span goes to `trace.json` in the run directory (OTLP JSON), and
 * over OTLP when `otlpUrl` (a base endpoint, like `OTEL_EXPORTER_OTLP_ENDPOINT`) or the standard
 * `OTEL_*` variables say so.
 */
export const defaultTelemetry = (otlpUrl?: string) => (run: { readonly runId: string; readonly runDir: string }) =>
  Telemetry.layer({ runId: run.runId, traceFile: path.join(run.runDir, "trace.json"), ...(otlpUrl === undefined ? {} : { otlpUrl }) })
