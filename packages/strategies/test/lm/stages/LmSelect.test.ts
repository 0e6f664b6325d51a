// lm/select: the choice (lowest perplexity or loss, highest accuracy, overall or in one group, the
// first of equals) on lm/evaluate outputs, the chosen model passed through (same tensors, same
// provenance, the ranking in its metadata, an event on the span), and the errors that name the stage
// and the input. The choice on real lm/evaluate outputs of tiny models equals the argmin computed here;
// the lm-merge example runs it through the runner.
import { assert, describe, expect, it, layer } from "@effect/vitest"
import type { Model, Port } from "@crucible/core"
import { Effect, Layer, Tracer } from "effect"
import * as path from "node:path"
import { Backend } from "../../../src/backend/Backend.ts"
import * as LmConfig from "../../../src/lm/LmConfig.ts"
import * as LmWeights from "../../../src/lm/LmWeights.ts"
import { LmEvaluateKind } from "../../../src/lm/stages/LmEvaluateStage.ts"
import { LmSelectKind, SELECTED_KEY } from "../../../src/lm/stages/LmSelectStage.ts"
import { decodeParams } from "../../decodeParams.ts"
import { recordingTracer } from "../../support/Spans.ts"
import { context, tempDir, writeModelFolder } from "./support.ts"

const dir = tempDir("lm-select")

/** An lm/evaluate output's values (by: group) with the given overall and per-group figures. */
const scores = (overall: Figures, groups?: Record<string, Figures>): Port.Metrics => ({
  values: { dataset: "brown/val[press,fiction]", tokens: 2048, ...overall, ...(groups === undefined ? {} : { groups: Object.fromEntries(Object.entries(groups).map(([g, f]) => [g, { tokens: 1024, ...f }])) }) }
})
type Figures = { readonly loss: number; readonly perplexity: number; readonly accuracy: number }
const fig = (loss: number, accuracy: number): Figures => ({ loss, perplexity: Math.exp(loss), accuracy })

/** A model with no tensors: the choice never reads one. */
const stub = (source: string): Model.Model => ({
  source, tensors: new Map(), metadata: { note: source }, files: [], provenance: { folders: [], donor: `/models/${source}`, tokenizer: `/tok/${source}`, methods: ["merge/linear"] }
})

const select = (models: ReadonlyArray<Model.Model>, metrics: ReadonlyArray<Port.Metrics>, params: Record<string, unknown> = {}) =>
  LmSelectKind.run({ ...context(dir, "choose", "lm/select"), params: decodeParams(LmSelectKind, params), inputs: { models, scores: metrics } })

const models = ["linear", "task_arithmetic", "ties", "dare_ties"].map(stub)
// linear has the best accuracy, task_arithmetic the lowest perplexity overall, ties the lowest on fiction.
const metrics = [
  scores(fig(5.46, 0.095), { press: fig(5.44, 0.096), fiction: fig(5.38, 0.094) }),
  scores(fig(5.45, 0.091), { press: fig(5.43, 0.092), fiction: fig(5.39, 0.090) }),
  scores(fig(5.51, 0.087), { press: fig(5.49, 0.088), fiction: fig(5.30, 0.086) }),
  scores(fig(5.47, 0.089), { press: fig(5.45, 0.090), fiction: fig(5.40, 0.088) })
]

describe("lm/select: the choice", () => {
  it.effect("lowest perplexity by default; the same model passes through with its provenance and the ranking", () =>
    Effect.gen(function* () {
      const { tracer, spans } = recordingTracer()
      const chosen = yield* select(models, metrics).pipe(Effect.provide(Layer.succeed(Tracer.Tracer, tracer)))
      assert.strictEqual(chosen.source, "task_arithmetic")
      // Passed through: the very tensors (never read), the provenance save {format: hf} writes config and tokenizer from.
      assert.strictEqual(chosen.tensors, models[1]!.tensors)
      assert.strictEqual(chosen.provenance, models[1]!.provenance)
      assert.strictEqual(chosen.metadata["note"], "task_arithmetic")
      const ranking = JSON.parse(chosen.metadata[SELECTED_KEY]!)
      assert.deepStrictEqual({ metric: ranking.metric, group: ranking.group, chosen: ranking.chosen }, { metric: "perplexity", group: null, chosen: 1 })
      assert.deepStrictEqual(ranking.candidates.map((c: { source: string; value: number }) => [c.source, c.value]), metrics.map((m, i) => [models[i]!.source, m.values["perplexity"]]))
      // The inputs are untouched.
      assert.strictEqual(models[1]!.metadata[SELECTED_KEY], undefined)
      // The event and attributes are on the span of the stage's run (Effect.fn's).
      const span = spans.find((s) => s.name === "LmSelect.run") as Tracer.NativeSpan
      assert.strictEqual(span.attributes.get("crucible.select.chosen"), 1)
      assert.strictEqual(span.attributes.get("crucible.select.candidates"), 4)
      const event = span.events.find(([name]) => name === "select.chosen")!
      assert.deepStrictEqual({ ...event[2], values: undefined }, { index: 1, source: "task_arithmetic", metric: "perplexity", group: "", value: Math.exp(5.45), values: undefined })
    }))

  it.effect("loss is minimised like perplexity; accuracy is maximised", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* select(models, metrics, { metric: "loss" })).source, "task_arithmetic")
      assert.strictEqual((yield* select(models, metrics, { metric: "accuracy" })).source, "linear")
    }))

  it.effect("group: compares that group's figure", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* select(models, metrics, { group: "fiction" })).source, "ties")
      assert.strictEqual((yield* select(models, metrics, { group: "press" })).source, "task_arithmetic")
      assert.strictEqual((yield* select(models, metrics, { group: "fiction", metric: "accuracy" })).source, "linear")
    }))

  it.effect("ties go to the first", () =>
    Effect.gen(function* () {
      const same = [scores(fig(5.5, 0.09)), scores(fig(5.4, 0.08)), scores(fig(5.4, 0.08)), scores(fig(5.6, 0.08))]
      assert.strictEqual((yield* select(models, same)).source, "task_arithmetic")
      assert.strictEqual((yield* select(models, same, { metric: "accuracy" })).source, "linear")
      assert.strictEqual((yield* select(models.slice(1, 2), same.slice(1, 2))).source, "task_arithmetic")
    }))
})

describe("lm/select: errors name the stage and the input", () => {
  const failure = (effect: ReturnType<typeof select>) => Effect.map(Effect.flip(effect), (e) => e.message)

  it.effect("counts that differ", () =>
    Effect.gen(function* () {
      const message = yield* failure(select(models, metrics.slice(0, 3)))
      expect(message).toBe(`stage "choose": 4 models but 3 scores: give one lm/evaluate output per model, in the same order`)
    }))

  it.effect("an unknown group lists the groups; scores without groups say to evaluate by group", () =>
    Effect.gen(function* () {
      expect(yield* failure(select(models, metrics, { group: "learned" }))).toBe(`stage "choose": scores[0] (for linear) has no group "learned": its groups are ["press","fiction"]`)
      const flat = [metrics[0]!, metrics[1]!, scores(fig(5, 0.1)), metrics[3]!]
      expect(yield* failure(select(models, flat, { group: "press" }))).toContain(`scores[2] (for ties) has no groups (its lm/evaluate ran with by: all)`)
    }))

  it.effect("scores that are not an lm/evaluate's", () =>
    Effect.gen(function* () {
      const accuracyOnly: Port.Metrics = { values: { accuracy: 0.9, loss: 0.3 } }
      expect(yield* failure(select(models, [metrics[0]!, accuracyOnly, metrics[2]!, metrics[3]!]))).toBe(
        `stage "choose": scores[1] (for task_arithmetic) is not an lm/evaluate output (no dataset and tokens among ["accuracy","loss"]): give the metrics of an lm/evaluate stage`
      )
      const noNumber = scores(fig(5, 0.1))
      const { perplexity: _, ...rest } = noNumber.values
      expect(yield* failure(select(models.slice(0, 1), [{ values: rest }]))).toBe(`stage "choose": scores[0] (for linear) has no number perplexity`)
    }))

  it("an unknown metric is refused by the params Schema", () => {
    expect(() => decodeParams(LmSelectKind, { metric: "bleu" } as never)).toThrow()
  })
})

layer(Backend.layer())("lm/select on lm/evaluate outputs", (it) => {
  it.effect("chooses the model of lowest perplexity among real evaluations of three tiny models", () =>
    Effect.gen(function* () {
      const folder = writeModelFolder(path.join(dir, "tiny"))
      const config = yield* LmConfig.read(folder)
      const candidates = [3, 7, 9].map((seed) => ({ ...LmWeights.toModel(config, LmWeights.init(config, seed), `seed ${seed}`), provenance: { folders: [], donor: folder, methods: [] } }))
      const evaluate = (model: Model.Model) =>
        LmEvaluateKind.run({
          ...context(dir, "val", "lm/evaluate"),
          params: decodeParams(LmEvaluateKind, { data: "brown", split: "val", groups: ["news", "fiction"], seq_len: 16, max_blocks: 2 }),
          inputs: { model }
        })
      const evaluations = yield* Effect.forEach(candidates, evaluate)
      const perplexities = evaluations.map((e) => e.values["perplexity"] as number)
      // Three random inits differ in their perplexity: the choice is not decided by the tie rule.
      assert.strictEqual(new Set(perplexities).size, 3)
      const argmin = perplexities.indexOf(Math.min(...perplexities))
      const chosen = yield* select(candidates, evaluations)
      assert.strictEqual(chosen.source, candidates[argmin]!.source)
      assert.strictEqual(chosen.tensors, candidates[argmin]!.tensors)
      const fiction = evaluations.map((e) => (e.values["groups"] as Record<string, Figures>)["fiction"]!.accuracy)
      const byFiction = yield* select(candidates, evaluations, { group: "fiction", metric: "accuracy" })
      assert.strictEqual(byFiction.source, candidates[fiction.indexOf(Math.max(...fiction))]!.source)
    }))
})
