/**
 * Task arithmetic and its sparsified, sign-consensus variants, all presets of one kernel:
 * θ = base + λ·Σᵢ mᵢ·wᵢ·S(θᵢ − base) / D (see `kernels/TaskArithmetic.ts`).
 *
 * | kind | S (sparsify) | m (consensus) | rescale |
 * |---|---|---|---|
 * | `merge/task-arithmetic` | none | none | — |
 * | `merge/ties` | top-`density` by magnitude | sign by mass (`sum`) | — |
 * | `merge/dare-linear` | random keep `density` | none | L1 norm |
 * | `merge/dare-ties` | random keep `density` | sum | L1 norm |
 * | `merge/breadcrumbs` | drop top-`gamma`, keep next `density` | none | — |
 * | `merge/breadcrumbs-ties` | as breadcrumbs | sum | — |
 * | `merge/della` | magnitude-ranked keep probability (`density` ± `epsilon`) | sum | L1 norm |
 * | `merge/della-linear` | as della | none | L1 norm |
 *
 * Each merged tensor reports its diagnostics (`kernels/TaskDiagnostics.ts`: kept fractions, sign
 * agreement, task-vector norms) as a `merge.diagnostics` span event; the plain weighted sum
 * (task arithmetic, no sparsification) has none.
 *
 * Rescale: `l1` multiplies the kept entries by ‖τ‖₁/‖kept τ‖₁, so each task vector keeps its L1
 * norm (mergekit's `rescale: true`, the DARE/DELLA default there and here since 2025); `unbiased`
 * divides them by their keep probability (the papers' 1/p, this repo's DARE/DELLA default before);
 * `none` keeps them as they are. Every preset's switches can be overridden (`consensus: count`,
 * `rescale: unbiased`, `normalize`). DARE and DELLA draw from a counter-based PRNG keyed by
 * (seed, tensor name, model index): results do not depend on tensor order or worker count.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as GpuTask from "./gpu/TaskArithmetic.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Kernel from "./kernels/TaskArithmetic.ts"
import * as TaskDiagnostics from "./kernels/TaskDiagnostics.ts"
import * as TaskStatistics from "./kernels/TaskStatistics.ts"
import * as Method from "./Method.ts"
import { NonNegative, Unit } from "./rules/ParamValue.ts"

const Sparsify = Schema.Literals(["none", "magnitude", "random", "breadcrumbs", "della"])
const Consensus = Schema.Literals(["none", "sum", "count"])
const Rescale = Schema.Literals(["none", "unbiased", "l1"])

// The switches default to the preset's, in the Schema: so `merge/ties` with `consensus: sum` and without decode alike.
const fieldsFor = (name: Kernel.PresetName) => {
  const switches = Kernel.presets[name]
  return {
    seed: Schema.Int.annotate({ description: "seeds random sparsification" }).pipe(Stage.withDefault(0)),
    sparsify: Sparsify.annotate({ description: "how task vectors are sparsified" }).pipe(Stage.withDefault<typeof Sparsify>(switches.sparsify)),
    consensus: Consensus.annotate({ description: "sign consensus" }).pipe(Stage.withDefault<typeof Consensus>(switches.consensus)),
    rescale: Rescale.annotate({ description: "rescaling of the kept entries: l1 keeps each task vector's L1 norm (mergekit), unbiased divides by the keep probability 1/p (the papers), none" }).pipe(Stage.withDefault<typeof Rescale>(switches.rescale)),
    normalize: Schema.Boolean.annotate({ description: "divide by the sum of the weights" }).pipe(Stage.withDefault(switches.normalize))
  }
}
type Fields = ReturnType<typeof fieldsFor>

// A tensor's parameters, from its data (a Job) or from its header alone (validation): the kernel's
// plan needs only the shape and the model count, so both check exactly the same things.
const planOf = (kind: string, job: Method.TensorParams, params: Schema.Struct.Type<Fields>) =>
  Kernel.plan(
    {
      weights: job.perModel("weights", 1),
      lambda: job.value("lambda") ?? 1,
      density: job.perModel("density", 1),
      gamma: job.perModel("gamma", 0.01),
      epsilon: job.perModel("epsilon", 0.15),
      seed: params.seed,
      sparsify: params.sparsify,
      consensus: params.consensus,
      rescale: params.rescale,
      normalize: params.normalize
    },
    job.shape,
    job.models,
    job.name,
    kind
  )

const preset = <const Kind extends string>(kind: Kind, name: Kernel.PresetName, description: string, reference: string) =>
  Method.define({
    kind,
    description,
    reference,
    base: "required",
    minModels: 1,
    rules: ["weights", "lambda", "density", "gamma", "epsilon"],
    ranges: { density: Unit, gamma: Unit, epsilon: NonNegative },
    docs: {
      weights: { description: "each model's weight on its task vector", default: 1 },
      lambda: { description: "scales the merged task vector", default: 1 },
      density: { description: "fraction of task-vector entries kept", default: 1 },
      gamma: { description: "breadcrumbs: fraction of the largest entries dropped", default: 0.01 },
      epsilon: { description: "DELLA: spread of keep probabilities around density", default: 0.15 }
    },
    fields: fieldsFor(name),
    checkTensor: (tensor, params) => planOf(kind, tensor, params),
    merge: (job, params) => {
      const planned = planOf(kind, { ...job, models: job.models.length }, params)
      if (Result.isFailure(planned)) return Result.fail(planned.failure)
      const out = new Float32Array(job.base!.length)
      const partial = Kernel.apply(TaskStatistics.prepare(planned.success, job.base!, job.models), out, job.base!, job.models)
      if (partial !== undefined) job.diagnose(TaskDiagnostics.summarize(planned.success, [partial], out.length))
      return Result.succeed(out)
    },
    parallel: (pool, job, params, out) =>
      Effect.flatMap(Effect.fromResult(planOf(kind, { ...job, models: job.models.length }, params)), (plan) =>
        Effect.map(Parallel.taskArithmetic(pool, plan, out, job.base!, job.models), ({ diagnostics }) => {
          if (diagnostics !== undefined) job.diagnose(diagnostics)
        })),
    // Every preset on the GPU (DELLA's row ranks by a sort there: gpu/Della.ts); `resources.device`
    // follows `gpu` (see Method.define).
    gpu: (device: GPUDevice, job: Method.Job, params: Schema.Struct.Type<Fields>) =>
      Effect.flatMap(Effect.fromResult(planOf(kind, { ...job, models: job.models.length }, params)), (plan) =>
        !GpuTask.supports(plan, device) ? Effect.undefined : Effect.map(GpuTask.merge(device, plan, job.base!, job.models), ({ out, partial }) => {
          if (partial !== undefined) job.diagnose(TaskDiagnostics.summarize(plan, [partial], out.length))
          return out
        })),
    rangeWise: (tensor, params) => planOf(kind, tensor, params)
  })

/** @category stage kinds */
export const TaskArithmetic = preset("merge/task-arithmetic", "task-arithmetic", "base + λ·Σ wᵢ(θᵢ − base); negative weights subtract a task.", "https://arxiv.org/abs/2212.04089")
/** @category stage kinds */
export const Ties = preset("merge/ties", "ties", "TIES: trim task vectors to the top-density magnitudes, elect signs, average the agreeing entries.", "https://arxiv.org/abs/2306.01708")
/** @category stage kinds */
export const DareLinear = preset("merge/dare-linear", "dare-linear", "DARE: drop task-vector entries with probability 1 − density, rescale survivors to the task vector's L1 norm, sum.", "https://arxiv.org/abs/2311.03099")
/** @category stage kinds */
export const DareTies = preset("merge/dare-ties", "dare-ties", "DARE sparsification with TIES sign consensus.", "https://arxiv.org/abs/2311.03099")
/** @category stage kinds */
export const Breadcrumbs = preset("merge/breadcrumbs", "breadcrumbs", "Model breadcrumbs: drop the largest gamma and the smallest entries, keep density.", "https://arxiv.org/abs/2312.06795")
/** @category stage kinds */
export const BreadcrumbsTies = preset("merge/breadcrumbs-ties", "breadcrumbs-ties", "Breadcrumbs sparsification with TIES sign consensus.", "https://arxiv.org/abs/2312.06795")
/** @category stage kinds */
export const Della = preset("merge/della", "della", "DELLA: magnitude-ranked keep probabilities (density ± epsilon), rescale to the task vector's L1 norm, sign consensus.", "https://arxiv.org/abs/2406.11617")
/** @category stage kinds */
export const DellaLinear = preset("merge/della-linear", "della-linear", "DELLA sparsification without sign consensus.", "https://arxiv.org/abs/2406.11617")
