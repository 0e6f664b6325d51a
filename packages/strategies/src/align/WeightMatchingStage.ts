/**
 * `align/weight-matching`: Git Re-Basin's weight matching — permutes the hidden units of `model`
 * into the basin of `reference` (coordinate descent over the permutations, one linear assignment
 * per step, until a sweep stops improving). The permuted model computes the same function as
 * `model`; averaging it with `reference` no longer averages unrelated units.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as Runnable from "../models/Runnable.ts"
import { specOf } from "./FromNetwork.ts"
import * as Pair from "./Pair.ts"
import * as PermutationSpec from "./PermutationSpec.ts"
import * as Permute from "./Permute.ts"
import * as WeightMatching from "./WeightMatching.ts"

/** @category stage kinds */
export const WeightMatchingKind = Stage.define({
  kind: "align/weight-matching",
  version: 1,
  description: "Permutes a model's hidden units into a reference model's basin (Git Re-Basin weight matching).",
  reference: "https://arxiv.org/abs/2209.04836",
  params: Schema.Struct({
    /** Seeds the order of each sweep. */
    seed: Schema.Int.annotate({ description: "seeds the order of each sweep" }).pipe(Stage.withDefault(0)),
    /** Stop after this many sweeps even if still improving. */
    max_sweeps: Schema.Int.check(Schema.isGreaterThan(0)).annotate({ description: "stop after this many sweeps even if still improving" }).pipe(Stage.withDefault(100)),
    /** Default: the models' `crucible.arch` metadata. */
    arch: Schema.optional(Runnable.ArchParam),
    /** Which axes share a permutation; derived from the architecture when omitted. */
    spec: Schema.optional(PermutationSpec.PermutationSpec)
  }),
  reads: (params) => Runnable.archReads(params.arch),
  inputs: { reference: Port.one(Port.ModelPort, "the model whose basin to align to (A)"), model: Port.one(Port.ModelPort, "the model to permute (B)") },
  output: Port.ModelPort,
  run: Effect.fn("WeightMatching.run")(function* ({ id, params, inputs, resolvePath }) {
    const { a, b } = yield* Pair.load(id, inputs, params.arch, resolvePath)
    const spec = params.spec ?? (yield* specOf(a.network))
    const result = yield* WeightMatching.match(a.params, b.params, spec, { seed: params.seed, maxSweeps: params.max_sweeps })
    yield* Effect.forEach(result.objective, (objective, sweep) => Stage.event("align.sweep", { sweep, objective }), { discard: true })
    yield* Effect.annotateCurrentSpan({ "crucible.align.sweeps": result.sweeps, "crucible.align.converged": result.converged, "crucible.align.permutations": Object.keys(spec).length })
    const aligned = yield* Permute.apply(b.params, spec, result.permutations)
    return Runnable.toModel(b.network, aligned, `${id} (aligned ${inputs.model.source})`, {
      ...inputs.model.metadata,
      "crucible.align.objective": JSON.stringify(result.objective)
    })
  })
})
