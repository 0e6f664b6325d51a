/**
 * Runs a planned pipeline. Every stage is a fiber that waits for its dependencies; at most
 * `concurrency` stages do work at once. A failed stage fails its dependents with "skipped
 * because X failed" while independent stages finish. Each stage's output lives in its own
 * scope, closed once every stage that could read it (directly or through a lazy value) is done:
 * files are closed and memory freed at the earliest safe moment. Interruption (SIGINT) stops
 * the stages in flight, whose scopes remove their temporary files.
 *
 * A lazy stage's output is computed as its consumers read it: such a stage stays running, its span
 * open, until that work is done, which then counts as its own (see `LazyOutput.ts`): its progress,
 * its time, its failures — a consumer whose read failed there is "failed because X failed".
 *
 * @since 0.1.0
 */
import { type LockFile, MemoryBudget, Model, Port, RunCache, Stage, StageKey, type Validate } from "@crucible/core"
import { Cause, Deferred, Effect, Exit, Scope, Semaphore, type Tracer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { emit, Reporter, type StageStatus } from "./Events.ts"
import * as GpuPool from "./GpuPool.ts"
import * as LazyOutput from "./LazyOutput.ts"
import * as Plan from "./Plan.ts"
import { REPORTED } from "./RunLog.ts"
import * as Identity from "./store/Identity.ts"
import * as Layout from "./store/Layout.ts"
import type * as ResultStore from "./store/ResultStore.ts"
import { Metrics } from "./telemetry/Metrics.ts"
import * as TfBackend from "@crucible/strategies/backend/Backend"

/** @category models */
export interface ExecuteOptions {
  readonly pipeline: Validate.ResolvedPipeline
  /** The folder relative paths in the pipeline resolve against. */
  readonly baseDir: string
  readonly runDir: string
  /** Stages doing work at the same time (≥ 1). */
  readonly concurrency: number
  /** Plan only: lazy stages run (headers), others are skipped, nothing is written. */
  readonly dryRun?: boolean
  /** Where stages keep state across runs, by stage key (default: `<runDir>/../.cache`); the store's root when `store` is given. */
  readonly cacheRoot?: string
  /**
   * Stage keys (`store/Identity.ts`: with the digests of the files stages read). Default: keys of
   * kinds, params and inputs only — enough for a plan, which reads no file. With `resolveKey`,
   * those known up front; the others are pending.
   */
  readonly keys?: ReadonlyMap<string, string>
  /**
   * The key of a stage absent from `keys` (pending: some file it depends on has no remembered
   * digest yet), once its digests are computed. A pending `save`/`convert` whose output path does
   * not exist starts at once and resolves its key before it publishes; other stored stages wait
   * for it before they look their result up; lazy stages resolve it when they finish.
   */
  readonly resolveKey?: (stage: string) => Effect.Effect<string>
  /** Where finished stages' results are stored and found again (absent: nothing is stored or reused). */
  readonly store?: ResultStore.ResultStore
  /** Whether a stage may reuse a stored result or its checkpoints (default: all may; `--no-cache`, `--rerun`). */
  readonly reuse?: (stage: string) => boolean
  /** The run and pipeline a stored result names as its producer. */
  readonly runId?: string
  /** Bytes that the stages' tensor working sets may hold at once (default: unlimited). */
  readonly memoryLimit?: number
  /** The TF.js backend for stages that declare `resources.backend` (default: CRUCIBLE_BACKEND, else wasm). */
  readonly backend?: string
  /** Where each stage is written (`file:line:col`), recorded on its span so an error leads back to the YAML. */
  readonly positions?: ReadonlyMap<string, string>
  /** Attributes every stage span carries besides its own (a cluster worker's id and host). */
  readonly spanAttributes?: Readonly<Record<string, string>>
  /** The run's memo (default: a fresh one); a cluster worker passes one per cluster run. */
  readonly runCache?: RunCache.Shape
  /** Called whenever a stage's outcome is known (the manifest is rewritten from it). */
  readonly onOutcome?: (outcome: StageOutcome) => Effect.Effect<void>
  /** Called once the run's GPU has started, when the backend resolves to webgpu (the manifest records its adapter). */
  readonly onGpu?: (pool: GpuPool.GpuPool) => Effect.Effect<void>
}

/** How one stage went. @category models */
export interface StageOutcome {
  readonly id: string
  readonly kind: string
  readonly version: number
  /** Hash of kind, version, params and input keys: the stage's cache identity. */
  readonly key: string
  readonly status: StageStatus | "planned"
  readonly startedAt?: number | undefined
  readonly endedAt?: number | undefined
  readonly error?: { readonly tag: string; readonly message: string } | undefined
  /** For a skipped stage, or one that failed reading a lazy stage's output: the failed stage that caused it. */
  readonly blockedBy?: string | undefined
  /** The stage's output while its scope was open; plain values (metrics, files) stay readable. */
  readonly value?: unknown
  /** The result came from the results store: an earlier run computed it. */
  readonly cached?: boolean | undefined
  /** The stage had the same key as this earlier stage of the run, and took its value. */
  readonly sameAs?: string | undefined
}

/**
 * Runs only the lazy stages of `pipeline` with `dryRun` set — headers read, lazy tensors composed,
 * no tensor data read, nothing written — and reports no event: what `crucible plan` and the
 * preflight of `validate` and `run` learn from. `scratch` names the run directory (in the OS's
 * temporary folder) the stages are told of.
 */
export const dryRun = (pipeline: Validate.ResolvedPipeline, baseDir: string, scratch: string): Effect.Effect<ReadonlyArray<StageOutcome>> =>
  execute({ pipeline, baseDir, runDir: path.join(os.tmpdir(), scratch), concurrency: 4, dryRun: true }).pipe(Effect.provideService(Reporter, Reporter.silent))

// A dependency that did not produce a value: the stage whose failure is the root cause.
interface Blocked {
  readonly root: string
}

/** Runs every stage; never fails — each stage's fate is in its outcome. */
export const execute = (options: ExecuteOptions): Effect.Effect<ReadonlyArray<StageOutcome>, never, Reporter> =>
  Effect.gen(function* () {
    const keys = options.keys ?? StageKey.pipelineKeys(options.pipeline)
    const resolveKey = (id: string): Effect.Effect<string> => {
      const known = keys.get(id)
      return known !== undefined ? Effect.succeed(known) : options.resolveKey?.(id) ?? Effect.succeed(PENDING_KEY)
    }
    // A stage with the same key as an earlier one takes its value: it waits for it (and keeps its
    // output alive while its own consumers read it) instead of reading its inputs.
    const sameAs = Identity.sameAs(options.pipeline, keys)
    const pipeline = {
      ...options.pipeline,
      stages: options.pipeline.stages.map((s) => (sameAs.has(s.id) ? { ...s, dependsOn: [...new Set([sameAs.get(s.id)!, ...s.dependsOn])] } : s))
    }
    const plan = Plan.make(pipeline)
    const byId = new Map(pipeline.stages.map((s) => [s.id, s] as const))
    const store = options.dryRun === true ? undefined : options.store
    const reuse = options.reuse ?? (() => true)
    const permits = yield* Semaphore.make(Math.max(1, options.concurrency))
    const results = new Map<string, Deferred.Deferred<unknown, Blocked>>()
    for (const s of pipeline.stages) results.set(s.id, yield* Deferred.make<unknown, Blocked>())
    const outcomes = new Map<string, StageOutcome>()
    // The first stage whose pending key resolved to each key.
    const resolvedFirst = new Map<string, string>()
    const record = (outcome: StageOutcome) =>
      Effect.suspend(() => {
        outcomes.set(outcome.id, outcome)
        return options.onOutcome?.(outcome) ?? Effect.void
      })
    const lifetimes = makeLifetimes(plan, byId)
    const reporter = yield* Reporter
    // Initialised once, and only if a stage that runs tensors starts.
    const backend = yield* Effect.cached(TfBackend.initialise(options.backend))
    // On a GPU run the backend starts up front: merges, which do not declare `resources.backend`, are given its device.
    const gpu = yield* gpuOf(options, backend)
    const cacheRoot = options.cacheRoot ?? path.join(path.dirname(options.runDir), ".cache")
    // The run a lock's holder is, as other runs waiting for it see it.
    const runId = options.runId ?? path.basename(options.runDir)
    const budget = options.memoryLimit === undefined ? undefined : yield* MemoryBudget.make(options.memoryLimit)
    const origins: LazyOutput.Origins = new WeakMap()
    const progress = (e: Stage.ProgressEvent) => reporter.emit({ type: "stage-progress", time: Date.now(), ...e })

    // The end of a stage that did not run: it took a stored result, or its twin's value.
    const finishWith = (stage: Validate.ResolvedStage, base: { readonly id: string; readonly kind: string; readonly version: number; readonly key: string }, value: unknown, startedAt: number, mark: { readonly cached?: true; readonly sameAs?: string }) =>
      Effect.gen(function* () {
        yield* emit({ type: "stage-started", time: startedAt, stage: stage.id, kind: base.kind })
        // A span still, so the trace shows the stage and why it took no time.
        yield* Effect.withSpan(Effect.void, `stage ${stage.id}`, {
          attributes: {
            ...options.spanAttributes,
            "crucible.stage.id": stage.id,
            "crucible.stage.kind": base.kind,
            "crucible.stage.version": base.version,
            "crucible.stage.key": base.key,
            "crucible.stage.cached": mark.cached === true,
            ...(mark.sameAs === undefined ? {} : { "crucible.stage.same_as": mark.sameAs }),
            ...(options.positions?.has(stage.id) ? { "crucible.stage.source": options.positions.get(stage.id)! } : {})
          }
        })
        const endedAt = Date.now()
        yield* record({ ...base, status: "succeeded", startedAt, endedAt, value, ...mark })
        yield* emit({ type: "stage-finished", time: endedAt, stage: stage.id, kind: base.kind, status: "succeeded", durationMs: endedAt - startedAt, summary: summarize(value), ...mark })
        yield* Deferred.succeed(results.get(stage.id)!, value)
        yield* lifetimes.finished(stage.id)
      })

    // Whether every consumer of a lazy stage took a stored result (or its twin's value): its
    // output was not needed, which its summary says instead of "released before all were read".
    const readByNone = (id: string) => {
      const consumers = plan.consumers.get(id) ?? []
      return consumers.length > 0 && consumers.every((c) => outcomes.get(c)?.cached === true || (outcomes.get(c)?.sameAs !== undefined && outcomes.get(outcomes.get(c)!.sameAs!)?.cached === true))
    }
    // A stage's checkpoints removed (spent, or not to be resumed). One that cannot be (a read-only
    // store) is a warning: the stage's value does not depend on it.
    const removeWork = (stage: string, key: string) =>
      Effect.try(() => fs.rmSync(Layout.workDir(cacheRoot, key), { recursive: true, force: true })).pipe(
        Effect.catch((e) => Effect.logWarning(`stage ${stage}: its checkpoints in ${Layout.workDir(cacheRoot, key)} could not be removed (${(e.cause as Error | undefined)?.message ?? String(e)})`))
      )

    const waitingFor = (stage: string, what: string) => (holder: LockFile.Holder) =>
      progress({ stage, done: 0, total: 1, unit: "steps", detail: `waiting for run ${holder.info.runId ?? "?"} (pid ${holder.pid}), which is ${what}` })
    // A lock that cannot be taken (a read-only store) is a warning: the stage runs without it.
    const holdLock = (lock: Effect.Effect<void, unknown, Scope.Scope>, lockScope: Scope.Scope, stage: string) =>
      Effect.gen(function* () {
        const locked = yield* Effect.exit(Scope.provide(lock, lockScope))
        if (Exit.isFailure(locked) && Cause.hasInterruptsOnly(locked.cause)) return yield* Effect.interrupt
        if (Exit.isFailure(locked)) yield* Effect.logWarning(`stage ${stage}: a lock could not be taken (${describeFailure(locked.cause).message}); going on without it`)
      })

    // A stored result of the stage's key; when there is none, the key's lock is taken (in
    // `lockScope`), waiting for another run computing it — which then has stored it. `locked`
    // says whether the lock is held now (a result found at once was found without it).
    const findStored = (store: ResultStore.ResultStore, producer: ResultStore.Producer, allowed: boolean, lockScope: Scope.Scope) =>
      Effect.gen(function* () {
        if (allowed) {
          const found = yield* store.lookup(producer.key)
          if (found !== undefined) return { found, locked: false }
        }
        yield* takeLock(store, producer, lockScope)
        return { found: allowed ? yield* store.lookup(producer.key) : undefined, locked: true }
      })
    const takeLock = (store: ResultStore.ResultStore, producer: ResultStore.Producer, lockScope: Scope.Scope) =>
      holdLock(store.lock(producer, waitingFor(producer.stage, "computing this result")), lockScope, producer.stage)

    // Whether a pending files stage may write at once: its output does not exist (checked again
    // under the output's lock, held from then on). If another run wrote it meanwhile, the lock is
    // let go and the stage waits for its key, to look its result up (key lock before path lock, as always).
    const writesFirst = (store: ResultStore.ResultStore, target: string, stage: string, lockScope: Scope.Scope) =>
      Effect.gen(function* () {
        if (fs.existsSync(target)) return false
        const pathScope = yield* Scope.make()
        yield* holdLock(store.lockPath(target, { key: PENDING_KEY, kind: "", version: 0, stage, runId, pipeline: pipeline.ir.name }, waitingFor(stage, `writing ${target}`)), pathScope, stage)
        if (fs.existsSync(target)) {
          yield* Scope.close(pathScope, Exit.void)
          return false
        }
        yield* Scope.addFinalizer(lockScope, Scope.close(pathScope, Exit.void))
        return true
      })

    const runOne = (stage: Validate.ResolvedStage) =>
      Effect.flatMap(Scope.make(), (lockScope) => Effect.ensuring(runStage(stage, lockScope), Scope.close(lockScope, Exit.void)))

    const runStage = (stage: Validate.ResolvedStage, lockScope: Scope.Closeable) =>
      Effect.gen(function* () {
        const deferred = results.get(stage.id)!
        const pending = !keys.has(stage.id)
        let base = { id: stage.id, kind: stage.kind.kind, version: stage.kind.version, key: keys.get(stage.id) ?? PENDING_KEY }
        // A pending key becomes the stage's own once its digests are in (the outcome and the manifest record it).
        const withKey = Effect.suspend(() => (pending && base.key === PENDING_KEY ? Effect.map(resolveKey(stage.id), (key) => void (base = { ...base, key })) : Effect.void))
        const inputs = yield* Effect.exit(Effect.forEach(stage.dependsOn, (d) => Effect.map(Deferred.await(results.get(d)!), (v) => [d, v] as const)))
        if (Exit.isFailure(inputs)) {
          const blocked = Cause.findErrorOption(inputs.cause)
          const root = blocked._tag === "Some" ? blocked.value.root : stage.dependsOn[0]!
          // A stage whose equal twin failed says so: its YAML does not name the stage that blocked it.
          const twin = sameAs.has(stage.id) ? { sameAs: sameAs.get(stage.id)! } : {}
          yield* record({ ...base, status: "skipped", blockedBy: root, ...twin })
          yield* emit({ type: "stage-finished", time: Date.now(), stage: stage.id, kind: base.kind, status: "skipped", durationMs: 0, summary: `skipped because "${root}" failed`, ...twin })
          yield* Deferred.fail(deferred, { root })
          return yield* lifetimes.finished(stage.id)
        }
        if (options.dryRun === true && !stage.kind.resources.lazy) {
          yield* record({ ...base, status: "planned" })
          yield* Deferred.fail(deferred, { root: stage.id })
          return yield* lifetimes.finished(stage.id)
        }
        const values = new Map(inputs.value)
        const scope = lifetimes.scopeOf(stage.id)
        const startedAt = Date.now()
        const twin = sameAs.get(stage.id)
        if (twin !== undefined) return yield* finishWith(stage, base, values.get(twin), startedAt, { sameAs: twin })
        // Results of stages that compute (not lazy ones, which only compose reads) and of stages
        // that write files are stored under their key, and computed under its lock.
        const stored = store !== undefined && (!stage.kind.resources.lazy || stage.kind.output.name === "files")
        const target = Identity.writesOf(stage, options.baseDir)
        // A pending files stage whose output does not exist has nothing stored to restore there (a
        // stored `save` is its files, checked by digest): it writes at once, under the output's lock,
        // and its key is resolved before it publishes. Other stored stages wait for their key.
        const early = stored && pending && target !== undefined && (yield* writesFirst(store, target, stage.id, lockScope))
        if (stored && !early) yield* withKey
        // Pending keys have no twins up front; equal ones found once resolved are run once all the
        // same: the first stage to resolve a key computes it, later ones take its value (keeping its
        // output alive as long as theirs), or compute it themselves if it failed or is already released.
        if (pending && stored && !early) {
          const first = resolvedFirst.get(base.key)
          if (first === undefined) resolvedFirst.set(base.key, stage.id)
          else {
            const value = yield* Effect.exit(Deferred.await(results.get(first)!))
            if (Exit.isSuccess(value) && (yield* lifetimes.borrow(first, stage.id))) return yield* finishWith(stage, base, value.value, startedAt, { sameAs: first })
          }
        }
        const producerOf = () => ({ key: base.key, kind: base.kind, version: base.version, stage: stage.id, runId, pipeline: pipeline.ir.name })
        const producer = producerOf()
        if (stored && !early) {
          const { found, locked } = yield* findStored(store, producer, reuse(stage.id), lockScope)
          if (found !== undefined) {
            const restored = yield* Effect.exit(Scope.provide(store.restore(found, options.runDir), scope))
            if (Exit.isSuccess(restored)) {
              yield* Scope.close(lockScope, Exit.void)
              return yield* finishWith(stage, base, restored.value, startedAt, { cached: true })
            }
            // A stored result that cannot be read back (removed meanwhile) is computed again, under
            // the key's lock: still held when the result was found under it (taking it again would
            // wait for ourselves), taken now otherwise. (`lockScope` stays open: a finalizer added
            // to a closed scope runs at once, which would release the lock as it is taken.)
            yield* Effect.logWarning(`stage ${stage.id}: its stored result could not be read (${describeFailure(restored.cause).message}); computing it again`)
            if (!locked) yield* takeLock(store, producer, lockScope)
          }
          // Checkpoints of an earlier try are resumed, unless this stage is to be computed afresh.
          if (!reuse(stage.id)) yield* removeWork(stage.id, base.key)
          // Two runs never write one output at once: a second writer waits for the first.
          if (target !== undefined) yield* holdLock(store.lockPath(target, producer, waitingFor(stage.id, `writing ${target}`)), lockScope, stage.id)
        }
        // A lazy stage that reads models leaves work in its output: it is tracked, not finished, when `run` returns.
        const defers = (value: unknown) => options.dryRun !== true && stage.kind.resources.lazy && Model.isModel(value) && modelsIn(values).length > 0
        // A stage on the run's GPU is given its device and holds its slot, in place of a concurrency
        // permit, from its start (a lazy one for each read of its tensors: its `run` only composes,
        // under a permit); a GPU backend that did not start is its failure.
        const placed = gpu !== undefined && GpuPool.runsOnGpu(stage.kind) ? yield* Effect.exit(gpu) : Exit.succeed(undefined)
        const pool = Exit.isSuccess(placed) ? placed.value : undefined
        const gpuMemory = pool === undefined ? undefined : GpuPool.watchMemory()
        const gate = pool === undefined || stage.kind.resources.lazy ? permits.withPermits(1) : pool.withSlot
        let span: Tracer.Span | undefined
        const exit = yield* gate(
          Effect.gen(function* () {
            yield* emit({ type: "stage-started", time: Date.now(), stage: stage.id, kind: base.kind })
            span = yield* Effect.makeSpan(`stage ${stage.id}`, {
              attributes: {
                ...options.spanAttributes,
            "crucible.stage.id": stage.id,
                "crucible.stage.kind": base.kind,
                "crucible.stage.version": base.version,
                "crucible.stage.key": base.key,
                "crucible.stage.params": StageKey.canonicalJson(stage.raw),
                ...GpuPool.spanAttributes(pool),
                ...(options.positions?.has(stage.id) ? { "crucible.stage.source": options.positions.get(stage.id)! } : {})
              }
            })
            const stageSpan = span
            return yield* Effect.logInfo(`stage ${stage.id} (${base.kind}) started`).pipe(Effect.andThen(Exit.isFailure(placed) ? placed : stage.kind.run({
              id: stage.id,
              kind: stage.kind.kind,
              params: stage.params,
              inputs: inputValues(stage, values),
              resolvePath: (p: string) => path.resolve(options.baseDir, p),
              runDir: options.runDir,
              cacheDir: Layout.workDir(cacheRoot, base.key),
              dryRun: options.dryRun === true,
              pipeline: pipeline.ir.name
            })),
              Effect.tapError((e) => Effect.annotateCurrentSpan({ "crucible.error.tag": (e as { _tag?: string })._tag ?? "Error", "crucible.error.message": (e as { message?: string }).message ?? String(e) })),
              Effect.tapError((e) => Effect.logError(`stage ${stage.id} (${base.kind}) failed: ${(e as { message?: string }).message ?? String(e)}`).pipe(Effect.annotateLogs(REPORTED, true))),
              stage.kind.resources.backend ? Effect.provideServiceEffect(TfBackend.Backend, backend) : (effect) => effect,
              pool === undefined ? (effect) => effect : pool.provide,
              gpuMemory === undefined || stage.kind.resources.lazy ? (effect) => effect : (effect) => gpuMemory.around(effect, { sample: true }),
              budget === undefined ? (effect) => effect : Effect.provideService(MemoryBudget.MemoryBudget, budget),
              Effect.tap((value) => Effect.annotateCurrentSpan(outputAttributes(value))),
              // Stored before consumers see it, still under the key's lock; its checkpoints are then spent.
              stored ? Effect.tap((value) => Effect.andThen(withKey, Effect.suspend(() => Effect.andThen(store!.publish(producerOf(), value, options.runDir), removeWork(stage.id, base.key))))) : (effect) => effect,
              Scope.provide(scope),
              Effect.provideService(Stage.Measurements, {
                epoch: (m) =>
                  Effect.flatMap(Effect.serviceOption(Metrics), (metrics) =>
                    metrics._tag === "None"
                      ? Effect.void
                      : metrics.value.epoch({ stage: { stageId: m.stage, stageKind: base.kind, device: pool === undefined ? "cpu" : "gpu" }, epoch: m.epoch, loss: m.loss, ...(m.accuracy === undefined ? {} : { accuracy: m.accuracy }), ...(m.split === undefined ? {} : { split: m.split }) }))
              }),
              Effect.provideService(Stage.Progress, { report: progress }),
              Effect.withParentSpan(stageSpan),
              // The span of a stage whose work goes on in its output ends when that work does.
              Effect.onExit((exit) => (Exit.isSuccess(exit) && defers(exit.value) ? Effect.void : Effect.andThen(gpuPeak(stageSpan, gpuMemory), LazyOutput.endSpan(stageSpan, exit))))
            )
          })
        ).pipe(Effect.exit)
        yield* Scope.close(lockScope, Exit.void)
        const tracked = span !== undefined && Exit.isSuccess(exit) && defers(exit.value)
          ? yield* LazyOutput.track({
            stage: stage.id,
            span,
            output: exit.value as Model.Model,
            inputs: modelsIn(values),
            origins,
            report: progress,
            ...(pool === undefined ? {} : { guard: <A, E, R>(read: Effect.Effect<A, E, R>) => pool.withSlot(gpuMemory!.around(read)) })
          })
          : undefined
        if (tracked !== undefined) {
          // Consumers start now; the stage runs on until they have read its output.
          span!.event("crucible.output.ready", BigInt(Date.now()) * 1_000_000n, { "crucible.tensors.out": tracked.output.tensors.size })
          yield* Scope.addFinalizer(scope, tracked.release)
          yield* Deferred.succeed(deferred, tracked.output)
          yield* lifetimes.finished(stage.id)
        }
        const settlement = tracked === undefined ? undefined : yield* tracked.settled.pipe(Effect.onInterrupt(() => LazyOutput.endSpan(span!, Exit.interrupt())))
        const failed = settlement?._tag === "Failed" ? settlement : undefined
        const final: Exit.Exit<unknown, unknown> = failed === undefined ? exit : Exit.failCause(failed.cause)
        const endedAt = Date.now()
        yield* recordMetrics(stage, final, endedAt - startedAt, pool === undefined ? "cpu" : "gpu")
        const status: StageStatus = Exit.isSuccess(final) ? "succeeded" : Cause.hasInterruptsOnly(final.cause) ? "interrupted" : "failed"
        // A stored stage's pending key is resolved now (a failed one's too); a lazy stage's when the
        // run's stages are done, since its consumers' reads of its files are what its digests come from.
        if (status !== "interrupted" && stored) yield* withKey
        if (pending) span?.attribute("crucible.stage.key", base.key)
        // A failure that started in a lazy stage whose output this one read is that stage's.
        const origin = status !== "failed" || Exit.isSuccess(final) ? undefined : failed?.upstream ?? LazyOutput.originOf(origins, final.cause)
        const blockedBy = origin === stage.id ? undefined : origin
        const error = Exit.isFailure(final) && status === "failed" ? blame(describeFailure(final.cause), blockedBy, failed?.tensor) : undefined
        if (tracked !== undefined) yield* Effect.andThen(gpuPeak(span!, gpuMemory), settleSpan(span!, final, error, settlement))
        if (status === "succeeded") yield* Effect.logInfo(`stage ${stage.id} (${base.kind}) succeeded`).pipe(Effect.withParentSpan(span!))
        const value = Exit.isSuccess(exit) && status === "succeeded" ? (tracked?.output ?? exit.value) : undefined
        yield* record({ ...base, status, startedAt, endedAt, error, blockedBy, value })
        const summary = settlement?._tag === "Done"
          ? (settlement.tensors === 0 && readByNone(stage.id) ? "nothing computed: every stage reading it took a stored result" : LazyOutput.summary(settlement))
          : value !== undefined ? summarize(value) : blockedBy === undefined ? undefined : `failed because "${blockedBy}" failed`
        yield* emit({ type: "stage-finished", time: endedAt, stage: stage.id, kind: base.kind, status, durationMs: endedAt - startedAt, error, summary })
        if (tracked === undefined) {
          if (Exit.isSuccess(exit)) yield* Deferred.succeed(deferred, exit.value)
          else yield* Deferred.fail(deferred, { root: blockedBy ?? stage.id })
          yield* lifetimes.finished(stage.id)
        }
        if (status === "interrupted") return yield* Effect.interrupt
      })

    yield* Effect.forEach(pipeline.stages, runOne, { concurrency: "unbounded", discard: true }).pipe(
      // Memoised loads (data sets, teacher outputs) live as long as the run, bounded (a cluster
      // worker gives the units of one cluster run one memo: they are parts of one run).
      options.runCache === undefined ? Effect.provide(RunCache.layer()) : Effect.provideService(RunCache.RunCache, options.runCache),
      Effect.onInterrupt(() =>
        Effect.gen(function* () {
          for (const s of pipeline.stages) {
            if (!outcomes.has(s.id)) yield* record({ id: s.id, kind: s.kind.kind, version: s.kind.version, key: keys.get(s.id) ?? PENDING_KEY, status: "interrupted" })
          }
          yield* lifetimes.closeAll
        })
      ),
      Effect.ensuring(lifetimes.closeAll)
    )
    // Lazy stages' pending keys, now that every read of their files is done.
    for (const id of plan.order) {
      const o = outcomes.get(id)!
      if (o.key === PENDING_KEY && o.status !== "interrupted" && o.status !== "planned") yield* record({ ...o, key: yield* resolveKey(id) })
    }
    return plan.order.map((id) => outcomes.get(id)!)
  })

/** The key a stage shows while its key is pending (its digests not computed yet). @category constants */
export const PENDING_KEY = "pending"

/**
 * Scopes of stage outputs, released by liveness: a stage's scope closes once it has finished and
 * every consumer's scope has closed (a lazy consumer reads its inputs only when its own consumer
 * pulls, so an input must outlive the whole chain that can reach it).
 */
const makeLifetimes = (plan: Plan.Plan, byId: ReadonlyMap<string, Validate.ResolvedStage>) => {
  const scopes = new Map<string, Scope.Closeable>()
  const open = new Map<string, number>([...plan.consumers].map(([id, c]) => [id, c.length]))
  const done = new Set<string>()
  const released = new Set<string>()
  // Outputs a stage took from an equal stage found only when its key resolved (see `borrow`).
  const borrowed = new Map<string, Array<string>>()
  const scopeOf = (id: string): Scope.Closeable => {
    let scope = scopes.get(id)
    if (scope === undefined) {
      scope = Effect.runSync(Scope.make())
      scopes.set(id, scope)
    }
    return scope
  }
  const release = (id: string): Effect.Effect<void> =>
    Effect.gen(function* () {
      if (released.has(id) || !done.has(id) || (open.get(id) ?? 0) > 0) return
      released.add(id)
      const scope = scopes.get(id)
      if (scope !== undefined) yield* Scope.close(scope, Exit.void)
      for (const dep of new Set(byId.get(id)?.dependsOn ?? [])) {
        open.set(dep, (open.get(dep) ?? 1) - byId.get(id)!.dependsOn.filter((d) => d === dep).length)
        yield* release(dep)
      }
      for (const owner of borrowed.get(id) ?? []) {
        open.set(owner, (open.get(owner) ?? 1) - 1)
        yield* release(owner)
      }
    })
  return {
    scopeOf,
    /** `borrower` reads `owner`'s output: it stays open until `borrower`'s is released; false when it is released already. */
    borrow: (owner: string, borrower: string) =>
      Effect.sync(() => {
        if (released.has(owner)) return false
        open.set(owner, (open.get(owner) ?? 0) + 1)
        borrowed.set(borrower, [...(borrowed.get(borrower) ?? []), owner])
        return true
      }),
    finished: (id: string) => Effect.suspend(() => (done.add(id), release(id))),
    closeAll: Effect.suspend(() => Effect.forEach([...scopes.values()], (s) => Scope.close(s, Exit.void), { discard: true }))
  }
}

/**
 * The run's GPU, when its backend resolves to webgpu (`webgpu`, or `auto` that found an adapter):
 * the backend is started now, and the pool of its device is what the stages on the GPU share. A
 * backend that fails stays failed: the stages that would have used it fail with its error.
 */
const gpuOf = (options: ExecuteOptions, backend: Effect.Effect<TfBackend.BackendInfo, TfBackend.BackendError>) =>
  Effect.gen(function* () {
    if (options.dryRun === true) return undefined
    const name = yield* TfBackend.requestedName(options.backend)
    if (name !== "webgpu" && name !== "auto") return undefined
    const pool = yield* Effect.cached(Effect.map(backend, (info) => (info.gpu === undefined ? undefined : GpuPool.make(info.gpu))))
    const started = yield* Effect.exit(pool)
    if (Exit.isSuccess(started) && started.value !== undefined && options.onGpu !== undefined) yield* options.onGpu(started.value)
    return pool
  })

// The most GPU memory TF.js held while the stage ran (GpuPool.watchMemory), on its span.
const gpuPeak = (span: Tracer.Span, watch: GpuPool.MemoryWatch | undefined) =>
  Effect.sync(() => {
    const peak = watch?.peak()
    if (peak !== undefined) span.attribute("crucible.gpu.memory.peak_bytes", peak)
  })

// Stage metrics go to the run's Metrics service when telemetry provides one.
const recordMetrics = (stage: Validate.ResolvedStage, exit: Exit.Exit<unknown, unknown>, ms: number, device: "cpu" | "gpu") =>
  Effect.gen(function* () {
    const metrics = yield* Effect.serviceOption(Metrics)
    if (metrics._tag === "None") return
    const attributes = { stageId: stage.id, stageKind: stage.kind.kind, device }
    yield* metrics.value.stageDuration(ms / 1000, attributes, Exit.isSuccess(exit) ? "success" : "failure")
    if (!Exit.isSuccess(exit)) return
    const value = exit.value
    if (Model.isModel(value)) yield* metrics.value.tensorsProcessed(value.tensors.size, attributes)
    else if (Port.isFiles(value)) yield* metrics.value.bytesWritten(value.files.reduce((n, f) => n + f.bytes, 0), attributes)
  })

/** A stage's input values as its `run` (and its `headers` check) receives them, from its inputs' outputs by stage id. */
export const inputValues = (stage: Validate.ResolvedStage, values: ReadonlyMap<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [name, input] of Object.entries(stage.kind.inputs as Record<string, Port.Input>)) {
    const refs = stage.inputs[name] ?? []
    out[name] = input.arity === "many" ? refs.map((r) => values.get(r)) : refs.length === 0 ? undefined : values.get(refs[0]!)
  }
  return out
}

const describeFailure = (cause: Cause.Cause<unknown>): { readonly tag: string; readonly message: string } => {
  const error = Cause.findErrorOption(cause)
  if (error._tag === "Some") {
    const e = error.value as { _tag?: string; message?: string }
    return { tag: e._tag ?? "Error", message: e.message ?? String(e) }
  }
  const defect = Cause.squash(cause)
  return { tag: "Defect", message: `a bug in the stage: ${defect instanceof Error ? (defect.stack ?? defect.message) : String(defect)}` }
}

/** The models among a stage's input values (a list input's too). */
const modelsIn = (values: ReadonlyMap<string, unknown>): ReadonlyArray<Model.Model> =>
  [...values.values()].flatMap((v) => (Array.isArray(v) ? v : [v])).filter(Model.isModel)

/**
 * A failure as the outcome shows it: a tracked stage's with its tensor named; one that started in
 * the lazy stage `blockedBy` (whose output this stage read) as `UpstreamFailed`, pointing there.
 */
const blame = (error: { readonly tag: string; readonly message: string }, blockedBy: string | undefined, tensor: string | undefined) =>
  blockedBy !== undefined
    ? { tag: "UpstreamFailed", message: `stage "${blockedBy}" failed (${error.tag}) while this stage was reading its output; see "${blockedBy}"` }
    : tensor === undefined ? error : LazyOutput.describeFailed(error, tensor)

/** Ends a tracked stage's span once its work is settled, with what it computed or why it failed. */
const settleSpan = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>, error: { readonly tag: string; readonly message: string } | undefined, settlement: LazyOutput.Settlement | undefined) =>
  Effect.gen(function* () {
    if (settlement !== undefined) {
      span.attribute("crucible.compute.ms", settlement.computeMs)
      if (settlement._tag === "Done") {
        span.attribute("crucible.tensors.computed", settlement.tensors)
        span.attribute("crucible.bytes.computed", settlement.bytes)
      } else {
        span.attribute("crucible.error.tensor", settlement.tensor)
      }
    }
    if (error !== undefined) {
      span.attribute("crucible.error.tag", error.tag)
      span.attribute("crucible.error.message", error.message)
      yield* Effect.logError(`stage ${span.attributes.get("crucible.stage.id")} (${span.attributes.get("crucible.stage.kind")}) failed: ${error.message}`).pipe(
        Effect.annotateLogs(REPORTED, true),
        Effect.withParentSpan(span)
      )
    }
    yield* LazyOutput.endSpan(span, exit)
  })

const outputAttributes = (value: unknown): Record<string, number> => {
  if (Model.isModel(value)) {
    return { "crucible.tensors.out": value.tensors.size, "crucible.bytes.out": Model.totalBytes(value) }
  }
  if (Port.isFiles(value)) return { "crucible.files.out": value.files.length, "crucible.bytes.written": value.files.reduce((n, f) => n + f.bytes, 0) }
  return {}
}

const summarize = (value: unknown): string | undefined => {
  if (Model.isModel(value)) return `${value.tensors.size} tensors`
  if (Port.isFiles(value)) return value.files.map((f) => `${f.path} (${f.bytes} bytes)`).join(", ")
  const metrics = (value as Port.Metrics | undefined)?.values
  if (metrics !== undefined) {
    // Headline numbers: top-level ones, and the loss/accuracy of nested results (a curve's midpoint, its barrier).
    const nested = Object.entries(metrics).flatMap(([k, v]) =>
      typeof v === "object" && v !== null && !Array.isArray(v)
        ? Object.entries(v).filter(([n, x]) => typeof x === "number" && (n === "accuracy" || n === "loss")).map(([n, x]) => [`${k}.${n}`, x] as const)
        : []
    )
    const flat = Object.entries(metrics).filter(([k, v]) => typeof v === "number" && k !== "samples" && k !== "count")
    return [...flat, ...nested].slice(0, 5).map(([k, v]) => `${k}=${(v as number).toPrecision(4)}`).join(" ")
  }
  return undefined
}
