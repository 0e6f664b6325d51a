/**
 * Generalized task arithmetic (TIES, DARE, breadcrumbs, DELLA, task arithmetic) on inputs held
 * packed in their own dtype (`PackedInput.ts`): each function works on an element range of the
 * tensor, decoding one window of `BLOCK` elements of every input at a time into small float32
 * scratch arrays and running the float32 kernels (`Select.ts`, `TaskStatistics.ts`,
 * `TaskArithmetic.apply`) on it with the window's tensor offset. Windows sit on the fixed block
 * grid, so the statistics combine exactly as the whole-tensor ones do and the bytes are those of
 * the whole-tensor merge. These are the bodies of the `packed*` ops (`Ops.ts`), which a pool
 * runs one range per worker; `inputs[0]` is the base, `inputs[1 + i]` model i.
 *
 * @since 0.1.0
 */
import * as BlockSums from "./BlockSums.ts"
import { BLOCK } from "./Gram.ts"
import * as NonFinite from "./NonFinite.ts"
import { copyBytes, decode, encodeBF16, length, type PackedInput } from "./PackedInput.ts"
import * as Select from "./Select.ts"
import type { Selector } from "./Sparsify.ts"
import * as TaskArithmetic from "./TaskArithmetic.ts"
import type * as TaskDiagnostics from "./TaskDiagnostics.ts"
import * as TaskStatistics from "./TaskStatistics.ts"
import * as TiesSimd from "./TiesSimd.ts"
import type { weightedSum } from "./WeightedSum.ts"

/** The first non-finite element of one input on a range, and how many there are. @category models */
export interface NonFiniteCount {
  /** Tensor index of the first, −1 when none. */
  readonly first: number
  readonly value: number
  readonly count: number
}

/** What the first pass finds on a range. @category models */
export interface Scan {
  /** Per input (base first). */
  readonly nonFinite: ReadonlyArray<NonFiniteCount>
  /** Per model in `ranked`: the high-bits histogram of |τ| (`Select.countHigh`); empty for a model whose `low` was counted. */
  readonly high: ReadonlyArray<Uint32Array>
  /**
   * Per model in `ranked` that was given a {@link LowGuess} (and on the bf16 path): the low-bits
   * histograms of its `span` candidate high buckets (`Select.countLow`'s), as pairs (h·65536 +
   * low, count) of their nonzero counts in order, bucket `first + h`. Undefined where none were
   * counted.
   */
  readonly low?: ReadonlyArray<Uint32Array | undefined>
  /** With `low`: how many |τ| keys have a high half above the candidate buckets. */
  readonly above?: ReadonlyArray<number>
}

/** Candidate high buckets `[first, first + span)` of one model whose low histograms the scan counts too (span ≤ `TiesSimd.MAX_LOW_SPAN`). @category models */
export interface LowGuess {
  readonly first: number
  readonly span: number
}

/**
 * Visits `[start, end)` window by window on the block grid: decodes `which` inputs' window
 * `[w0, w1)` (whole, clipped to the tensor) and calls `visit(arrays, w0, a, b)` with the part
 * `[a, b)` of it (window-local) inside the range. `arrays[k]` is input `which[k]`'s window.
 */
const forEachWindow = (
  inputs: ReadonlyArray<PackedInput>,
  which: ReadonlyArray<number>,
  n: number,
  start: number,
  end: number,
  visit: (arrays: ReadonlyArray<Float32Array>, w0: number, a: number, b: number) => void,
  { scratch, load }: Windows
): void => {
  for (let w0 = Math.floor(start / BLOCK) * BLOCK; w0 < end; w0 += BLOCK) {
    const w1 = Math.min(n, w0 + BLOCK)
    const arrays = which.map((input, k) => {
      const window = scratch[k]!.subarray(0, w1 - w0)
      load(inputs[input]!, w0, w1, window)
      return window
    })
    visit(arrays, w0, Math.max(start, w0) - w0, Math.min(end, w1) - w0)
  }
}

/** Where windows are decoded: scratch arrays (one per input visited) and the decoder. */
interface Windows {
  readonly scratch: ReadonlyArray<Float32Array>
  readonly load: (input: PackedInput, w0: number, w1: number, window: Float32Array) => void
  /** A fast "any NaN/±Inf in window[a, b)?" when the windows are a SIMD kernel's. */
  readonly hasNonFinite?: (window: Float32Array, a: number, b: number) => boolean
  /** |τ| bits of window[a, b) computed in SIMD (`TiesSimd`), when the windows are a SIMD kernel's. */
  readonly magnitudes?: (x: Float32Array, base: Float32Array, a: number, b: number) => Uint32Array
  /** The low halves of those |τ| bits whose high half is `high` (`TiesSimd.lowKeys`), when the windows are a SIMD kernel's. */
  readonly lowKeys?: (x: Float32Array, base: Float32Array, a: number, b: number, high: number) => Uint32Array
}

// In the thread's SIMD kernel memory when they fit (bf16 is then widened in SIMD); plain arrays otherwise.
const windowsFor = (count: number, kernels: TiesSimd.TiesCache): Windows => {
  if (count < 2 || count > 1 + TiesSimd.MAX_MODELS) return { scratch: Array.from({ length: count }, () => new Float32Array(BLOCK)), load: decode }
  const ties = kernels.windows(count - 1)
  return { scratch: [ties.base, ...ties.models], load: ties.load, hasNonFinite: ties.hasNonFinite, magnitudes: ties.magnitudes, lowKeys: ties.lowKeys }
}

// The bf16 path: when every visited input is bf16 and fits the thread's SIMD kernel, windows are
// staged as bytes and the kernels read them in place (`TiesSimd.PackedWindows`): no pass widens
// a window into float32 first. Same counts, cuts and bits as the float32 windows.
const packedKernel = (
  inputs: ReadonlyArray<PackedInput>,
  which: ReadonlyArray<number>,
  kernels: TiesSimd.TiesCache
): TiesSimd.PackedWindows | undefined =>
  readsInPlace(which.map((k) => inputs[k]!)) ? kernels.windows(which.length - 1).packed : undefined

/**
 * Whether the kernels read these inputs (base first) as bf16 in place: 2 to
 * 1 + `TiesSimd.MAX_MODELS` of them, all bf16.
 *
 * @category predicates
 */
export const readsInPlace = (inputs: ReadonlyArray<PackedInput>): boolean =>
  inputs.length >= 2 && inputs.length <= 1 + TiesSimd.MAX_MODELS && inputs.every((x) => x.dtype === "BF16")

/** {@link forEachWindow} on staged bf16 slots: slot k holds input `which[k]`'s part of the window inside the range. */
const forEachStaged = (
  inputs: ReadonlyArray<PackedInput>,
  which: ReadonlyArray<number>,
  n: number,
  start: number,
  end: number,
  packed: TiesSimd.PackedWindows,
  visit: (w0: number, a: number, b: number) => boolean | void
): void => {
  for (let w0 = Math.floor(start / BLOCK) * BLOCK; w0 < end; w0 += BLOCK) {
    const a = Math.max(start, w0) - w0
    const b = Math.min(end, n, w0 + BLOCK) - w0
    for (let k = 0; k < which.length; k++) packed.stage(k, inputs[which[k]!]!, w0, a, b)
    if (visit(w0, a, b) === true) return
  }
}

const every = (count: number): Array<number> => Array.from({ length: count }, (_, k) => k)
const lengthOf = (inputs: ReadonlyArray<PackedInput>): number => length(inputs[0]!)

/**
 * Pass 1 on `[start, end)`: each input's non-finite elements, and the high histograms of the
 * models in `ranked` (model indices) whose magnitude cuts are needed.
 *
 * @category passes
 */
export const scan = (
  inputs: ReadonlyArray<PackedInput>,
  ranked: ReadonlyArray<number>,
  start: number,
  end: number,
  kernels: TiesSimd.TiesCache = TiesSimd.cache(),
  guesses: ReadonlyArray<LowGuess | undefined> = []
): Scan => {
  const first = inputs.map(() => -1)
  const value = inputs.map(() => 0)
  const count = inputs.map(() => 0)
  // Input k's non-finite values of window w0 from window-local `at` (its first) to `b`.
  const record = (k: number, x: Float32Array, w0: number, at: number, b: number): void => {
    if (first[k]! < 0) {
      first[k] = w0 + at
      value[k] = x[at]!
    }
    count[k] = count[k]! + NonFinite.countNonFinite(x, at, b)
  }
  const high = ranked.map(() => new Uint32Array(Select.HIGH_BUCKETS))
  const packed = packedKernel(inputs, every(inputs.length), kernels)
  if (packed !== undefined) {
    ranked.forEach((_, c) => packed.clearHigh(c))
    const guess = ranked.map((_, c) => {
      const g = guesses[c]
      return g !== undefined && g.span >= 1 && g.span <= TiesSimd.MAX_LOW_SPAN ? g : undefined
    })
    guess.forEach((g, c) => g !== undefined && packed.clearLow(c, g.span))
    const above = ranked.map(() => 0)
    forEachStaged(inputs, every(inputs.length), lengthOf(inputs), start, end, packed, (w0, a, b) => {
      for (let k = 0; k < inputs.length; k++) {
        if (!packed.hasNonFinite(k, a, b)) continue
        const x = packed.widen(k, a, b)
        record(k, x, w0, NonFinite.firstNonFinite(x, a, b), b)
      }
      for (let c = 0; c < ranked.length; c++) {
        const g = guess[c]
        if (g === undefined) packed.countHigh(c, 1 + ranked[c]!, a, b)
        else above[c] = above[c]! + packed.countAboveLow(c, 1 + ranked[c]!, a, b, g.first, g.span)
      }
    })
    const counted = guess.map((g, c) => {
      if (g !== undefined) return new Uint32Array(0)
      packed.readHigh(c, high[c]!)
      return high[c]!
    })
    const low = guess.map((g, c) => (g === undefined ? undefined : packed.readLow(c, g.span)))
    return { nonFinite: first.map((f, k) => ({ first: f, value: value[k]!, count: count[k]! })), high: counted, low, above }
  }
  const windows = windowsFor(inputs.length, kernels)
  forEachWindow(inputs, every(inputs.length), lengthOf(inputs), start, end, (arrays, w0, a, b) => {
    for (const [k, x] of arrays.entries()) {
      if (windows.hasNonFinite !== undefined && !windows.hasNonFinite(x, a, b)) continue
      const at = NonFinite.firstNonFinite(x, a, b)
      if (at >= 0) record(k, x, w0, at, b)
    }
    for (const [c, model] of ranked.entries()) countHighIn(windows, arrays[1 + model]!, arrays[0]!, a, b, high[c]!)
  }, windows)
  return { nonFinite: first.map((f, k) => ({ first: f, value: value[k]!, count: count[k]! })), high }
}

// Select.countHigh / countLow, on keys computed in SIMD when the windows allow it (same counts).
const countHighIn = (windows: Windows, x: Float32Array, base: Float32Array, a: number, b: number, counts: Uint32Array): void => {
  if (windows.magnitudes === undefined) return Select.countHigh(x, base, a, b, counts)
  const keys = windows.magnitudes(x, base, a, b)
  for (let k = 0; k < keys.length; k++) counts[keys[k]! >>> 16]!++
}

const countLowIn = (
  windows: Windows,
  x: Float32Array,
  base: Float32Array,
  a: number,
  b: number,
  highs: ReadonlyArray<number>,
  counts: ReadonlyArray<Uint32Array>
): void => {
  if (windows.magnitudes === undefined || windows.lowKeys === undefined) return Select.countLow(x, base, a, b, highs, counts)
  if (highs.length === 1) {
    // One wanted high bucket (the usual case): SIMD keeps the few keys in it, JavaScript counts them.
    const lows = windows.lowKeys(x, base, a, b, highs[0]!)
    const c0 = counts[0]!
    for (let k = 0; k < lows.length; k++) c0[lows[k]!]!++
    return
  }
  const keys = windows.magnitudes(x, base, a, b)
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!
    const high = key >>> 16
    for (let c = 0; c < highs.length; c++) if (high === highs[c]) counts[c]![key & 0xffff]!++
  }
}

/** A model's wanted high buckets, for {@link countLow}. @category models */
export interface LowRequest {
  readonly model: number
  readonly highs: ReadonlyArray<number>
}

/** Pass 2 on `[start, end)`: per request, per high bucket, the low-bits histogram (`Select.countLow`). @category passes */
export const countLow = (
  inputs: ReadonlyArray<PackedInput>,
  requests: ReadonlyArray<LowRequest>,
  start: number,
  end: number,
  kernels: TiesSimd.TiesCache = TiesSimd.cache()
): Array<Array<Uint32Array>> => {
  const counts = requests.map((r) => r.highs.map(() => new Uint32Array(Select.LOW_BUCKETS)))
  const which = [0, ...requests.map((r) => 1 + r.model)]
  const packed = packedKernel(inputs, which, kernels)
  if (packed !== undefined) {
    // SIMD keeps, per wanted high bucket, the few keys in it (none stored otherwise); JavaScript counts them.
    forEachStaged(inputs, which, lengthOf(inputs), start, end, packed, (_w0, a, b) => {
      for (let c = 0; c < requests.length; c++) {
        const highs = requests[c]!.highs
        for (let h = 0; h < highs.length; h++) {
          const lows = packed.lowKeys(1 + c, a, b, highs[h]!)
          const into = counts[c]![h]!
          for (let k = 0; k < lows.length; k++) into[lows[k]!]!++
        }
      }
    })
    return counts
  }
  const windows = windowsFor(which.length, kernels)
  forEachWindow(inputs, which, lengthOf(inputs), start, end, (arrays, _w0, a, b) => {
    for (const [c, r] of requests.entries()) countLowIn(windows, arrays[1 + c]!, arrays[0]!, a, b, r.highs, counts[c]!)
  }, windows)
  return counts
}

/** Pass 3 on `[start, end)`: the tensor index of the `nth` element of `model` whose |τ| bits equal `bits`; −1 if none. @category passes */
export const nthEqual = (
  inputs: ReadonlyArray<PackedInput>,
  model: number,
  bits: number,
  nth: number,
  start: number,
  end: number,
  kernels: TiesSimd.TiesCache = TiesSimd.cache()
): number => {
  let seen = 0
  let found = -1
  const packed = packedKernel(inputs, [0, 1 + model], kernels)
  if (packed !== undefined) {
    // Windows are counted in SIMD; only the one holding the nth equal key is searched element by element.
    forEachStaged(inputs, [0, 1 + model], lengthOf(inputs), start, end, packed, (w0, a, b) => {
      const equal = packed.countEqual(1, a, b, bits)
      if (seen + equal <= nth) {
        seen += equal
        return false
      }
      for (let j = a; j < b; j++) {
        if (packed.key(1, j) !== bits) continue
        if (seen === nth) {
          found = w0 + j
          return true
        }
        seen++
      }
      return true
    })
    return found
  }
  forEachWindow(inputs, [0, 1 + model], lengthOf(inputs), start, end, (arrays, w0, a, b) => {
    if (found >= 0) return
    Select.forEachKeyChunk(arrays[1]!, arrays[0]!, a, b, (keys, m, first) => {
      if (found >= 0) return
      for (let k = 0; k < m; k++) {
        if ((keys[k]! & 0x7fffffff) !== bits) continue
        if (seen === nth) {
          found = w0 + first + k
          return
        }
        seen++
      }
    })
  }, windowsFor(2, kernels))
  return found
}

/** `[‖τ‖₁, ‖kept τ‖₁]` per block of `[start, end)` (start on the block grid), as `TaskStatistics.l1Partials`. @category statistics */
export const l1 = (
  inputs: ReadonlyArray<PackedInput>,
  model: number,
  selector: Selector,
  start: number,
  end: number,
  kernels: TiesSimd.TiesCache = TiesSimd.cache()
): Float64Array => {
  const parts: Array<Float64Array> = []
  forEachWindow(inputs, [0, 1 + model], lengthOf(inputs), start, end, (arrays, w0, a, b) => {
    parts.push(TaskStatistics.l1Partials(selector, arrays[1]!, arrays[0]!, a, b, w0, BLOCK))
  }, windowsFor(2, kernels))
  return BlockSums.concat(parts)
}

/**
 * The merge of `[start, end)` into `out`, whose element 0 is tensor index `outStart`; with
 * `bf16`, also encoded as bfloat16 into it (2 bytes an element, element 0 at byte 0). Returns the
 * range's diagnostics (the windows' partials joined in order; undefined on the weighted-sum path)
 * and whether the merged values hold a NaN or ±Inf (checked here, in SIMD on the TIES path, so the
 * caller searches for the exact element only when there is one).
 * TIES (consensus `sum`, `normalize`, ≤ 4 models) runs the SIMD kernel (`TiesSimd.ts`,
 * the same bits); `simd: false` forces the JavaScript kernels (the tests' reference).
 *
 * @category kernels
 */
export const apply = (
  prepared: TaskArithmetic.Prepared,
  inputs: ReadonlyArray<PackedInput>,
  out: Float32Array,
  outStart: number,
  start: number,
  end: number,
  sum?: typeof weightedSum,
  bf16?: Uint8Array,
  simd = true,
  kernels: TiesSimd.TiesCache = TiesSimd.cache()
): Applied => {
  const parts: Array<TaskDiagnostics.Partial> = []
  let nonFinite = false
  // `out` may be in shared memory (a pool's output): bytes are copied with `copyBytes`.
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  if (simd && TiesSimd.eligible(prepared)) {
    // TIES (magnitude windows, sign election by mass, normalized): the SIMD kernel, same bits.
    const ties = kernels.windows(inputs.length - 1)
    const merged = new Uint8Array(ties.out.buffer, ties.out.byteOffset, ties.out.byteLength)
    const packed = packedKernel(inputs, every(inputs.length), kernels)
    if (packed !== undefined) {
      forEachStaged(inputs, every(inputs.length), lengthOf(inputs), start, end, packed, (w0, a, b) => {
        parts.push(packed.apply(prepared, a, b, w0))
        nonFinite ||= ties.hasNonFinite(ties.out, a, b)
        copyBytes(outBytes, (w0 + a - outStart) * 4, merged, a * 4, b * 4)
        if (bf16 !== undefined) ties.encode(a, b, bf16.subarray((w0 + a - outStart) * 2))
      })
      return { diagnostics: join(parts), nonFinite }
    }
    forEachWindow(inputs, every(inputs.length), lengthOf(inputs), start, end, (_arrays, w0, a, b) => {
      parts.push(ties.apply(prepared, a, b, w0))
      nonFinite ||= ties.hasNonFinite(ties.out, a, b)
      copyBytes(outBytes, (w0 + a - outStart) * 4, merged, a * 4, b * 4)
      if (bf16 !== undefined) ties.encode(a, b, bf16.subarray((w0 + a - outStart) * 2))
    }, windowsFor(inputs.length, kernels))
    return { diagnostics: join(parts), nonFinite }
  }
  const merged = new Float32Array(BLOCK)
  forEachWindow(inputs, every(inputs.length), lengthOf(inputs), start, end, (arrays, w0, a, b) => {
    const partial = TaskArithmetic.apply(prepared, merged, arrays[0]!, arrays.slice(1), a, b, w0, sum)
    nonFinite ||= NonFinite.firstNonFinite(merged, a, b) >= 0
    out.set(merged.subarray(a, b), w0 + a - outStart)
    if (bf16 !== undefined) encodeBF16(merged.subarray(a, b), bf16.subarray((w0 + a - outStart) * 2))
    if (partial !== undefined) parts.push(partial)
  }, windowsFor(inputs.length, kernels))
  return { diagnostics: parts.length === 0 ? undefined : join(parts), nonFinite }
}

/** What {@link apply} gives for one range. @category models */
export interface Applied {
  /** The range's diagnostics partial; undefined on the weighted-sum path. */
  readonly diagnostics: TaskDiagnostics.Partial | undefined
  /** Whether a merged value of the range is NaN or ±Inf. */
  readonly nonFinite: boolean
}

const join = (parts: ReadonlyArray<TaskDiagnostics.Partial>): TaskDiagnostics.Partial => {
  const models = parts[0]!.kept.length
  const kept = new Float64Array(models)
  const agree = new Float64Array(models)
  const squares = new Float64Array(parts.reduce((t, p) => t + p.squares.length, 0))
  let at = 0
  for (const p of parts) {
    for (let i = 0; i < models; i++) {
      kept[i] = kept[i]! + p.kept[i]!
      agree[i] = agree[i]! + p.agree[i]!
    }
    squares.set(p.squares, at)
    at += p.squares.length
  }
  return { kept, agree, squares }
}
