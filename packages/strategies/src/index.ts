/**
 * @crucible/strategies — Crucible's stage kinds and the math behind them.
 *
 * @since 0.1.0
 */
export { Builtin, type BuiltinKind, builtinRegistry } from "./Builtin.ts"
export { Load } from "./io/Load.ts"
export { Save } from "./io/Save.ts"
export { Convert } from "./io/Convert.ts"
export { Linear } from "./merge/Linear.ts"
export { InvalidMergeParams, MergeInputsMismatch } from "./merge/MergeError.ts"
export { TrainKind } from "./train/TrainStage.ts"
export { EvaluateKind } from "./evaluate/EvaluateStage.ts"
export { InterpolationKind } from "./evaluate/InterpolationStage.ts"
export { WeightMatchingKind } from "./align/WeightMatchingStage.ts"
export * as MergeMethod from "./merge/Method.ts"
export { Breadcrumbs, BreadcrumbsTies, DareLinear, DareTies, Della, DellaLinear, TaskArithmetic, Ties } from "./merge/TaskArithmetic.ts"
export { Multislerp, Slerp } from "./merge/Spherical.ts"
export { ModelStock } from "./merge/ModelStock.ts"
export { Passthrough } from "./merge/Passthrough.ts"
export { FisherMerge, RegMean } from "./merge/Statistics.ts"
export { GramStatistics } from "./merge/GramStage.ts"
export { ActivationMatchingKind } from "./align/ActivationMatchingStage.ts"
