/**
 * A network's parameters as TF.js tensors in TF.js layout (the device side of a `ParamSet`):
 * uploaded once before a forward pass or a training run, downloaded once after.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Layout from "./Layout.ts"
import type { Network } from "./Network.ts"
import type { ParamSet } from "./Params.ts"

/** Tensors by PyTorch name, in TF.js layout. @category models */
export type TfWeights = ReadonlyMap<string, tf.Tensor>

/**
 * Uploads validated parameters. With `variables`, weights and biases become trainable
 * `tf.Variable`s and buffers non-trainable ones (so they can be reassigned in place).
 * The caller owns the tensors: {@link dispose} them.
 */
export const upload = (network: Network, params: ParamSet, options: { readonly variables?: boolean } = {}): Map<string, tf.Tensor> => {
  const out = new Map<string, tf.Tensor>()
  for (const spec of network.params) {
    const host = params.get(spec.name)
    if (host === undefined) continue
    const tfLayout = Layout.paramToTf(host, spec.layout)
    const tensor = tf.tensor(tfLayout.data, [...tfLayout.shape], "float32")
    if (options.variables === true) {
      out.set(spec.name, tf.variable(tensor, spec.trainable, `${spec.name}#${tensor.id}`))
      tensor.dispose()
    } else {
      out.set(spec.name, tensor)
    }
  }
  return out
}

/**
 * Reads tensors back into a parameter set in PyTorch layout. Synchronous: on `webgpu` the tensors must
 * have been read with `await tensor.data()` first (as `Trainer.fetch` does before `Trainer.params`).
 */
export const download = (network: Network, weights: TfWeights): ParamSet => {
  const out = new Map<string, Layout.HostTensor>()
  for (const spec of network.params) {
    const tensor = weights.get(spec.name)
    if (tensor === undefined) continue
    const data = tensor.dataSync() as Float32Array
    out.set(spec.name, Layout.paramToTorch({ shape: tensor.shape, data: Float32Array.from(data) }, spec.layout))
  }
  return out
}

/** Disposes every tensor of a weight map. */
export const dispose = (weights: TfWeights): void => {
  for (const tensor of weights.values()) tensor.dispose()
}
