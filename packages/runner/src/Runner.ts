/**
 * The programmatic API: `Runner.run` takes a pipeline — a YAML or TypeScript file, a `Builder`,
 * or its IR — creates its run directory, executes it under a trace, and records the manifest,
 * `trace.json`, the event and log files and `report.html`. The CLI is a thin layer over this.
 *
 * ```ts
 * import { Runner } from "@crucible/runner"
 * const result = await Runner.runPromise("pipeline.yaml", { runsDir: "runs" })
 * console.log(result.status, result.runDir)
 * ```
 *
 * @since 0.1.0
 */
import { type PipelineError, Problem, ReadCounter, ReadTap, Registry, type RunCache, type Validate, Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect, Layer, Option } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as path from "node:path"
import { emit, Reporter, type RunEvent } from "./Events.ts"
import { execute, type StageOutcome } from "./Executor.ts"
import * as Interruption from "./Interruption.ts"
import * as Manifest from "./Manifest.ts"
import * as PipelineSource from "./PipelineSource.ts"
import * as RunDir from "./RunDir.ts"
import * as RunLog from "./RunLog.ts"
import * as FileDigests from "./store/FileDigests.ts"
import * as Identity from "./store/Identity.ts"
import * as Layout from "./store/Layout.ts"
import * as Rerun from "./store/Rerun.ts"
import * as ResultStore from "./store/ResultStore.ts"
import * as Sweep from "./store/Sweep.ts"
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
  /** Modules of stage kinds to import (the CLI's `--kinds`), relative to the working directory. */
  readonly kindModules?: ReadonlyArray<string>
  /** For a pipeline given as a builder or an IR: the folder its relative paths resolve against (default: the working directory). */
  readonly baseDir?: string
  /** For a mergekit config: the folder the merged model is written to (`--out`). */
  readonly out?: string
  /**
   * Telemetry for the run, given the run's id and directory. Default: {@link defaultTelemetry}
   * (`trace.json` in the run directory, and OTLP when the `OTEL_*` variables say so); `"none"`
   * records no trace.
   */
  readonly telemetry?: ((run: { readonly runId: string; readonly runDir: string }) => ReturnType<typeof Telemetry.layer>) | "none"
  /** Called with every event of the run (besides the `Reporter` service, when one is provided). */
  readonly onEvent?: (event: RunEvent) => void
  /**
   * Check the inputs' headers before anything runs (default: true): unreadable files, shapes that
   * disagree, per-tensor params out of range fail the load with every problem, as `crucible validate`.
   */
  readonly preflight?: boolean
  /**
   * Reuse stored results and training checkpoints (default: true). `false` (`--no-cache`) computes
   * every stage afresh; what it computes is stored again for later runs.
   */
  readonly cache?: boolean
  /** Stages to compute afresh, with every stage that depends on them (`--rerun STAGE`). */
  readonly rerun?: ReadonlyArray<string>
  /** The results store (default: `<runsDir>/.cache`), shared by every run that names it. */
  readonly cacheDir?: string
  /** Attributes every stage span carries besides its own (a cluster worker's id and host). */
  readonly spanAttributes?: Readonly<Record<string, string>>
  /**
   * The results store's implementation, given its root (default: `ResultStore.make`, a POSIX
   * folder — local, or NFS shared by cluster workers). Another store (an object store with a local
   * cache) implements the `ResultStore` interface and is given here.
   */
  readonly resultStore?: (root: string) => Effect.Effect<ResultStore.ResultStore>
  /** The memo of derived values (datasets…) the stages share (default: a fresh one for the run). */
  readonly runCache?: RunCache.Shape
  /** Where the warnings of loading go (a filter that matches no tensor); default: logged at warning level. */
  readonly onWarnings?: (warnings: ReadonlyArray<Problem.Problem>, file: string) => Effect.Effect<void>
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

/** A pipeline as `run` takes it: a file (YAML, `.ts`, `.mts`, `.js`, `.mjs`), a `Builder`, or its IR. */
export type PipelineInput = PipelineSource.PipelineInput

/** Why a pipeline could not be loaded: invalid (every problem listed), unreadable, or a kinds module that failed. */
export type LoadError = PipelineSource.LoadError

/** Loads and validates a pipeline with the run's registry; with `preflight`, also from its inputs' headers. */
export const load = (pipeline: PipelineInput, options: Pick<RunOptions, "kinds" | "kindModules" | "baseDir" | "preflight" | "out"> = {}): Effect.Effect<PipelineSource.LoadedPipeline, LoadError> =>
  PipelineSource.load(pipeline, options)

/**
 * Runs a pipeline. Fails when it cannot be loaded, when its run directory cannot be made (an
 * invalid or taken `runId`), or when the run's own record could not be written (see
 * {@link runLoaded}); stage failures are in the result. Events go to the `Reporter` service when
 * one is provided, and to `onEvent`.
 */
export const run = (pipeline: PipelineInput, options: RunOptions = {}): Effect.Effect<RunResult, LoadError | TelemetryError | RunDir.RunDirError | Rerun.RerunUnknownStage> =>
  Effect.flatMap(load(pipeline, { ...options, preflight: options.preflight ?? true }), (loaded) =>
    Effect.andThen(
      loaded.warnings.length === 0
        ? Effect.void
        : options.onWarnings?.(loaded.warnings, loaded.file) ?? Effect.forEach(loaded.warnings, (w) => Effect.logWarning(Problem.format(w, loaded.file)), { discard: true }),
      runLoaded(loaded, options)
    ))

/** `run` as a Promise, for code outside Effect. It rejects with the tagged error where `run` fails. */
export const runPromise = (pipeline: PipelineInput, options: RunOptions = {}): Promise<RunResult> => Effect.runPromise(run(pipeline, options))

/** A new run id: time, pipeline name, and a random suffix (always a valid {@link RunDir.isRunId}). */
export const newRunId = (name: string): string => {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..+$/, "").replace("T", "-")
  return `${stamp}-${name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 40)}-${randomBytes(2).toString("hex")}`
}

/**
 * Runs an already loaded pipeline. It fails with a `RunDirError` when `runId` is not a plain name
 * or is taken, and when the run's own record (event log, manifest) could not be written — after
 * the run has ended and written what it could.
 */
export const runLoaded = (loaded: PipelineSource.LoadedPipeline, options: RunOptions = {}): Effect.Effect<RunResult, TelemetryError | RunDir.RunDirError | Rerun.RerunUnknownStage> =>
  Effect.gen(function* () {
    const provided = Option.getOrElse(yield* Effect.serviceOption(Reporter), () => Reporter.silent)
    const outer: Reporter["Service"] = options.onEvent === undefined
      ? provided
      : { emit: (event) => Effect.andThen(Effect.sync(() => options.onEvent!(event)), provided.emit(event)) }
    const { pipeline } = loaded
    const rerun = yield* Rerun.closure(pipeline, options.rerun ?? [])
    const runId = options.runId ?? newRunId(pipeline.ir.name)
    const runDir = yield* RunDir.create(options.runsDir ?? "runs", runId)
    // Every event also goes to events.jsonl, which the dashboard follows while the run is live. A
    // failed write (a full disk) ends the log, not the run: the reporters still get every event.
    const eventLog = yield* RunDir.lineLog(path.join(runDir, "events.jsonl"))
    const reporter: Reporter["Service"] = {
      emit: (event) => Effect.andThen(Effect.sync(() => eventLog.append(JSON.stringify(event))), outer.emit(event))
    }
    const runLog = yield* Effect.tapError(RunDir.lineLog(path.join(runDir, "log.jsonl")), () => Effect.sync(eventLog.close))
    const written = { manifest: undefined as RunDir.RunFileUnwritable | undefined }
    const result = yield* Effect.ensuring(
      runIn(loaded, options, runId, runDir, rerun, written).pipe(Effect.provide(RunLog.layerTo(runLog))),
      Effect.sync(() => (eventLog.close(), runLog.close()))
    ).pipe(Effect.provideService(Reporter, reporter))
    const lost = eventLog.failure() ?? written.manifest ?? runLog.failure()
    return lost === undefined ? result : yield* lost
  })

const runIn = (
  loaded: PipelineSource.LoadedPipeline,
  options: RunOptions,
  runId: string,
  runDir: string,
  rerun: ReadonlySet<string>,
  written: { manifest: RunDir.RunFileUnwritable | undefined }
): Effect.Effect<RunResult, TelemetryError, Reporter> =>
  Effect.scoped(Effect.gen(function* () {
    const { pipeline } = loaded
    const startedAt = new Date()
    const base = {
      crucible: { manifestVersion: 1 as const },
      runId,
      // Who runs it: a manifest left `running` by a process that is gone reads `crashed`.
      ...Manifest.ownerNow(),
      startedAt: startedAt.toISOString(),
      pipeline: {
        name: pipeline.ir.name,
        file: loaded.file,
        sha256: createHash("sha256").update(loaded.text).digest("hex"),
        ir: pipeline.ir,
        inputPorts: Object.fromEntries(pipeline.stages.map((s) => [s.kind.kind, Object.keys(s.kind.inputs as Record<string, unknown>)]))
      },
      tools: Manifest.toolVersions()
    }
    const manifestFile = path.join(runDir, "manifest.json")
    // A manifest that cannot be written does not stop the run (a later write may succeed); the
    // last write decides whether the run's record is complete.
    const writeManifest = (manifest: Manifest.Manifest) =>
      Manifest.write(manifestFile, manifest).pipe(
        Effect.map(() => (written.manifest = undefined)),
        Effect.catch((e) => Effect.sync(() => (written.manifest = new RunDir.RunFileUnwritable({ file: manifestFile, operation: e.operation, detail: e.detail }))))
      )
    yield* writeManifest({ ...base, status: "running", stages: [], inputs: [], outputs: [] })
    yield* emit({ type: "run-started", time: Date.now(), runId, runDir, pipeline: pipeline.ir.name, stages: pipeline.stages.map((s) => s.id) })
    const telemetry = options.telemetry === "none" ? Layer.empty : (options.telemetry ?? defaultTelemetry())({ runId, runDir })
    // The manifest follows the run stage by stage, so a crash or a kill leaves the last state on disk.
    const known = new Map<string, StageOutcome>()
    const knownInOrder = () => pipeline.stages.flatMap((s) => known.get(s.id) ?? [])
    // The results store, by stage key (results, training checkpoints), shared by the runs of one runs folder.
    const cacheRoot = options.cacheDir === undefined ? path.join(path.dirname(runDir), ".cache") : path.resolve(options.cacheDir)
    const store = yield* (options.resultStore ?? ResultStore.make)(cacheRoot)
    // What killed runs left (temporaries at output paths, in other runs' folders, in the store) goes first.
    yield* store.sweep
    yield* Sweep.orphans(Sweep.outputFolders(pipeline, loaded.baseDir, path.dirname(runDir)))
    yield* Sweep.folderOrphans(pipeline, loaded.baseDir)
    // Stage keys are not computed before the stages run: those whose files have remembered digests
    // are known now, the others pending. The checkpoints `load`s read are hashed from the stages'
    // reads of them (ReadTap); other files a pending key waits for, on worker threads beside the stages.
    const taps = yield* ReadTap.make()
    const fileDigests = yield* FileDigests.make(Layout.digestsDir(cacheRoot), taps)
    const keys = Identity.lazyStageKeys(pipeline, loaded.baseDir, fileDigests, readsInOrder)
    for (const { file } of keys.pendingFiles.filter((p) => p.tapped)) {
      for (const f of fileDigests.filesOf(file)) if (fileDigests.known(f) === undefined) taps.want(f)
    }
    yield* Effect.forkScoped(keys.hashUntapped)
    const recompute = Rerun.withEqualKeys(pipeline, rerun, keys.known)
    const reuse = (stage: string) => options.cache !== false && !recompute.has(stage)
    // Input checkpoints are hashed for the manifest while the stages run (Manifest.inputDigests),
    // tapped ones finished from the stages' reads when the run ends.
    const digests = yield* Manifest.inputDigests(fileDigests, taps.has)
    // Bytes the stages read from each file, for the manifest (what `crucible plan` predicts).
    const reads = ReadCounter.tally()
    const snapshot = (status: Manifest.Manifest["status"]) =>
      writeManifest({
        ...base,
        status,
        ...(status === "running" ? {} : { endedAt: new Date().toISOString() }),
        stages: Manifest.stageRecords(pipeline, knownInOrder()),
        inputs: [],
        outputs: Manifest.filesOf([...known.values()]).outputs
      })
    // An interrupted stage's outcome does not say whether it was running: the events do.
    const started = Interruption.startedStages()
    const reporter = yield* Reporter
    const interrupted = Effect.suspend(() =>
      emit(Interruption.event({ outcomes: knownInOrder(), started, runDir, cacheRoot, durationMs: Date.now() - startedAt.getTime(), time: Date.now() }))
    )
    const outcomes = yield* execute({
      pipeline,
      baseDir: loaded.baseDir,
      runDir,
      cacheRoot,
      store,
      keys: keys.known,
      resolveKey: keys.resolve,
      reuse,
      runId,
      concurrency: options.concurrency ?? 2,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
      ...(options.memoryLimit === undefined ? {} : { memoryLimit: options.memoryLimit }),
      positions: loaded.positions,
      ...(options.spanAttributes === undefined ? {} : { spanAttributes: options.spanAttributes }),
      ...(options.runCache === undefined ? {} : { runCache: options.runCache }),
      // The GPU's adapter is one of the tools that shaped the outputs (later manifest writes carry it).
      onGpu: (gpu) => Effect.sync(() => void (base.tools["gpu"] = gpu.adapter)),
      onOutcome: (o) =>
        Effect.suspend(() => {
          known.set(o.id, o)
          return Effect.andThen(Effect.forEach(Manifest.filesOf([o]).inputs, digests.start, { discard: true }), snapshot("running"))
        })
    }).pipe(
      Effect.onInterrupt(() => Effect.andThen(snapshot("interrupted"), Effect.andThen(interrupted, writeReport(runDir, loaded.registry)))),
      Effect.withSpan(`run ${pipeline.ir.name}`, { attributes: { "crucible.run.id": runId, "crucible.pipeline.name": pipeline.ir.name, "crucible.pipeline.file": loaded.file } }),
      Effect.provideService(Reporter, { emit: (event) => Effect.andThen(Effect.sync(() => started.observe(event)), reporter.emit(event)) }),
      Effect.provide(telemetry),
      Effect.provideService(ReadCounter.ReadCounter, reads),
      Effect.provideService(ReadTap.ReadTap, taps)
    )
    const status = runStatus(outcomes)
    const files = Manifest.filesOf(outcomes)
    const inputs = Manifest.withBytesRead(yield* digests.finish(files.inputs), reads.totals())
    const tapped = taps.stats()
    if (tapped.fed + tapped.reread > 0) {
      yield* Effect.logInfo(`input digests: ${tapped.fed} bytes hashed from the stages' reads, ${tapped.reread} read again, readers waited for the hash ${tapped.waits} times`).pipe(
        Effect.annotateLogs({ "crucible.digests.fed": tapped.fed, "crucible.digests.reread": tapped.reread, "crucible.digests.waits": tapped.waits })
      )
    }
    yield* writeManifest({
      ...base,
      status,
      endedAt: new Date().toISOString(),
      stages: Manifest.stageRecords(pipeline, outcomes),
      inputs,
      outputs: files.outputs
    })
    yield* emit({ type: "run-finished", time: Date.now(), status, durationMs: Date.now() - startedAt.getTime(), runDir })
    yield* writeReport(runDir, loaded.registry)
    return { runId, runDir, status, outcomes }
  }))

// The stages whose declared reads other stages read through, in order: a `load`'s checkpoint (lazy, a model out).
const readsInOrder = (stage: Validate.ResolvedStage): boolean => stage.kind.resources.lazy && stage.kind.output.name !== "files" && Object.keys(stage.kind.inputs as object).length === 0

// report.html is a view of the run: failing to write it (or a bug in it) never fails the run.
const writeReport = (runDir: string, registry: Registry.Registry) => Effect.ignoreCause(Report.write(runDir, { inputPorts: inputPortsOf(registry) }))

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
