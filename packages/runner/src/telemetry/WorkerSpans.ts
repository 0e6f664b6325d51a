/**
 * Spans from `node:worker_threads` workers, exported by the main thread.
 *
 * Design: a worker does not export anything itself. The main thread opens a `MessageChannel`
 * per worker (`open`) and hands the worker one port together with a trace carrier; the worker
 * installs `layer(init)`, whose span processor posts each span, as plain data, on that port the
 * moment it ends; the main thread feeds them to its own span processors (`Telemetry.adopt`).
 * Chosen over a worker with its own exporters because then there is one exporter, one
 * connection, one trace file and one shutdown for the whole run; worker spans carry the run's
 * resource; and a worker needs no endpoint configuration. The channel is separate from the
 * worker's own messages, so a worker pool's protocol is untouched.
 *
 * Parent:
 * ```ts
 * const init = yield* WorkerSpans.open          // scoped: drains and closes the channel at the end
 * new Worker(url, { workerData: { telemetry: init }, transferList: [init.port] })
 * ```
 * Worker:
 * ```ts
 * task.pipe(Propagation.withParent(init.carrier), Effect.provide(WorkerSpans.layer(init)))
 * ```
 * A long-lived worker can keep one channel and receive a fresh carrier (`Propagation.inject`)
 * with each task.
 *
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as Resource from "@effect/opentelemetry/Resource"
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Duration, Effect, Layer, Option, type Scope } from "effect"
import { MessageChannel, type MessagePort } from "node:worker_threads"
import * as Propagation from "./Propagation.ts"
import * as SpanTransfer from "./SpanTransfer.ts"
import { Telemetry } from "./Telemetry.ts"

/** What a worker receives: where its spans go and the span they continue. @category models */
export interface WorkerTelemetry {
  /** The current span when the channel was opened; `undefined` outside any span. */
  readonly carrier: Propagation.TraceCarrier | undefined
  /** Transfer it to the worker (`transferList`); spans come back on it. */
  readonly port: MessagePort
}

type Message =
  | { readonly _tag: "crucible/telemetry/spans"; readonly spans: ReadonlyArray<SpanTransfer.TransferredSpan> }
  | { readonly _tag: "crucible/telemetry/end" }

const isMessage = (value: unknown): value is Message =>
  typeof value === "object" && value !== null && "_tag" in value &&
  (value._tag === "crucible/telemetry/spans" || value._tag === "crucible/telemetry/end")

/**
 * Opens a span channel for one worker. When the scope closes it waits — at most
 * `drainTimeoutMillis` (5 s) — until the worker's telemetry has shut down or the worker has
 * exited, so spans still in flight are exported, then closes the channel.
 *
 * @category parent
 */
export const open = (options: { readonly drainTimeoutMillis?: number } = {}): Effect.Effect<WorkerTelemetry, never, Telemetry | Scope.Scope> =>
  Effect.gen(function* () {
    const telemetry = yield* Telemetry
    const carrier = Option.getOrUndefined(yield* Propagation.inject)
    const { port1, port2 } = new MessageChannel()
    let drain: () => void = () => {}
    const drained = new Promise<void>((resolve) => (drain = resolve))
    port1.on("message", (message: unknown) => {
      if (!isMessage(message)) return
      if (message._tag === "crucible/telemetry/end") return drain()
      Effect.runSync(telemetry.adopt(message.spans))
    })
    port1.once("close", () => drain())
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => drained).pipe(
        Effect.timeoutOption(Duration.millis(options.drainTimeoutMillis ?? 5_000)),
        Effect.andThen(Effect.sync(() => port1.close()))
      )
    )
    return { carrier, port: port2 }
  })

/** Posts every span that ends to the main thread. @category worker */
export class PortSpanProcessor implements SpanProcessor {
  readonly #port: MessagePort
  #open = true

  constructor(port: MessagePort) {
    this.#port = port
    // The port must not keep the worker alive: the worker's own work decides when it exits.
    port.unref()
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (!this.#open) return
    try {
      this.#port.postMessage({ _tag: "crucible/telemetry/spans", spans: [SpanTransfer.toData(span)] } satisfies Message)
    } catch {
      // A span that cannot be cloned (or a channel already closed by the parent) is dropped
      // rather than failing the traced work.
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve()
  }

  shutdown(): Promise<void> {
    if (this.#open) {
      this.#open = false
      // Not closing the port: messages already posted must still be delivered.
      try {
        this.#port.postMessage({ _tag: "crucible/telemetry/end" } satisfies Message)
      } catch {
        // The parent already closed the channel.
      }
    }
    return Promise.resolve()
  }
}

/**
 * The worker side: installs OpenTelemetry tracing in the worker with spans posted to `init.port`.
 * Its release tells the main thread that every span has been sent.
 *
 * @category worker
 */
export const layer = (init: WorkerTelemetry): Layer.Layer<Resource.Resource> =>
  NodeSdk.layer(() => ({
    spanProcessor: new PortSpanProcessor(init.port),
    // The main thread replaces the resource with the run's; this one is never exported.
    resource: { serviceName: "crucible-worker" }
  })).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({}))))
