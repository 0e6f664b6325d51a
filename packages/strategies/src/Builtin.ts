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
import { GramStatistics } from "./merge/GramStage.ts"
import { MergeKinds } from "./merge/Kinds.ts"
import { ActivationMatchingKind } from "./align/ActivationMatchingStage.ts"
import { WeightMatchingKind } from "./align/WeightMatchingStage.ts"
import { EvaluateKind } from "./evaluate/EvaluateStage.ts"
import { InterpolationKind } from "./evaluate/InterpolationStage.ts"
import { TrainKind } from "./train/TrainStage.ts"
import { EnsembleKind } from "./ensemble/EnsembleStage.ts"
import { DistillKind } from "./distill/DistillStage.ts"
import { GreedySoupKind, UniformSoupKind } from "./soup/SoupStage.ts"
import { IterativeKind } from "./progressive/Iterative.ts"
import { CascadeKind } from "./progressive/Cascade.ts"
import { LoraExtract } from "./extract/Lora.ts"
import { Slice, Stack } from "./hf/Slices.ts"
import { TokenizerAlign } from "./hf/TokenizerAlign.ts"
import { LmDistillKind, LmEvaluateKind, LmGenerateKind, LmSelectKind, LmTrainKind } from "./lm/stages/index.ts"

/** @category registry */
export const Builtin = {
  load: Load,
  convert: Convert,
  save: Save,
  ...MergeKinds,
  "statistics/gram": GramStatistics,
  train: TrainKind,
  evaluate: EvaluateKind,
  "evaluate/interpolation": InterpolationKind,
  "align/weight-matching": WeightMatchingKind,
  "align/activation-matching": ActivationMatchingKind,
  ensemble: EnsembleKind,
  distill: DistillKind,
  "soup/uniform": UniformSoupKind,
  "soup/greedy": GreedySoupKind,
  "progressive/iterative": IterativeKind,
  "progressive/cascade": CascadeKind,
  "extract/lora": LoraExtract,
  slice: Slice,
  stack: Stack,
  "tokenizer/align": TokenizerAlign,
  "lm/train": LmTrainKind,
  "lm/distill": LmDistillKind,
  "lm/evaluate": LmEvaluateKind,
  "lm/generate": LmGenerateKind,
  "lm/select": LmSelectKind
} as const

/** The names of the built-in kinds. */
export type BuiltinKind = keyof typeof Builtin

/** A registry of the built-in kinds. */
export const builtinRegistry: Registry.Registry = Registry.make(Builtin)
