/**
 * `lm/select`: the model whose evaluation is best — the lowest perplexity or loss, or the highest
 * next-token accuracy — over the whole evaluation or one of its groups. The i-th `scores` are the
 * i-th model's (an `lm/evaluate` output); ties go to the first. The chosen model passes through
 * unchanged (lazy: no tensor is read), with its provenance, so `save` with `format: hf` still
 * writes its config and tokenizer; its metadata gains `crucible.lm.selected`, the ranking as JSON.
 *
 * ```yaml
 * choose:
 *   kind: lm/select
 *   inputs: { models: [linear, ties], scores: [val_linear, val_ties] }
 *   metric: perplexity
 *   group: press        # optional: a group of the evaluations; default the overall figure
 * ```
 *
 * @since 0.1.0
 */
import { type Model, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import { LmStageError } from "./LmStageError.ts"

/** The model metadata key holding the ranking (JSON) that chose the model. */
export const SELECTED_KEY = "crucible.lm.selected"

/** The metrics `lm/select` compares. @category schemas */
export const SelectMetric = Schema.Literals(["perplexity", "loss", "accuracy"])
export type SelectMetric = typeof SelectMetric.Type

/** Accuracy is better higher; perplexity and loss lower. */
const higherIsBetter = (metric: SelectMetric): boolean => metric === "accuracy"

/** One candidate as ranked: its input index, the evaluation's data set, and the figure compared. */
interface Ranked {
  readonly index: number
  readonly source: string
  readonly dataset: string
  readonly value: number
}

type Figures = Readonly<Record<string, unknown>>

const isRecord = (u: unknown): u is Figures => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The figure `metric` of `group` (or the overall one) in an `lm/evaluate` output's values, or
 * why it is not there (the detail of the error).
 */
const figureOf = (values: Figures, metric: SelectMetric, group: string | undefined): { readonly value: number } | { readonly problem: string } => {
  if (typeof values["dataset"] !== "string" || typeof values["tokens"] !== "number") {
    return { problem: `is not an lm/evaluate output (no dataset and tokens among ${JSON.stringify(Object.keys(values))}): give the metrics of an lm/evaluate stage` }
  }
  let figures: Figures = values
  if (group !== undefined) {
    const groups = values["groups"]
    if (!isRecord(groups)) return { problem: `has no groups (its lm/evaluate ran with by: all): evaluate with by: group, or leave out group:` }
    const g = groups[group]
    if (!isRecord(g)) return { problem: `has no group "${group}": its groups are ${JSON.stringify(Object.keys(groups))}` }
    figures = g
  }
  const value = figures[metric]
  if (typeof value !== "number" || Number.isNaN(value)) return { problem: `has no number ${metric}${group === undefined ? "" : ` in group "${group}"`}` }
  return { value }
}

/** The index of the best value (the first of equals). */
const best = (values: ReadonlyArray<number>, metric: SelectMetric): number => {
  let at = 0
  for (let i = 1; i < values.length; i++) {
    if (higherIsBetter(metric) ? values[i]! > values[at]! : values[i]! < values[at]!) at = i
  }
  return at
}

/** @category stage kinds */
export const LmSelectKind = Stage.define({
  kind: "lm/select",
  version: 1,
  description: "Chooses the model whose lm/evaluate scores are best: lowest perplexity or loss, or highest accuracy, overall or in one group.",
  params: Schema.Struct({
    metric: SelectMetric.annotate({ description: "the figure compared: perplexity and loss are minimised, accuracy maximised" }).pipe(Stage.withDefault<typeof SelectMetric>("perplexity")),
    group: Schema.optional(Schema.String.annotate({ description: "compare this group of the evaluations (by: group); default the overall figure" }))
  }),
  inputs: {
    models: Port.many(Port.ModelPort, { min: 1, description: "the candidates" }),
    scores: Port.many(Port.MetricsPort, { min: 1, description: "the i-th model's lm/evaluate output" })
  },
  output: Port.ModelPort,
  resources: { lazy: true },
  run: Effect.fn("LmSelect.run")(function* ({ id, params, inputs }) {
    const { models, scores } = inputs
    if (models.length !== scores.length) {
      return yield* new LmStageError({ stage: id, reason: "InvalidParams", detail: `${models.length} models but ${scores.length} scores: give one lm/evaluate output per model, in the same order` })
    }
    const ranked: Array<Ranked> = []
    for (let i = 0; i < models.length; i++) {
      const values = scores[i]!.values
      const figure = figureOf(values, params.metric, params.group)
      if ("problem" in figure) return yield* new LmStageError({ stage: id, reason: "InvalidParams", detail: `scores[${i}] (for ${models[i]!.source}) ${figure.problem}` })
      ranked.push({ index: i, source: models[i]!.source, dataset: values["dataset"] as string, value: figure.value })
      yield* Stage.reportProgress({ stage: id, done: i + 1, total: models.length, unit: "points", detail: `${models[i]!.source}: ${params.metric} ${figure.value}` })
    }
    const chosen = best(ranked.map((r) => r.value), params.metric)
    const model = models[chosen]!
    const ranking = { metric: params.metric, group: params.group ?? null, chosen, candidates: ranked }
    yield* Stage.event("select.chosen", { index: chosen, source: model.source, metric: params.metric, group: params.group ?? "", value: ranked[chosen]!.value, values: JSON.stringify(ranked.map((r) => r.value)) })
    yield* Effect.annotateCurrentSpan({
      "crucible.select.metric": params.metric,
      "crucible.select.group": params.group ?? "",
      "crucible.select.candidates": models.length,
      "crucible.select.chosen": chosen,
      "crucible.select.value": ranked[chosen]!.value
    })
    // The same tensors (passed through, never read here) and provenance; only the metadata says why.
    const selected: Model.Model = { ...model, metadata: { ...model.metadata, [SELECTED_KEY]: JSON.stringify(ranking) } }
    return selected
  })
})
