/**
 * Classification metrics from logits, computed on the host in float64 (pure functions):
 *
 * - loss: mean softmax cross-entropy, `mean_n (logsumexp(z_n) − z_n[y_n])`;
 * - accuracy: fraction with `argmax z_n = y_n` (ties go to the lowest class index);
 * - per-class accuracy: that fraction among the samples of each true class (recall);
 * - expected calibration error (Guo et al. 2017) with 15 equal-width confidence bins
 *   `(b/15, (b+1)/15]`: `Σ_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|`, the confidence
 *   being the largest softmax probability.
 *
 * @since 0.1.0
 */

/** Accuracy on one true class. */
export interface ClassAccuracy {
  readonly class: number
  readonly name?: string
  readonly count: number
  /** `null` when the class has no samples. */
  readonly accuracy: number | null
}

/** @category models */
export interface Metrics {
  readonly count: number
  readonly loss: number
  readonly accuracy: number
  readonly perClass: ReadonlyArray<ClassAccuracy>
  /** Expected calibration error over {@link ECE_BINS} bins. */
  readonly ece: number
}

/** Bins of the expected calibration error. */
export const ECE_BINS = 15

/** Per-sample prediction, confidence and loss of a `[n, classes]` logits matrix. */
export interface Predictions {
  readonly predicted: Int32Array
  readonly confidence: Float64Array
  readonly loss: Float64Array
}

/** Argmax, max softmax probability and cross-entropy of each row. */
export const predictions = (logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number): Predictions => {
  const n = labels.length
  if (logits.length !== n * classes) throw new RangeError(`predictions: ${logits.length} logits for ${n} samples × ${classes} classes`)
  const predicted = new Int32Array(n)
  const confidence = new Float64Array(n)
  const loss = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    let best = 0
    let max = -Infinity
    for (let k = 0; k < classes; k++) {
      const z = logits[i * classes + k]!
      if (z > max) {
        max = z
        best = k
      }
    }
    let sum = 0
    for (let k = 0; k < classes; k++) sum += Math.exp(logits[i * classes + k]! - max)
    predicted[i] = best
    confidence[i] = 1 / sum
    loss[i] = Math.log(sum) + max - logits[i * classes + labels[i]!]!
  }
  return { predicted, confidence, loss }
}

/** Expected calibration error of confidences against correctness. */
export const expectedCalibrationError = (confidence: ArrayLike<number>, correct: ArrayLike<boolean>, bins = ECE_BINS): number => {
  const n = confidence.length
  if (n === 0) return 0
  const count = new Float64Array(bins)
  const hit = new Float64Array(bins)
  const conf = new Float64Array(bins)
  for (let i = 0; i < n; i++) {
    const c = confidence[i]!
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1))
    count[b]!++
    conf[b]! += c
    if (correct[i]) hit[b]!++
  }
  let ece = 0
  for (let b = 0; b < bins; b++) if (count[b]! > 0) ece += Math.abs(hit[b]! - conf[b]!) / n
  return ece
}

/** Every metric of a logits matrix `[n, classes]` (row-major) against labels. */
export const fromLogits = (logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number, classNames?: ReadonlyArray<string>): Metrics => {
  const n = labels.length
  const { predicted, confidence, loss } = predictions(logits, labels, classes)
  const correct = Array.from({ length: n }, (_, i) => predicted[i] === labels[i])
  const perCount = new Float64Array(classes)
  const perHit = new Float64Array(classes)
  let lossSum = 0
  let hits = 0
  for (let i = 0; i < n; i++) {
    lossSum += loss[i]!
    perCount[labels[i]!]!++
    if (correct[i]) {
      hits++
      perHit[labels[i]!]!++
    }
  }
  return {
    count: n,
    loss: n === 0 ? Number.NaN : lossSum / n,
    accuracy: n === 0 ? Number.NaN : hits / n,
    perClass: Array.from({ length: classes }, (_, k) => ({
      class: k,
      ...(classNames?.[k] === undefined ? {} : { name: classNames[k] }),
      count: perCount[k]!,
      accuracy: perCount[k]! === 0 ? null : perHit[k]! / perCount[k]!
    })),
    ece: expectedCalibrationError(confidence, correct)
  }
}
