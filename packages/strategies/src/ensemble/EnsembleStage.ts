/**
 * `ensemble`: output-space fusion of N models — mean of probabilities, mean of logits, a
 * weighted mean of probabilities, or majority vote (`Combine.ts`). The output is an ensemble
 * bundle (`Ensemble.ts`): `evaluate`, `distill` and the soups accept it, `save` writes it with
 * its members. Lazy: no tensor is read here.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as Network from "../models/Network.ts"
import * as Runnable from "../models/Runnable.ts"
import { checkMembers } from "./Classifier.ts"
import * as Combine from "./Combine.ts"
import * as Ensemble from "./Ensemble.ts"
import { EnsembleError } from "./EnsembleError.ts"

/** @category stage kinds */
export const EnsembleKind = Stage.define({
  kind: "ensemble",
  version: 1,
  description: "Output-space fusion of models: mean of probabilities or logits, weighted, or majority vote.",
  reference: "https://arxiv.org/abs/1503.02531",
  params: Schema.Struct({
    mode: Combine.Mode.annotate({ description: "how the members' outputs combine" }).pipe(Stage.withDefault<typeof Combine.Mode>("mean-probs")),
    /** One per member (required by `weighted`); normalised. */
    weights: Schema.optional(Schema.Array(Schema.Finite))
  }),
  inputs: { models: Port.many(Port.ModelPort, { min: 1, description: "the members (each carrying its architecture)" }) },
  output: Port.ModelPort,
  resources: { lazy: true },
  run: Effect.fn("Ensemble.run")(function* ({ id, params, inputs, resolvePath }) {
    const mode = params.mode
    if (params.weights !== undefined && params.weights.length !== inputs.models.length) {
      return yield* new EnsembleError({ reason: "InvalidParams", source: id, detail: `weights has ${params.weights.length} values for ${inputs.models.length} models` })
    }
    // Headers only: the architectures must fit together before anything is read.
    const networks = yield* Effect.forEach(inputs.models, (m) => Effect.flatMap(Runnable.archOf(m, undefined, resolvePath), Network.resolve))
    yield* checkMembers(id, networks)
    yield* Effect.annotateCurrentSpan({ "crucible.ensemble.mode": mode, "crucible.ensemble.members": inputs.models.length })
    return yield* Ensemble.make(`${id} (ensemble)`, inputs.models, mode, params.weights)
  })
})
