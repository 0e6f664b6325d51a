/**
 * An ensemble as a model, so it flows through the `model` port like any other: its tensors are
 * the members' tensors renamed `members.<i>.<name>`, its metadata `crucible.ensemble` holds
 * `{ mode, weights, members }` as JSON and `crucible.ensemble.arch.<i>` each member's
 * architecture. `save` therefore writes an ensemble as one bundle file, `load` reads it back, and
 * {@link members} splits it into runnable member models again.
 *
 * @since 0.1.0
 */
import { Model } from "@crucible/core"
import type { TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import { ARCH_KEY } from "../models/Runnable.ts"
import * as Combine from "./Combine.ts"
import { EnsembleError } from "./EnsembleError.ts"

/** The metadata key of an ensemble's description. */
export const ENSEMBLE_KEY = "crucible.ensemble"

/** The metadata key of member `i`'s architecture. */
export const memberArchKey = (i: number): string => `${ENSEMBLE_KEY}.arch.${i}`

/** Prefix of member `i`'s tensors. */
export const memberPrefix = (i: number): string => `members.${i}.`

/** What `crucible.ensemble` holds. @category schemas */
export const Spec = Schema.Struct({
  mode: Combine.Mode,
  /** Normalised, one per member. */
  weights: Schema.Array(Schema.Finite),
  members: Schema.Int
})
export type Spec = typeof Spec.Type

/** Whether a model is an ensemble bundle. */
export const isEnsemble = (model: Model.Model): boolean => model.metadata[ENSEMBLE_KEY] !== undefined

const renamed = (ref: TensorRef.TensorRef, name: string): TensorRef.TensorRef => ({ name, dtype: ref.dtype, shape: ref.shape, read: ref.read, lineage: ref.lineage })

/**
 * The bundle of `members` (each carrying `crucible.arch`, i.e. runnable) fused with `mode` and
 * `weights` (normalised here; equal when omitted).
 */
export const make = (
  source: string,
  members: ReadonlyArray<Model.Model>,
  mode: Combine.Mode,
  weights?: ReadonlyArray<number>
): Effect.Effect<Model.Model, EnsembleError> =>
  Effect.gen(function* () {
    const fail = (reason: EnsembleError["reason"], detail: string) => new EnsembleError({ reason, source, detail })
    if (members.length === 0) return yield* fail("InvalidParams", "an ensemble needs at least one member")
    if (mode === "weighted" && weights === undefined) return yield* fail("InvalidParams", "mode weighted needs weights: one per member")
    const normalised = yield* Effect.try({ try: () => Combine.normaliseWeights(members.length, weights), catch: (e) => fail("InvalidParams", (e as Error).message) })
    const metadata: Record<string, string> = { [ENSEMBLE_KEY]: JSON.stringify({ mode, weights: normalised, members: members.length }) }
    const tensors: Array<TensorRef.TensorRef> = []
    for (const [i, member] of members.entries()) {
      if (isEnsemble(member)) return yield* fail("Nested", `member ${i} (${member.source}) is itself an ensemble; give its members directly`)
      const arch = member.metadata[ARCH_KEY]
      if (arch === undefined) return yield* fail("MembersMismatch", `member ${i} (${member.source}) carries no architecture ("${ARCH_KEY}" metadata)`)
      metadata[memberArchKey(i)] = arch
      for (const ref of member.tensors.values()) tensors.push(renamed(ref, `${memberPrefix(i)}${ref.name}`))
    }
    return Model.make(source, tensors, metadata, [...new Set(members.flatMap((m) => m.files))])
  })

/** The description and the member models (each runnable: `crucible.arch` set) of an ensemble bundle. */
export const decode = (model: Model.Model): Effect.Effect<{ readonly spec: Spec; readonly members: ReadonlyArray<Model.Model> }, EnsembleError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new EnsembleError({ reason: "Malformed", source: model.source, detail })
    const raw = model.metadata[ENSEMBLE_KEY]
    if (raw === undefined) return yield* fail(`not an ensemble (no "${ENSEMBLE_KEY}" metadata)`)
    const json = yield* Effect.try({ try: () => JSON.parse(raw) as unknown, catch: () => fail(`"${ENSEMBLE_KEY}" is not JSON`) })
    const spec = yield* Schema.decodeUnknownEffect(Spec)(json).pipe(Effect.mapError((e) => fail(`"${ENSEMBLE_KEY}": ${e.message}`)))
    if (spec.members < 1 || spec.weights.length !== spec.members) return yield* fail(`${spec.members} members with ${spec.weights.length} weights`)
    const buckets = Array.from({ length: spec.members }, () => [] as Array<TensorRef.TensorRef>)
    for (const ref of model.tensors.values()) {
      const match = /^members\.(\d+)\.(.+)$/.exec(ref.name)
      const index = match === null ? -1 : Number(match[1])
      if (match === null || index >= spec.members) return yield* fail(`tensor "${ref.name}" belongs to no member (expected members.<0..${spec.members - 1}>.<name>)`)
      buckets[index]!.push(renamed(ref, match[2]!))
    }
    const members: Array<Model.Model> = []
    for (const [i, tensors] of buckets.entries()) {
      const arch = model.metadata[memberArchKey(i)]
      if (arch === undefined) return yield* fail(`member ${i} has no architecture ("${memberArchKey(i)}" metadata)`)
      if (tensors.length === 0) return yield* fail(`member ${i} has no tensors`)
      members.push(Model.make(`${model.source} member ${i}`, tensors, { [ARCH_KEY]: arch }, model.files))
    }
    return { spec, members }
  })
