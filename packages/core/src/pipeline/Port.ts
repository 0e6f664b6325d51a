/**
 * Ports: the types of values that flow along a pipeline's edges. A stage kind declares the port
 * of its output and the ports of its inputs; a reference from one stage to another is valid
 * only when the ports agree, which the YAML validator checks and the builder's types enforce.
 *
 * @since 0.1.0
 */
import type { Model } from "../model/Model.ts"

/** A port type: a name, and (for the compiler only) the value it carries. @category models */
export interface Port<Name extends string = string, Value = unknown> {
  readonly name: Name
  readonly description: string
  /** Phantom: never set, only carries the value type. */
  readonly _value?: Value
}

/** Defines a port type; a strategies package may define its own (datasets, architectures…). @category constructors */
export const make = <Name extends string, Value>(name: Name, description: string): Port<Name, Value> => ({ name, description })

/** The value a port carries. */
export type ValueOf<P> = P extends Port<string, infer V> ? V : never

/** Named numbers and tables a stage measured (accuracy, loss, curves…), JSON-serialisable. @category models */
export interface Metrics {
  readonly values: Readonly<Record<string, unknown>>
  /** Files the stage wrote beside the metrics (plots, tables), relative to the run directory. */
  readonly artifacts?: ReadonlyArray<string>
}

/** Files a stage wrote (a save, a report): their paths, sizes and digests. @category models */
export interface Files {
  readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number; readonly sha256: string }>
  /**
   * In a plan (`dryRun`), from a stage that would write a model: that model, whose tensors'
   * lineage tells what writing it reads, and the writer's own memory (its buffers).
   */
  readonly planned?: { readonly model: Model; readonly workingSetBytes: number } | undefined
}

/** Whether a stage's value is files it wrote (a `save`'s). @category guards */
export const isFiles = (value: unknown): value is Files => typeof value === "object" && value !== null && Array.isArray((value as Files).files)

/** Whether a stage's value is metrics. @category guards */
export const isMetrics = (value: unknown): value is Metrics => typeof value === "object" && value !== null && typeof (value as Metrics).values === "object"

/** @category ports */
export const ModelPort: Port<"model", Model> = make("model", "a model: named lazy tensors and metadata")
/** @category ports */
export const MetricsPort: Port<"metrics", Metrics> = make("metrics", "measured values (JSON)")
/** @category ports */
export const FilesPort: Port<"files", Files> = make("files", "files written to disk")

/** How a stage takes an input: one value, a list, or an optional one. @category models */
export interface Input<P extends Port = Port, Arity extends "one" | "many" | "optional" = "one" | "many" | "optional"> {
  readonly port: P
  readonly arity: Arity
  /** For `many`: the least number of values. */
  readonly min: number
  readonly description: string
}

/** One value of port `port`. @category constructors */
export const one = <P extends Port>(port: P, description = ""): Input<P, "one"> => ({ port, arity: "one", min: 1, description })
/** A list of values of port `port`, at least `min`. @category constructors */
export const many = <P extends Port>(port: P, options: { readonly min?: number; readonly description?: string } = {}): Input<P, "many"> =>
  ({ port, arity: "many", min: options.min ?? 1, description: options.description ?? "" })
/** An optional value of port `port`. @category constructors */
export const optional = <P extends Port>(port: P, description = ""): Input<P, "optional"> => ({ port, arity: "optional", min: 0, description })

/** What a stage's `run` receives for an input. */
export type InputValue<I> = I extends Input<infer P, infer A>
  ? A extends "many" ? ReadonlyArray<ValueOf<P>> : A extends "optional" ? ValueOf<P> | undefined : ValueOf<P>
  : never
