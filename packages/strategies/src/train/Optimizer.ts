/**
 * Optimizers with PyTorch 1.13's update rules (single-tensor path), so a step here equals a step
 * of `torch.optim` up to float32 rounding:
 *
 * - `sgd`: `g ← ∇ + wd·θ`; with momentum `buf ← μ·buf + g` (zero-initialised, which equals
 *   PyTorch's `buf = g` on the first step), `g ← buf` (or `g + μ·buf` with `nesterov`);
 *   `θ ← θ − lr·g`.
 * - `adam`: `g ← ∇ + wd·θ`; `m ← β₁m + (1−β₁)g`; `v ← β₂v + (1−β₂)g²`;
 *   `θ ← θ − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)`.
 * - `adamw`: as `adam` without the `wd·θ` term, and `θ ← θ·(1 − lr·wd)` first (decoupled decay).
 *
 * State (`step` and per-parameter slots `momentum_buffer`, `exp_avg`, `exp_avg_sq`) lives on
 * the device as variables and is exported by name in PyTorch layout for checkpoints, so a run
 * resumed from it continues exactly.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Schema } from "effect"
import * as Update from "../backend/gemm/Update.ts"
import * as Layout from "../models/Layout.ts"
import type { ParamSpec } from "../models/Network.ts"

const Rate = Schema.Finite.check(Schema.isGreaterThan(0))
const Decay = Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
const Fraction = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1))

/** @category schemas */
export const Sgd = Schema.Struct({
  type: Schema.Literal("sgd"),
  lr: Rate,
  momentum: Schema.optional(Fraction),
  nesterov: Schema.optional(Schema.Boolean),
  weightDecay: Decay
})

/** @category schemas */
export const Adam = Schema.Struct({
  type: Schema.Literals(["adam", "adamw"]),
  lr: Rate,
  betas: Schema.optional(Schema.Tuple([Fraction, Fraction])),
  eps: Schema.optional(Rate),
  weightDecay: Decay
})

/** An optimizer and its hyperparameters. @category schemas */
export const Optimizer = Schema.Union([Sgd, Adam])

/** @category models */
export type Optimizer = typeof Optimizer.Type

/** Optimizer state on the host: what a checkpoint stores. @category models */
export interface OptimizerState {
  readonly type: Optimizer["type"]
  /** Steps taken so far. */
  readonly step: number
  /** `<parameter>.<slot>` → tensor in PyTorch layout, e.g. `layers.0.weight.exp_avg`. */
  readonly slots: ReadonlyMap<string, Layout.HostTensor>
}

/** The slots an optimizer keeps per parameter. */
export const slotNames = (spec: Optimizer): ReadonlyArray<string> =>
  spec.type === "sgd" ? ((spec.momentum ?? 0) > 0 ? ["momentum_buffer"] : []) : ["exp_avg", "exp_avg_sq"]

/** A device-side optimizer over a set of trainable variables. @category models */
export interface DeviceOptimizer {
  /** Applies one update with learning rate `lr`; `grads` are keyed by parameter name. */
  readonly apply: (grads: ReadonlyMap<string, tf.Tensor>, lr: number) => void
  /** Downloads the state. */
  readonly state: () => OptimizerState
  /** The slot variables `state` reads (to copy them to the host first where reads are asynchronous: webgpu). */
  readonly slotTensors: () => ReadonlyArray<tf.Tensor>
  readonly dispose: () => void
}

/** A parameter the optimizer updates: its name (which keys its slots), the layout its slots are saved in, and its variable (TF.js layout). */
export interface Trainable {
  readonly spec: Pick<ParamSpec, "name" | "layout">
  readonly variable: tf.Variable
}

/**
 * Creates the optimizer's device state (zeros, or `resume`'s slots) for `params`. The caller
 * has checked that `resume` matches (`Trainer.ts` does).
 */
export const create = (spec: Optimizer, params: ReadonlyArray<Trainable>, resume?: OptimizerState): DeviceOptimizer => {
  const names = slotNames(spec)
  const slots = new Map<string, tf.Variable>()
  for (const { spec: p, variable } of params) {
    for (const slot of names) {
      const saved = resume?.slots.get(`${p.name}.${slot}`)
      const initial = saved === undefined ? tf.zerosLike(variable) : tf.tensor(Layout.paramToTf(saved, p.layout).data, variable.shape, "float32")
      slots.set(`${p.name}.${slot}`, tf.variable(initial, false, `${p.name}.${slot}#${initial.id}`))
      initial.dispose()
    }
  }
  let step = resume?.step ?? 0
  const slot = (param: string, name: string): tf.Variable => slots.get(`${param}.${name}`)!

  const update = (p: Trainable, grad: tf.Tensor, lr: number): tf.Tensor => {
    const theta = p.variable
    const wd = spec.weightDecay ?? 0
    if (spec.type === "sgd") {
      const momentum = spec.momentum ?? 0
      if (Update.available(Update.SGD_UPDATE)) {
        // One fused pass (backend/gemm/Update.ts): the chain below, the same float32 operations.
        const attrs: Update.SgdAttrs = { lr, momentum, nesterov: spec.nesterov === true, weightDecay: wd }
        const buf = momentum > 0 ? slot(p.spec.name, "momentum_buffer") : undefined
        const outs = tf.engine().runKernel(Update.SGD_UPDATE, { param: theta, grad, ...(buf === undefined ? {} : { buf }) }, attrs as unknown as tf.NamedAttrMap) as Array<tf.Tensor>
        if (buf !== undefined) buf.assign(outs[1]!)
        return outs[0]!
      }
      let g = wd > 0 ? tf.add(grad, tf.mul(theta, wd)) : grad
      if (momentum > 0) {
        const buf = slot(p.spec.name, "momentum_buffer")
        const next = tf.add(tf.mul(buf, momentum), g)
        buf.assign(next)
        g = spec.nesterov === true ? tf.add(g, tf.mul(next, momentum)) : next
      }
      return tf.sub(theta, tf.mul(g, lr))
    }
    const [beta1, beta2] = spec.betas ?? [0.9, 0.999]
    const eps = spec.eps ?? 1e-8
    const decoupled = spec.type === "adamw"
    if (Update.available(Update.ADAM_UPDATE)) {
      // One fused pass (backend/gemm/Update.ts): the chain below, the same float32 operations.
      const attrs: Update.AdamAttrs = { lr, beta1, beta2, eps, weightDecay: wd, step, decoupled }
      const m = slot(p.spec.name, "exp_avg"), v = slot(p.spec.name, "exp_avg_sq")
      const [next, mNext, vNext] = tf.engine().runKernel(Update.ADAM_UPDATE, { param: theta, grad, m, v }, attrs as unknown as tf.NamedAttrMap) as Array<tf.Tensor>
      m.assign(mNext!)
      v.assign(vNext!)
      return next!
    }
    const base = decoupled && wd > 0 ? tf.mul(theta, 1 - lr * wd) : theta
    const g = !decoupled && wd > 0 ? tf.add(grad, tf.mul(theta, wd)) : grad
    const m = slot(p.spec.name, "exp_avg")
    const v = slot(p.spec.name, "exp_avg_sq")
    const mNext = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1))
    const vNext = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2))
    m.assign(mNext)
    v.assign(vNext)
    const stepSize = lr / (1 - beta1 ** step)
    const denom = tf.add(tf.div(tf.sqrt(vNext), Math.sqrt(1 - beta2 ** step)), eps)
    return tf.sub(base, tf.mul(tf.div(mNext, denom), stepSize))
  }

  return {
    apply: (grads, lr) => {
      step++
      tf.tidy(() => {
        for (const p of params) {
          const grad = grads.get(p.spec.name)
          if (grad === undefined) continue
          p.variable.assign(update(p, grad, lr))
        }
      })
    },
    state: () => ({
      type: spec.type,
      step,
      slots: new Map(
        params.flatMap(({ spec: p }) =>
          names.map((name) => {
            const v = slot(p.name, name)
            return [`${p.name}.${name}`, Layout.paramToTorch({ shape: v.shape, data: Float32Array.from(v.dataSync() as Float32Array) }, p.layout)] as const
          })
        )
      )
    }),
    slotTensors: () => [...slots.values()],
    dispose: () => {
      for (const v of slots.values()) v.dispose()
    }
  }
}
