/**
 * The work a lazy stage leaves in its output. A lazy stage (`resources.lazy`: merges, a user's
 * `user/scale`) returns at once with a model whose tensors are computed when a consumer reads them,
 * so its compute happens inside `save`. For the work to be shown where it belongs, the executor
 * hands consumers the output {@link track}ed here: each tensor the stage made (not one it passed
 * through from an input) is read under the stage's own span — a `tensor <name>` child span from its
 * first read to its last element, which the kernels' spans and `merge.diagnostics` events nest in —
 * counts towards the stage's progress (bytes delivered, one unit), and a failure while computing it
 * is the stage's failure, with the tensor named. The stage is settled when every such tensor has
 * been read whole, when its output is released (no consumer can read it any more), or at the first
 * failure; until then it is running, and its span, duration and timeline bar cover the compute.
 *
 * A stage without model inputs (`load`) is a source: reading its tensors is I/O that the reader
 * does, and stays in the reader's span (the executor does not track it).
 *
 * Wrapping costs a few Effect steps per read call (one per 1M-element chunk of a streamed merge),
 * not per element.
 *
 * @since 0.1.0
 */
import { type Model, type Stage, TensorRef } from "@crucible/core"
import { Cause, Deferred, Effect, Exit, type Tracer } from "effect"
import { bytes, duration } from "./cli/Format.ts"

/**
 * Which stage each failure started in, by the failure's object (a tagged error or a defect), for
 * one run: a consumer whose read failed blames that stage, not itself.
 *
 * @category models
 */
export type Origins = WeakMap<object, string>

/** How a tracked stage's work ended. @category models */
export type Settlement =
  | {
    readonly _tag: "Done"
    /** True when the output was released before every tensor had been read whole. */
    readonly released: boolean
    readonly tensors: number
    readonly bytes: number
    /** Time spent inside its tensors' reads (their compute, and the reads of their inputs). */
    readonly computeMs: number
  }
  | {
    readonly _tag: "Failed"
    readonly tensor: string
    readonly cause: Cause.Cause<unknown>
    /** The stage the failure started in, when it is not this one (a merge of a failed merge). */
    readonly upstream: string | undefined
    readonly computeMs: number
  }

/** @category models */
export interface Tracked {
  /** The output consumers get: the stage's own tensors wrapped, the others as they were. */
  readonly output: Model.Model
  /** Waits for the stage's work to end. */
  readonly settled: Effect.Effect<Settlement>
  /** The output is released (every consumer is done): settles the stage and ends open tensor spans. */
  readonly release: Effect.Effect<void>
}

/** @category models */
export interface TrackOptions {
  readonly stage: string
  /** The stage's span, still open: tensor spans become its children. */
  readonly span: Tracer.Span
  readonly output: Model.Model
  /** The models the stage read: their tensors, passed through, are not its work. */
  readonly inputs: ReadonlyArray<Model.Model>
  readonly origins: Origins
  readonly report: (event: Stage.ProgressEvent) => Effect.Effect<void>
  /** Runs around each read of the stage's own tensors (a GPU stage's holds the device's slot, see `GpuPool.ts`). */
  readonly guard?: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

// Partial progress (inside a large tensor) at most this often; a finished tensor is always reported.
const REPORT_EVERY_MS = 200

/** The object a cause's first failure (or defect) is, when it is one. @category failures */
export const failureOf = (cause: Cause.Cause<unknown>): object | undefined => {
  const error = Cause.findErrorOption(cause)
  const value = error._tag === "Some" ? error.value : Cause.squash(cause)
  return typeof value === "object" && value !== null ? value : undefined
}

/** The stage a failure started in, when a tracked stage recorded it. @category failures */
export const originOf = (origins: Origins, cause: Cause.Cause<unknown>): string | undefined => {
  const failure = failureOf(cause)
  return failure === undefined ? undefined : origins.get(failure)
}

/** Ends `span` now with `exit`, unless it has ended. @category spans */
export const endSpan = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Effect.clockWith((clock) => Effect.sync(() => {
    if (span.status._tag !== "Ended") span.end(clock.currentTimeNanosUnsafe(), exit)
  }))

/** Wraps the stage's own tensors of `options.output`. @category constructors */
export const track = (options: TrackOptions): Effect.Effect<Tracked> =>
  Effect.gen(function* () {
    const { stage, span: stageSpan, origins } = options
    const settled = yield* Deferred.make<Settlement>()
    const passedThrough = new Set(options.inputs.flatMap((m) => [...m.tensors.values()]))
    const own = [...options.output.tensors.values()].filter((t) => !passedThrough.has(t))
    const totalBytes = TensorRef.totalByteLength(own)
    const open = new Set<Tracer.Span>()
    let done = 0
    let doneBytes = 0
    let computeMs = 0
    let lastReport = 0

    let ended: Settlement | undefined
    const settle = (s: Settlement) => Effect.suspend(() => {
      ended ??= s
      return Deferred.succeed(settled, s)
    })
    const report = (tensor: string, force: boolean) =>
      Effect.suspend(() => {
        const now = Date.now()
        if (!force && now - lastReport < REPORT_EVERY_MS) return Effect.void
        lastReport = now
        return options.report({ stage, done: doneBytes, total: totalBytes, unit: "bytes", detail: tensor })
      })

    const wrap = (t: TensorRef.TensorRef): TensorRef.TensorRef => {
      const n = TensorRef.numel(t.shape)
      const perElement = n === 0 ? 0 : TensorRef.byteLength(t) / n
      let delivered = 0
      let complete = n === 0
      let tensorSpan: Tracer.Span | undefined
      const spanFor: Effect.Effect<Tracer.Span> = Effect.suspend(() => {
        if (complete) return Effect.succeed(stageSpan)
        if (tensorSpan !== undefined) return Effect.succeed(tensorSpan)
        return Effect.map(
          Effect.makeSpan(`tensor ${t.name}`, {
            parent: stageSpan,
            attributes: { "crucible.stage.id": stage, "crucible.tensor.name": t.name, "crucible.tensor.dtype": t.dtype, "crucible.tensor.shape": TensorRef.formatShape(t.shape), "crucible.tensor.bytes": TensorRef.byteLength(t) }
          }),
          (s) => {
            tensorSpan = s
            open.add(s)
            return s
          }
        )
      })
      const finish = (range: TensorRef.ElementRange | undefined, exit: Exit.Exit<unknown, unknown>, started: number, span: Tracer.Span) =>
        Effect.suspend(() => {
          const spent = performance.now() - started
          computeMs += spent
          if (span !== stageSpan) span.attribute("crucible.compute.ms", ((span.attributes.get("crucible.compute.ms") as number | undefined) ?? 0) + spent)
          if (Exit.isSuccess(exit)) {
            const { start, end } = TensorRef.rangeOf(t, range)
            const before = Math.min(delivered, n)
            delivered += end - start
            doneBytes += (Math.min(delivered, n) - before) * perElement
            if (complete) return Effect.void
            if (delivered < n) return report(t.name, false)
            complete = true
            done++
            open.delete(span)
            return Effect.andThen(endSpan(span, exit), Effect.andThen(report(t.name, true), done === own.length
              ? settle({ _tag: "Done", released: false, tensors: done, bytes: doneBytes, computeMs })
              : Effect.void))
          }
          // A consumer stopped (Ctrl-C): the tensor is not finished, nor failed.
          if (Cause.hasInterruptsOnly(exit.cause)) {
            if (span === stageSpan) return Effect.void
            tensorSpan = undefined
            open.delete(span)
            return endSpan(span, exit)
          }
          const failure = failureOf(exit.cause)
          const upstream = failure === undefined ? undefined : origins.get(failure)
          // A stage that already ended (a later consumer computing a tensor again) is not blamed.
          if (failure !== undefined && upstream === undefined && ended?._tag !== "Done") origins.set(failure, stage)
          if (span !== stageSpan) {
            tensorSpan = undefined
            open.delete(span)
          }
          return Effect.andThen(
            span === stageSpan ? Effect.void : endSpan(span, exit),
            settle({ _tag: "Failed", tensor: t.name, cause: exit.cause, upstream: upstream === stage ? undefined : upstream, computeMs })
          )
        })
      const around = <A>(range: TensorRef.ElementRange | undefined, effect: Effect.Effect<A, TensorRef.TensorError>) =>
        Effect.flatMap(spanFor, (span) => {
          const started = performance.now()
          return (options.guard?.(effect) ?? effect).pipe(Effect.withParentSpan(span), Effect.onExit((exit) => finish(range, exit, started, span)))
        })
      const wrapped: TensorRef.TensorRef = { ...t, read: (range) => around(range, t.read(range)) }
      return TensorRef.hasReadInto(t) ? TensorRef.withReadInto(wrapped, (range, target) => around(range, TensorRef.readInto(t, range, target)), TensorRef.targetMemoryOf(t)) : wrapped
    }

    const ownSet = new Set(own)
    const tensors = new Map([...options.output.tensors].map(([name, t]) => [name, ownSet.has(t) ? wrap(t) : t] as const))
    if (own.length === 0) yield* settle({ _tag: "Done", released: false, tensors: 0, bytes: 0, computeMs: 0 })
    return {
      output: { ...options.output, tensors },
      settled: Deferred.await(settled),
      release: Effect.suspend(() => {
        const left = [...open]
        open.clear()
        return Effect.andThen(
          Effect.forEach(left, (s) => Effect.andThen(Effect.sync(() => s.attribute("crucible.tensor.partial", true)), endSpan(s, Exit.void)), { discard: true }),
          settle({ _tag: "Done", released: done < own.length, tensors: done, bytes: doneBytes, computeMs })
        )
      })
    }
  })

/** The stage's summary line once settled: what it computed, and how long its reads took. @category formatting */
export const summary = (settlement: Extract<Settlement, { _tag: "Done" }>): string =>
  `${settlement.tensors} tensors, ${bytes(settlement.bytes)} computed in ${duration(settlement.computeMs)} as they were read${settlement.released ? " (released before all were read)" : ""}`

/**
 * A failure of a tracked stage as its outcome shows it: the tensor named (a kernel's message
 * usually does; else it is added).
 *
 * @category formatting
 */
export const describeFailed = (failed: { readonly tag: string; readonly message: string }, tensor: string): { readonly tag: string; readonly message: string } =>
  failed.message.includes(`"${tensor}"`) ? failed : { tag: failed.tag, message: `${failed.message} (computing tensor "${tensor}")` }
