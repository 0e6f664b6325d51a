/**
 * The one wrapper every hand-differentiated op goes through (`models/Layers.ts`, `lm/Ops.ts`):
 * a forward function that computes the value and returns its backward pass, taped by
 * `tf.customGrad` over `inputs`. Node's tfjs-core registers no gradients, so each op writes its
 * own (see `models/README.md`).
 *
 * Anything the backward pass needs goes through `save`: the forward pass runs in its own
 * `tidy`, and saved tensors live until the tape releases them.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"

/** Keeps tensors for the backward pass (`tf.customGrad`'s `save`). */
export type Save = (tensors: Array<tf.Tensor>) => void

/** A forward pass over the op's taped inputs: its value and the gradients of those inputs. */
export type Forward<T extends tf.Tensor> = (
  inputs: ReadonlyArray<tf.Tensor>,
  save: Save
) => { readonly value: T; readonly gradFunc: (dy: T, saved: ReadonlyArray<tf.Tensor>) => Array<tf.Tensor> }

/** Wraps a forward/backward pair as a taped op over `inputs`. */
export const customOp = <T extends tf.Tensor>(forward: Forward<T>, inputs: ReadonlyArray<tf.Tensor>): T =>
  tf.customGrad<T>((...args) => {
    const save = args[args.length - 1] as Save
    const result = forward(args.slice(0, -1) as Array<tf.Tensor>, save)
    return { value: result.value, gradFunc: (dy: T, saved: Array<tf.Tensor>) => result.gradFunc(dy, saved) }
  })(...inputs)

/** Saved tensor `i` (a missing one is a bug in the op that saved them). */
export const savedAt = (saved: ReadonlyArray<tf.Tensor>, i: number): tf.Tensor => {
  const t = saved[i]
  if (t === undefined) throw new Error(`customGrad: saved tensor ${i} is missing`)
  return t
}
