/**
 * Losses as differentiable ops (`tf.customGrad`, like `models/Layers.ts`: TF.js in Node has no
 * registered gradients). A custom training loss must be built from these and the layer ops; a
 * plain TF.js op between the parameters and the loss fails with "gradient function not found".
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"

/** `log softmax(z)` along the last axis, computed stably (max subtracted). */
export const logSoftmax = (z: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const shifted = tf.sub(z, tf.max(z, 1, true))
    return tf.sub(shifted, tf.log(tf.sum(tf.exp(shifted), 1, true)))
  })

/**
 * Mean softmax cross-entropy of `logits` `[N, K]` against integer `labels` `[N]`
 * (`F.cross_entropy` with mean reduction). Gradient: `(softmax(z) − onehot(y)) / N`.
 */
export const softmaxCrossEntropy = (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => {
    const z = args[0] as tf.Tensor2D
    const save = args[1] as (tensors: Array<tf.Tensor>) => void
    const [n, k] = z.shape
    const logp = logSoftmax(z)
    const onehot = tf.oneHot(tf.cast(labels, "int32"), k)
    save([logp, onehot])
    return {
      value: tf.neg(tf.div(tf.sum(tf.mul(onehot, logp)), n)) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: Array<tf.Tensor>) => [tf.mul(tf.sub(tf.exp(saved[0]!), saved[1]!), tf.div(dy, n))]
    }
  })(logits)

/**
 * Cross-entropy against soft targets at temperature `T`, scaled by `T²` (Hinton et al. 2015):
 * `−T² · mean_n Σ_k p_k log softmax(z/T)_k` with `targets` `p` `[N, K]` (rows summing to 1),
 * the distillation term. Gradient: `T · (softmax(z/T) − p) / N`.
 */
export const softTargetCrossEntropy = (logits: tf.Tensor2D, targets: tf.Tensor2D, temperature = 1): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => {
    const z = args[0] as tf.Tensor2D
    const save = args[1] as (tensors: Array<tf.Tensor>) => void
    const n = z.shape[0]
    const logp = logSoftmax(tf.div(z, temperature))
    save([logp])
    return {
      value: tf.mul(tf.neg(tf.div(tf.sum(tf.mul(targets, logp)), n)), temperature * temperature) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: Array<tf.Tensor>) => [tf.mul(tf.sub(tf.exp(saved[0]!), targets), tf.mul(dy, temperature / n))]
    }
  })(logits)

/**
 * Mean squared error `mean((a − target)²)` over all elements, differentiable in `a` only (the
 * target is a constant, e.g. a teacher's activations for a hint loss).
 */
export const meanSquaredError = (a: tf.Tensor, target: tf.Tensor): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => {
    const x = args[0] as tf.Tensor
    const save = args[1] as (tensors: Array<tf.Tensor>) => void
    const diff = tf.sub(x, target)
    save([diff])
    return {
      value: tf.mean(tf.square(diff)) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: Array<tf.Tensor>) => [tf.mul(saved[0]!, tf.mul(dy, 2 / x.size))]
    }
  })(a)

/** Mixes two scalar losses: `α·a + (1 − α)·b` (e.g. distillation and hard-label terms). */
export const mix = (a: tf.Scalar, b: tf.Scalar, alpha: number): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => ({
    value: tf.add(tf.mul(args[0] as tf.Scalar, alpha), tf.mul(args[1] as tf.Scalar, 1 - alpha)) as tf.Scalar,
    gradFunc: (dy: tf.Scalar) => [tf.mul(dy, alpha), tf.mul(dy, 1 - alpha)]
  }))(a, b)
