/**
 * What every weight-space merge shares, so that a method is one small definition: inputs `base`
 * and `models`, mergekit-style parameter rules resolved per tensor (scalars, per-model lists,
 * `{ gradient: [...] }` over layers, `- filter: … value: …` lists), plan-time checks from headers
 * only (names, shapes, dtypes, a method's requirements), `on_missing`, `unmatched` (what a tensor
 * that no rule matches does), non-finite checks, and a lazy output: each tensor is merged when a
 * consumer reads it, then dropped after its last chunk, so memory holds one tensor's inputs.
 *
 * Integer and bool tensors (step counters, masks) are never merged: they come from the base, or
 * the first model when there is no base.
 *
 * @since 0.1.0
 */
import { type Check, DType, Lineage, MemoryBudget, Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Option, Result, Schema } from "effect"
import type { GpuKernelError } from "./gpu/Device.ts"
import { GpuMerge } from "./GpuMerge.ts"
import type { MergeKernelError } from "./kernels/KernelError.ts"
import * as NonFinite from "./kernels/NonFinite.ts"
import * as Parallel from "./kernels/Parallel.ts"
import type * as Pool from "./kernels/Pool.ts"
import { InvalidMergeParams, MergeInputsMismatch } from "./MergeError.ts"
import * as MethodCheck from "./MethodCheck.ts"
import type { TaskArithmeticPlan } from "./kernels/TaskArithmetic.ts"
import * as RangeWise from "./RangeWise.ts"
import * as Layer from "./rules/Layer.ts"
import { ParamValue, type RuleSchema } from "./rules/ParamValue.ts"
import * as StagePool from "./StagePool.ts"
import * as TensorBuffers from "./TensorBuffers.ts"

/** One tensor to merge: its inputs (float32) and its resolved parameters. @category models */
export interface Job {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly base: Float32Array | undefined
  readonly models: ReadonlyArray<Float32Array>
  /** The value of a rule parameter for this tensor (and model), undefined when not given or unmatched. */
  readonly value: (param: string, model?: number) => number | undefined
  /** `value(param, i) ?? fallback` for every model i (weights, densities…). */
  readonly perModel: (param: string, fallback: number) => Array<number>
  /** For methods with `statistics`: each model's statistic for this tensor (undefined when absent). */
  readonly statistics: ReadonlyArray<Float32Array> | undefined
  /**
   * Reports numbers about this tensor's merge (kept fractions, sign agreement, the angle, norms):
   * they become one `merge.diagnostics` span event per tensor, which the dashboard's card shows.
   * Compute them alongside the kernel; never with a second pass over the tensor.
   */
  readonly diagnose: (values: Diagnostics) => void
}

/** Numbers a method reports about one merged tensor, by name. @category models */
export type Diagnostics = Readonly<Record<string, number | boolean>>

/**
 * What is known of one tensor from the headers alone — its name, shape, the number of models and
 * its resolved rule parameters: enough for a method to check its parameters before any data is
 * read (`MethodDefinition.checkTensor`).
 *
 * @category models
 */
export interface TensorParams extends Pick<Job, "name" | "shape" | "value" | "perModel"> {
  /** How many models (besides the base) are merged. */
  readonly models: number
}

/** Whether a method takes a base model. @category models */
export type BaseRequirement = "required" | "optional" | "none"

/**
 * The statistics a method reads: one model per merged model on its `statistics` input.
 * `Description` is a type parameter only so that `define` can tell, from the type alone, whether a
 * method has statistics (inferring the whole object would fail on the untyped `tensorFor` arrow).
 *
 * @category models
 */
export interface StatisticsSpec<Description extends string = string> {
  readonly description: Description
  /** The statistic's tensor name for a parameter tensor's name. */
  readonly tensorFor: (name: string) => string
}

/** @category models */
export interface MethodDefinition<
  Kind extends string,
  Fields extends Schema.Struct.Fields,
  Rules extends string = never,
  Base extends BaseRequirement = BaseRequirement,
  // The `description` of `statistics` (never: the method has none), which decides the `statistics` input.
  StatisticsDescription extends string = never
> {
  readonly kind: Kind
  readonly description: string
  readonly reference?: string
  /** Whether the method takes a base model: `base` is then a required, an optional or no input. */
  readonly base: Base
  /** Least number of `models` (besides the base). */
  readonly minModels: number
  /** Most number of `models` (e.g. 2 for SLERP). */
  readonly maxModels?: number
  /** Parameters that accept rules (per model, per tensor, per layer): resolved into `Job.value`. */
  readonly rules: ReadonlyArray<Rules>
  /** Rules whose numbers have a range (density in [0, 1]): `ParamValue.Unit`, `ParamValue.NonNegative`. */
  readonly ranges?: { readonly [R in Rules]?: RuleSchema }
  /** What each rule means and the value a tensor gets when no rule gives one: `crucible kinds` and the editor schema show them. */
  readonly docs?: { readonly [R in Rules]?: RuleDoc }
  /**
   * The method's own check of its params against what its inputs reference, at validation (the
   * counts of models, statistics and rule values are checked for every method).
   */
  readonly checkParams?: (context: MethodCheck.ReferencesContext) => ReadonlyArray<Check.Issue>
  /**
   * Checks one tensor's parameters from its header, before anything is read: in the preflight of
   * `crucible validate` and `run`, on every tensor the method would merge. Usually the kernel's
   * `plan`, which the merge calls again on the tensor's data.
   */
  readonly checkTensor?: (tensor: TensorParams, params: Schema.Struct.Type<Fields>) => Result.Result<unknown, MergeKernelError>
  /** Plain parameters of the method. */
  readonly fields: Fields
  /**
   * Per-model statistics the method reads (Fisher diagonals, Gram matrices), given as one model per
   * merged model on the `statistics` input, which only such methods have.
   */
  readonly statistics?: StatisticsSpec<StatisticsDescription>
  /** Merges one tensor. */
  readonly merge: (job: Job, params: Schema.Struct.Type<Fields>) => Result.Result<Float32Array, MergeKernelError>
  /**
   * The same merge on a worker pool, writing into `out` (the job's arrays and `out` are in shared
   * memory). It must give the bytes `merge` gives (the `Parallel` kernels do, for any worker
   * count). When present, large tensors run on the stage's pool; `merge` runs the others.
   */
  readonly parallel?: (pool: Pool.Pool, job: Job, params: Schema.Struct.Type<Fields>, out: Float32Array) => Effect.Effect<void, MergeKernelError | Pool.PoolError>
  /**
   * The same merge in WGSL (`merge/gpu/`), used when the run provides {@link GpuMerge}; its value
   * is undefined when these parameters have no GPU kernel (DARE's draws…), and then the CPU runs.
   * It agrees with `merge` within the bounds the strategies README states ("GPU kernels"), not
   * bit for bit. Range-wise tensor groups stay on the CPU.
   */
  readonly gpu?: (device: GPUDevice, job: Job, params: Schema.Struct.Type<Fields>) => Effect.Effect<Float32Array | undefined, MergeKernelError | GpuKernelError>
  /**
   * For the task-arithmetic family: the method as a task-arithmetic plan for one tensor. Tensor
   * groups too large to hold as float32 then merge range-wise with their inputs packed in their
   * own dtype (`RangeWise.ts`), with the bytes `merge` gives; the method reports its diagnostics.
   */
  readonly rangeWise?: (tensor: TensorParams, params: Schema.Struct.Type<Fields>) => Result.Result<TaskArithmeticPlan, MergeKernelError>
}

/** A rule's meaning and its default (the value the kernel uses when no rule matches). @category models */
export interface RuleDoc {
  readonly description: string
  readonly default?: number
}

/** A rule parameter as users write it (see `rules/ParamValue.ts`), optional like every rule. */
type RuleFields<Rules extends string> = { readonly [R in Rules]: Schema.optional<typeof ParamValue> }

type ModelInput<Arity extends "one" | "many" | "optional"> = Port.Input<typeof Port.ModelPort, Arity>

/**
 * A method's inputs, by type as at run time: `base` is required, optional or absent as the method
 * says, and `statistics` exists only on methods that read them. So the builder demands exactly
 * the inputs a method needs, and YAML validation reports a missing base (`MissingInput`) or a
 * base given to a method without one (`UnknownParam`) before anything runs.
 *
 * @category models
 */
export type MethodInputs<Base extends BaseRequirement, StatisticsDescription extends string> =
  & { readonly models: ModelInput<"many"> }
  & (Base extends "required" ? { readonly base: ModelInput<"one"> } : Base extends "optional" ? { readonly base: ModelInput<"optional"> } : unknown)
  & ([StatisticsDescription] extends [never] ? unknown : { readonly statistics: ModelInput<"many"> })

const OnMissing = Schema.Literals(["error", "skip", "base"])
const Unmatched = Schema.Literals(["merge", "base", "error"])

const Common = {
  on_missing: OnMissing.annotate({ description: "a tensor missing in some input: fail, leave it out, or copy the base's" }).pipe(Stage.withDefault<typeof OnMissing>("error")),
  unmatched: Unmatched.annotate({ description: "a tensor no filter rule matches: merge it with the defaults, copy the base's, or fail listing them" }).pipe(Stage.withDefault<typeof Unmatched>("merge")),
  allow_nonfinite: Schema.Boolean.annotate({ description: "accept NaN/±Inf in inputs and output instead of failing at the first" }).pipe(Stage.withDefault(false)),
  out_dtype: Schema.optional(DType.WritableDTypeName.annotate({ description: "the output dtype (default: each tensor's input dtype)" }))
}

/** Defines a merge stage kind from a method. @category constructors */
export const define = <
  const Kind extends string,
  Fields extends Schema.Struct.Fields,
  const Rules extends string = never,
  const Base extends BaseRequirement = BaseRequirement,
  const StatisticsDescription extends string = never
>(method: MethodDefinition<Kind, Fields, Rules, Base, StatisticsDescription>) => {
  // Typed by the rule names (a `const` type parameter), so `density`, `t`… are keys of the params.
  const ruleFields = Object.fromEntries(method.rules.map((r) => {
    const doc = method.docs?.[r]
    const schema = method.ranges?.[r] ?? ParamValue
    return [r, Schema.optional(doc === undefined ? schema : schema.annotate({ description: doc.description, ...(doc.default === undefined ? {} : { default: doc.default }) }))]
  })) as RuleFields<Rules>
  const params = Schema.Struct({ ...method.fields, ...ruleFields, ...Common })
  return Stage.define({
    kind: method.kind,
    version: 1,
    description: method.description,
    ...(method.reference === undefined ? {} : { reference: method.reference }),
    params,
    inputs: inputsOf(method),
    output: Port.ModelPort,
    // A method with a GPU kernel runs where the backend is: on a GPU run it holds the device's slot.
    resources: { lazy: true, ...(method.gpu === undefined ? {} : { device: "any" as const }) },
    check: checksOf(method),
    run: Effect.fn(`${method.kind}.run`)(function* ({ id, params: p, inputs: given }) {
      const raw = p as Record<string, unknown>
      // The method sees its own fields; the rules reach it through `Job.value`.
      const fields = p as unknown as Schema.Struct.Type<Fields>
      // The inputs the method lacks are absent; `progressive/iterative` also calls `run` directly
      // (no statistics, maybe no base), so the checks below stay.
      const inputs = given as { readonly base?: Model.Model | undefined; readonly models: ReadonlyArray<Model.Model>; readonly statistics?: ReadonlyArray<Model.Model> }
      const base = inputs.base
      const models = inputs.models
      const statistics = inputs.statistics ?? []
      const fail = (detail: string) => Effect.fail(new InvalidMergeParams({ stage: id, detail }))
      if (method.base === "required" && base === undefined) return yield* fail(`${method.kind} needs a base: add base: <stage id>`)
      if (method.base === "none" && base !== undefined) return yield* fail(`${method.kind} takes no base`)
      const [count] = MethodCheck.checkCounts(method, models.length, statistics.length)
      if (count !== undefined) return yield* fail(count.message)
      if (method.statistics === undefined && statistics.length > 0) return yield* fail(`${method.kind} takes no statistics`)
      // Every rule that does not fit the model count, at once.
      const { rules, problems: ruleProblems } = MethodCheck.compileRules(raw, method.rules, models.length)
      if (ruleProblems.length > 0) return yield* fail(ruleProblems.map((p) => p.message).join("; "))
      const onMissing = raw.on_missing as string
      const unmatched = raw.unmatched as string
      const all = base === undefined ? models : [base, ...models]
      const { names, problems } = MethodCheck.plan(all, onMissing)
      if (problems.length > 0) return yield* new MergeInputsMismatch({ stage: id, mismatches: problems.map((p) => p.message) })
      const reference = all[0]!
      const layerCount = Layer.layerCount(names)
      const unmatchedNames = new Set([...rules.values()].flatMap((r) => r.unmatched(names)))
      if (unmatched === "error" && unmatchedNames.size > 0) {
        return yield* new MergeInputsMismatch({ stage: id, mismatches: [...unmatchedNames].map((n) => `"${n}" matches no filter of ${[...rules.values()].filter((r) => r.unmatched([n]).length > 0).map((r) => r.parameter).join(", ")} (unmatched: error)`) })
      }
      const outDtype = raw.out_dtype === undefined ? undefined : DType.parseWritable(raw.out_dtype as string)
      const allowNonFinite = raw.allow_nonfinite as boolean
      yield* Effect.annotateCurrentSpan({ "crucible.merge.method": method.kind, "crucible.merge.models": models.length, "crucible.merge.base": base !== undefined, "crucible.tensors.out": names.length })
      // Inputs are read into buffers reused from tensor to tensor (see TensorBuffers), dropped
      // after the last tensor, after each one under a memory limit (so that only the working set
      // it holds is in use), and when the stage's scope closes.
      const scope = yield* Effect.scope
      // The GPU's kernels when the runner provides one (webgpu backend), else the CPU's.
      const gpu = method.gpu === undefined ? Option.none() : yield* Effect.serviceOption(GpuMerge)
      const workers = method.parallel === undefined ? undefined : StagePool.make(scope)
      const buffers = TensorBuffers.make({ shared: workers?.enabled ?? false })
      const outputs = sharedOutput()
      // Large groups of the task-arithmetic family merge range-wise (threshold read once, here).
      const rangeWiseBytes = RangeWise.thresholdFromEnv()
      const memoryLimit = (yield* MemoryBudget.MemoryBudget).limit
      const packed = RangeWise.buffers()
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        buffers.release()
        outputs.release()
        packed.release()
      }))
      const mergedNames: Array<string> = []
      const tensors = names.map((name): TensorRef.TensorRef => {
        const like = (base ?? models.find((m) => m.tensors.has(name))!).tensors.get(name) ?? reference.tensors.get(name)!
        const present = models.map((m) => m.tensors.get(name))
        const copyOf = base?.tensors.get(name) ?? present.find((t) => t !== undefined)!
        if (!DType.isFloat(like.dtype) || (unmatched === "base" && unmatchedNames.has(name)) || present.some((t) => t === undefined)) {
          return copyOf
        }
        const value = (param: string, model = 0) => rules.get(param)?.resolve(name, model, Layer.layerIndex(name), layerCount)
        const perModel = (models: number): Job["perModel"] => (param, fallback) => Array.from({ length: models }, (_, i) => value(param, i) ?? fallback)
        const job = (baseData: Float32Array | undefined, data: ReadonlyArray<Float32Array>, stats: ReadonlyArray<Float32Array> | undefined, diagnose: Job["diagnose"]): Job => ({
          name,
          shape: like.shape,
          base: baseData,
          models: data,
          value,
          perModel: perModel(data.length),
          statistics: stats,
          diagnose
        })
        const statName = method.statistics?.tensorFor(name)
        const statRefs = statName === undefined ? [] : statistics.map((m) => m.tensors.get(statName))
        // The working set: every input (as float32) and the output, held against --memory-limit.
        const workingSet = (present.length + (base === undefined ? 1 : 2) + statRefs.length) * TensorRef.numel(like.shape) * 4
        const inputs = base === undefined ? present.map((t) => t!) : [base.tensors.get(name)!, ...present.map((t) => t!)]
        const dtype = outDtype ?? (DType.parseWritable(like.dtype) ?? "F32")
        if (method.rangeWise !== undefined && base !== undefined && statRefs.length === 0) {
          const header: TensorParams = { name, shape: like.shape, value, perModel: perModel(present.length), models: present.length }
          const planned = method.rangeWise(header, fields)
          if (Result.isSuccess(planned) && RangeWise.eligible({ inputs, plan: planned.success, workingSet, threshold: rangeWiseBytes, limit: memoryLimit })) {
            const merged = RangeWise.tensor({ like, dtype, inputs, plan: planned.success, workers, buffers: packed, allowNonFinite, diagnose: true, releaseAfter: memoryLimit !== undefined, gpu: Option.isSome(gpu) ? { device: gpu.value.device } : undefined })
            return TensorRef.withLineage(merged, Lineage.derived(inputs, { bytes: RangeWise.heldBytes(inputs) }))
          }
        }
        mergedNames.push(name)
        // Statistics of the tensor's own shape (Fisher diagonals) are read with the inputs, into the
        // same reused (shared) buffers; others (Gram matrices) on their own.
        const n = TensorRef.numel(like.shape)
        // The statistics are used only when every model has its tensor.
        const statTensors = statRefs.length > 0 && statRefs.every((t) => t !== undefined) ? (statRefs as ReadonlyArray<TensorRef.TensorRef>) : undefined
        const statsAlongside = statTensors !== undefined && statTensors.every((t) => TensorRef.numel(t.shape) === n)
        const toRead = statsAlongside ? [...inputs, ...statTensors] : inputs
        const isShared = (a: Float32Array) => a.buffer instanceof SharedArrayBuffer
        // For `crucible plan`: a merged tensor reads each input (and statistic) whole, once, holding the working set.
        const lineage = Lineage.derived(statTensors === undefined || statsAlongside ? toRead : [...toRead, ...statTensors], { bytes: workingSet })
        return TensorRef.withLineage(lazyTensor(like, dtype, outputs.giveBack, () =>
          MemoryBudget.hold(name, workingSet)(buffers.read(toRead, (read) => Effect.gen(function* () {
            const arrays = read.slice(0, inputs.length)
            const baseData = base === undefined ? undefined : arrays[0]!
            const data = base === undefined ? arrays : arrays.slice(1)
            const pool = workers === undefined ? undefined : yield* workers.forTensor(n)
            if (!allowNonFinite) yield* checkFinite(name, "input", arrays, pool)
            const stats = statsAlongside
              ? read.slice(inputs.length)
              : statTensors !== undefined ? yield* Effect.forEach(statTensors, (t) => TensorRef.readFloat32(t)) : undefined
            const diagnostics: Record<string, number | boolean> = {}
            const diagnose = (values: Diagnostics) => void Object.assign(diagnostics, values)
            let result = Option.isSome(gpu) ? yield* method.gpu!(gpu.value.device, job(baseData, data, stats, diagnose), fields) : undefined
            if (result !== undefined) {
              yield* Effect.annotateCurrentSpan({ "crucible.merge.device": "gpu" })
            } else if (pool !== undefined && method.parallel !== undefined && arrays.every(isShared) && (stats === undefined || stats.every(isShared))) {
              result = outputs.take(TensorRef.numel(like.shape))
              yield* method.parallel(pool, job(baseData, data, stats, diagnose), fields, result)
            } else {
              const merged = method.merge(job(baseData, data, stats, diagnose), fields)
              if (Result.isFailure(merged)) return yield* Effect.fail(merged.failure)
              result = merged.success
            }
            // On the span the tensor is computed under: the runner parents it to this stage's span.
            if (Object.keys(diagnostics).length > 0) yield* Stage.event("merge.diagnostics", { tensor: name, ...diagnostics })
            if (!allowNonFinite) yield* checkFinite(name, "output", [result], pool)
            // A result that is an input (or a view of one) must outlive the reused buffers.
            return buffers.owns(result) ? result.slice() : result
          }))).pipe(Effect.ensuring(Effect.gen(function* () {
            if (name === mergedNames.at(-1) || (yield* MemoryBudget.MemoryBudget).limit !== undefined) buffers.release()
          })))
        ), lineage)
      })
      const merged = Model.make(`${id} (${method.kind})`, tensors, reference.metadata, [...new Set([...all, ...statistics].flatMap((m) => m.files))])
      // The Hugging Face folders it comes from, for a save to a folder (config, tokenizer, card).
      return { ...merged, provenance: Model.combine(method.kind, { base, models }) }
    })
  })
}

/** The input ports of a method, as {@link MethodInputs} types them. */
const inputsOf = <Base extends BaseRequirement, StatisticsDescription extends string>(
  method: { readonly base: Base; readonly minModels: number; readonly statistics?: StatisticsSpec<StatisticsDescription> }
): MethodInputs<Base, StatisticsDescription> => {
  const models = Port.many(Port.ModelPort, { min: method.minModels, description: "the models to merge" })
  const base = method.base === "none" ? {} : {
    base: method.base === "required"
      ? Port.one(Port.ModelPort, "the model task vectors are taken from")
      : Port.optional(Port.ModelPort, "the model task vectors are taken from")
  }
  // One statistics model per merged model: at least `minModels`, the exact count checked at run time.
  const statistics = method.statistics === undefined ? {} : {
    statistics: Port.many(Port.ModelPort, { min: method.minModels, description: method.statistics.description })
  }
  // The conditional type follows the same three tests; TypeScript cannot narrow it from values.
  return { models, ...base, ...statistics } as unknown as MethodInputs<Base, StatisticsDescription>
}

/** A method's checks as a stage kind declares them (see `MethodCheck.ts`). */
const checksOf = <Fields extends Schema.Struct.Fields>(
  method: Omit<MethodDefinition<string, Fields, string, BaseRequirement, string>, "merge" | "parallel" | "rangeWise" | "gpu">
) => {
  const checked: MethodCheck.Checked = {
    ...method,
    checkTensor: method.checkTensor === undefined ? undefined : (tensor, params) => method.checkTensor!(tensor, params as Schema.Struct.Type<Fields>)
  }
  return {
    params: ({ params, inputs }: Check.ParamsContext<unknown, Record<string, Port.Input>>) =>
      MethodCheck.checkParams(checked, { params: params as Record<string, unknown>, inputs: inputs as MethodCheck.ReferencesContext["inputs"] }),
    headers: ({ params, inputs }: Check.HeadersContext<unknown, Record<string, Port.Input>>) =>
      MethodCheck.checkHeaders(checked, params as Record<string, unknown>, inputs as unknown as MethodCheck.HeaderInputs)
  }
}

// On a pool when the arrays are shared (the report is the same: first index, total count).
const checkFinite = (tensor: string, role: "input" | "output", arrays: ReadonlyArray<Float32Array>, pool?: Pool.Pool) =>
  Effect.flatMap(
    pool !== undefined && arrays.every((a) => a.buffer instanceof SharedArrayBuffer)
      ? Parallel.findNonFinite(pool, arrays.map((values) => ({ tensor, values })))
      : Effect.sync(() => NonFinite.find(arrays.map((values) => ({ tensor, values })))),
    (report) => (report === undefined ? Effect.void : Effect.fail(new NonFinite.NonFiniteTensor({ role, ...report })))
  )

/**
 * A tensor computed on its first read and kept until its last element range has been read, so a
 * writer reading it in chunks computes it once.
 */
const lazyTensor = (
  like: TensorRef.TensorRef,
  dtype: DType.WritableDType,
  done: (values: Float32Array) => void,
  compute: () => Effect.Effect<Float32Array, TensorRef.TensorError>
): TensorRef.TensorRef => {
  let cached: Float32Array | undefined
  const n = TensorRef.numel(like.shape)
  // The merged values for `range`, handed to `use`; after the last range the tensor lets go of them.
  const withValues = <A>(range: TensorRef.ElementRange | undefined, use: (values: Float32Array, start: number, end: number) => A) =>
    Effect.gen(function* () {
      const values = cached ?? (yield* compute())
      const { start, end } = TensorRef.rangeOf(like, range)
      const result = use(values, start, end)
      cached = end >= n ? undefined : values
      if (cached === undefined) done(values)
      return result
    })
  const f32View = (values: Float32Array, start: number, end: number) => new Uint8Array(values.buffer, values.byteOffset + start * 4, (end - start) * 4)
  const tensor: TensorRef.TensorRef = {
    name: like.name,
    dtype,
    shape: like.shape,
    // float32 output is a view of the merged tensor (never written again), not a copy; shared
    // memory is reused for the next tensor (`sharedOutput`), so it is copied.
    read: (range) =>
      withValues(range, (values, start, end) =>
        dtype === "F32" && values.buffer instanceof ArrayBuffer ? f32View(values, start, end) as TensorRef.TensorBytes : DType.fromNumbers(values.subarray(start, end), dtype))
  }
  // The writer's path: the bytes copied once into its buffer.
  return TensorRef.withReadInto(tensor, (range, target) =>
    withValues(range, (values, start, end) => target.set(dtype === "F32" ? f32View(values, start, end) : DType.fromNumbers(values.subarray(start, end), dtype))))
}

/**
 * The output array of pool merges, in shared memory, reused from tensor to tensor: a merged
 * tensor holds it from its computation until its last element range has been read, and a
 * tensor computed meanwhile (a second consumer) gets a fresh one. Fresh 64 MiB
 * `SharedArrayBuffer`s per tensor are freed only by a full collection, so several would
 * otherwise be alive at once (measured: ~200 MB more peak RSS in the TIES bench).
 */
const sharedOutput = () => {
  let spare: Float32Array | undefined
  let lent: Float32Array | undefined
  return {
    take: (n: number): Float32Array => {
      if (lent === undefined && spare !== undefined && spare.length >= n) {
        lent = spare
        return spare.subarray(0, n)
      }
      const fresh = new Float32Array(new SharedArrayBuffer(n * 4))
      if (lent === undefined) lent = spare = fresh
      return fresh
    },
    giveBack: (values: Float32Array): void => {
      if (lent !== undefined && values.buffer === lent.buffer) lent = undefined
    },
    release: (): void => {
      if (lent === undefined) spare = undefined
    }
  }
}
