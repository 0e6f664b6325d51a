/**
 * The built-in stage kinds, as one literal map: `uses:` name → kind. A user adds kinds with
 * `Registry.extend(builtinRegistry, [MyKind])`.
 *
 * @since 0.1.0
 */
import { Registry } from "@crucible/core"
import { Convert } from "./io/Convert.ts"
import { Load } from "./io/Load.ts"
import { Save } from "./io/Save.ts"
import { Linear } from "./merge/Linear.ts"
import { WeightMatchingKind } from "./align/WeightMatchingStage.ts"
import { EvaluateKind } from "./evaluate/EvaluateStage.ts"
import { InterpolationKind } from "./evaluate/InterpolationStage.ts"
import { TrainKind } from "./train/TrainStage.ts"

/** @category registry */
export const Builtin = {
  load: Load,
  convert: Convert,
  save: Save,
  "merge/linear": Linear,
  train: TrainKind,
  evaluate: EvaluateKind,
  "evaluate/interpolation": InterpolationKind,
  "align/weight-matching": WeightMatchingKind
} as const

/** The names of the built-in kinds. */
export type BuiltinKind = keyof typeof Builtin

/** A registry of the built-in kinds. */
export const builtinRegistry: Registry.Registry = Registry.make(Builtin)
