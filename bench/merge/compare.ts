/**
 * How far apart two safetensors files are, tensor by tensor (streamed, 1M elements at a time):
 * the largest absolute difference, the largest one relative to its tensor's scale (max |a|; a
 * difference relative to each value would blow up where float32 sums cancel to nearly zero),
 * how many elements differ at all, and how many differ by more than float32 rounding of values of
 * the tensor's scale can explain (|Δ| > 1e-6 · max |a|, about 8 ulps there). The bench checks with it that
 * Crucible and the PyTorch peer wrote the same merge.
 */
import * as Safetensors from "../../packages/core/src/io/safetensors/Safetensors.ts"
import * as DType from "../../packages/core/src/tensor/DType.ts"
import * as TensorRef from "../../packages/core/src/tensor/TensorRef.ts"
import { Effect } from "./effect.ts"

/** The differences of two files. */
export interface Difference {
  readonly tensors: number
  readonly elements: number
  /** Elements whose values differ (bit patterns, so −0 vs +0 counts). */
  readonly differing: number
  /** Elements with |a − b| > 1e-6 · max |a| of their tensor: a different result, not a rounding. */
  readonly beyondRounding: number
  readonly maxAbs: number
  /** max over tensors of max |a − b| / max |a|. */
  readonly maxRelToScale: number
  /** The tensor with the largest absolute difference. */
  readonly worst: string | undefined
  /** Names in one file only, or with other shapes or dtypes. */
  readonly mismatched: ReadonlyArray<string>
}

const CHUNK = 1 << 20

/** Compares every tensor of `a` with the tensor of the same name in `b`. */
export const compare = (a: string, b: string): Promise<Difference> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const ma = yield* Safetensors.read(a)
    const mb = yield* Safetensors.read(b)
    const mismatched = [...mb.tensors.keys()].filter((n) => !ma.tensors.has(n))
    let elements = 0, differing = 0, beyondRounding = 0, maxAbs = 0, maxRelToScale = 0
    let worst: string | undefined
    for (const [name, ta] of ma.tensors) {
      const tb = mb.tensors.get(name)
      if (tb === undefined || tb.dtype !== ta.dtype || tb.shape.join() !== ta.shape.join()) {
        mismatched.push(name)
        continue
      }
      const n = TensorRef.numel(ta.shape)
      let scale = 0, tensorMax = 0
      for (let start = 0; start < n; start += CHUNK) {
        const xa = DType.toFloat64(yield* ta.read({ start, end: Math.min(n, start + CHUNK) }), ta.dtype)
        for (let j = 0; j < xa.length; j++) scale = Math.max(scale, Math.abs(xa[j]!))
      }
      for (let start = 0; start < n; start += CHUNK) {
        const range = { start, end: Math.min(n, start + CHUNK) }
        const ba = yield* ta.read(range)
        const bb = yield* tb.read(range)
        const xa = DType.toFloat64(ba, ta.dtype), xb = DType.toFloat64(bb, tb.dtype)
        const size = DType.byteSize[ta.dtype]
        for (let j = 0; j < xa.length; j++) {
          let same = true
          for (let k = 0; k < size; k++) if (ba[j * size + k] !== bb[j * size + k]) same = false
          if (same) continue
          differing++
          const d = Math.abs(xa[j]! - xb[j]!)
          tensorMax = Math.max(tensorMax, d)
          if (!(d <= 1e-6 * scale)) beyondRounding++
          if (d > maxAbs) {
            maxAbs = d
            worst = name
          }
        }
        elements += xa.length
      }
      if (tensorMax > 0) maxRelToScale = Math.max(maxRelToScale, tensorMax / scale)
    }
    return { tensors: ma.tensors.size, elements, differing, beyondRounding, maxAbs, maxRelToScale, worst, mismatched }
  })))
