/// <reference types="@webgpu/types" />
/**
 * The range-wise task-arithmetic merges (task arithmetic, TIES, breadcrumbs, DARE, DELLA) on the GPU, from
 * inputs held packed in their dtype (`kernels/PackedInput.ts`: f32, or bf16/f16 decoded in the
 * shader as `WeightedSum.ts` does) — the GPU twin of `kernels/PackedParallel.ts`, used by
 * `RangeWise.ts` when the run provides `GpuMerge`:
 *
 * - {@link scan}: each input's non-finite elements (first index and count, from the raw bits).
 * - {@link prepare}: the magnitude cuts exactly as `gpu/TaskArithmetic.ts` finds them (integer
 *   histograms of the float32 bits of |τ|, high 15 bits then low 16 bits, located on the host;
 *   the n-th equal element, when a cut falls among equal magnitudes, by a host scan of the packed
 *   inputs), so the kept sets are the CPU's bit for bit; with `rescale: l1`, ‖τ‖₁ and ‖kept τ‖₁ as
 *   `gpu/TaskArithmetic.ts` takes them (float32 sums over blocks of `L1_BLOCK`, added in float64
 *   here: within `TaskArithmetic.factorError`).
 * - {@link apply}: one output range (the sign election and the disjoint mean of
 *   `gpu/TaskArithmetic.ts`, one WGSL in `gpu/TaskShader.ts`, with tensor indices for the ties), within
 *   `TaskArithmetic.bound` of the CPU. DARE's and DELLA's draws are the CPU's (`TaskShader.keep`,
 *   `gpu/Della.ts`), and their survivors are counted (`partial.kept`). DELLA ranks whole rows: a
 *   pass's chunks hold whole rows, and a range that starts or ends inside a row ranks the rows it
 *   touches from their own upload.
 *
 * Every pass runs in chunks whose packed bytes fit one storage binding; the inputs of a chunk are
 * copied into one word-aligned buffer, input k at its own word offset.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { bytesPer, decode, length, type PackedInput, type PackedDType } from "../kernels/PackedInput.ts"
import * as PackedTaskArithmetic from "../kernels/PackedTaskArithmetic.ts"
import type { Selector } from "../kernels/Sparsify.ts"
import type { Prepared, TaskArithmeticPlan } from "../kernels/TaskArithmetic.ts"
import type * as TaskDiagnostics from "../kernels/TaskDiagnostics.ts"
import * as TaskStatistics from "../kernels/TaskStatistics.ts"
import * as Della from "./Della.ts"
import * as Device from "./Device.ts"
import { L1_BLOCK, supports as wholeTensorSupports } from "./TaskArithmetic.ts"
import * as TaskShader from "./TaskShader.ts"

/** @category options */
export interface Options {
  /** Bytes per storage binding at most (default: the device's limit); smaller forces more chunks. */
  readonly maxBindingBytes?: number
  /** {@link apply}: also Σ τ² per model (`partial.squares`, the `tau_norm.*` diagnostics; one more pass over the range). */
  readonly squares?: boolean | undefined
}

/** Whether `plan` runs here: the whole-tensor kernel's test (`TaskArithmetic.supports`), the same models, selectors and DELLA rows. @category plans */
export const supports = wholeTensorSupports

const dtypeCode: Readonly<Record<PackedDType, number>> = { F32: 0, BF16: 1, F16: 2 }

// Input k's element j of the chunk: raw bits (`bits`), and decoded (`load`, exact: every bf16/f16 is a float32).
const inputDeclarations = `
@group(0) @binding(1) var<storage, read> segments: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<u32>;
fn bits16(k: u32, j: u32) -> u32 { return (x[segments[2u * k] + (j >> 1u)] >> ((j & 1u) * 16u)) & 0xffffu; }
fn load(k: u32, j: u32) -> f32 {
  let dt = segments[2u * k + 1u];
  if (dt == 0u) { return bitcast<f32>(x[segments[2u * k] + j]); }
  if (dt == 1u) { return bitcast<f32>(bits16(k, j) << 16u); }
  return unpack2x16float(bits16(k, j)).x;
}
fn finite(k: u32, j: u32) -> bool {
  let dt = segments[2u * k + 1u];
  if (dt == 0u) { return (x[segments[2u * k] + j] & 0x7f800000u) != 0x7f800000u; }
  if (dt == 1u) { return (bits16(k, j) & 0x7f80u) != 0x7f80u; }
  return (bits16(k, j) & 0x7c00u) != 0x7c00u;
}`

const common = `
@group(0) @binding(0) var<uniform> params: Params;
${inputDeclarations}`

// DELLA's rank passes read the packed inputs (bindings 1 and 2: `[layout, x]`).
const rankInputs: Della.Inputs = { name: "packed", bindings: inputDeclarations, count: 2, tau: "load(params.model + 1u, j) - load(0u, j)" }

const scanShader = `
struct Params { n: u32, inputs: u32, offset: u32, pad: u32 }
${common}
@group(0) @binding(3) var<storage, read_write> found: array<atomic<u32>>;
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  for (var j = gid.x; j < params.n; j += total) {
    for (var k = 0u; k < params.inputs; k++) {
      if (!finite(k, j)) {
        atomicMin(&found[2u * k], params.offset + j);
        atomicAdd(&found[2u * k + 1u], 1u);
      }
    }
  }
}`

const histogramShader = `
struct Params { n: u32, model: u32, mode: u32, high: u32 }
${common}
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;
${TaskShader.histogramMain("load(params.model + 1u, j) - load(0u, j)")}`

// gpu/TaskArithmetic.ts's apply kernel (`TaskShader.applyMain`), on packed inputs; `draws`: the
// survivors of DARE's and DELLA's draws counted too.
const applyShader = (draws: boolean, della: boolean) => `
struct Params { n: u32, count: u32, offset: u32, consensus: u32, normalize: u32, lambda: f32, scale: f32, pad: u32 }
${common}
@group(0) @binding(3) var<storage, read> info: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> agreed: array<atomic<u32>>;
${TaskShader.dellaBinding(della, 6)}
${TaskShader.keepWith(della)}
${TaskShader.applyMain({ base: "load(0u, j)", model: "load(i + 1u, j)", draws })}`

// ‖τ‖₁ and ‖kept τ‖₁ of model `params.model` per block of L1_BLOCK elements, in float32 (as gpu/TaskArithmetic.ts).
const l1Shader = (della: boolean) => `
struct Params { n: u32, model: u32, offset: u32, blocks: u32 }
${common}
@group(0) @binding(3) var<storage, read> info: array<u32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
${TaskShader.dellaBinding(della, 5)}
${TaskShader.keepWith(della)}
${TaskShader.l1Main("load(params.model + 1u, j) - load(0u, j)", L1_BLOCK)}`

// Σ τ² per model and block (the tau_norm diagnostics), reading the apply pass's parameters.
const squaresShader = `
struct Params { n: u32, count: u32, offset: u32, consensus: u32 }
${common}
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
${TaskShader.squaresMain({ n: "params.n", count: "params.count", tau: "load(i + 1u, j) - load(0u, j)" })}`

/** Words of input k's segment in a chunk of `m` elements (16-bit inputs: two to a word, padded). */
const wordsOf = (input: PackedInput, m: number): number => Math.ceil((m * bytesPer[input.dtype]) / 4)

/**
 * Elements per chunk whose packed inputs fit one binding, a multiple of `multiple` (DELLA: its
 * row length, so that chunks from a row boundary hold whole rows). With DELLA each of its buffers
 * fits one binding too: the sort's keys and indices (up to 2 words per element each, rows padded
 * to a power of two) and the models' ranks (a word per element and model) — 16-bit inputs alone
 * would allow chunks twice too long for them.
 */
const chunkOf = (device: GPUDevice, inputs: ReadonlyArray<PackedInput>, options: Options, multiple?: number): number => {
  const packed = Device.chunkElements(device, inputs.reduce((t, input) => t + bytesPer[input.dtype], 0) / 4, options.maxBindingBytes, multiple)
  return multiple === undefined ? packed : Math.min(packed, Device.chunkElements(device, Math.max(2, inputs.length - 1) + 1, options.maxBindingBytes, multiple))
}

/** Bytes of `[s, s + m)` of every input packed (input k at word `layout[2k]`). */
const bytesOfRange = (inputs: ReadonlyArray<PackedInput>, m: number): number => inputs.reduce((t, input) => t + wordsOf(input, m), 0) * 4

/** Uploads `[s, s + m)` of the inputs into `x` and their word offsets and dtypes into `layout`. */
const uploadRange = (device: GPUDevice, inputs: ReadonlyArray<PackedInput>, s: number, m: number, bind: { readonly x: GPUBuffer; readonly layout: GPUBuffer }): void => {
  const words = new Uint32Array(2 * inputs.length)
  const staging = new Uint8Array(bytesOfRange(inputs, m))
  let at = 0
  inputs.forEach((input, k) => {
    const size = bytesPer[input.dtype]
    words[2 * k] = at
    words[2 * k + 1] = dtypeCode[input.dtype]
    staging.set(input.bytes.subarray(s * size, (s + m) * size), at * 4)
    at += wordsOf(input, m)
  })
  Device.upload(device, bind.layout, words)
  Device.upload(device, bind.x, staging)
}

/**
 * Runs `body` over `[start, end)` in chunks whose packed inputs fit one binding (a multiple of
 * `multiple` elements): for each chunk the inputs' bytes are uploaded into `x` (input k at word
 * `layout[2k]`) and `layout` written.
 */
const chunked = <A>(
  device: GPUDevice,
  inputs: ReadonlyArray<PackedInput>,
  start: number,
  end: number,
  options: Options,
  label: string,
  body: (bind: { readonly x: GPUBuffer; readonly layout: GPUBuffer }, chunkStart: number, m: number) => Effect.Effect<A, Device.GpuKernelError>,
  multiple?: number
): Effect.Effect<Array<A>, Device.GpuKernelError> =>
  Device.scoped(device, ({ storage }) =>
    Effect.gen(function* () {
      const n = end - start
      const chunk = chunkOf(device, inputs, options, multiple)
      const first = Math.min(chunk, Math.max(1, n))
      const bind = { x: storage(bytesOfRange(inputs, first), `${label}.x`), layout: storage(8 * inputs.length, `${label}.layout`) }
      const results: Array<A> = []
      for (let s = start; s < end; s += chunk) {
        const m = Math.min(chunk, end - s)
        uploadRange(device, inputs, s, m, bind)
        results.push(yield* body(bind, s, m))
      }
      return results
    }))

/** The first non-finite element of an input (−1 when none), its value and how many there are, per input (base first). @category statistics */
export const scan = (device: GPUDevice, inputs: ReadonlyArray<PackedInput>, options: Options = {}): Effect.Effect<Array<PackedTaskArithmetic.NonFiniteCount>, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const n = length(inputs[0]!)
    const pipe = yield* Device.pipeline(device, "range-wise.scan", scanShader)
    const found = new Uint32Array(2 * inputs.length)
    for (let k = 0; k < inputs.length; k++) found[2 * k] = 0xffffffff
    yield* Device.scoped(device, ({ storage, uniform }) =>
      Effect.gen(function* () {
        const counts = storage(found.byteLength, "range-wise.scan.found")
        Device.upload(device, counts, found)
        const params = uniform(new Uint32Array(4), "range-wise.scan.params")
        yield* chunked(device, inputs, 0, n, options, "range-wise.scan", ({ x, layout }, s, m) => {
          device.queue.writeBuffer(params, 0, new Uint32Array([m, inputs.length, s, 0]))
          return Device.run(device, "range-wise.scan", (e) => Device.dispatch(e, device, pipe, [params, layout, x, counts], m))
        })
        found.set(new Uint32Array(yield* Device.readBack(device, counts, found.byteLength, "range-wise.scan")))
      }))
    return inputs.map((input, k) => {
      const first = found[2 * k]! === 0xffffffff ? -1 : found[2 * k]!
      const value = new Float32Array(1)
      if (first >= 0) decode(input, first, first + 1, value)
      return { first, value: first < 0 ? 0 : value[0]!, count: found[2 * k + 1]! }
    })
  })

/**
 * Per model, `[‖τ‖₁, ‖kept τ‖₁]` per block of `L1_BLOCK` elements over the whole tensor (float32
 * sums on the GPU, as float64; empty for `all` and `none`), for `TaskStatistics.finish`.
 */
const l1Norms = (
  device: GPUDevice,
  plan: TaskArithmeticPlan,
  selectors: ReadonlyArray<Selector>,
  inputs: ReadonlyArray<PackedInput>,
  options: Options
): Effect.Effect<Array<Array<Float64Array>>, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const n = length(inputs[0]!)
    const count = inputs.length - 1
    const unscaled = TaskStatistics.finish({ ...plan, rescale: "none" }, selectors, () => [])
    const rowLength = Della.uses(unscaled) ? Della.rowLength(plan) : undefined
    const della = rowLength !== undefined
    const pipe = yield* Device.pipeline(device, "range-wise.l1", l1Shader(della))
    const norms: Array<Array<Float64Array>> = selectors.map(() => [])
    yield* Device.scoped(device, (buffers) =>
      Effect.gen(function* () {
        // Chunks from 0 in whole rows: each is its own DELLA rank region.
        const first = Math.min(chunkOf(device, inputs, options, rowLength), n)
        const l = Della.layout(count, rowLength ?? 1, della ? first : 0)
        const dellaBuffer = della ? buffers.storage(4 * l.words, "range-wise.della") : undefined
        const ranker = della ? yield* Della.ranker(device, rankInputs, l, dellaBuffer!, buffers) : undefined
        if (della) Della.uploadTables(device, dellaBuffer!, unscaled, l)
        const extra = dellaBuffer === undefined ? [] : [dellaBuffer]
        const info = buffers.storage(8 * 4 * count, "range-wise.info")
        // DELLA's info words name the chunk's start (its rank region): uploaded per chunk, the others' once.
        if (!della) Device.upload(device, info, TaskShader.infoWords(unscaled))
        const partials = buffers.storage(8 * Math.ceil(first / L1_BLOCK), "range-wise.l1.partials")
        const params = buffers.uniform(new Uint32Array(4), "range-wise.l1.params")
        // One pass over the chunks (each uploaded once), every model's norm taken from the same upload.
        yield* chunked(device, inputs, 0, n, options, "range-wise.l1", ({ x, layout }, s, m) =>
          Effect.gen(function* () {
            if (della) Device.upload(device, info, Della.infoWords(unscaled, l, s))
            for (const [i, selector] of selectors.entries()) {
              if (selector.kind === "all" || selector.kind === "none") continue
              if (selector.kind === "della") yield* ranker!.rank([layout, x], i, m, 0)
              const blocks = Math.ceil(m / L1_BLOCK)
              device.queue.writeBuffer(params, 0, new Uint32Array([m, i, s, blocks]))
              yield* Device.run(device, "range-wise.l1", (e) => Device.dispatch(e, device, pipe, [params, layout, x, info, partials, ...extra], blocks))
              norms[i]!.push(Float64Array.from(new Float32Array(yield* Device.readBack(device, partials, 8 * blocks, "range-wise.l1"))))
            }
          }), rowLength)
      }))
    return norms
  })

/**
 * The plan with its magnitude cuts and L1 factors (`TaskStatistics.finish`), found on the GPU over
 * the whole tensor: the CPU's selectors exactly, the L1 factors within
 * `TaskArithmetic.factorError` of the CPU's. `plan` must be one {@link supports} accepts.
 *
 * @category statistics
 */
export const prepare = (device: GPUDevice, plan: TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>, options: Options = {}): Effect.Effect<Prepared, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const n = length(inputs[0]!)
    if (!plan.needsStatistics) return TaskStatistics.finish(plan, plan.models.map((m) => m.selector as Selector), () => [])
    const pipe = yield* Device.pipeline(device, "range-wise.histogram", histogramShader)
    // Each histogram is one pass over the tensor; DARE and DELLA need none.
    const histogramOf = (model: number, mode: number, high: number, buckets: number) =>
      Device.scoped(device, ({ storage, uniform }) =>
        Effect.gen(function* () {
          const counts = storage(buckets * 4, "range-wise.counts")
          device.queue.writeBuffer(counts, 0, new Uint32Array(buckets))
          const params = uniform(new Uint32Array([0, model, mode, high]), "range-wise.histogram.params")
          yield* chunked(device, inputs, 0, n, options, "range-wise.histogram", ({ x, layout }, _s, m) => {
            device.queue.writeBuffer(params, 0, new Uint32Array([m, model, mode, high]))
            return Device.run(device, "range-wise.histogram", (e) => Device.dispatch(e, device, pipe, [params, layout, x, counts], TaskShader.histogramThreads(m)))
          })
          return new Uint32Array(yield* Device.readBack(device, counts, buckets * 4, "range-wise.histogram"))
        }))
    const selectors: Array<Selector> = []
    for (const [i, m] of plan.models.entries()) {
      if (m.selector.kind !== "ranks") {
        selectors.push(m.selector)
        continue
      }
      // Among equal magnitudes the lower index is kept first: the n-th equal one, by a host scan.
      const [lo, hi] = yield* TaskShader.cutsAt(n, [m.selector.lo, m.selector.hi], (mode, high, buckets) => histogramOf(i, mode, high, buckets), (bits, nth) =>
        PackedTaskArithmetic.nthEqual(inputs, i, bits, nth, 0, n))
      selectors.push({ kind: "window", lo: lo!, hi: hi! })
    }
    if (plan.rescale !== "l1") return TaskStatistics.finish(plan, selectors, () => [])
    const norms = yield* l1Norms(device, plan, selectors, inputs, options)
    return TaskStatistics.finish(plan, selectors, (i) => norms[i]!)
  })

/** One range's merge. @category models */
export interface Applied {
  /** The merged float32 values of the range. */
  readonly out: Float32Array
  /** Agreeing kept entries per model and the survivors of DARE's and DELLA's draws (`kept`; kept counts of rank windows come from the plan); with `options.squares` Σ τ² per model (`squares`, float32 block sums added in float64), else empty. */
  readonly partial: TaskDiagnostics.Partial
}

/**
 * The merge of `[start, end)` (tensor indices) into a fresh float32 array, on the GPU, from
 * {@link prepare}'s plan.
 *
 * @category kernels
 */
export const apply = (
  device: GPUDevice,
  prepared: Prepared,
  inputs: ReadonlyArray<PackedInput>,
  start: number,
  end: number,
  options: Options = {}
): Effect.Effect<Applied, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const { plan } = prepared
    const count = inputs.length - 1
    const rowLength = Della.uses(prepared) ? Della.rowLength(plan) : undefined
    const della = rowLength !== undefined
    const draws = prepared.selectors.some((s) => s.kind === "random" || s.kind === "della")
    const pipe = yield* Device.pipeline(device, "range-wise.apply", applyShader(draws, della))
    const squares = options.squares === true ? yield* Device.pipeline(device, "range-wise.squares", squaresShader) : undefined
    const out = new Float32Array(end - start)
    const agree = new Float64Array(count)
    const kept = new Float64Array(count)
    const squareSums = new Float64Array(squares === undefined ? 0 : count)
    if (end <= start) return { out, partial: { kept: new Float64Array(count), agree, squares: squareSums } }
    yield* Device.scoped(device, (outer) =>
      Effect.gen(function* () {
        const { storage: outerStorage, uniform: outerUniform } = outer
        const info = outerStorage(8 * 4 * count, "range-wise.info")
        if (!della) Device.upload(device, info, TaskShader.infoWords(prepared))
        // Agreeing entries per model, then (with draws) the draws' survivors.
        const tallies = (draws ? 2 : 1) * count
        const agreed = outerStorage(4 * tallies, "range-wise.agreed")
        device.queue.writeBuffer(agreed, 0, new Uint32Array(tallies))
        // DELLA: a chunk's rank region is its rows — the chunk itself when it starts and ends on row
        // boundaries (chunks are whole rows), else up to a row more on either side, uploaded apart.
        const L = rowLength ?? 1
        const l = Della.layout(count, L, della ? (Math.ceil(Math.min(chunkOf(device, inputs, options, rowLength), end - start) / L) + 1) * L : 0)
        const dellaBuffer = della ? outerStorage(4 * l.words, "range-wise.della") : undefined
        const ranker = della ? yield* Della.ranker(device, rankInputs, l, dellaBuffer!, outer) : undefined
        if (della) Della.uploadTables(device, dellaBuffer!, prepared, l)
        const extra = dellaBuffer === undefined ? [] : [dellaBuffer]
        let region: { readonly x: GPUBuffer; readonly layout: GPUBuffer } | undefined
        const rankRows = (bind: { readonly x: GPUBuffer; readonly layout: GPUBuffer }, s: number, m: number) =>
          Effect.gen(function* () {
            const a = Math.floor(s / L) * L
            const b = Math.ceil((s + m) / L) * L
            let rows = bind
            if (a !== s || b !== s + m) {
              rows = region ??= { x: outerStorage(bytesOfRange(inputs, l.region), "range-wise.della.x"), layout: outerStorage(8 * inputs.length, "range-wise.della.layout") }
              uploadRange(device, inputs, a, b - a, rows)
            }
            for (const [i, selector] of prepared.selectors.entries()) {
              if (selector.kind === "della") yield* ranker!.rank([rows.layout, rows.x], i, b - a, 0)
            }
            Device.upload(device, info, Della.infoWords(prepared, l, a))
          })
        const params = outerUniform(new Uint32Array(8), "range-wise.apply.params")
        const consensus = TaskShader.consensusCode(plan)
        let y: GPUBuffer | undefined
        let squareParts: GPUBuffer | undefined
        yield* chunked(device, inputs, start, end, options, "range-wise.apply", ({ x, layout }, s, m) =>
          Effect.gen(function* () {
            if (della) yield* rankRows({ x, layout }, s, m)
            y ??= outerStorage(m * 4, "range-wise.out")
            const words = new Uint32Array([m, count, s, consensus, plan.normalize ? 1 : 0, 0, 0, 0])
            words[5] = TaskShader.bitsOf(plan.lambda)
            words[6] = TaskShader.bitsOf(plan.lambda / plan.divisor)
            device.queue.writeBuffer(params, 0, words)
            const target = y
            const blocks = TaskShader.squareBlocks(m)
            const parts = squares === undefined ? undefined : (squareParts ??= outerStorage(4 * count * blocks, "range-wise.squares"))
            // Σ τ² rides in apply's submission: it only reads params, layout and x, which apply leaves as they are.
            yield* Device.run(device, "range-wise.apply", (e) => {
              Device.dispatch(e, device, pipe, [params, layout, x, info, target, agreed, ...extra], m)
              if (squares !== undefined && parts !== undefined) Device.dispatch(e, device, squares, [params, layout, x, parts], blocks * Device.WORKGROUP)
            })
            out.set(new Float32Array(yield* Device.readBack(device, target, m * 4, "range-wise.apply")), s - start)
            if (parts !== undefined) {
              TaskShader.addSquares(squareSums, new Float32Array(yield* Device.readBack(device, parts, 4 * count * blocks, "range-wise.squares")), count)
            }
          }), rowLength)
        const counts = new Uint32Array(yield* Device.readBack(device, agreed, 4 * tallies, "range-wise.apply"))
        agree.set(counts.subarray(0, count))
        if (draws) kept.set(counts.subarray(count))
      }))
    return { out, partial: { kept, agree, squares: squareSums } }
  })

/** Where a range-wise group merges on the GPU: the device, and optionally a smaller binding (tests force chunks with it). @category models */
export interface Target extends Options {
  readonly device: GPUDevice
}
