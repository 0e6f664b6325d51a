/**
 * The language-model stage kinds: `lm/train`, `lm/distill`, `lm/evaluate`, `lm/generate`, `lm/select`.
 *
 * @since 0.1.0
 */
export { LmDistillKind } from "./LmDistillStage.ts"
export { LmEvaluateKind } from "./LmEvaluateStage.ts"
export { LmGenerateKind } from "./LmGenerateStage.ts"
export { LmSelectKind } from "./LmSelectStage.ts"
export { LmStageError } from "./LmStageError.ts"
export { LmTrainKind } from "./LmTrainStage.ts"
