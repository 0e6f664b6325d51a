/**
 * `--rerun STAGE`: which stages compute afresh — the named ones and every stage that depends on
 * them, directly or not (their inputs change identity only in time, not in key, so a stored
 * result would otherwise be reused downstream).
 *
 * @since 0.2.0
 */
import { Suggest, type Validate } from "@crucible/core"
import * as Plan from "../Plan.ts"
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

/** The stages `--rerun` recomputes: `named` and their dependents; an unknown name fails. */
export const closure = (pipeline: Validate.ResolvedPipeline, named: ReadonlyArray<string>): Effect.Effect<ReadonlySet<string>, RerunUnknownStage> =>
  Effect.suspend(() => {
    const known = pipeline.stages.map((s) => s.id)
    const ids = new Set(known)
    const unknown = named.find((stage) => !ids.has(stage))
    return unknown === undefined ? Effect.succeed(withDependents(pipeline, named)) : Effect.fail(new RerunUnknownStage({ stage: unknown, known }))
  })

// `named` and every stage that depends on one of them, directly or not (one walk over the consumers).
const withDependents = (pipeline: Validate.ResolvedPipeline, named: ReadonlyArray<string>): ReadonlySet<string> => {
  const { consumers } = Plan.make(pipeline)
  const out = new Set(named)
  const pending = [...named]
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    for (const c of consumers.get(id) ?? []) if (!out.has(c)) (out.add(c), pending.push(c))
  }
  return out
}

/**
 * `closure` once keys are known: a stage to rerun that takes an equal earlier stage's value (same
 * key, `Identity.sameAs`) only reruns if that stage does, so every stage of a rerun stage's key is
 * rerun, with its dependents.
 */
export const withEqualKeys = (pipeline: Validate.ResolvedPipeline, rerun: ReadonlySet<string>, keys: ReadonlyMap<string, string>): ReadonlySet<string> => {
  // Pending keys (absent from `keys`) have no twins: those stages are rerun by name alone.
  const rerunKeys = new Set([...rerun].flatMap((id) => keys.get(id) ?? []))
  const twins = pipeline.stages.filter((s) => !rerun.has(s.id) && rerunKeys.has(keys.get(s.id) ?? "")).map((s) => s.id)
  return twins.length === 0 ? rerun : withDependents(pipeline, [...rerun, ...twins])
}
