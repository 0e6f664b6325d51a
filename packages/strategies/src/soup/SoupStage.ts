/**
 * `soup/uniform` and `soup/greedy`: weight averages of fine-tunes of one model (`Soup.ts`).
 * The greedy soup scores every ingredient and every candidate soup on a validation split —
 * `val` by default, carved from `train` (`data/Source.ts`), never the test split the soup is
 * reported on — records each decision as a `soup.ingredient` span event, and writes the chosen
 * ingredients into the output's metadata `crucible.soup` (JSON: method, ingredients with their
 * sources and scores, the chosen indices, the soup's score).
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Evaluate from "../evaluate/Evaluate.ts"
import type { Network } from "../models/Network.ts"
import type { ParamSet } from "../models/Params.ts"
import * as Runnable from "../models/Runnable.ts"
import * as Soup from "./Soup.ts"

/** The metadata key of a soup's recipe. */
export const SOUP_KEY = "crucible.soup"

/** Ingredients that cannot be souped together. @category errors */
export class SoupError extends Schema.TaggedError<SoupError>()("SoupError", {
  stage: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}

const Metric = Schema.Literals(["accuracy", "loss"])

const ingredientsInput = { models: Port.many(Port.ModelPort, { min: 1, description: "the ingredients: fine-tunes of one architecture" }) }

/** The ingredients' network and parameters; they must share one architecture. */
const loadIngredients = (id: string, models: ReadonlyArray<Parameters<typeof Runnable.load>[0]>, arch: Runnable.ArchParam | undefined, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    const loaded = yield* Effect.forEach(models, (m) => Runnable.load(m, arch, resolvePath))
    const first = JSON.stringify(loaded[0]!.arch)
    const other = loaded.findIndex((l) => JSON.stringify(l.arch) !== first)
    if (other > 0) return yield* new SoupError({ stage: id, detail: `ingredient ${other} (${models[other]!.source}) has another architecture than ingredient 0 (${models[0]!.source}): soups average one architecture's weights` })
    return { network: loaded[0]!.network, params: loaded.map((l) => l.params) }
  })

const soupModel = (id: string, kind: string, network: Network, params: ParamSet, recipe: unknown) =>
  Runnable.toModel(network, params, `${id} (${kind})`, { [SOUP_KEY]: JSON.stringify(recipe) })

/** @category stage kinds */
export const UniformSoupKind = Stage.define({
  kind: "soup/uniform",
  version: 1,
  description: "Uniform model soup: the plain average of the ingredients' weights.",
  reference: "https://arxiv.org/abs/2203.05482",
  params: Schema.Struct({ arch: Schema.optional(Runnable.ArchParam) }),
  reads: (params) => Runnable.archReads(params.arch),
  inputs: ingredientsInput,
  output: Port.ModelPort,
  run: Effect.fn("UniformSoup.run")(function* ({ id, params, inputs, resolvePath }) {
    const { network, params: sets } = yield* loadIngredients(id, inputs.models, params.arch, resolvePath)
    const recipe = { method: "uniform", ingredients: inputs.models.map((m, index) => ({ index, source: m.source })), chosen: inputs.models.map((_, i) => i) }
    return soupModel(id, "soup/uniform", network, Soup.average(network, sets), recipe)
  })
})

/** @category stage kinds */
export const GreedySoupKind = Stage.define({
  kind: "soup/greedy",
  version: 1,
  description: "Greedy model soup: add ingredients best-first while the validation metric strictly improves.",
  reference: "https://arxiv.org/abs/2203.05482",
  params: Schema.Struct({
    data: DataSource.dataField(),
    /** The validation split (`val` is carved from train). */
    split: DataSource.splitField("val", "the validation split"),
    /** What "better" means: higher `accuracy` or lower `loss`. */
    metric: Metric.annotate({ description: "higher accuracy or lower loss is better" }).pipe(Stage.withDefault<typeof Metric>("accuracy")),
    arch: Schema.optional(Runnable.ArchParam)
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: ingredientsInput,
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("GreedySoup.run")(function* ({ id, params, inputs, resolvePath }) {
    const split = params.split
    if (split === "test") yield* Stage.event("soup.warning", { detail: "selecting on the test split: the soup's test score is then optimistic" })
    const { network, params: sets } = yield* loadIngredients(id, inputs.models, params.arch, resolvePath)
    const data = yield* DataSource.load(params.data, split, resolvePath)
    const metric = params.metric
    const score = (p: ParamSet) => Effect.map(Evaluate.evaluate(network, p, data), (m) => (metric === "accuracy" ? m.accuracy : -m.loss))
    const scores = yield* Effect.forEach(sets, score)
    const result = yield* Soup.greedy(
      scores,
      (chosen) => score(Soup.average(network, chosen.map((i) => sets[i]!))),
      (d) => Stage.event("soup.ingredient", { index: d.index, source: inputs.models[d.index]!.source, ingredientScore: d.ingredientScore, score: d.score, kept: d.kept, soupScore: d.soupScore, metric })
    )
    yield* Effect.annotateCurrentSpan({ "crucible.soup.chosen": result.chosen.join(","), "crucible.soup.score": result.score })
    const recipe = {
      method: "greedy", metric, data: data.name,
      ingredients: inputs.models.map((m, index) => ({ index, source: m.source, score: scores[index] })),
      chosen: result.chosen, score: result.score,
      decisions: result.decisions
    }
    return soupModel(id, "soup/greedy", network, Soup.average(network, result.chosen.map((i) => sets[i]!)), recipe)
  })
})
