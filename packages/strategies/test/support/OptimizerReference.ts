// A float64 reference of the optimizers' update rules, written from the PyTorch 1.13 source
// (torch.optim.SGD, Adam, AdamW), for train/Optimizer's tests and the fused updates of backend/gemm.
import type * as Optimizer from "../../src/train/Optimizer.ts"

/**
 * `grads.length` updates of `theta0` by `opt` at the rates `lrs` (one per step), in float64.
 * `magnitude[i]` sums over the steps `|θᵢ| + |stepᵢ|` after each update (θ's new value and the
 * term subtracted from it), the scale of the float32 rounding a test may allow for.
 */
export const pytorchUpdates = (opt: Optimizer.Optimizer, theta0: ArrayLike<number>, grads: ReadonlyArray<ArrayLike<number>>, lrs: ReadonlyArray<number>) => {
  const theta = Float64Array.from(theta0)
  const magnitude = new Float64Array(theta.length)
  const buf = new Float64Array(theta.length)
  const m = new Float64Array(theta.length)
  const v = new Float64Array(theta.length)
  grads.forEach((grad, t) => {
    const lr = lrs[t]!
    const wd = opt.weightDecay ?? 0
    for (let i = 0; i < theta.length; i++) {
      let delta: number
      if (opt.type === "sgd") {
        let g = grad[i]! + wd * theta[i]!
        const mu = opt.momentum ?? 0
        if (mu > 0) {
          // PyTorch starts the buffer at the first gradient: mu·0 + g.
          buf[i] = t === 0 ? g : mu * buf[i]! + g
          g = opt.nesterov === true ? g + mu * buf[i]! : buf[i]!
        }
        delta = lr * g
      } else {
        const [b1, b2] = opt.betas ?? [0.9, 0.999]
        const eps = opt.eps ?? 1e-8
        if (opt.type === "adamw") theta[i] = theta[i]! * (1 - lr * wd)
        const g = opt.type === "adam" ? grad[i]! + wd * theta[i]! : grad[i]!
        m[i] = b1 * m[i]! + (1 - b1) * g
        v[i] = b2 * v[i]! + (1 - b2) * g * g
        const step = t + 1
        delta = (lr / (1 - b1 ** step)) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** step) + eps))
      }
      theta[i] = theta[i]! - delta
      magnitude[i] = magnitude[i]! + Math.abs(theta[i]!) + Math.abs(delta)
    }
  })
  return { theta, magnitude }
}

/** The configurations both tests run: SGD plain, with weight decay, momentum, Nesterov; Adam with and without decay; AdamW. */
export const optimizerCases: ReadonlyArray<Optimizer.Optimizer> = [
  { type: "sgd", lr: 0.1 },
  { type: "sgd", lr: 0.1, weightDecay: 0.01 },
  { type: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 0.01 },
  { type: "sgd", lr: 0.05, momentum: 0.8, nesterov: true },
  { type: "adam", lr: 0.01 },
  { type: "adam", lr: 0.01, betas: [0.5, 0.9], eps: 1e-6, weightDecay: 0.1 },
  { type: "adamw", lr: 0.01, weightDecay: 0.1 }
]
