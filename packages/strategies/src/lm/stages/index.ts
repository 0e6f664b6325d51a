/**
 * The language-model stage kinds: `lm/train`, `lm/distill`, `lm/evaluate`, `lm/generate`.
 *
 * @since 0.1.0
 */
export { LmDistillKind } from "./LmDistillStage.ts"
export { LmEvaluateKind } from "./LmEvaluateStage.ts"
export { LmGenerateKind } from "./LmGenerateStage.ts"
export { LmStageError } from "./LmStageError.ts"
export { LmTrainKind } from "./LmTrainStage.ts"
