/**
 * The `crucible` command tree: a thin layer of flags over the programmatic API (`Runner`,
 * `Planner`, core's formats). Each handler returns its exit code; `main.ts` applies it.
 *
 * @since 0.1.0
 */
import { ByteSize, Formats, Problem } from "@crucible/core"
import { Effect, Option, Result } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { Reporter } from "../Events.ts"
import * as Planner from "../Planner.ts"
import * as Convert from "../Convert.ts"
import * as Runner from "../Runner.ts"
import * as Server from "../ui/Server.ts"
import * as CacheCommand from "./CacheCommand.ts"
import * as ClusterCommands from "./ClusterCommands.ts"
import { ExitCode, forRun } from "./ExitCode.ts"
import * as Format from "./Format.ts"
import * as ImportCommand from "./ImportCommand.ts"
import * as Interrupted from "./Interrupted.ts"
import { err, out } from "./Print.ts"
import * as KindsCommand from "./KindsCommand.ts"
import * as Reporters from "./Reporters.ts"
import * as RunsCommand from "./RunsCommand.ts"
import * as SchemaCommand from "./SchemaCommand.ts"

/** Where a command's exit code goes. */
export interface ExitSink {
  code: number
}

const pipelineArg = Argument.String("pipeline").pipe(Argument.withDescription("the pipeline: a YAML file, or a .ts/.mts/.js/.mjs module whose default export is a built pipeline"))

/** `--kinds FILE` (repeatable): modules of the user's own stage kinds, added to the built-in ones. */
export const kindsFlag = Flag.String("kinds").pipe(
  Flag.withDescription("a module of your own stage kinds (exports of Stage.define); repeat for more"),
  Flag.atLeast(0)
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("print machine-readable JSON (one event per line for run)"), Flag.withDefault(false))
// mergekit-yaml config.yml DIR: run writes there; validate checks and plan lists the files of that folder.
const outFlag = Flag.String("out").pipe(Flag.withDescription("for a mergekit config: the folder the merged model is written to, as mergekit-yaml config.yml DIR (default: merged/ beside the config)"), Flag.optional)

/** Reports an invalid or unreadable pipeline: human text on stderr, or JSON on stdout. */
const outOf = (out: Option.Option<string>): { readonly out?: string } => Option.match(out, { onNone: () => ({}), onSome: (dir) => ({ out: dir }) })

const reportLoadError = (error: { readonly _tag: string; readonly message: string; readonly problems?: ReadonlyArray<unknown> }, asJson: boolean) =>
  asJson ? out(JSON.stringify({ ok: false, error: error._tag, problems: error.problems ?? [], message: error.message })) : err(error.message)

/** Warnings of a pipeline that is valid nonetheless, as `file:line:col: warning [Code] …` with their frames. */
const reportWarnings = (warnings: ReadonlyArray<Problem.Problem>, file: string) =>
  warnings.length === 0 ? Effect.void : err(warnings.map((w) => Problem.format(w, file)).join("\n\n"))

/** Builds the command tree; `exit` receives the code. */
export const make = (exit: ExitSink) => {
  const run = Command.make(
    "run",
    {
      pipeline: pipelineArg,
      concurrency: Flag.Int("concurrency").pipe(Flag.withDescription("stages doing work at the same time"), Flag.withDefault(2)),
      runsDir: Flag.String("runs-dir").pipe(Flag.withDescription("where run directories are created"), Flag.withDefault("runs")),
      memoryLimit: Flag.String("memory-limit").pipe(Flag.withDescription("tensor memory concurrent stages may hold at once, e.g. 4GB (default: unlimited)"), Flag.optional),
      backend: Flag.String("backend").pipe(Flag.withDescription("TF.js backend: wasm (default), cpu, webgpu (Dawn on a Vulkan driver: a GPU's, or lavapipe from scripts/setup-lavapipe.sh), auto (webgpu when there is an adapter, else wasm), tensorflow (needs @tensorflow/tfjs-node[-gpu]); or CRUCIBLE_BACKEND"), Flag.optional),
      runId: Flag.String("run-id").pipe(Flag.withDescription("name of the run directory (default: time-name-random)"), Flag.optional),
      otlp: Flag.String("otlp").pipe(Flag.withDescription("OTLP base endpoint, e.g. http://localhost:4318 (else the OTEL_EXPORTER_OTLP_* variables)"), Flag.optional),
      kinds: kindsFlag,
      noCache: Flag.Boolean("no-cache").pipe(Flag.withDescription("compute every stage afresh (stored results and checkpoints are not reused; new results are stored)"), Flag.withDefault(false)),
      rerun: Flag.String("rerun").pipe(Flag.withDescription("compute this stage and every stage that depends on it afresh; repeat for more"), Flag.atLeast(0)),
      cacheDir: Flag.String("cache-dir").pipe(Flag.withDescription("the results store (default: <runs-dir>/.cache)"), Flag.optional),
      out: outFlag,
      json,
      quiet: Flag.Boolean("quiet").pipe(Flag.withDescription("print nothing but errors"), Flag.withDefault(false)),
      ui: Flag.Boolean("ui").pipe(Flag.withDescription("serve the live dashboard on a free port of 127.0.0.1 while the run is in progress"), Flag.withDefault(false)),
      uiKeep: Flag.Boolean("ui-keep").pipe(Flag.withDescription("like --ui, and keep serving after the run until Ctrl-C"), Flag.withDefault(false)),
      cluster: ClusterCommands.clusterFlag,
      store: ClusterCommands.storeFlag
    },
    (flags) =>
      Effect.gen(function* () {
        if (Option.isSome(flags.cluster) || Option.isSome(flags.store)) {
          if (Option.isNone(flags.cluster) || Option.isNone(flags.store)) {
            yield* err("--cluster and --store go together: the cluster's Postgres, and the shared folder every worker mounts at the same path")
            exit.code = ExitCode.invalid
            return
          }
          // What a local run's flags set that a cluster run decides elsewhere (on the workers, or not at all yet).
          const refused = [
            flags.noCache ? "--no-cache" : undefined,
            flags.rerun.length > 0 ? "--rerun" : undefined,
            Option.isSome(flags.cacheDir) ? "--cache-dir (the store's cache/ is the results store)" : undefined,
            Option.isSome(flags.memoryLimit) ? "--memory-limit (give workers --memory)" : undefined,
            Option.isSome(flags.backend) ? "--backend (give workers --backend)" : undefined
          ].filter((f) => f !== undefined)
          if (refused.length > 0) {
            yield* err(`not taken with --cluster: ${refused.join(", ")}`)
            exit.code = ExitCode.invalid
            return
          }
          return yield* ClusterCommands.runOnCluster({ ...flags, cluster: flags.cluster.value, store: flags.store.value }, exit)
        }
        const chosen = Reporters.choose(flags)
        // Ctrl-C is told on stderr whatever the reporter; on a TTY, below the progress line it cuts.
        const reporter = Interrupted.reporting(Reporters.make(chosen), Interrupted.resumeCommand(process.argv.slice(2)), (text) => err(chosen === "tty" ? `\n${text}` : text))
        // The dashboard's lines go to stderr when stdout carries JSON events or is silenced.
        const note = flags.json || flags.quiet ? err : out
        const started = flags.ui || flags.uiKeep ? yield* Effect.result(Server.listen({ runsDir: flags.runsDir })) : undefined
        if (started?._tag === "Failure") {
          yield* err(started.failure.message)
          exit.code = ExitCode.invalid
          return
        }
        const dashboard = started?.success
        const memoryLimit = Option.map(flags.memoryLimit, ByteSize.parseByteSize)
        if (memoryLimit._tag === "Some" && Result.isFailure(memoryLimit.value)) {
          yield* err(`--memory-limit: ${memoryLimit.value.failure.message}`)
          exit.code = ExitCode.invalid
          return
        }
        const body = Effect.gen(function* () {
          const result = yield* Runner.run(flags.pipeline, {
            concurrency: flags.concurrency,
            runsDir: flags.runsDir,
            kindModules: flags.kinds,
            cache: !flags.noCache,
            rerun: flags.rerun,
            ...Option.match(flags.cacheDir, { onNone: () => ({}), onSome: (cacheDir) => ({ cacheDir }) }),
            ...Option.match(flags.runId, { onNone: () => ({}), onSome: (runId) => ({ runId }) }),
            ...outOf(flags.out),
            ...Option.match(flags.backend, { onNone: () => ({}), onSome: (backend) => ({ backend }) }),
            ...(memoryLimit._tag === "Some" && Result.isSuccess(memoryLimit.value) ? { memoryLimit: memoryLimit.value.success } : {}),
            telemetry: Runner.defaultTelemetry(Option.getOrUndefined(flags.otlp)),
            onWarnings: reportWarnings
          }).pipe(Effect.provideService(Reporter, dashboard === undefined ? reporter : Server.announcing(reporter, dashboard, note)), Effect.result)
          if (result._tag === "Failure") {
            yield* reportLoadError(result.failure, flags.json)
            exit.code = ExitCode.invalid
            return
          }
          exit.code = forRun(result.success.status)
          if (dashboard !== undefined && flags.uiKeep) {
            yield* note(`dashboard: the run has ended; still serving ${dashboard.url} (Ctrl-C to stop)`)
            yield* Effect.never
          }
        })
        yield* dashboard === undefined ? body : Effect.ensuring(body, dashboard.close)
      })
  ).pipe(Command.withDescription("Run a pipeline: stages, progress, traces, and a run directory with outputs and manifest."))

  const validate = Command.make("validate", { pipeline: pipelineArg, kinds: kindsFlag, out: outFlag, json }, (flags) =>
    Effect.gen(function* () {
      // Headers too (never tensor data): unreadable inputs, mismatched shapes, filters that match nothing.
      const result = yield* Effect.result(Runner.load(flags.pipeline, { kindModules: flags.kinds, preflight: true, ...outOf(flags.out) }))
      if (result._tag === "Failure") {
        yield* reportLoadError(result.failure, flags.json)
        exit.code = ExitCode.invalid
        return
      }
      const { pipeline, warnings } = result.success
      const stages = pipeline.stages.length
      if (flags.json) yield* out(JSON.stringify({ ok: true, pipeline: pipeline.ir.name, stages, warnings }))
      else {
        yield* reportWarnings(warnings, flags.pipeline)
        const noted = warnings.length === 0 ? "" : `, ${warnings.length} warning${warnings.length === 1 ? "" : "s"}`
        yield* out(`${flags.pipeline}: valid (${stages} stages${noted})`)
      }
      exit.code = ExitCode.ok
    })
  ).pipe(Command.withDescription("Check a pipeline without running it: the file, and its inputs' headers (never tensor data); every problem with file:line:col."))

  const plan = Command.make("plan", { pipeline: pipelineArg, kinds: kindsFlag, out: outFlag, json }, (flags) =>
    Effect.gen(function* () {
      const result = yield* Effect.result(Effect.flatMap(Runner.load(flags.pipeline, { kindModules: flags.kinds, ...outOf(flags.out) }), Planner.make))
      if (result._tag === "Failure") {
        yield* reportLoadError(result.failure, flags.json)
        exit.code = ExitCode.invalid
        return
      }
      yield* out(flags.json ? JSON.stringify(result.success, null, 2) : Planner.format(result.success))
      exit.code = result.success.problems.length > 0 ? ExitCode.invalid : ExitCode.ok
    })
  ).pipe(Command.withDescription("Show the DAG (text and Mermaid), tensors and bytes to read and write, and the estimated peak memory; runs no heavy work."))

  const inspect = Command.make(
    "inspect",
    {
      file: Argument.String("file").pipe(Argument.withDescription("a checkpoint: safetensors, sharded index, HF folder, .pt/.bin, model.json")),
      key: Flag.String("key").pipe(Flag.withDescription("the state dict's key inside a PyTorch checkpoint"), Flag.optional),
      json
    },
    (flags) =>
      Effect.gen(function* () {
        const result = yield* Effect.result(Formats.inspect(flags.file, Option.match(flags.key, { onNone: () => ({}), onSome: (key) => ({ key }) })))
        if (result._tag === "Failure") {
          yield* err(result.failure.message)
          exit.code = ExitCode.invalid
          return
        }
        const info = result.success
        yield* out(flags.json ? JSON.stringify(info, null, 2) : [
          `${info.path} (${info.format}): ${info.tensors.length} tensors, ${Format.bytes(info.totalBytes)}${info.files.length > 1 ? ` in ${info.files.length} files` : ""}`,
          ...(Object.keys(info.metadata).length > 0 ? [`metadata: ${JSON.stringify(info.metadata)}`] : []),
          "",
          Format.table(["name", "dtype", "shape", "bytes"], info.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(", ")}]`, Format.bytes(t.bytes)]))
        ].join("\n"))
        exit.code = ExitCode.ok
      })
  ).pipe(Command.withDescription("List a checkpoint's tensors (name, dtype, shape, bytes), format and metadata; reads headers only."))

  const convert = Command.make(
    "convert",
    {
      input: Argument.String("input").pipe(Argument.withDescription("any checkpoint crucible reads")),
      output: Argument.String("output").pipe(Argument.withDescription("the output: .safetensors, model.json for TF.js, or a folder (ending in /) for a Hugging Face folder")),
      dtype: Flag.String("dtype").pipe(Flag.withDescription("convert floating-point tensors (F16, BF16, float32, …)"), Flag.optional),
      shardSize: Flag.String("shard-size").pipe(Flag.withDescription("largest shard, e.g. 2GB (writes shards and an index)"), Flag.optional),
      format: Flag.Literals("format", ["safetensors", "tfjs"]).pipe(Flag.withDescription("output format (default from the output's name)"), Flag.optional),
      key: Flag.String("key").pipe(Flag.withDescription("the state dict's key inside a PyTorch checkpoint"), Flag.optional),
      json
    },
    (flags) =>
      Effect.gen(function* () {
        const result = yield* Effect.result(Convert.convert(flags.input, flags.output, {
          dtype: Option.getOrUndefined(flags.dtype),
          shardSize: Option.getOrUndefined(flags.shardSize),
          format: Option.getOrUndefined(flags.format),
          key: Option.getOrUndefined(flags.key)
        }))
        if (result._tag === "Failure") {
          yield* err(result.failure.message)
          exit.code = ExitCode.invalid
          return
        }
        const files = result.success.files
        yield* out(flags.json ? JSON.stringify({ ok: true, files }) : files.map((f) => `wrote ${f.path} (${Format.bytes(f.bytes)}, sha256 ${f.sha256.slice(0, 16)}…)`).join("\n"))
        exit.code = ExitCode.ok
      })
  ).pipe(Command.withDescription("Convert a checkpoint: .pt → safetensors, sharded ↔ single, TF.js ↔ safetensors, dtype changes. Atomic; never over the input."))

  const ui = Command.make(
    "ui",
    {
      runsDir: Argument.String("runs-dir").pipe(Argument.withDescription("the folder of run directories (default: runs)"), Argument.withDefault("runs")),
      port: Flag.Int("port").pipe(Flag.withDescription(`port on 127.0.0.1 (default ${Server.DEFAULT_PORT}; 0: any free port)`), Flag.withDefault(Server.DEFAULT_PORT))
    },
    (flags) =>
      Effect.scoped(
        Effect.gen(function* () {
          const started = yield* Effect.result(Server.start({ runsDir: flags.runsDir, port: flags.port }))
          if (started._tag === "Failure") {
            yield* err(started.failure.message)
            exit.code = ExitCode.invalid
            return
          }
          yield* out(`crucible ui: serving ${started.success.runsDir} at ${started.success.url} (Ctrl-C to stop)`)
          exit.code = ExitCode.ok
          return yield* Effect.never
        })
      )
  ).pipe(Command.withDescription("Serve the dashboard: the runs, each run's DAG, timeline, params, metrics and charts, live while a run is in progress."))

  return Command.make("crucible").pipe(
    Command.withDescription("Crucible: fuse neural-network models with typed, traced, resumable pipelines."),
    Command.withSubcommands([run, validate, plan, inspect, convert, ui, RunsCommand.make(exit), ClusterCommands.worker(exit), ClusterCommands.attach(exit), KindsCommand.make(exit, kindsFlag), ImportCommand.make(exit, kindsFlag), SchemaCommand.make(exit, kindsFlag), CacheCommand.make(exit)])
  )
}
