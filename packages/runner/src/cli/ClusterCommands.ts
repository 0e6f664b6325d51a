/**
 * The cluster's commands: `crucible worker` (join a cluster and run its units), `crucible run
 * --cluster` (submit and follow; `Commands.ts` calls {@link runOnCluster}), `crucible attach RUN_ID`
 * (follow again after the submitter died) and `crucible runs --cluster` (list runs and their state).
 *
 * @since 0.2.0
 */
import { ByteSize } from "@crucible/core"
import { Effect, Layer, Option, Result } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as net from "node:net"
import * as os from "node:os"
import { Reporter } from "../Events.ts"
import * as path from "node:path"
import * as Runner from "../Runner.ts"
import * as Telemetry from "../telemetry/Telemetry.ts"
import * as Server from "../ui/Server.ts"
import * as ClusterLayer from "../cluster/ClusterLayer.ts"
import * as Resources from "../cluster/Resources.ts"
import type { RunSummary } from "../cluster/Protocol.ts"
import * as Submit from "../cluster/Submit.ts"
import type { ExitSink } from "./Commands.ts"
import { ExitCode, forRun } from "./ExitCode.ts"
import * as Format from "./Format.ts"
import { err, out } from "./Print.ts"
import * as Reporters from "./Reporters.ts"

export const clusterFlag = Flag.String("cluster").pipe(Flag.withDescription("the cluster's Postgres, postgres://user@host:port/db: run on its workers instead of here"), Flag.optional)
export const storeFlag = Flag.String("store").pipe(Flag.withDescription("the shared store every machine mounts at the same path (results by key, run folders)"), Flag.optional)
const json = Flag.Boolean("json").pipe(Flag.withDescription("print machine-readable JSON (one event per line)"), Flag.withDefault(false))
const quiet = Flag.Boolean("quiet").pipe(Flag.withDescription("print nothing but errors"), Flag.withDefault(false))

const freePort = (host: string) =>
  Effect.callback<number>((resume) => {
    const server = net.createServer()
    server.listen(0, host, () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resume(Effect.succeed(port)))
    })
  })

/** `crucible run PIPELINE --cluster URL --store DIR`: submit, follow, exit as a local run would. */
export const runOnCluster = (flags: {
  readonly pipeline: string
  readonly cluster: string
  readonly store: string
  readonly runId: Option.Option<string>
  readonly kinds: ReadonlyArray<string>
  readonly json: boolean
  readonly quiet: boolean
  readonly out: Option.Option<string>
  readonly otlp: Option.Option<string>
  readonly ui: boolean
  readonly uiKeep: boolean
}, exit: ExitSink) =>
  Effect.gen(function* () {
    const chosen = Reporters.choose(flags)
    const plain = Reporters.make(chosen)
    const note = flags.json || flags.quiet ? err : out
    // The run's folder in the store is a run folder like a local one: the dashboard serves `<store>/runs`.
    const started = flags.ui || flags.uiKeep ? yield* Effect.result(Server.listen({ runsDir: path.join(path.resolve(flags.store), "runs") })) : undefined
    if (started?._tag === "Failure") {
      yield* err(started.failure.message)
      exit.code = ExitCode.invalid
      return
    }
    const dashboard = started?.success
    const reporter = dashboard === undefined ? plain : Server.announcing(plain, dashboard, note)
    const body = submitAndFollow(flags, reporter, exit).pipe(Effect.andThen(dashboard !== undefined && flags.uiKeep
      ? Effect.andThen(note(`dashboard: the run has ended; still serving ${dashboard.url} (Ctrl-C to stop)`), Effect.never)
      : Effect.void))
    yield* dashboard === undefined ? body : Effect.ensuring(body, dashboard.close)
  })

const submitAndFollow = (flags: Parameters<typeof runOnCluster>[0], reporter: Reporter["Service"], exit: ExitSink) =>
  Effect.gen(function* () {
    const loaded = yield* Effect.result(Runner.load(flags.pipeline, { kindModules: flags.kinds, preflight: true, ...Option.match(flags.out, { onNone: () => ({}), onSome: (o) => ({ out: o }) }) }))
    if (loaded._tag === "Failure") {
      yield* err(loaded.failure.message)
      exit.code = ExitCode.invalid
      return
    }
    const runId = Option.getOrElse(flags.runId, () => Runner.newRunId(loaded.success.pipeline.ir.name))
    const submitted = yield* Effect.result(Effect.gen(function* () {
      const { payload, needs } = yield* Submit.payloadOf(loaded.success, { runId, kindModules: flags.kinds })
      const workers = yield* Submit.liveWorkers(flags.cluster)
      yield* Submit.checkFit(payload, needs, workers)
      const placed = yield* Submit.place(payload, workers)
      yield* Submit.start(placed, flags.store)
      if (!flags.json && !flags.quiet) yield* err(`submitted run ${runId} to the cluster (${payload.units.length} units); follow it again with: crucible attach ${runId} --cluster ${Submit.redact(flags.cluster)} --store ${flags.store}`)
      return yield* Submit.follow(placed, flags.store)
    }).pipe(
      // The submitter's span is the root of the run's one trace: the workflow and every unit continue it.
      Effect.withSpan(`cluster run ${runId}`, { attributes: { "crucible.run.id": runId, "crucible.pipeline.name": loaded.success.pipeline.ir.name } }),
      Effect.provide(ClusterLayer.client(flags.cluster)),
      Effect.provide(Layer.orDie(Telemetry.layer({ runId, ...Option.match(flags.otlp, { onNone: () => ({}), onSome: (otlpUrl) => ({ otlpUrl }) }) }))),
      Effect.provideService(Reporter, reporter)
    ))
    yield* exitWith(submitted, exit)
  })

// A followed run's end as the exit code (a local run's), or what stopped it on stderr (exit 2).
const exitWith = (followed: Result.Result<RunSummary, { readonly message: string }>, exit: ExitSink) =>
  Result.isFailure(followed) ? Effect.andThen(err(followed.failure.message), Effect.sync(() => void (exit.code = ExitCode.invalid))) : Effect.sync(() => void (exit.code = forRun(followed.success.status)))

/** The `worker` command. */
export const worker = (exit: ExitSink) =>
  Command.make(
    "worker",
    {
      cluster: Flag.String("cluster").pipe(Flag.withDescription("the cluster's Postgres, postgres://user@host:port/db")),
      store: Flag.String("store").pipe(Flag.withDescription("the shared store (every machine mounts it at the same path)")),
      devices: Flag.String("devices").pipe(Flag.withDescription("devices this worker offers: cpu, gpu or cpu,gpu"), Flag.withDefault("cpu")),
      memory: Flag.String("memory").pipe(Flag.withDescription("memory it gives stages, e.g. 16GB (default: the machine's)"), Flag.optional),
      slots: Flag.Int("slots").pipe(Flag.withDescription("units it runs at once"), Flag.withDefault(1)),
      listen: Flag.String("listen").pipe(Flag.withDescription("host:port where other workers reach this one (default 127.0.0.1 and a free port; on several machines: this machine's address)"), Flag.optional),
      id: Flag.String("id").pipe(Flag.withDescription("the worker's name in traces and reports (default host:port)"), Flag.optional),
      backend: Flag.String("backend").pipe(Flag.withDescription("TF.js backend of the stages it runs"), Flag.optional)
    },
    (flags) =>
      Effect.gen(function* () {
        const devices = Resources.parseDevices(flags.devices)
        if (devices === undefined) {
          yield* err(`--devices: "${flags.devices}" is not a list of cpu and gpu`)
          exit.code = ExitCode.invalid
          return
        }
        const memory = Option.match(flags.memory, { onNone: () => Result.succeed(os.totalmem()), onSome: ByteSize.parseByteSize })
        if (Result.isFailure(memory)) {
          yield* err(`--memory: ${memory.failure.message}`)
          exit.code = ExitCode.invalid
          return
        }
        const [host, portText] = Option.match(flags.listen, { onNone: () => ["127.0.0.1", "0"], onSome: (l) => [l.slice(0, l.lastIndexOf(":")), l.slice(l.lastIndexOf(":") + 1)] })
        const port = Number(portText) === 0 ? yield* freePort(host!) : Number(portText)
        if (!Number.isInteger(port) || port <= 0 || port > 65535 || host === "") {
          yield* err(`--listen: "${Option.getOrElse(flags.listen, () => "")}" is not host:port`)
          exit.code = ExitCode.invalid
          return
        }
        const id = Option.getOrElse(flags.id, () => `${os.hostname()}:${port}`)
        const resources: Resources.WorkerResources = { devices, memoryBytes: memory.success, slots: flags.slots }
        yield* err(`crucible worker ${id}: listening on ${host}:${port}, ${devices.join(",")}, ${Format.bytes(resources.memoryBytes)}, ${resources.slots} slot${resources.slots === 1 ? "" : "s"}; store ${flags.store}`)
        exit.code = ExitCode.ok
        yield* Layer.launch(ClusterLayer.worker({
          cluster: flags.cluster,
          store: flags.store,
          id,
          host: host!,
          port,
          resources,
          backend: Option.getOrUndefined(flags.backend)
        }))
      })
  ).pipe(Command.withDescription("Join a cluster (Postgres) as a worker: run the stages of submitted runs that fit this machine's devices and memory, until stopped."))

/** The `attach` command. */
export const attach = (exit: ExitSink) =>
  Command.make(
    "attach",
    {
      runId: Argument.String("run-id").pipe(Argument.withDescription("the run to follow (as `crucible run --cluster` printed it)")),
      cluster: Flag.String("cluster").pipe(Flag.withDescription("the cluster's Postgres, postgres://user@host:port/db")),
      store: Flag.String("store").pipe(Flag.withDescription("the shared store the run was submitted with")),
      json,
      quiet
    },
    (flags) =>
      Effect.gen(function* () {
        const reporter = Reporters.make(Reporters.choose(flags))
        const followed = yield* Effect.result(Effect.flatMap(Submit.readRecord(flags.store, flags.runId), (payload) => Submit.follow(payload, flags.store)).pipe(
          Effect.provide(ClusterLayer.client(flags.cluster)),
          Effect.provideService(Reporter, reporter)
        ))
        yield* exitWith(followed, exit)
      })
  ).pipe(Command.withDescription("Follow a cluster run again (after the process that submitted it stopped), to its end."))

/** `crucible runs --cluster URL`: the cluster's runs and their state. */
export const listRuns = (cluster: string, asJson: boolean, exit: ExitSink) =>
  Effect.gen(function* () {
    const listed = yield* Effect.result(Submit.list(cluster).pipe(Effect.provide(ClusterLayer.client(cluster))))
    if (listed._tag === "Failure") {
      yield* err(listed.failure.message)
      exit.code = ExitCode.invalid
      return
    }
    const runs = listed.success
    if (asJson) yield* out(JSON.stringify(runs, null, 2))
    else if (runs.length === 0) yield* out(`no runs on the cluster`)
    else {
      yield* out(Format.table(["run", "pipeline", "state", "submitted"], runs.map((r) => [r.runId, r.pipeline, r.state, new Date(r.submittedAt).toISOString().replace("T", " ").replace(/\.\d+Z$/, "")])))
    }
    exit.code = ExitCode.ok
  })
