/**
 * Mini-batches: seeded shuffling and ±k-pixel shift augmentation.
 *
 * Epoch `e`'s order is a permutation drawn from the stream `derive(seed, "shuffle", e)`, and
 * batch `b`'s shifts from `derive(seed, "shift", e, b)`: any epoch can be reproduced without
 * replaying the ones before it (which resuming a training run relies on).
 *
 * @since 0.1.0
 */
import * as Random from "../backend/Random.ts"
import { type Dataset, sampleSize } from "./Dataset.ts"

/** Options of {@link batches}. */
export interface BatchOptions {
  readonly batchSize: number
  /** Shuffle each epoch (default true); otherwise the dataset's order. */
  readonly shuffle?: boolean
  readonly seed: number
  /** 0-based epoch: selects the permutation and the shifts. */
  readonly epoch: number
  /** Drop the last, smaller batch (default false). */
  readonly dropLast?: boolean
  /** Shift each image by a random whole number of pixels in [−shift, shift] on each axis (zero fill). */
  readonly shift?: number
}

/** One mini-batch. */
export interface Batch {
  /** 0-based position in the epoch. */
  readonly index: number
  /** Dataset indices of the samples, in batch order. */
  readonly indices: Int32Array
  /** `indices.length × sampleSize` values (augmented, if asked). */
  readonly x: Float32Array
  readonly y: Int32Array
}

/** The sample order of an epoch. */
export const order = (count: number, options: Pick<BatchOptions, "shuffle" | "seed" | "epoch">): Int32Array => {
  if (options.shuffle === false) return Int32Array.from({ length: count }, (_, i) => i)
  return Random.make(Random.derive(options.seed, "shuffle", options.epoch)).permutation(count)
}

/** Batches per epoch. */
export const batchCount = (count: number, batchSize: number, dropLast = false): number =>
  dropLast ? Math.floor(count / batchSize) : Math.ceil(count / batchSize)

/**
 * Shifts each `[C, H, W]` image of a batch by `(dy, dx)` drawn uniformly from
 * `[−shift, shift]²` (one draw per image; pixels shifted in from outside are 0).
 */
export const shiftImages = (x: Float32Array, count: number, shape: ReadonlyArray<number>, shift: number, rng: Random.Random): Float32Array => {
  if (shape.length !== 3) throw new RangeError(`shift augmentation needs images [C, H, W], got [${shape.join(", ")}]`)
  const [c, h, w] = shape as [number, number, number]
  const size = c * h * w
  const out = new Float32Array(x.length)
  for (let s = 0; s < count; s++) {
    const dy = rng.int(2 * shift + 1) - shift
    const dx = rng.int(2 * shift + 1) - shift
    for (let ch = 0; ch < c; ch++) {
      const base = s * size + ch * h * w
      for (let i = Math.max(0, dy); i < Math.min(h, h + dy); i++) {
        const from = base + (i - dy) * w
        const to = base + i * w
        for (let j = Math.max(0, dx); j < Math.min(w, w + dx); j++) out[to + j] = x[from + j - dx]!
      }
    }
  }
  return out
}

/** The epoch's mini-batches, materialised one at a time. */
export function* batches(dataset: Dataset, options: BatchOptions): Generator<Batch> {
  const size = sampleSize(dataset)
  const perm = order(dataset.count, options)
  const n = batchCount(dataset.count, options.batchSize, options.dropLast)
  for (let b = 0; b < n; b++) {
    const indices = perm.subarray(b * options.batchSize, Math.min(dataset.count, (b + 1) * options.batchSize))
    let x: Float32Array = new Float32Array(indices.length * size)
    const y = new Int32Array(indices.length)
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i]!
      x.set(dataset.x.subarray(j * size, (j + 1) * size), i * size)
      y[i] = dataset.y[j]!
    }
    if (options.shift !== undefined && options.shift > 0) {
      x = shiftImages(x, indices.length, dataset.shape, options.shift, Random.make(Random.derive(options.seed, "shift", options.epoch, b)))
    }
    yield { index: b, indices, x, y }
  }
}
