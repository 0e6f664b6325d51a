/**
 * The two models an alignment stage works on — `reference` (A) and `model` (B) — loaded as
 * networks with parameters, and required to share one architecture.
 *
 * @since 0.1.0
 */
import type { Model } from "@crucible/core"
import { Effect } from "effect"
import * as Runnable from "../models/Runnable.ts"
import { InvalidParams } from "./AlignError.ts"

/** Loads A and B; fails with `InvalidParams` when their architectures differ. */
export const load = (
  stage: string,
  inputs: { readonly reference: Model.Model; readonly model: Model.Model },
  arch: Runnable.ArchParam | undefined,
  resolvePath: (p: string) => string
) =>
  Effect.gen(function* () {
    const a = yield* Runnable.load(inputs.reference, arch, resolvePath)
    const b = yield* Runnable.load(inputs.model, arch, resolvePath)
    if (JSON.stringify(a.arch) !== JSON.stringify(b.arch)) {
      return yield* new InvalidParams({ model: inputs.model.source, tensor: "(all)", detail: `stage "${stage}": reference and model have different architectures` })
    }
    return { a, b }
  })
