/// <reference types="@webgpu/types" />
/**
 * DELLA's keep decision on the GPU (the twin of `Sparsify.dellaRow` and its draw): each entry is
 * kept when `Prng.uniform(key, j) < pᵣ`, pᵣ = density − ε + 2ε·r/(L − 1), r the rank of |τⱼ| in its
 * row of L (ascending; among equal magnitudes the higher index ranks lower, as the CPU's stable
 * radix sort over the reversed row ranks them).
 *
 * - Ranks: per row, a bitonic sort of (|τ| bits, index) pairs in a storage buffer — every row of a
 *   chunk at once, padded to P = 2^⌈log₂L⌉ with keys above every magnitude, one dispatch per
 *   stage ({@link rank}) — then the sorted position of each entry scattered back as its rank.
 *   The comparison is on integers (31-bit magnitude keys, then indices), and (key, index) pairs
 *   are distinct, so the ranks are the CPU's whatever order the sort swaps in.
 * - The draw's threshold: pᵣ is computed on the host with the CPU's float64 expression, and a
 *   24-bit draw m (uniform m·2⁻²⁴, exact) satisfies m·2⁻²⁴ < pᵣ exactly when m < ⌈pᵣ·2²⁴⌉ (m an
 *   integer; scaling by 2²⁴ is exact): the table {@link tableWords} holds that integer per rank, so
 *   the kept set is the CPU's bit for bit. (A row of one entry has p = density, as on the CPU.)
 * - The factor per rank: the model's factor, divided by pᵣ for `rescale: unbiased`, rounded once to
 *   float32 (DARE's 1/density rounds the same way, so `TaskArithmetic.bound` covers it).
 *
 * The shared `TaskShader.keepWith(true)` reads the ranks and tables from one `della` buffer, laid
 * out by {@link layout}: the tables first (2 words per rank: threshold, factor bits), then each
 * model's ranks of the current region (a whole number of rows starting at tensor index `start`).
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import * as Sparsify from "../kernels/Sparsify.ts"
import type { Selector } from "../kernels/Sparsify.ts"
import type { Prepared, TaskArithmeticPlan } from "../kernels/TaskArithmetic.ts"
import * as Device from "./Device.ts"
import * as TaskShader from "./TaskShader.ts"

type DellaSelector = Extract<Selector, { readonly kind: "della" }>

/** The row length of `plan`'s DELLA models, or undefined when it has none (all share the tensor's). @category plans */
export const rowLength = (plan: TaskArithmeticPlan): number | undefined => {
  for (const m of plan.models) if (m.selector.kind === "della") return m.selector.rowLength
  return undefined
}

/**
 * Whether one whole row of `plan`'s DELLA models fits the device's storage bindings (a chunk
 * holds whole rows): the float32 inputs of a row, its padded sort keys, and the tables and ranks
 * of every model (at most two rows of ranks a model). A longer row (a huge 1-D tensor) is merged
 * on the CPU instead of failing on the GPU. True without DELLA.
 *
 * @category plans
 */
export const fits = (device: GPUDevice, plan: TaskArithmeticPlan): boolean => {
  const L = rowLength(plan)
  if (L === undefined) return true
  const bytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize)
  const count = plan.models.length
  return 4 * L * (count + 1) <= bytes && 4 * padded(L) <= bytes && 4 * count * 4 * L <= bytes
}

/** Whether any model of `prepared` draws DELLA's keep. @category plans */
export const uses = (prepared: Prepared): boolean => prepared.selectors.some((s) => s.kind === "della")

/** The sort's row width: the least power of two ≥ L. @category layout */
export const padded = (length: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, length)))

/**
 * The keep probability of rank r in a row of the selector's length: `Sparsify.dellaProbability`,
 * the CPU's own float64 expression, so the thresholds below match `Sparsify.dellaRow` bit for bit.
 *
 * @category layout
 */
export const probability = (selector: DellaSelector, rank: number): number =>
  Sparsify.dellaProbability(selector.density, selector.epsilon, selector.rowLength, rank)

/** The least integer t with m < t ⇔ m·2⁻²⁴ < p for every 24-bit m, clamped to [0, 2²⁴]. @category layout */
export const threshold = (p: number): number => {
  const scaled = p * 2 ** 24
  return scaled > 0 ? Math.min(Math.ceil(scaled), 2 ** 24) : 0
}

/**
 * One model's table: per rank, the threshold {@link threshold} of pᵣ and the float32 bits of its
 * factor (`factor / pᵣ` when `unbiased`, else `factor`), 2 words per rank.
 *
 * @category layout
 */
export const tableWords = (selector: DellaSelector, factor: number, unbiased: boolean): Uint32Array => {
  const words = new Uint32Array(2 * selector.rowLength)
  for (let r = 0; r < selector.rowLength; r++) {
    const p = probability(selector, r)
    words[2 * r] = threshold(p)
    words[2 * r + 1] = TaskShader.bitsOf(unbiased ? factor / p : factor)
  }
  return words
}

/** Where the tables and ranks lie in the `della` buffer. @category layout */
export interface Layout {
  /** Row length L. */
  readonly length: number
  /** Elements of the longest region (a multiple of L): each model's ranks take this many words. */
  readonly region: number
  /** Models of the plan. */
  readonly count: number
  /** Words of the buffer. */
  readonly words: number
}

/** The layout for `count` models, rows of `length`, regions of at most `region` elements. @category layout */
export const layout = (count: number, length: number, region: number): Layout => ({
  length,
  region,
  count,
  words: count * 2 * length + count * region
})

const tableAt = (l: Layout, model: number) => model * 2 * l.length
/** Word of model i's first rank in the `della` buffer. @category layout */
export const ranksAt = (l: Layout, model: number) => l.count * 2 * l.length + model * l.region

/**
 * `TaskShader.infoWords(prepared)` with each DELLA model's table offset, ranks offset and the
 * region's first tensor index (words 5, 6, 7): the keep reads rank `della[ranksAt + at − start]`.
 *
 * @category layout
 */
export const infoWords = (prepared: Prepared, l: Layout, start: number): Uint32Array => {
  const words = TaskShader.infoWords(prepared)
  prepared.selectors.forEach((s, i) => {
    if (s.kind !== "della") return
    words[8 * i + 5] = tableAt(l, i)
    words[8 * i + 6] = ranksAt(l, i)
    words[8 * i + 7] = start
  })
  return words
}

/** Uploads every DELLA model's table (for `prepared`'s factors) into `della`. @category layout */
export const uploadTables = (device: GPUDevice, della: GPUBuffer, prepared: Prepared, l: Layout): void => {
  const unbiased = prepared.plan.rescale === "unbiased"
  prepared.selectors.forEach((s, i) => {
    if (s.kind === "della") Device.upload(device, della, tableWords(s, prepared.factors[i]!, unbiased), 4 * tableAt(l, i))
  })
}

/** How a rank pass reads its inputs: the WGSL declarations after `Params` and the τ expression. @category shaders */
export interface Inputs {
  /** Declarations of the input bindings, from binding 1 on (binding 0 is `params`). */
  readonly bindings: string
  /** Bindings the declarations take (the sort's buffers follow them). */
  readonly count: number
  /** WGSL expression of model `params.model`'s τ at element j of the region (`j` a u32). */
  readonly tau: string
  /** A name for the pipelines (`della.<name>.init`, …). */
  readonly name: string
}

const PARAMS = "struct Params { total: u32, width: u32, length: u32, model: u32, stride: u32, ranks: u32, p1: u32, p2: u32 }\n@group(0) @binding(0) var<uniform> params: Params;"

// Row r's entry q < L as (31-bit |τ| key, q); padding q ≥ L as (0xffffffff, q): above every key.
const initShader = (inputs: Inputs) => `
${PARAMS}
${inputs.bindings}
@group(0) @binding(${inputs.count + 1}) var<storage, read_write> keys: array<u32>;
@group(0) @binding(${inputs.count + 2}) var<storage, read_write> index: array<u32>;
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  for (var t = gid.x; t < params.total; t += total) {
    let q = t % params.width;
    if (q < params.length) {
      let j = (t / params.width) * params.length + q;
      keys[t] = bitcast<u32>(${inputs.tau}) & 0x7fffffffu;
    } else {
      keys[t] = 0xffffffffu;
    }
    index[t] = q;
  }
}`

// One bitonic stage (block k, distance d) over every padded row: pairs (lower, lower + d).
const stageShader = `
${PARAMS}
struct Stage { k: u32, d: u32, p1: u32, p2: u32 }
@group(0) @binding(1) var<uniform> stage: Stage;
@group(0) @binding(2) var<storage, read_write> keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> index: array<u32>;
// Whether entry a sorts after entry b: larger key, or an equal key and a lower index (the CPU ranks
// the higher index of equal magnitudes lower).
fn after(a: u32, b: u32) -> bool {
  return keys[a] > keys[b] || (keys[a] == keys[b] && index[a] < index[b]);
}
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  let d = stage.d;
  for (var t = gid.x; t < params.total / 2u; t += total) {
    let lower = (t / d) * 2u * d + t % d;
    let upper = lower + d;
    // Rows are aligned to their width, so bit k of the position is bit k within the row; the last
    // merge (k = width) sorts every row ascending.
    let ascending = stage.k == params.width || (lower & stage.k) == 0u;
    if (select(after(upper, lower), after(lower, upper), ascending)) {
      let key = keys[lower];
      keys[lower] = keys[upper];
      keys[upper] = key;
      let at = index[lower];
      index[lower] = index[upper];
      index[upper] = at;
    }
  }
}`

// Sorted position q < L of row r is the rank of entry index[t] of that row.
const scatterShader = `
${PARAMS}
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read_write> della: array<u32>;
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  for (var t = gid.x; t < params.total; t += total) {
    let q = t % params.width;
    if (q < params.length) {
      della[params.ranks + (t / params.width) * params.length + index[t]] = q;
    }
  }
}`

/** The pipelines and scratch of the rank passes for one kind of input. @category kernels */
export interface Ranker {
  /**
   * Ranks model `model`'s |τ| in each row of the region's `m` elements (a multiple of L), the
   * inputs bound in `buffers` (binding 1 on, as {@link Inputs} declares them), into
   * `della[ranksAt(layout, model) …]`. `stride` is the `params.stride` the τ expression reads.
   */
  readonly rank: (buffers: ReadonlyArray<GPUBuffer>, model: number, m: number, stride: number) => Effect.Effect<void, Device.GpuKernelError>
}

/**
 * The rank passes for regions of at most `l.region` elements into `della`; the scratch comes from
 * the caller's `buffers` (given back with them).
 *
 * @category kernels
 */
export const ranker = (
  device: GPUDevice,
  inputs: Inputs,
  l: Layout,
  della: GPUBuffer,
  buffers: Device.Buffers
): Effect.Effect<Ranker, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const init = yield* Device.pipeline(device, `della.${inputs.name}.init`, initShader(inputs))
    const stage = yield* Device.pipeline(device, "della.stage", stageShader)
    const scatter = yield* Device.pipeline(device, "della.scatter", scatterShader)
    const width = padded(l.length)
    const slots = (l.region / l.length) * width
    const keys = buffers.storage(4 * slots, "della.keys")
    const index = buffers.storage(4 * slots, "della.index")
    const params = buffers.uniform(new Uint32Array(8), "della.params")
    // One uniform per stage of the bitonic network (k = 2, 4, …, width; d = k/2, …, 1): a queued
    // write would reach every dispatch of the submit, not the one it precedes.
    const stages: Array<GPUBuffer> = []
    for (let k = 2; k <= width; k *= 2) {
      for (let d = k / 2; d >= 1; d /= 2) stages.push(buffers.uniform(new Uint32Array([k, d, 0, 0]), "della.stage"))
    }
    const rank = (buffers: ReadonlyArray<GPUBuffer>, model: number, m: number, stride: number) => {
      const total = (m / l.length) * width
      device.queue.writeBuffer(params, 0, new Uint32Array([total, width, l.length, model, stride, ranksAt(l, model), 0, 0]))
      return Device.run(device, "della.rank", (e) => {
        Device.dispatch(e, device, init, [params, ...buffers, keys, index], total)
        for (const s of stages) Device.dispatch(e, device, stage, [params, s, keys, index], total / 2)
        Device.dispatch(e, device, scatter, [params, index, della], total)
      })
    }
    return { rank }
  })
