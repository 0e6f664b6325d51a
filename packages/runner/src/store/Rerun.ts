/**
 * `--rerun STAGE`: which stages compute afresh — the named ones and every stage that depends on
 * them, directly or not (their inputs change identity only in time, not in key, so a stored
 * result would otherwise be reused downstream).
 *
 * @since 0.2.0
 */
import { Suggest, type Validate } from "@crucible/core"
import { Effect, Schema } from "effect"

/** `--rerun` names a stage the pipeline does not have. @category errors */
export class RerunUnknownStage extends Schema.TaggedError<RerunUnknownStage>()("RerunUnknownStage", {
  stage: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message() {
    return `--rerun ${this.stage}: the pipeline has no stage "${this.stage}"${Suggest.didYouMean(this.stage, this.known)}; its stages: ${this.known.join(", ")}`
  }
}

/** The stages `--rerun` recomputes: `named` and their dependents. */
export const closure = (pipeline: Validate.ResolvedPipeline, named: ReadonlyArray<string>): Effect.Effect<ReadonlySet<string>, RerunUnknownStage> =>
  Effect.gen(function* () {
    const known = pipeline.stages.map((s) => s.id)
    for (const stage of named) if (!known.includes(stage)) return yield* new RerunUnknownStage({ stage, known })
    const out = new Set(named)
    // Stages are in file order but may reference later ones: repeat until nothing is added.
    for (let grew = true; grew;) {
      grew = false
      for (const s of pipeline.stages) {
        if (!out.has(s.id) && s.dependsOn.some((d) => out.has(d))) (out.add(s.id), (grew = true))
      }
    }
    return out
  })

/**
 * `closure` once keys are known: a stage to rerun that takes an equal earlier stage's value (same
 * key, `Identity.sameAs`) only reruns if that stage does, so every stage of a rerun stage's key is
 * rerun, with its dependents.
 */
export const withEqualKeys = (pipeline: Validate.ResolvedPipeline, rerun: ReadonlySet<string>, keys: ReadonlyMap<string, string>): ReadonlySet<string> => {
  const rerunKeys = new Set([...rerun].map((id) => keys.get(id)))
  const named = pipeline.stages.filter((s) => rerunKeys.has(keys.get(s.id))).map((s) => s.id)
  return named.length === rerun.size ? rerun : Effect.runSync(Effect.orDie(closure(pipeline, named)))
}
