/**
 * TIES's apply step (`TaskArithmetic.apply` with magnitude windows, consensus `sum`, `normalize`)
 * in WebAssembly SIMD, on one window of the range-wise merge (`PackedTaskArithmetic.ts`). The
 * window's float32 arrays (base, up to 4 models, the output) live in this thread's own small
 * memory, and per 4 elements the kernel does what `Sparsify.applyChunk` and `electBySum` do, in
 * the same order, so the bits are the same:
 *
 * τᵢ = f32(xᵢ − base) (a float32 subtraction equals JavaScript's rounded float64 one), key =
 * bits(τᵢ) & 0x7fffffff, vᵢ = (factorᵢ·τᵢ)·[hi < key ≤ lo] in float64, s = Σ vᵢ left to right,
 * agreeᵢ = [vᵢ·sign(s) > 0] (sign(s) = −1 iff s < 0: the product is vᵢ with its sign bit
 * flipped), mix = Σ agreeᵢ·vᵢ, div = Σ agreeᵢ·wᵢ (+1 when 0), out = f32(base + (λ·mix)/div).
 * The 0/1 factors are multiplied as in JavaScript (not selected), so an infinite τ gives the same
 * NaN. Diagnostics: Σ τ² per 2048-element chunk as the two float64 chains of `applyChunk` (even
 * and odd offsets: the two lanes of one f64x2 accumulator), agreeing counts per model.
 *
 * A cut inside a group of equal magnitudes (frequent with bf16) also compares tensor indices, as
 * `Select.isAbove` does, and a dropped entry is then +0 (the JavaScript branch), not a product
 * by 0: a per-model mode word picks which. Other methods (DARE, DELLA, breadcrumbs without
 * consensus, `count`, more than 4 models; see {@link eligible}) run the JavaScript kernel. The
 * last `m mod 4` elements of a chunk run a scalar copy of the same arithmetic here.
 *
 * @since 0.1.0
 */
import { BLOCK } from "./Gram.ts"
import { hasNonFiniteJs } from "./Packed.ts"
import { END, isAbove as isAboveCut } from "./Select.ts"
import type { Prepared } from "./TaskArithmetic.ts"
import { copyBytes, decode, encodeBF16, type PackedInput } from "./PackedInput.ts"
import * as TaskDiagnostics from "./TaskDiagnostics.ts"
import * as Wasm from "./Wasm.ts"
import * as WindowSimd from "./WindowSimd.ts"

/** The most models the kernel takes (as `electBySum`). @category constants */
export const MAX_MODELS = 4

// Chunk of TaskArithmetic.apply: the squares are summed per chunk of this many elements.
const CHUNK = 2048

// Memory layout (bytes): parameters, results, then six float32 windows of BLOCK elements.
const LAMBDA_AT = 0
// factor f64, weight f64, then i32: hi bits, lo bits, hi index, lo index, bits-only mode (−1 or 0)
const modelParamsAt = (i: number) => 64 + i * 48
const resultsAt = (i: number) => 512 + i * 32 // squares f64x2 (even, odd), agree counts f64x2
const windowAt = (k: number) => 1024 + k * BLOCK * 4 // 0 base, 1…4 models, 5 out
const OUT_WINDOW = 5
// bf16 bytes of one input window (copied in, then widened) or of the encoded output.
const STAGE = windowAt(6)
// The bf16 windows the packed kernels read in place: slot 0 the base, 1… the models (BLOCK halves each).
const packedAt = (k: number) => STAGE + BLOCK * 2 + k * BLOCK * 2
// The scan's high histograms, one per ranked model (32,768 u32 each), kept here across windows.
const HIGH_BYTES = 32768 * 4
const highAt = (c: number) => packedAt(1 + MAX_MODELS) + c * HIGH_BYTES
/** The most candidate high buckets whose low histograms the scan counts per model. @category constants */
export const MAX_LOW_SPAN = 3
const LOW_BYTES = 65536 * 4
const lowAt = (c: number) => highAt(MAX_MODELS) + c * MAX_LOW_SPAN * LOW_BYTES
const PAGES = Math.ceil(lowAt(MAX_MODELS) / 65536)

/** Whether the prepared merge is one the SIMD kernel computes. @category predicates */
export const eligible = (prepared: Prepared): boolean => {
  const { plan: p, selectors } = prepared
  return p.consensus === "sum" && p.normalize && selectors.length >= 1 && selectors.length <= MAX_MODELS &&
    selectors.every((s) => s.kind === "window")
}

/** One thread's kernel and its windows. @category models */
export interface TiesWindows {
  readonly base: Float32Array
  readonly models: ReadonlyArray<Float32Array>
  readonly out: Float32Array
  /** out[a, b) of the window (tensor index of element 0: `offset`); the diagnostics of TaskArithmetic.apply on the same range. */
  readonly apply: (prepared: Prepared, a: number, b: number, offset: number) => TaskDiagnostics.Partial
  /** Decodes elements [w0, w1) of `input` into `window` (one of this kernel's): bf16 copied in and widened in SIMD. */
  readonly load: (input: PackedInput, w0: number, w1: number, window: Float32Array) => void
  /** Encodes out[a, b) as bfloat16 into `bytes` (from byte 0), the bytes of `encodeBF16`, in SIMD. */
  readonly encode: (a: number, b: number, bytes: Uint8Array) => void
  /** Whether window[a, b) (one of this kernel's windows) holds NaN or ±Inf: a SIMD scan, so the exact search runs only where there is one. */
  readonly hasNonFinite: (window: Float32Array, a: number, b: number) => boolean
  /**
   * |τ| bits, `bits(f32(x − base)) & 0x7fffffff`, of window[a, b) (x and base: this kernel's
   * windows), as the keys `Select.forEachKeyChunk` gives; a view of the output window, valid until the next call.
   */
  readonly magnitudes: (x: Float32Array, base: Float32Array, a: number, b: number) => Uint32Array
  /**
   * The low halves of the |τ| keys of window[a, b) whose high half is `high`, in order: the
   * buckets `Select.countLow` increments for that high bucket (filtered in SIMD); a view of the
   * output window, valid until the next call.
   */
  readonly lowKeys: (x: Float32Array, base: Float32Array, a: number, b: number, high: number) => Uint32Array
  /**
   * The bf16 path, windows read in place (no float32 copy): `stage` copies elements
   * [w0 + a, w0 + b) of a bf16 input's bytes into slot `k` (0 the base, 1… the models) at window
   * offset a; the functions below then read slots, never the float32 windows.
   */
  readonly packed: PackedWindows
}

/** The kernels on staged bf16 windows (see {@link TiesWindows.packed}); results as their float32 twins'. @category models */
export interface PackedWindows {
  readonly stage: (k: number, input: PackedInput, w0: number, a: number, b: number) => void
  /** `apply` with slot 0 the base and slots 1… the models. */
  readonly apply: (prepared: Prepared, a: number, b: number, offset: number) => TaskDiagnostics.Partial
  /** Whether slot k's [a, b) holds NaN or ±Inf. */
  readonly hasNonFinite: (k: number, a: number, b: number) => boolean
  /** Slot k's [a, b) widened into float32 window k (`base` for 0, `models[k − 1]`), which is returned (for the rare exact searches). */
  readonly widen: (k: number, a: number, b: number) => Float32Array
  /** Zeroes high histogram `c` (0 ≤ c < {@link MAX_MODELS}) in this memory. */
  readonly clearHigh: (c: number) => void
  /** Adds the high buckets (`key >>> 16`) of slot k's |τ| keys on [a, b) to histogram `c`. */
  readonly countHigh: (c: number, k: number, a: number, b: number) => void
  /**
   * For slot k's |τ| keys on [a, b): adds into low histograms `c` the low halves of those whose
   * high half is in [first, first + span) (span ≤ {@link MAX_LOW_SPAN}) and returns how many have
   * a high half above that window.
   */
  readonly countAboveLow: (c: number, k: number, a: number, b: number, first: number, span: number) => number
  /** Zeroes low histograms `c` (`span` of them). */
  readonly clearLow: (c: number, span: number) => void
  /**
   * Low histograms `c` (`span` × 65,536 counts, candidate h at [h·65536, (h + 1)·65536)) as pairs
   * (position, count) of the nonzero counts, in order: bf16 |τ| keys take few distinct values in
   * a bucket, so this is a few KB where the histograms are 768 KB, sent to the main thread per
   * range and tensor (whose garbage set the peak RSS).
   */
  readonly readLow: (c: number, span: number) => Uint32Array
  /** Adds histogram `c` into `counts` (32,768 buckets). */
  readonly readHigh: (c: number, counts: Uint32Array) => void
  /** As `lowKeys`, for slot k against slot 0. */
  readonly lowKeys: (k: number, a: number, b: number, high: number) => Uint32Array
  /** How many |τ| keys of slot k on [a, b) equal `bits`. */
  readonly countEqual: (k: number, a: number, b: number, bits: number) => number
  /** The |τ| key of slot k's element j. */
  readonly key: (k: number, j: number) => number
}

const { op } = Wasm

// Locals after the three parameters (byte offset p, steps, tensor index of the first element).
const P = 0, STEPS = 1, AT = 2
const L = {
  lambda: 3, one64: 4, sign64: 5, abs32: 6, one32: 7, zero: 8, b: 9, key: 10, s: 11, neg: 12, agree: 13, mix: 14, div: 15, th: 16,
  low: 17, high: 18, index: 19, four: 20, above: 21
}
const SHARED_LOCALS = 19
const MODEL_LOCALS = 13
const perModel = (i: number) => {
  const at = 3 + SHARED_LOCALS + i * MODEL_LOCALS
  return {
    f: at, w: at + 1, hb: at + 2, lb: at + 3, sq: at + 4, ag: at + 5, t: at + 6, k: at + 7, v: at + 8,
    hi: at + 9, li: at + 10, mode: at + 11, mask: at + 12
  }
}

// isAbove(key, index, cut) on four lanes: key > bits || (key === bits && index < cut index).
const isAbove = (bits: number, index: number): Array<number> => [
  ...op.localGet(L.key), ...op.localGet(bits), ...op.i32x4GtS(),
  ...op.localGet(L.key), ...op.localGet(bits), ...op.i32x4Eq(), ...op.localGet(L.index), ...op.localGet(index), ...op.i32x4LtS(), ...op.v128And(),
  ...op.v128Or()
]

const half = (local: number, high: boolean): Array<number> =>
  high
    ? [...op.localGet(local), ...op.localGet(local), ...op.shuffle(Wasm.HIGH_HALF), ...op.f64x2PromoteLowF32x4()]
    : [...op.localGet(local), ...op.f64x2PromoteLowF32x4()]

// Input k's 4 float32 lanes at element p/4 of the window: the float32 window, or (packed) the
// bf16 slot read in place, each half shifted into the high half of its lane (exact).
const loadInput = (k: number, packed: boolean): Array<number> =>
  packed
    ? [...op.localGet(P), ...op.i32Const(1), 0x76 /* i32.shr_u */, ...op.v128Load16x4U(packedAt(k)), ...op.i32Const(16), ...op.i32x4Shl()]
    : [...op.localGet(P), ...op.v128Load(windowAt(k))]

// ties_N(p, steps): elements [p/4, p/4 + 4·steps) of the window; ties_bf16_N reads the packed slots.
const tiesFunc = (n: number, packed = false): Wasm.Func => {
  const models = Array.from({ length: n }, (_, i) => perModel(i))
  const init: Array<number> = [
    ...op.i32Const(0), ...op.v128Load64Splat(LAMBDA_AT), ...op.localSet(L.lambda),
    ...op.v128Const([0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]), ...op.localSet(L.one64),
    ...op.v128Const([0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x80]), ...op.localSet(L.sign64),
    ...op.v128Const(Wasm.i32x4Bytes(0x7fffffff)), ...op.localSet(L.abs32),
    ...op.v128Const(Wasm.i32x4Bytes(0x3f800000)), ...op.localSet(L.one32),
    ...op.v128Const(Wasm.i32x4Bytes(4)), ...op.localSet(L.four),
    ...op.localGet(AT), ...op.i32x4Splat(), ...op.v128Const([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]), ...op.i32x4Add(), ...op.localSet(L.index)
  ]
  models.forEach((m, i) => {
    const at = modelParamsAt(i)
    init.push(
      ...op.i32Const(0), ...op.v128Load64Splat(at), ...op.localSet(m.f),
      ...op.i32Const(0), ...op.v128Load64Splat(at + 8), ...op.localSet(m.w),
      ...op.i32Const(0), ...op.v128Load32Splat(at + 16), ...op.localSet(m.hb),
      ...op.i32Const(0), ...op.v128Load32Splat(at + 20), ...op.localSet(m.lb),
      ...op.i32Const(0), ...op.v128Load32Splat(at + 24), ...op.localSet(m.hi),
      ...op.i32Const(0), ...op.v128Load32Splat(at + 28), ...op.localSet(m.li),
      ...op.i32Const(0), ...op.v128Load32Splat(at + 32), ...op.localSet(m.mode)
    )
  })
  const body: Array<number> = [...loadInput(0, packed), ...op.localSet(L.b)]
  models.forEach((m, i) => {
    body.push(
      ...loadInput(1 + i, packed), ...op.localGet(L.b), ...op.f32x4Sub(), ...op.localTee(m.t),
      ...op.localGet(L.abs32), ...op.v128And(), ...op.localSet(L.key),
      ...isAbove(m.hb, m.hi), ...isAbove(m.lb, m.li), ...op.v128Andnot(), ...op.localTee(L.above),
      ...op.localGet(L.one32), ...op.v128And(), ...op.localSet(m.k),
      // Cuts inside a group of ties select (a dropped entry is +0), as the JavaScript branch does.
      ...op.localGet(L.above), ...op.localGet(m.mode), ...op.v128Or(), ...op.localSet(m.mask)
    )
  })
  for (const high of [false, true]) {
    for (const m of models) {
      body.push(
        ...half(m.t, high), ...op.localSet(L.th),
        ...op.localGet(m.f), ...op.localGet(L.th), ...op.f64x2Mul(), ...half(m.k, high), ...op.f64x2Mul(),
        ...op.localGet(m.mask), ...(high ? op.i64x2ExtendHighI32x4S() : op.i64x2ExtendLowI32x4S()), ...op.v128And(), ...op.localSet(m.v),
        ...op.localGet(m.sq), ...op.localGet(L.th), ...op.localGet(L.th), ...op.f64x2Mul(), ...op.f64x2Add(), ...op.localSet(m.sq)
      )
    }
    body.push(...op.localGet(models[0]!.v))
    for (const m of models.slice(1)) body.push(...op.localGet(m.v), ...op.f64x2Add())
    body.push(...op.localSet(L.s))
    body.push(...op.localGet(L.s), ...op.localGet(L.zero), ...op.f64x2Lt(), ...op.localGet(L.sign64), ...op.v128And(), ...op.localSet(L.neg))
    models.forEach((m, i) => {
      body.push(
        ...op.localGet(m.v), ...op.localGet(L.neg), ...op.v128Xor(), ...op.localGet(L.zero), ...op.f64x2Gt(),
        ...op.localGet(L.one64), ...op.v128And(), ...op.localSet(L.agree),
        ...op.localGet(m.ag), ...op.localGet(L.agree), ...op.f64x2Add(), ...op.localSet(m.ag)
      )
      if (i === 0) {
        body.push(
          ...op.localGet(L.agree), ...op.localGet(m.v), ...op.f64x2Mul(), ...op.localSet(L.mix),
          ...op.localGet(L.agree), ...op.localGet(m.w), ...op.f64x2Mul(), ...op.localSet(L.div)
        )
      } else {
        body.push(
          ...op.localGet(L.mix), ...op.localGet(L.agree), ...op.localGet(m.v), ...op.f64x2Mul(), ...op.f64x2Add(), ...op.localSet(L.mix),
          ...op.localGet(L.div), ...op.localGet(L.agree), ...op.localGet(m.w), ...op.f64x2Mul(), ...op.f64x2Add(), ...op.localSet(L.div)
        )
      }
    })
    body.push(
      ...op.localGet(L.div), ...op.localGet(L.div), ...op.localGet(L.zero), ...op.f64x2Eq(), ...op.localGet(L.one64), ...op.v128And(),
      ...op.f64x2Add(), ...op.localSet(L.div),
      ...half(L.b, high), ...op.localGet(L.lambda), ...op.localGet(L.mix), ...op.f64x2Mul(), ...op.localGet(L.div), ...op.f64x2Div(),
      ...op.f64x2Add(), ...op.f32x4DemoteF64x2Zero(), ...op.localSet(high ? L.high : L.low)
    )
  }
  body.push(
    ...op.localGet(P), ...op.localGet(L.low), ...op.localGet(L.high), ...op.shuffle(Wasm.JOIN_LOW_HALVES), ...op.v128Store(windowAt(OUT_WINDOW))
  )
  const main = [
    ...op.loop,
    ...body,
    ...op.localGet(P), ...op.i32Const(16), ...op.i32Add, ...op.localSet(P),
    ...op.localGet(L.index), ...op.localGet(L.four), ...op.i32x4Add(), ...op.localSet(L.index),
    ...op.localGet(STEPS), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(STEPS), ...op.brIf(0),
    ...op.end
  ]
  const store: Array<number> = []
  models.forEach((m, i) => {
    store.push(...op.i32Const(0), ...op.localGet(m.sq), ...op.v128Store(resultsAt(i)))
    store.push(...op.i32Const(0), ...op.localGet(m.ag), ...op.v128Store(resultsAt(i) + 16))
  })
  return {
    name: packed ? `ties_bf16_${n}` : `ties_${n}`,
    params: [Wasm.I32, Wasm.I32, Wasm.I32],
    results: [],
    locals: [[SHARED_LOCALS + MODEL_LOCALS * n, Wasm.V128]],
    code: [...init, ...main, ...store]
  }
}

// Compiled once per thread (the module holds no state; each `make` instantiates it on its own memory).
let compiledModule: WebAssembly.Module | undefined
const compiled = (): WebAssembly.Module =>
  compiledModule ??= new WebAssembly.Module(Wasm.module(
    [false, true].flatMap((packed) => Array.from({ length: MAX_MODELS }, (_, i) => tiesFunc(i + 1, packed))).concat(WindowSimd.funcs),
    false
  ))

/** The kernel on a fresh private memory (not shared) holding the windows of `n` models (1 ≤ n ≤ {@link MAX_MODELS}). @category constructors */
export const make = (n: number): TiesWindows => onMemory(n, privateMemory())

// Private, not shared: a shared memory is freed by full collections only, and a range-wise
// merge made one per range (1.6 MB each), which held ~1 GB more at the peak.
const privateMemory = () => new WebAssembly.Memory({ initial: PAGES, maximum: PAGES })

/**
 * One thread's kernels, reused across op calls: one private memory made on first use, and one
 * instance per model count on it (every instance has the same layout, so they share the memory).
 * A fresh memory per call cost ~1 s of collection per worker on a 3 × 1.3 GB merge. Callers run
 * one op at a time per thread, and no result holds a view of the memory past its call.
 *
 * @category models
 */
export interface TiesCache {
  /** The kernel of `n` models (1 ≤ n ≤ {@link MAX_MODELS}) on this thread's memory. */
  readonly windows: (n: number) => TiesWindows
}

/** An empty per-thread cache (the memory is made by the first `windows` call). @category constructors */
export const cache = (): TiesCache => {
  let memory: WebAssembly.Memory | undefined
  const made = new Map<number, TiesWindows>()
  return {
    windows: (n) => {
      const hit = made.get(n)
      if (hit !== undefined) return hit
      const fresh = onMemory(n, memory ??= privateMemory())
      made.set(n, fresh)
      return fresh
    }
  }
}

const onMemory = (n: number, memory: WebAssembly.Memory): TiesWindows => {
  const exports = new WebAssembly.Instance(compiled(), { env: { memory } }).exports as Record<string, (...args: Array<number>) => number>
  const kernel = exports[`ties_${n}`]!
  const buffer = memory.buffer
  const window = (k: number) => new Float32Array(buffer, windowAt(k), BLOCK)
  const base = window(0)
  const models = Array.from({ length: n }, (_, i) => window(1 + i))
  const out = window(OUT_WINDOW)
  const f64 = new Float64Array(buffer, 0, 128)
  const i32 = new Int32Array(buffer, 0, 256)
  const tau = new Float32Array(1)
  const tauBits = new Uint32Array(tau.buffer)
  const v = new Float64Array(n)

  const packedKernel = exports[`ties_bf16_${n}`]!
  const slots = Array.from({ length: 1 + MAX_MODELS }, (_, k) => new Uint16Array(buffer, packedAt(k), BLOCK))
  const one = new Float32Array(1)
  const oneBits = new Uint32Array(one.buffer)
  // Element j of input k (0 the base) as the float32 kernel reads it: from its window, or its bf16 slot widened.
  const fromWindows = (k: number, j: number): number => (k === 0 ? base[j]! : models[k - 1]![j]!)
  const fromSlots = (k: number, j: number): number => {
    oneBits[0] = slots[k]![j]! << 16
    return one[0]!
  }

  const apply = (prepared: Prepared, a: number, b: number, offset: number): TaskDiagnostics.Partial =>
    applyWith(kernel, fromWindows, prepared, a, b, offset)

  const applyWith = (
    ties: (...args: Array<number>) => number,
    input: (k: number, j: number) => number,
    prepared: Prepared,
    a: number,
    b: number,
    offset: number
  ): TaskDiagnostics.Partial => {
    const { plan: p, factors } = prepared
    const weights = p.models.map((m) => m.weight)
    const cuts = prepared.selectors.map((s) => (s.kind === "window" ? s : { hi: END, lo: END }))
    f64[LAMBDA_AT / 8] = p.lambda
    for (let i = 0; i < n; i++) {
      f64[modelParamsAt(i) / 8] = factors[i]!
      f64[modelParamsAt(i) / 8 + 1] = weights[i]!
      // Signed compares: keys are < 2³¹; END's −1 stays −1, START's 2³² becomes 2³¹ − 1 (no key above it).
      const { hi, lo } = cuts[i]!
      const at = modelParamsAt(i) / 4
      i32[at + 4] = Math.min(hi.bits, 0x7fffffff)
      i32[at + 5] = Math.min(lo.bits, 0x7fffffff)
      i32[at + 6] = hi.index
      i32[at + 7] = lo.index
      i32[at + 8] = hi.index === 0 && lo.index === 0 ? -1 : 0
    }
    const diagnostics = TaskDiagnostics.empty(n, a, b)
    const lambda = p.lambda
    for (let j0 = a; j0 < b; j0 += CHUNK) {
      const m = Math.min(CHUNK, b - j0)
      const m4 = m & ~3
      for (let i = 0; i < n; i++) {
        f64[resultsAt(i) / 8] = 0
        f64[resultsAt(i) / 8 + 1] = 0
      }
      if (m4 > 0) {
        ties(j0 * 4, m4 / 4, offset + j0)
        for (let i = 0; i < n; i++) diagnostics.agree[i] = diagnostics.agree[i]! + f64[resultsAt(i) / 8 + 2]! + f64[resultsAt(i) / 8 + 3]!
      }
      // The tail: TaskArithmetic's arithmetic, element by element.
      for (let k = m4; k < m; k++) {
        const j = j0 + k
        const x0 = input(0, j)
        let s = 0
        for (let i = 0; i < n; i++) {
          tau[0] = input(1 + i, j) - x0
          const t = tau[0]!
          const key = tauBits[0]! & 0x7fffffff
          const { hi, lo } = cuts[i]!
          v[i] = hi.index === 0 && lo.index === 0
            ? factors[i]! * t * +(key > hi.bits) * +(key <= lo.bits)
            : isAboveCut(key, offset + j, hi) && !isAboveCut(key, offset + j, lo) ? factors[i]! * t : 0
          f64[resultsAt(i) / 8 + (k & 1)] = f64[resultsAt(i) / 8 + (k & 1)]! + t * t
          s = i === 0 ? v[0]! : s + v[i]!
        }
        const sign = 1 - 2 * +(s < 0)
        let mix = 0
        let div = 0
        for (let i = 0; i < n; i++) {
          const agree = +(v[i]! * sign > 0)
          mix = i === 0 ? agree * v[i]! : mix + agree * v[i]!
          div = i === 0 ? agree * weights[i]! : div + agree * weights[i]!
          diagnostics.agree[i] = diagnostics.agree[i]! + agree
        }
        div = div + +(div === 0)
        out[j] = x0 + (lambda * mix) / div
      }
      const slot = Math.floor((j0 - a) / BLOCK) * n
      for (let i = 0; i < n; i++) {
        diagnostics.squares[slot + i] = diagnostics.squares[slot + i]! + (f64[resultsAt(i) / 8]! + f64[resultsAt(i) / 8 + 1]!)
      }
    }
    return diagnostics
  }
  const stage = new Uint8Array(buffer, STAGE, BLOCK * 2)
  const stageHalves = new Uint16Array(buffer, STAGE, BLOCK)
  const widen = exports["widen_bf16"]!
  const narrow = exports["narrow_bf16"]!

  const load = (input: PackedInput, w0: number, w1: number, window: Float32Array): void => {
    if (input.dtype !== "BF16") return decode(input, w0, w1, window)
    const m = w1 - w0
    copyBytes(stage, 0, input.bytes, w0 * 2, w1 * 2)
    const m8 = m & ~7
    if (m8 > 0) widen(STAGE, window.byteOffset, m8 / 8)
    const bits = new Uint32Array(buffer, window.byteOffset, m)
    for (let k = m8; k < m; k++) bits[k] = stageHalves[k]! << 16
  }

  const encode = (a: number, b: number, bytes: Uint8Array): void => {
    const m8 = (b - a) & ~7
    if (m8 > 0) {
      narrow(windowAt(OUT_WINDOW) + a * 4, STAGE, m8 / 8)
      copyBytes(bytes, 0, stage, 0, m8 * 2)
    }
    if (a + m8 < b) encodeBF16(out.subarray(a + m8, b), bytes.subarray(m8 * 2))
  }
  const scanNonFinite = exports["nonfinite_f32"]!
  const hasNonFinite = (window: Float32Array, a: number, b: number): boolean => {
    const m4 = (b - a) & ~3
    if (m4 > 0 && scanNonFinite(window.byteOffset + a * 4, m4 / 4) !== 0) return true
    for (let k = a + m4; k < b; k++) if (!Number.isFinite(window[k]!)) return true
    return false
  }
  const keysOf = exports["keys_f32"]!
  const outBits = new Uint32Array(buffer, windowAt(OUT_WINDOW), BLOCK)
  const magnitudes = (x: Float32Array, base: Float32Array, a: number, b: number): Uint32Array => {
    const m4 = (b - a) & ~3
    if (m4 > 0) keysOf(x.byteOffset + a * 4, base.byteOffset + a * 4, windowAt(OUT_WINDOW) + a * 4, m4 / 4)
    for (let k = a + m4; k < b; k++) {
      tau[0] = x[k]! - base[k]!
      outBits[k] = tauBits[0]! & 0x7fffffff
    }
    return outBits.subarray(a, b)
  }
  const selectLow = exports["select_low"]!
  const lowKeys = (x: Float32Array, base: Float32Array, a: number, b: number, high: number): Uint32Array => {
    const keys = magnitudes(x, base, a, b)
    const m4 = keys.length & ~3
    let count = m4 > 0 ? selectLow(keys.byteOffset, m4 / 4, high) : 0
    for (let k = m4; k < keys.length; k++) if (keys[k]! >>> 16 === high) keys[count++] = keys[k]! & 0xffff
    return keys.subarray(0, count)
  }
  const nonFiniteBf16 = exports["nonfinite_bf16"]!
  const highBf16 = exports["high_bf16"]!
  const aboveLowBf16 = exports["above_low_bf16"]!
  const selectLowBf16 = exports["select_low_bf16"]!
  const equalBf16 = exports["equal_bf16"]!
  const slotBytes = slots.map((h) => new Uint8Array(h.buffer, h.byteOffset, BLOCK * 2))
  const highs = Array.from({ length: MAX_MODELS }, (_, c) => new Uint32Array(buffer, highAt(c), HIGH_BYTES / 4))
  // Low histograms `c`: MAX_LOW_SPAN × 65,536 counts, of which a guess uses the first `span` × 65,536.
  const lows = Array.from({ length: MAX_MODELS }, (_, c) => new Uint32Array(buffer, lowAt(c), LOW_BYTES * MAX_LOW_SPAN / 4))
  const key = (k: number, j: number): number => {
    tau[0] = fromSlots(k, j) - fromSlots(0, j)
    return tauBits[0]! & 0x7fffffff
  }
  const packed: PackedWindows = {
    stage: (k, input, w0, a, b) => copyBytes(slotBytes[k]!, a * 2, input.bytes, (w0 + a) * 2, (w0 + b) * 2),
    apply: (prepared, a, b, offset) => applyWith(packedKernel, fromSlots, prepared, a, b, offset),
    hasNonFinite: (k, a, b) => {
      const m8 = (b - a) & ~7
      if (m8 > 0 && nonFiniteBf16(packedAt(k) + a * 2, m8 / 8) !== 0) return true
      return hasNonFiniteJs(slotBytes[k]!, "BF16", a + m8, b)
    },
    widen: (k, a, b) => {
      const window = k === 0 ? base : models[k - 1]!
      const bits = new Uint32Array(buffer, window.byteOffset, BLOCK)
      for (let j = a; j < b; j++) bits[j] = slots[k]![j]! << 16
      return window
    },
    clearHigh: (c) => highs[c]!.fill(0),
    countHigh: (c, k, a, b) => {
      const m4 = (b - a) & ~3
      if (m4 > 0) highBf16(packedAt(k) + a * 2, packedAt(0) + a * 2, m4 / 4, highAt(c))
      const counts = highs[c]!
      for (let j = a + m4; j < b; j++) counts[key(k, j) >>> 16]!++
    },
    countAboveLow: (c, k, a, b, first, span) => {
      const m4 = (b - a) & ~3
      let above = m4 > 0 ? aboveLowBf16(packedAt(k) + a * 2, packedAt(0) + a * 2, m4 / 4, lowAt(c), first, span) : 0
      const counts = lows[c]!
      for (let j = a + m4; j < b; j++) {
        const q = key(k, j)
        const h = (q >>> 16) - first
        if (h >= span) above++
        else if (h >= 0) counts[h * 65536 + (q & 0xffff)]!++
      }
      return above
    },
    clearLow: (c, span) => lows[c]!.fill(0, 0, span * 65536),
    readLow: (c, span) => {
      const counts = lows[c]!.subarray(0, span * 65536)
      let nonzero = 0
      for (let q = 0; q < counts.length; q++) if (counts[q] !== 0) nonzero++
      const pairs = new Uint32Array(2 * nonzero)
      for (let q = 0, at = 0; q < counts.length; q++) {
        if (counts[q] === 0) continue
        pairs[at++] = q
        pairs[at++] = counts[q]!
      }
      return pairs
    },
    readHigh: (c, counts) => {
      const h = highs[c]!
      for (let q = 0; q < counts.length; q++) counts[q] = counts[q]! + h[q]!
    },
    lowKeys: (k, a, b, high) => {
      const m4 = (b - a) & ~3
      let count = m4 > 0 ? selectLowBf16(packedAt(k) + a * 2, packedAt(0) + a * 2, windowAt(OUT_WINDOW), m4 / 4, high) : 0
      for (let j = a + m4; j < b; j++) {
        const q = key(k, j)
        if (q >>> 16 === high) outBits[count++] = q & 0xffff
      }
      return outBits.subarray(0, count)
    },
    countEqual: (k, a, b, bits) => {
      const m4 = (b - a) & ~3
      let count = m4 > 0 ? equalBf16(packedAt(k) + a * 2, packedAt(0) + a * 2, m4 / 4, bits) : 0
      for (let j = a + m4; j < b; j++) if (key(k, j) === bits) count++
      return count
    },
    key
  }
  return { base, models, out, apply, load, encode, hasNonFinite, magnitudes, lowKeys, packed }
}
