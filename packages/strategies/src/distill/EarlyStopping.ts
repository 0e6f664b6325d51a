/**
 * Early stopping on a validation metric, as a pure function of the per-epoch history (so a
 * resumed distillation decides exactly as the uninterrupted one): the best epoch is the first
 * with the highest validation accuracy (or lowest loss); training stops once `patience` epochs
 * in a row have not improved on it.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Schema } from "effect"

const Metric = Schema.Literals(["accuracy", "loss"])

/** `early_stopping:` as written. @category schemas */
export const EarlyStoppingParam = Schema.Struct({
  patience: Schema.Int.check(Schema.isGreaterThan(0)),
  metric: Metric.annotate({ description: "higher accuracy or lower loss is better" }).pipe(Stage.withDefault<typeof Metric>("accuracy")),
  /** Return the best epoch's weights instead of the last. */
  restore_best: Schema.Boolean.annotate({ description: "return the best epoch's weights instead of the last" }).pipe(Stage.withDefault(true))
})
export type EarlyStoppingParam = typeof EarlyStoppingParam.Type

/** Where a history stands. */
export interface Standing {
  /** 1-based epoch of the best validation score (0: none yet). */
  readonly bestEpoch: number
  readonly bestScore: number
  /** Epochs since the best one. */
  readonly stale: number
  readonly stop: boolean
}

/** The standing after the epochs of `history` (records with `valAccuracy` / `valLoss`). */
export const standing = (history: ReadonlyArray<Readonly<Record<string, number>>>, param: EarlyStoppingParam): Standing => {
  const metric = param.metric
  let bestEpoch = 0
  let bestScore = -Infinity
  for (const [i, record] of history.entries()) {
    const value = metric === "accuracy" ? record.valAccuracy : record.valLoss
    if (value === undefined) continue
    const score = metric === "accuracy" ? value : -value
    if (score > bestScore) {
      bestScore = score
      bestEpoch = i + 1
    }
  }
  const stale = history.length - bestEpoch
  return { bestEpoch, bestScore: metric === "accuracy" ? bestScore : -bestScore, stale, stop: bestEpoch > 0 && stale >= param.patience }
}
