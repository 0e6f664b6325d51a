/// <reference types="@webgpu/types" />
/**
 * Task arithmetic, TIES and breadcrumbs in WGSL (the GPU twin of `kernels/TaskArithmetic.ts`):
 * `θ = base + λ·Σᵢ mᵢ·wᵢ·S(τᵢ) / D`, τᵢ = float32(θᵢ − base).
 *
 * - No sparsification and no consensus: the plain weighted sum over `[base, θ₀, …]`
 *   (`WeightedSum.ts`), with the CPU's coefficients.
 * - Magnitude windows (TIES's top-k, breadcrumbs): the cut at each rank is found exactly as
 *   `Select.ts` finds it — a 32768-bucket histogram of the high 15 bits of |τ| (atomic counts),
 *   then a 65536-bucket histogram of the low 16 bits inside the bucket the rank falls in; the
 *   buckets are located on the host. Counts are integers, so the cut, and with it the kept set,
 *   is the CPU's bit for bit. When the cut falls inside a group of equal magnitudes, the index
 *   of the n-th equal element (the tie-break: lower index first) is found by a host scan.
 * - DARE's random keep: draw j of model i's stream is `Prng.bits` computed in u32 arithmetic
 *   (`lowbias32(lowbias32(k₀ + j·φ) ⊕ k₁)`, j the tensor index, keys from the host), kept when
 *   its top 24 bits are below ⌈density·2²⁴⌉ — exactly `Prng.uniform(key, j) < density` — so the
 *   kept set is the CPU's bit for bit, whatever the chunking. `unbiased` divides by density.
 * - The L1 rescale (`rescale: l1`): per block of {@link L1_BLOCK} elements, ‖τ‖₁ and ‖kept τ‖₁ in
 *   float32 on the GPU, the blocks added in float64 on the host ({@link factorError}).
 * - Sign election (`sum`: the sign of Σ wᵢS(τᵢ); `count`: of Σ sign), the agreeing entries
 *   summed and divided by their weights, in float32.
 *
 * - DELLA's keep (`gpu/Della.ts`): each row's magnitude ranks by a bitonic sort of integer keys
 *   (the CPU's ranks, ties included), then the draw against the host's integer threshold
 *   ⌈pᵣ·2²⁴⌉ of the rank — exactly `Prng.uniform(key, j) < pᵣ` — so the kept set is the CPU's bit
 *   for bit; chunks hold whole rows. `unbiased` divides by pᵣ (rounded once to float32).
 *
 * {@link supports} says which plans run here.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import * as Select from "../kernels/Select.ts"
import type { Selector } from "../kernels/Sparsify.ts"
import { affineCoefficients, type Prepared, type TaskArithmeticPlan } from "../kernels/TaskArithmetic.ts"
import type * as TaskDiagnostics from "../kernels/TaskDiagnostics.ts"
import * as TaskStatistics from "../kernels/TaskStatistics.ts"
import * as Della from "./Della.ts"
import * as Device from "./Device.ts"
import * as TaskShader from "./TaskShader.ts"
import * as WeightedSum from "./WeightedSum.ts"

/** Most models the election kernel takes (its workgroup counters). @category constants */
export const MAX_MODELS = TaskShader.MAX_MODELS

const U = 2 ** -24

/** Elements per float32 partial of the L1 norms (each partial sums at most this many |τ|). @category constants */
export const L1_BLOCK = 64

/** Whether `plan` runs on the GPU: at most {@link MAX_MODELS} models (every selector has a kernel), DELLA rows within one binding (`Della.fits`). @category plans */
export const supports = (plan: TaskArithmeticPlan, device: GPUDevice): boolean => plan.models.length <= MAX_MODELS && Della.fits(device, plan)

/**
 * The relative error δ of a GPU L1 factor ‖τ‖₁/‖kept τ‖₁ against the CPU's (0 without `rescale:
 * l1`): each float32 block partial sums at most {@link L1_BLOCK} non-negative exact |τ|, within
 * γ = L1_BLOCK·u of its exact value, and the float64 sums of the blocks (here) and of the
 * elements (on the CPU) add 2n·2⁻⁵³; numerator and denominator each within γ' = γ + 2n·2⁻⁵³, so
 * the quotient within 2γ'/(1 − γ'). (A norm within δ of mergekit's 1e-7 floor may take the other
 * side of it: no such tensor in the tests.)
 *
 * @category bounds
 */
export const factorError = (plan: TaskArithmeticPlan, n: number): number => {
  if (plan.rescale !== "l1") return 0
  const g = L1_BLOCK * U + 2 * n * 2 ** -53
  return (2 * g) / (1 - g)
}

/** @category models */
export interface Result {
  readonly out: Float32Array
  /** The plan with its selectors (the magnitude cuts), as `TaskStatistics.prepare` gives on the CPU. */
  readonly prepared: Prepared
  /** Per model, kept entries agreeing with the elected sign (for the diagnostics); undefined for the weighted sum. */
  readonly partial: TaskDiagnostics.Partial | undefined
}

/**
 * The stated bound of |gpu − cpu| for one element when both elect the same sign:
 * `2u·|out| + (N + 4)·u·|λ|·S·(1 + T/|D|)/|D|`, u = 2⁻²⁴, with S = Σ|wᵢτᵢ| and T = Σ|wᵢ| over the
 * agreeing kept entries and D the divisor (Σ agreeing wᵢ for TIES, the plan's divisor otherwise,
 * T = 0 then). Derivation: wᵢτᵢ rounds twice (wᵢ to float32, the product: 2u), the N-term sum
 * adds (N − 1)u·S, D's sum N·u·T (relative N·u·T/|D| of the quotient), λ·M/D three roundings,
 * the final `base + …` one (u·|out|), and the CPU's single rounding u·|out|. With `rescale: l1`
 * the factors in S are the CPU's and the GPU's lie within `factor` ({@link factorError}) of them,
 * which adds `factor·|λ|·S/|D|` and scales the rounding terms by (1 + factor).
 *
 * @category bounds
 */
export const bound = (models: number, out: number, lambda: number, s: number, t: number, d: number, factor = 0): number =>
  2 * U * Math.abs(out) + ((models + 4) * U * (1 + factor) * (1 + t / Math.abs(d)) + factor) * Math.abs(lambda) * s / Math.abs(d) + models * 2 ** -126

// ‖τ‖₁ and ‖kept τ‖₁ per block (`TaskShader.l1Main`); with `della`, DELLA's ranks and tables after the other bindings.
const l1Shader = (della: boolean) => `
struct Params { n: u32, stride: u32, model: u32, offset: u32, blocks: u32, p1: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
${TaskShader.dellaBinding(della, 4)}
${TaskShader.keepWith(della)}
${TaskShader.l1Main("x[(params.model + 1u) * params.stride + j] - x[j]", L1_BLOCK)}`

/** The |τ| histogram kernel of model `params.model` of `[base, θ₀, …]` at stride n (`TaskShader.histogramMain`). @category kernels */
export const histogramShader = `
struct Params { n: u32, stride: u32, model: u32, mode: u32, high: u32, p1: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
${TaskShader.histogramMain("x[(params.model + 1u) * params.stride + j] - x[j]")}`

const applyShader = (della: boolean) => `
struct Params { n: u32, count: u32, stride: u32, offset: u32, consensus: u32, normalize: u32, lambda: f32, scale: f32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> agreed: array<atomic<u32>>;
${TaskShader.dellaBinding(della, 5)}
${TaskShader.keepWith(della)}
${TaskShader.applyMain({ base: "x[j]", model: "x[(i + 1u) * params.stride + j]", draws: true })}`

// Σ τ² per model and block (the tau_norm diagnostics), reading the output pass's parameters.
const squaresShader = `
struct Params { n: u32, count: u32, stride: u32, offset: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
${TaskShader.squaresMain({ n: "params.n", count: "params.count", tau: "x[(i + 1u) * params.stride + j] - x[j]" })}`

/**
 * The merge of one tensor on the GPU, for a plan {@link supports} accepts. `base` and `models`
 * are float32 arrays of one length; the tensor runs in chunks that fit one storage binding.
 *
 * @category kernels
 */
export const merge = (
  device: GPUDevice,
  plan: TaskArithmeticPlan,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>,
  options: WeightedSum.Options = {}
): Effect.Effect<Result, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const simple = plan.needsStatistics ? undefined : { plan, selectors: plan.models.map((m) => m.selector as Selector), factors: plan.models.map((m) => m.weight) }
    const affine = simple === undefined ? undefined : affineCoefficients(simple)
    if (simple !== undefined && affine !== undefined) {
      const out = yield* WeightedSum.weightedSum(device, { dtype: "F32", arrays: [base, ...models] }, affine, options)
      return { out, prepared: simple, partial: undefined }
    }
    const n = base.length
    const count = models.length
    // DELLA ranks within rows: its chunks hold whole rows.
    const rowLength = Della.rowLength(plan)
    const della = rowLength !== undefined
    const chunk = Device.chunkElements(device, count + 1, options.maxBindingBytes, rowLength)
    const chunks = Math.ceil(n / chunk)
    const histogram = yield* Device.pipeline(device, "ties.histogram", histogramShader)
    const apply = yield* Device.pipeline(device, "ties.apply", applyShader(della))
    const l1 = plan.rescale === "l1" ? yield* Device.pipeline(device, "ties.l1", l1Shader(della)) : undefined
    const squares = yield* Device.pipeline(device, "ties.squares", squaresShader)
    return yield* Device.scoped(device, (buffers) =>
      Effect.gen(function* () {
        const { storage, uniform } = buffers
        const first = Math.min(chunk, n)
        const x = storage((count + 1) * first * 4, "ties.x")
        let resident = -1
        // Uploads chunk c as [base, θ₀, …, θₙ₋₁] (stride: its length), unless it is already there.
        const load = (c: number): { readonly start: number; readonly m: number } => {
          const start = c * chunk
          const m = Math.min(chunk, n - start)
          if (resident !== c) {
            const packed = new Float32Array((count + 1) * m)
            packed.set(base.subarray(start, start + m), 0)
            models.forEach((a, i) => packed.set(a.subarray(start, start + m), (i + 1) * m))
            Device.upload(device, x, packed)
            resident = c
          }
          return { start, m }
        }
        const params = uniform(new Uint32Array(8), "ties.params")
        const counts = storage(Select.LOW_BUCKETS * 4, "ties.counts")
        // One histogram of model i over the whole tensor: mode 0 the high bits, mode 1 the low bits inside `high`.
        const histogramOf = (model: number, mode: number, high: number, buckets: number) =>
          Effect.gen(function* () {
            device.queue.writeBuffer(counts, 0, new Uint32Array(buckets))
            for (let c = 0; c < chunks; c++) {
              const { m } = load(c)
              device.queue.writeBuffer(params, 0, new Uint32Array([m, m, model, mode, high, 0, 0, 0]))
              yield* Device.run(device, "ties.histogram", (e) => Device.dispatch(e, device, histogram, [params, x, counts], TaskShader.histogramThreads(m)))
            }
            return new Uint32Array(yield* Device.readBack(device, counts, buckets * 4, "ties.histogram"))
          })
        // The cuts at the ranks of one model, as `Select.cuts` finds them.
        const cutsOf = (model: number, ranks: ReadonlyArray<number>) =>
          TaskShader.cutsAt(n, ranks, (mode, high, buckets) => histogramOf(model, mode, high, buckets), (bits, nth) =>
            Select.nthEqual(models[model]!, base, 0, n, bits, nth))
        const selectors: Array<Selector> = []
        for (const [i, m] of plan.models.entries()) {
          if (m.selector.kind !== "ranks") selectors.push(m.selector)
          else {
            const [lo, hi] = yield* cutsOf(i, [m.selector.lo, m.selector.hi])
            selectors.push({ kind: "window", lo: lo!, hi: hi! })
          }
        }
        const info = storage(8 * 4 * count, "ties.info")
        // DELLA: the ranks of chunk c for model i (`ranked[i]`: the chunk they are of), and the info
        // words with the chunk's start; `extra` binds the ranks and tables after a kernel's buffers.
        const layout = Della.layout(count, rowLength ?? 1, della ? first : 0)
        const dellaBuffer = della ? storage(4 * layout.words, "della") : undefined
        const ranker = della
          ? yield* Della.ranker(device, { name: "f32", bindings: "@group(0) @binding(1) var<storage, read> x: array<f32>;", count: 1, tau: "x[(params.model + 1u) * params.stride + j] - x[j]" }, layout, dellaBuffer!, buffers)
          : undefined
        const ranked = selectors.map(() => -1)
        const rankChunk = (c: number, models: ReadonlyArray<number>) =>
          Effect.gen(function* () {
            const { m } = load(c)
            for (const i of models) {
              if (ranker === undefined || selectors[i]!.kind !== "della" || ranked[i] === c) continue
              yield* ranker.rank([x], i, m, m)
              ranked[i] = c
            }
          })
        const infoOf = (p: Prepared, start: number) => della ? Della.infoWords(p, layout, start) : TaskShader.infoWords(p)
        const extra = dellaBuffer === undefined ? [] : [dellaBuffer]
        // The L1 partials of the models whose selector drops entries (`all` and `none` have factor 1).
        const norms: Array<ReadonlyArray<Float64Array>> = selectors.map(() => [])
        if (l1 !== undefined) {
          const unscaled = TaskStatistics.finish({ ...plan, rescale: "none" }, selectors, () => [])
          if (della) Della.uploadTables(device, dellaBuffer!, unscaled, layout)
          const partials = storage(8 * Math.ceil(first / L1_BLOCK), "ties.l1.partials")
          for (const [i, selector] of selectors.entries()) {
            if (selector.kind === "all" || selector.kind === "none") continue
            const parts: Array<Float64Array> = []
            for (let c = 0; c < chunks; c++) {
              const { start, m } = load(c)
              yield* rankChunk(c, [i])
              Device.upload(device, info, infoOf(unscaled, start))
              const blocks = Math.ceil(m / L1_BLOCK)
              device.queue.writeBuffer(params, 0, new Uint32Array([m, m, i, start, blocks, 0, 0, 0]))
              yield* Device.run(device, "ties.l1", (e) => Device.dispatch(e, device, l1, [params, info, x, partials, ...extra], blocks))
              parts.push(Float64Array.from(new Float32Array(yield* Device.readBack(device, partials, 8 * blocks, "ties.l1"))))
            }
            norms[i] = parts
          }
        }
        const prepared = TaskStatistics.finish(plan, selectors, (i) => norms[i]!)
        if (della) Della.uploadTables(device, dellaBuffer!, prepared, layout)
        const y = storage(first * 4, "ties.out")
        const agreed = storage(8 * count, "ties.agreed")
        // Per model: Σ τ² (float32 per block on the GPU, the blocks added here in float64).
        const squareParts = storage(4 * count * TaskShader.squareBlocks(first), "ties.squares")
        const squareSums = new Float64Array(count)
        device.queue.writeBuffer(agreed, 0, new Uint32Array(2 * count))
        const out = new Float32Array(n)
        const consensus = TaskShader.consensusCode(plan)
        for (let c = 0; c < chunks; c++) {
          const { start, m } = load(c)
          yield* rankChunk(c, selectors.map((_, i) => i))
          Device.upload(device, info, infoOf(prepared, start))
          const words = new Uint32Array([m, count, m, start, consensus, plan.normalize ? 1 : 0, 0, 0])
          words[6] = TaskShader.bitsOf(plan.lambda)
          words[7] = TaskShader.bitsOf(plan.lambda / plan.divisor)
          device.queue.writeBuffer(params, 0, words)
          const blocks = TaskShader.squareBlocks(m)
          // Σ τ² rides in apply's submission: it only reads params and x, which apply leaves as they are.
          yield* Device.run(device, "ties.apply", (e) => {
            Device.dispatch(e, device, apply, [params, info, x, y, agreed, ...extra], m)
            Device.dispatch(e, device, squares, [params, x, squareParts], blocks * Device.WORKGROUP)
          })
          out.set(new Float32Array(yield* Device.readBack(device, y, m * 4, "ties.apply")), start)
          TaskShader.addSquares(squareSums, new Float32Array(yield* Device.readBack(device, squareParts, 4 * count * blocks, "ties.squares")), count)
        }
        const tallies = new Uint32Array(yield* Device.readBack(device, agreed, 8 * count, "ties.apply"))
        const partial: TaskDiagnostics.Partial = {
          kept: Float64Array.from(tallies.subarray(count)),
          agree: Float64Array.from(tallies.subarray(0, count)),
          squares: squareSums
        }
        return { out, prepared, partial }
      }))
  })
