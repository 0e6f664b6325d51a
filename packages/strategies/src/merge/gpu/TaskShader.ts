/**
 * The WGSL and host layout shared by the task-arithmetic kernels on the GPU (`gpu/TaskArithmetic.ts`
 * over float32 inputs, `gpu/RangeWise.ts` over packed bf16/f16/f32 inputs decoded in the shader):
 * the per-model keep decision, the |τ| histogram pass and the exact cuts found from it, the output
 * pass (sign election and disjoint mean) and the per-model words they read ({@link infoWords}). Each kernel declares its own
 * bindings and `Params` and hands these fragments the WGSL expressions that read its inputs.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import * as Select from "../kernels/Select.ts"
import type { Prepared, TaskArithmeticPlan } from "../kernels/TaskArithmetic.ts"
import * as Device from "./Device.ts"

/** Most models the election kernel takes (its workgroup counters). @category constants */
export const MAX_MODELS = 32

/**
 * The per-model decision `kept(i, tau, at)` (with `lowbias32` and `above`) and factor
 * `factorOf(i, at)`, reading model i's words of `info` ({@link infoWords}): kind 0 all, 1 none,
 * 2 a magnitude window, 3 DARE's draw, and with `della` 4 DELLA's draw against its rank's
 * threshold (`gpu/Della.ts`: the shader then declares a `della` buffer of ranks and tables).
 *
 * @category shaders
 */
export const keepWith = (della: boolean): string => `
fn lowbias32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

fn above(key: u32, at: u32, bits: u32, index: u32, mode: u32) -> bool {
  if (mode == 1u) { return true; }
  if (mode == 2u) { return false; }
  return key > bits || (key == bits && at < index);
}

fn kept(i: u32, tau: f32, at: u32) -> bool {
  let w = i * 8u;
  let flags = info[w + 2u];
  let kind = flags & 0xfu;
  if (kind == 0u) { return true; }
  if (kind == 2u) {
    let key = bitcast<u32>(tau) & 0x7fffffffu;
    return above(key, at, info[w + 3u], info[w + 4u], (flags >> 4u) & 0xfu) && !above(key, at, info[w + 5u], info[w + 6u], (flags >> 8u) & 0xfu);
  }
  if (kind == 3u) {
    // Prng.bits(key, at): u32 multiplication wraps as Math.imul does.
    let draw = lowbias32(lowbias32(info[w + 3u] + at * 0x9e3779b9u) ^ info[w + 4u]);
    return (draw >> 8u) < info[w + 5u];
  }${della ? `
  if (kind == 4u) {
    // DELLA: the same draw, below the host's integer threshold ⌈p·2²⁴⌉ of this entry's rank.
    let draw = lowbias32(lowbias32(info[w + 3u] + at * 0x9e3779b9u) ^ info[w + 4u]);
    return (draw >> 8u) < della[info[w + 5u] + 2u * dellaRank(w, at)];
  }` : ""}
  return false;
}
${della ? `
fn dellaRank(w: u32, at: u32) -> u32 { return della[info[w + 6u] + at - info[w + 7u]]; }

fn factorOf(i: u32, at: u32) -> f32 {
  let w = i * 8u;
  if ((info[w + 2u] & 0xfu) == 4u) { return bitcast<f32>(della[info[w + 5u] + 2u * dellaRank(w, at) + 1u]); }
  return bitcast<f32>(info[w]);
}` : `
fn factorOf(i: u32, at: u32) -> f32 { return bitcast<f32>(info[i * 8u]); }`}`

/** {@link keepWith} without DELLA (kinds 0–3). @category shaders */
export const keep = keepWith(false)

/** Buckets of the workgroup-private high-bits window: |τ| in [2⁻³¹, 1), 31 exponents of 128 buckets. @category constants */
export const WINDOW = 31 * 128

/** The first high bucket of the window (the high 15 bits of |τ| = 2⁻³¹: exponent field 96). @category constants */
export const WINDOW_START = 96 * 128

/**
 * Elements per workgroup of a histogram pass (256 per thread): each workgroup zeroes and flushes
 * its {@link WINDOW} counters once, which pays only over many elements — with one element per
 * thread (the grid-stride default) the counters' upkeep would cost 16× the counting.
 *
 * @category constants
 */
export const HISTOGRAM_GROUP_ELEMENTS = 256 * Device.WORKGROUP

/** The thread count to give `Device.dispatch` for a histogram pass over `n` elements (one workgroup per {@link HISTOGRAM_GROUP_ELEMENTS}). @category layout */
export const histogramThreads = (n: number): number => Math.ceil(n / HISTOGRAM_GROUP_ELEMENTS) * Device.WORKGROUP

/** DELLA's ranks and tables bound at `binding` when `della` (`gpu/Della.ts`), else nothing. @category shaders */
export const dellaBinding = (della: boolean, binding: number): string =>
  della ? `@group(0) @binding(${binding}) var<storage, read> della: array<u32>;` : ""

/**
 * ‖τ‖₁ and ‖kept τ‖₁ of model `params.model` per block of `block` elements, in float32, into
 * `partials[2b]`, `partials[2b + 1]` (the host adds the blocks in float64: `gpu/TaskArithmetic.factorError`).
 * Needs `params.n`, `params.model`, `params.offset` (the first element's tensor index, for the
 * draws), `params.blocks`, a `partials` binding and `keep`; `tau` is model `params.model`'s τ at element j.
 *
 * @category shaders
 */
export const l1Main = (tau: string, block: number): string => `
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  for (var b = gid.x; b < params.blocks; b += total) {
    var before = 0.0;
    var after = 0.0;
    let end = min(params.n, (b + 1u) * ${block}u);
    for (var j = b * ${block}u; j < end; j++) {
      let tau = ${tau};
      before += abs(tau);
      if (kept(params.model, tau, params.offset + j)) { after += abs(tau); }
    }
    partials[2u * b] = before;
    partials[2u * b + 1u] = after;
  }
}`

/**
 * The histogram pass's entry point: per element j < `params.n`, the float32 bits of |τ| counted in
 * `counts` by `params.mode`: 0 by the high 15 bits (32768 buckets); 1 by the low 16 bits, inside
 * high bucket `params.high` (65536 buckets).
 *
 * Mode 0 counts in `var<workgroup>` atomics the {@link WINDOW} buckets from {@link WINDOW_START}
 * (where task vectors' magnitudes lie) and bucket 0 (the zeros), flushing each non-zero count to
 * `counts` once per workgroup; other magnitudes go straight to `counts`. Mode 1 — one high bucket,
 * often a run of equal magnitudes — keeps each thread's current bucket and its count in registers
 * and adds the count when the bucket changes (a run of equal keys costs one atomic). Counts are
 * exact integers in any order, so both give the global-atomic counts exactly. Dispatch
 * {@link histogramThreads} threads. `tau` is the WGSL expression of model `params.model`'s τ at element j.
 *
 * @category shaders
 */
export const histogramMain = (tau: string): string => `
// Mode 0: [0, WINDOW) the window, WINDOW the zeros.
var<workgroup> local: array<atomic<u32>, ${WINDOW + 1}>;

@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  let mode = params.mode;
  // Mode 1: this thread's current low bucket and its uncounted elements.
  var runKey = 0u;
  var run = 0u;
  for (var j = gid.x; j < params.n; j += total) {
    let key = bitcast<u32>(${tau}) & 0x7fffffffu;
    if (mode == 0u) {
      let h = key >> 16u;
      let w = h - ${WINDOW_START}u;
      if (w < ${WINDOW}u) {
        atomicAdd(&local[w], 1u);
      } else if (h == 0u) {
        atomicAdd(&local[${WINDOW}u], 1u);
      } else {
        atomicAdd(&counts[h], 1u);
      }
    } else if ((key >> 16u) == params.high) {
      let low = key & 0xffffu;
      if (run != 0u && low != runKey) {
        atomicAdd(&counts[runKey], run);
        run = 0u;
      }
      runKey = low;
      run += 1u;
    }
  }
  if (run != 0u) { atomicAdd(&counts[runKey], run); }
  workgroupBarrier();
  if (mode == 0u) {
    for (var b = lid; b < ${WINDOW}u; b += ${Device.WORKGROUP}u) {
      let c = atomicLoad(&local[b]);
      if (c != 0u) { atomicAdd(&counts[${WINDOW_START}u + b], c); }
    }
    if (lid == 0u) {
      let zeros = atomicLoad(&local[${WINDOW}u]);
      if (zeros != 0u) { atomicAdd(&counts[0], zeros); }
    }
  }
}`

/** How the output pass reads its inputs. @category shaders */
export interface ApplyInputs {
  /** WGSL expression of the base's value at element j of the chunk. */
  readonly base: string
  /** WGSL expression of model i's value at element j. */
  readonly model: string
  /** Whether the draws' survivors (DARE, DELLA) are counted too (`agreed[count + i]`, beside the agreeing entries). */
  readonly draws: boolean
}

/**
 * The output pass (after {@link keep}): per element j < `params.n` at tensor index `params.offset
 * + j`, the sign election (`params.consensus` 1: of Σ wᵢS(τᵢ), 2: of Σ sign) and the agreeing
 * entries summed, divided by their weights when `params.normalize` (`base + λ·mixed/divisor`),
 * else `base + params.scale·mixed`; agreeing entries per model added to `agreed`. Needs bindings
 * `params` (n, count, offset, consensus, normalize, lambda, scale), `info`, `out` and `agreed`.
 *
 * @category shaders
 */
export const applyMain = (inputs: ApplyInputs): string => `
// [0, MAX_MODELS): agreeing entries per model${inputs.draws ? "; [MAX_MODELS, 2·MAX_MODELS): survivors of the draws" : ""}.
var<workgroup> local: array<atomic<u32>, ${(inputs.draws ? 2 : 1) * MAX_MODELS}>;

fn contribution(i: u32, tau: f32, at: u32) -> f32 {
  return select(0.0, factorOf(i, at) * tau, kept(i, tau, at));
}

@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;${inputs.draws ? `
  var drawn: array<u32, ${MAX_MODELS}>;` : ""}
  for (var j = gid.x; j < params.n; j += total) {
    let at = params.offset + j;
    let b = ${inputs.base};
    var s = 0.0;
    for (var i = 0u; i < params.count; i++) {
      let v = contribution(i, ${inputs.model} - b, at);
      s += select(v, sign(v), params.consensus == 2u);
    }
    let elected = select(1.0, -1.0, s < 0.0);
    var mixed = 0.0;
    var divisor = 0.0;
    for (var i = 0u; i < params.count; i++) {
      let tau = ${inputs.model} - b;
      let v = contribution(i, tau, at);${inputs.draws ? `
      if ((info[i * 8u + 2u] & 0xfu) >= 3u && kept(i, tau, at)) { drawn[i] += 1u; }` : ""}
      if (params.consensus == 0u) {
        mixed += v;
      } else if (v * elected > 0.0) {
        mixed += v;
        divisor += bitcast<f32>(info[i * 8u + 1u]);
        atomicAdd(&local[i], 1u);
      }
    }
    if (params.consensus != 0u && params.normalize != 0u) {
      out[j] = b + params.lambda * mixed / select(divisor, 1.0, divisor == 0.0);
    } else {
      out[j] = b + params.scale * mixed;
    }
  }${inputs.draws ? `
  for (var i = 0u; i < params.count; i++) {
    if (drawn[i] != 0u) { atomicAdd(&local[${MAX_MODELS}u + i], drawn[i]); }
  }` : ""}
  workgroupBarrier();
  if (lid < params.count) {
    atomicAdd(&agreed[lid], atomicLoad(&local[lid]));${inputs.draws ? `
    atomicAdd(&agreed[params.count + lid], atomicLoad(&local[${MAX_MODELS}u + lid]));` : ""}
  }
}`

/** Float32 bits of a number. @category layout */
export const bitsOf = (value: number): number => new Uint32Array(Float32Array.of(value).buffer)[0]!

const cutWords = (cut: Select.Cut): [number, number, number] =>
  cut.bits < 0 ? [0, 0, 1] : cut.bits >= 2 ** 32 ? [0, 0, 2] : [cut.bits >>> 0, cut.index, 0]

/**
 * The per-model words of the kernels (8 per model): factor (÷ density for DARE's `unbiased`, as
 * `Sparsify.applyChunk`), weight, flags, then hi and lo cuts, or DARE's key and threshold
 * ⌈density·2²⁴⌉: a 24-bit draw m/2²⁴ is below density exactly when m is below it; DELLA's
 * keys (kind 4; its factor per rank and the rest come from `Della.infoWords`).
 *
 * @category layout
 */
export const infoWords = (prepared: Prepared): Uint32Array => {
  const words = new Uint32Array(8 * prepared.selectors.length)
  prepared.selectors.forEach((selector, i) => {
    const w = 8 * i
    const factor = prepared.factors[i]!
    words[w] = bitsOf(selector.kind === "random" && prepared.plan.rescale === "unbiased" ? factor / selector.density : factor)
    words[w + 1] = bitsOf(prepared.plan.models[i]!.weight)
    if (selector.kind === "random") {
      words[w + 2] = 3
      words[w + 3] = selector.key.k0 >>> 0
      words[w + 4] = selector.key.k1 >>> 0
      words[w + 5] = Math.ceil(selector.density * 2 ** 24)
    } else if (selector.kind === "della") {
      // Words 5–7 (table, ranks, region start) are the run's: `Della.infoWords`.
      words[w + 2] = 4
      words[w + 3] = selector.key.k0 >>> 0
      words[w + 4] = selector.key.k1 >>> 0
    } else if (selector.kind === "window") {
      const [hb, hi, hm] = cutWords(selector.hi)
      const [lb, li, lm] = cutWords(selector.lo)
      words[w + 2] = 2 | (hm << 4) | (lm << 8)
      words[w + 3] = hb
      words[w + 4] = hi
      words[w + 5] = lb
      words[w + 6] = li
    } else {
      words[w + 2] = selector.kind === "all" ? 0 : 1
    }
  })
  return words
}

/** The output pass's consensus code (`params.consensus`): 0 none, 1 sum, 2 count. @category layout */
export const consensusCode = (plan: TaskArithmeticPlan): number =>
  plan.consensus === "none" ? 0 : plan.consensus === "sum" ? 1 : 2

/**
 * The cuts at `ranks` of one model's |τ| over a tensor of `n` elements, as `Select.cuts` finds
 * them: `histogramOf(mode, high, buckets)` runs the {@link histogramMain} pass over the whole
 * tensor; the buckets are located here, and `nthEqual(bits, nth)` finds the index of the n-th
 * element of magnitude `bits` (the tie-break: lower index first) by a host scan.
 *
 * @category layout
 */
export const cutsAt = <E>(
  n: number,
  ranks: ReadonlyArray<number>,
  histogramOf: (mode: number, high: number, buckets: number) => Effect.Effect<Uint32Array, E>,
  nthEqual: (bits: number, nth: number) => number
): Effect.Effect<Array<Select.Cut>, E> =>
  Effect.gen(function* () {
    const high = ranks.some((r) => r > 0 && r < n) ? yield* histogramOf(0, 0, Select.HIGH_BUCKETS) : undefined
    return yield* Effect.forEach(ranks, (r) =>
      Effect.gen(function* () {
        if (r <= 0) return Select.START
        if (r >= n) return Select.END
        const h = Select.locate(high!, r)
        const low = Select.locate(yield* histogramOf(1, h.bucket, Select.LOW_BUCKETS), r - h.above)
        const bits = ((h.bucket << 16) | low.bucket) >>> 0
        const nth = r - h.above - low.above
        return { bits, index: nth === 0 ? 0 : nthEqual(bits, nth) }
      }))
  })

/** Elements each thread of the Σ τ² pass sums per block (in float32). @category constants */
export const SQUARE_PER_THREAD = 32

/** Elements of one float32 partial of Σ τ² (a workgroup's block: {@link SQUARE_PER_THREAD} per thread, then its tree). @category constants */
export const SQUARE_BLOCK = SQUARE_PER_THREAD * Device.WORKGROUP

/** How the Σ τ² pass reads its inputs and parameters. @category shaders */
export interface SquareInputs {
  /** WGSL expression of model i's τ at element j of the chunk. */
  readonly tau: string
  /** WGSL expressions of the chunk's elements and the models. */
  readonly n: string
  readonly count: string
}

/**
 * The Σ τ² pass (the `tau_norm.*` diagnostics): workgroup w takes blocks b = w, w + groups, … of
 * {@link SQUARE_BLOCK} elements; each thread sums, per model i, the squares of its
 * {@link SQUARE_PER_THREAD} elements in float32 (strided by the workgroup: coalesced reads, the
 * base read once per element), the workgroup adds its threads in a tree per model, and thread 0
 * writes `partials[b·count + i]`. The host adds the partials in float64
 * ({@link tauNormError} bounds the result against the CPU's). Needs a `partials` binding.
 *
 * @category shaders
 */
export const squaresMain = (inputs: SquareInputs): string => `
var<workgroup> sums: array<f32, ${Device.WORKGROUP}>;

fn squareOf(tau: f32) -> f32 { return tau * tau; }

@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let n = ${inputs.n};
  let count = ${inputs.count};
  let blocks = (n + ${SQUARE_BLOCK - 1}u) / ${SQUARE_BLOCK}u;
  for (var b = wid.x; b < blocks; b += groups.x) {
    var acc: array<f32, ${MAX_MODELS}>;
    for (var k = 0u; k < ${SQUARE_PER_THREAD}u; k++) {
      let j = b * ${SQUARE_BLOCK}u + k * ${Device.WORKGROUP}u + lid;
      if (j < n) {
        for (var i = 0u; i < count; i++) { acc[i] += squareOf(${inputs.tau}); }
      }
    }
    for (var i = 0u; i < count; i++) {
      sums[lid] = acc[i];
      workgroupBarrier();
      for (var half = ${Device.WORKGROUP / 2}u; half > 0u; half = half >> 1u) {
        if (lid < half) { sums[lid] = sums[lid] + sums[lid + half]; }
        workgroupBarrier();
      }
      if (lid == 0u) { partials[b * count + i] = sums[0]; }
      workgroupBarrier();
    }
  }
}`

/** Blocks of {@link SQUARE_BLOCK} in a chunk of `m` elements (the partials per model). @category layout */
export const squareBlocks = (m: number): number => Math.ceil(m / SQUARE_BLOCK)

/** Adds a chunk's partials (block-major, `count` per block) to `totals` in float64, block by block. @category layout */
export const addSquares = (totals: Float64Array, partials: Float32Array, count: number): void => {
  for (let q = 0; q < partials.length; q++) totals[q % count] = totals[q % count]! + partials[q]!
}

/**
 * The stated bound of |‖τ‖₂(gpu) − ‖τ‖₂(cpu)| for a tensor of `n` elements whose CPU norm is
 * `norm`. Each float32 partial adds at most P + 8 roundings to each of its non-negative terms (the
 * square, P − 1 running additions, 8 tree levels; P = {@link SQUARE_PER_THREAD} = 32): within
 * γ₄₀ = 40u/(1 − 40u) of its exact sum; the host's float64 sums of the partials and the CPU's of
 * the squares add ≤ 2n·2⁻⁵³; a device that flushes subnormals loses < 2n·2⁻¹²⁶ (δ). So the sums
 * differ by ≤ ε·S + δ, ε = γ₄₀ + 2n·2⁻⁵³, and the square roots by ≤ min(ε·‖τ‖ + δ/‖τ‖,
 * √(ε·‖τ‖² + δ)), plus the two square roots' roundings.
 *
 * @category bounds
 */
export const tauNormError = (n: number, norm: number): number => {
  const u = 2 ** -24
  const g = SQUARE_PER_THREAD + 8
  const epsilon = (g * u) / (1 - g * u) + 2 * n * 2 ** -53
  const delta = 2 * n * 2 ** -126
  const sums = epsilon * norm * norm + delta
  return Math.min(norm > 0 ? epsilon * norm + delta / norm : Infinity, Math.sqrt(sums)) + 2 * 2 ** -53 * norm
}
