/**
 * A labelled dataset held in memory: `count` samples of shape `shape` (PyTorch layout, e.g.
 * `[1, 28, 28]`), row-major in one Float32Array, and an integer class label per sample.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"

/** @category models */
export interface Dataset {
  /** For messages and reports, e.g. `mnist/test`. */
  readonly name: string
  /** Per-sample shape, PyTorch layout. */
  readonly shape: ReadonlyArray<number>
  readonly count: number
  /** `count × numel(shape)` values. */
  readonly x: Float32Array
  /** `count` labels in `[0, classes)`. */
  readonly y: Int32Array
  readonly classes: number
  /** Names of the classes, when the source has them. */
  readonly classNames?: ReadonlyArray<string>
}

/** A dataset cannot be read or is inconsistent; names the file or dataset, and the line or tensor. @category errors */
export class DataError extends Schema.TaggedError<DataError>()("DataError", {
  source: Schema.String,
  detail: Schema.String,
  line: Schema.optional(Schema.Number),
  tensor: Schema.optional(Schema.String)
}) {
  override get message() {
    const where = this.line !== undefined ? `:${this.line}` : this.tensor !== undefined ? ` (tensor "${this.tensor}")` : ""
    return `${this.source}${where}: ${this.detail}`
  }
}

/** Values per sample. */
export const sampleSize = (dataset: Pick<Dataset, "shape">): number => dataset.shape.reduce((a, b) => a * b, 1)

/** Checks the invariants of a dataset built by hand; returns it unchanged. */
export const make = (dataset: Dataset): Effect.Effect<Dataset, DataError> => {
  const fail = (detail: string) => Effect.fail(new DataError({ source: dataset.name, detail }))
  const size = sampleSize(dataset)
  if (!Number.isInteger(dataset.count) || dataset.count < 0) return fail(`count must be a non-negative integer, got ${dataset.count}`)
  if (dataset.x.length !== dataset.count * size) return fail(`x holds ${dataset.x.length} values; ${dataset.count} samples of [${dataset.shape.join(", ")}] need ${dataset.count * size}`)
  if (dataset.y.length !== dataset.count) return fail(`y holds ${dataset.y.length} labels for ${dataset.count} samples`)
  if (!Number.isInteger(dataset.classes) || dataset.classes < 1) return fail(`classes must be a positive integer, got ${dataset.classes}`)
  for (let i = 0; i < dataset.count; i++) {
    const label = dataset.y[i]!
    if (label < 0 || label >= dataset.classes) return fail(`label ${label} of sample ${i} is outside [0, ${dataset.classes})`)
  }
  for (let i = 0; i < dataset.x.length; i++) {
    if (!Number.isFinite(dataset.x[i]!)) return fail(`value ${dataset.x[i]} at index ${i} (sample ${Math.floor(i / size)}) is not finite`)
  }
  return Effect.succeed(dataset)
}

/** The samples at `indices`, in that order. */
export const subset = (dataset: Dataset, indices: ArrayLike<number>, name = `${dataset.name}[subset]`): Dataset => {
  const size = sampleSize(dataset)
  const x = new Float32Array(indices.length * size)
  const y = new Int32Array(indices.length)
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!
    x.set(dataset.x.subarray(j * size, (j + 1) * size), i * size)
    y[i] = dataset.y[j]!
  }
  return { ...dataset, name, count: indices.length, x, y }
}

/** Per-feature mean and standard deviation (population), for standardisation. */
export interface FeatureStats {
  readonly mean: Float64Array
  readonly std: Float64Array
}

/** Mean and standard deviation of every feature over the dataset. */
export const featureStats = (dataset: Dataset): FeatureStats => {
  const size = sampleSize(dataset)
  const mean = new Float64Array(size)
  const sq = new Float64Array(size)
  for (let i = 0; i < dataset.count; i++)
    for (let f = 0; f < size; f++) {
      const v = dataset.x[i * size + f]!
      mean[f]! += v
      sq[f]! += v * v
    }
  const std = new Float64Array(size)
  for (let f = 0; f < size; f++) {
    mean[f]! /= Math.max(1, dataset.count)
    std[f] = Math.sqrt(Math.max(0, sq[f]! / Math.max(1, dataset.count) - mean[f]! ** 2))
  }
  return { mean, std }
}

/** `(x − mean) / std` per feature (features with zero spread are only centred). Use the training split's stats for every split. */
export const standardize = (dataset: Dataset, stats: FeatureStats): Dataset => {
  const size = sampleSize(dataset)
  const x = new Float32Array(dataset.x.length)
  for (let i = 0; i < dataset.count; i++)
    for (let f = 0; f < size; f++) {
      const s = stats.std[f]!
      x[i * size + f] = (dataset.x[i * size + f]! - stats.mean[f]!) / (s > 0 ? s : 1)
    }
  return { ...dataset, x }
}

/** Deterministic split by index: sample `i` goes to the test split when `i % every == every − 1`. */
export const splitEvery = (dataset: Dataset, every: number): { readonly train: Dataset; readonly test: Dataset } => {
  const train: Array<number> = []
  const test: Array<number> = []
  for (let i = 0; i < dataset.count; i++) (i % every === every - 1 ? test : train).push(i)
  return { train: subset(dataset, train, `${dataset.name}/train`), test: subset(dataset, test, `${dataset.name}/test`) }
}
