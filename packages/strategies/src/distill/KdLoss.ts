/**
 * Hinton et al.'s distillation loss as one differentiable op (a `tf.customGrad`, as every loss
 * here: TF.js in Node registers no gradients):
 *
 *   L = α·T²·KL(p_t ‖ softmax(z_s/T)) + (1 − α)·CE(y, z_s),   p_t = softmax(z_t/T)
 *
 * averaged over the batch. `∂L/∂z_s = [α·T·(softmax(z_s/T) − p_t) + (1 − α)·(softmax(z_s) − onehot(y))] / N`.
 * The KL form (rather than the soft cross-entropy) keeps the reported value at 0 when the
 * student matches the teacher; the gradients of the two are the same.
 *
 * The hint term (FitNets) is {@link hint}: `β·mean((h_s·W − h_t)²)` through a projection `W`
 * that is learned alongside (its gradient `2β/size · h_sᵀ(h_s·W − h_t)` is applied by the
 * caller: it is not a parameter of the student's network).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Loss from "../train/Loss.ts"

/** Temperature and mix of {@link hinton}. */
export interface KdOptions {
  readonly temperature: number
  /** Weight of the distillation term; `1 − alpha` goes to the hard-label cross-entropy. */
  readonly alpha: number
}

/**
 * The distillation loss of student logits `z` `[..., K]` against teacher probabilities at the
 * temperature, `teacher` of the same shape (rows summing to 1), and the labels `[...]`, averaged
 * over the rows: `[N, K]` for a classifier, `[B, T, V]` for a language model's B·T positions
 * (lm/LmTrain). The rows are flattened inside the op, so the tape sees one op of `z`'s shape.
 */
export const hinton = <T extends tf.Tensor>(logits: T, teacher: T, labels: tf.Tensor, options: KdOptions): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => {
    const shape = (args[0] as tf.Tensor).shape
    const k = shape[shape.length - 1]!
    const n = (args[0] as tf.Tensor).size / k
    const z = tf.reshape(args[0] as tf.Tensor, [n, k]) as tf.Tensor2D
    const p = tf.reshape(teacher, [n, k])
    const save = args[1] as (tensors: Array<tf.Tensor>) => void
    const { temperature: t, alpha } = options
    const logq = Loss.logSoftmax(tf.div(z, t))
    const logp = Loss.logSoftmax(z)
    const onehot = tf.oneHot(tf.cast(tf.reshape(labels, [n]), "int32"), k)
    // p·log p with p = 0 contributes 0 (the limit), not NaN.
    const plogp = tf.where(tf.greater(p, 0), tf.mul(p, tf.log(tf.maximum(p, 1e-45))), tf.zerosLike(p))
    const kl = tf.div(tf.sum(tf.sub(plogp, tf.mul(p, logq))), n)
    const ce = tf.neg(tf.div(tf.sum(tf.mul(onehot, logp)), n))
    // Saved, not captured: the forward pass's own tidy disposes the caller's tensors before the backward pass.
    save([logq, logp, onehot, p])
    return {
      value: tf.add(tf.mul(kl, alpha * t * t), tf.mul(ce, 1 - alpha)) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: Array<tf.Tensor>) => {
        const soft = tf.mul(tf.sub(tf.exp(saved[0]!), saved[3]!), alpha * t)
        const hard = tf.mul(tf.sub(tf.exp(saved[1]!), saved[2]!), 1 - alpha)
        return [tf.reshape(tf.mul(tf.add(soft, hard), tf.div(dy, n)), shape)]
      }
    }
  })(logits)

/**
 * `β·mean((h·W − target)²)` for student activations `h` `[N, d_s]` (flattened), a constant
 * projection `W` `[d_s, d_t]` and teacher activations `target` `[N, d_t]`; differentiable in `h`
 * only: `∂/∂h = 2β/size · (h·W − target)·Wᵀ`.
 */
export const hint = (h: tf.Tensor2D, w: tf.Tensor2D, target: tf.Tensor2D, beta: number): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => {
    const x = args[0] as tf.Tensor2D
    const save = args[1] as (tensors: Array<tf.Tensor>) => void
    const diff = tf.sub(tf.matMul(x, w), target)
    save([diff, w])
    return {
      value: tf.mul(tf.mean(tf.square(diff)), beta) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: Array<tf.Tensor>) => [tf.matMul(tf.mul(saved[0]!, tf.mul(dy, (2 * beta) / diff.size)), tf.transpose(saved[1]!))]
    }
  })(h)

/** The gradient of {@link hint} with respect to the projection: `2β/size · hᵀ(h·W − target)`. */
export const hintProjectionGrad = (h: tf.Tensor2D, w: tf.Tensor2D, target: tf.Tensor2D, beta: number): tf.Tensor2D =>
  tf.tidy(() => {
    const diff = tf.sub(tf.matMul(h, w), target)
    return tf.mul(tf.matMul(tf.transpose(h), diff), (2 * beta) / diff.size) as tf.Tensor2D
  })

/** Teacher probabilities at temperature `t`, `softmax(z/t)` per row, on the host (float64 inside). */
export const temperedProbabilities = (logits: ArrayLike<number>, rows: number, k: number, t: number): Float32Array => {
  const out = new Float32Array(rows * k)
  for (let i = 0; i < rows; i++) {
    let max = -Infinity
    for (let j = 0; j < k; j++) max = Math.max(max, logits[i * k + j]! / t)
    let sum = 0
    for (let j = 0; j < k; j++) sum += Math.exp(logits[i * k + j]! / t - max)
    for (let j = 0; j < k; j++) out[i * k + j] = Math.exp(logits[i * k + j]! / t - max) / sum
  }
  return out
}
