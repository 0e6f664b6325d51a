/**
 * Pipelines in TypeScript. Each stage added returns a typed reference to its output; an input
 * accepts only references of its port type, so feeding metrics where a model is expected does
 * not compile. `build()` returns the same IR the YAML decoder produces.
 *
 * ```ts
 * const p = Builder.make("average-two")
 * const a = p.stage("a", Load, { path: "models/a.safetensors" })
 * const b = p.stage("b", Load, { path: "models/b.safetensors" })
 * const avg = p.stage("avg", Linear, { models: [a, b], weights: [0.3, 0.7] })
 * p.stage("out", Save, { model: avg, path: "out/merged.safetensors" })
 * const ir = p.build()
 * ```
 *
 * @since 0.1.0
 */
import { FORMAT_VERSION, type IrStage, type PipelineIR } from "./Ir.ts"
import type { Input, Port } from "./Port.ts"
import type { AnyStageKind } from "./Stage.ts"

/** A reference to a stage's output, of port `PortName`. @category models */
export interface Ref<PortName extends string = string> {
  readonly id: string
  readonly port: PortName
}

type RefFor<I> = I extends Input<Port<infer N>, "many"> ? ReadonlyArray<Ref<N>> : I extends Input<Port<infer N>> ? Ref<N> : never

type RequiredInputs<I> = { [K in keyof I]: I[K] extends Input<Port, "optional"> ? never : K }[keyof I]
type OptionalInputs<I> = { [K in keyof I]: I[K] extends Input<Port, "optional"> ? K : never }[keyof I]

/**
 * What `stage(id, kind, args)` takes for `kind`: its params as written in YAML (the Schema's
 * encoded side), and references for its inputs: required for `one` and `many` inputs, optional for
 * `optional` ones; a key the kind has neither as a param nor as an input does not compile.
 */
export type StageArgs<K extends AnyStageKind> =
  & K["params"]["Encoded"]
  & { readonly [P in RequiredInputs<K["inputs"]>]: RefFor<K["inputs"][P]> }
  & { readonly [P in OptionalInputs<K["inputs"]>]?: RefFor<K["inputs"][P]> }

/** @category models */
export interface PipelineBuilder {
  /** Adds a stage and returns a reference to its output. */
  readonly stage: <K extends AnyStageKind>(
    id: string,
    kind: K,
    args: StageArgs<K>,
    options?: { readonly needs?: ReadonlyArray<Ref> }
  ) => Ref<K["output"]["name"]>
  /** The IR of the stages added so far. */
  readonly build: () => PipelineIR
  /**
   * The kinds the stages use, one per name: the runner validates the IR with them, so a
   * pipeline composed in code may use kinds of its own without registering them.
   */
  readonly kinds: () => ReadonlyArray<AnyStageKind>
}

/** Whether `value` is a pipeline builder (a `.ts` pipeline's default export may be one). @category guards */
export const isBuilder = (value: unknown): value is PipelineBuilder =>
  typeof value === "object" && value !== null && typeof (value as PipelineBuilder).stage === "function" &&
  typeof (value as PipelineBuilder).build === "function" && typeof (value as PipelineBuilder).kinds === "function"

/** Starts a pipeline. @category constructors */
export const make = (name: string, options: { readonly description?: string } = {}): PipelineBuilder => {
  const stages: Array<IrStage> = []
  const kinds = new Map<string, AnyStageKind>()
  return {
    stage: (id, kind, args, stageOptions = {}) => {
      if (stages.some((s) => s.id === id)) throw new Error(`stage id "${id}" is used twice`)
      const inputNames = new Set(Object.keys(kind.inputs))
      const withValues: Record<string, unknown> = {}
      for (const [key, value] of Object.entries(args as Record<string, unknown>)) {
        if (value === undefined) continue
        withValues[key] = inputNames.has(key) ? refIds(value) : value
      }
      const known = kinds.get(kind.kind)
      if (known !== undefined && known !== kind) throw new Error(`two different stage kinds are named "${kind.kind}"`)
      kinds.set(kind.kind, kind)
      stages.push({ id, uses: kind.kind, with: withValues, needs: (stageOptions.needs ?? []).map((r) => r.id) })
      return { id, port: kind.output.name }
    },
    build: () => ({
      version: FORMAT_VERSION,
      name,
      ...(options.description === undefined ? {} : { description: options.description }),
      stages: [...stages]
    }),
    kinds: () => [...kinds.values()]
  }
}

const refIds = (value: unknown): string | ReadonlyArray<string> =>
  Array.isArray(value) ? value.map((r: Ref) => r.id) : (value as Ref).id
