/**
 * A parameter set as alignment sees it: tensors by PyTorch name, float32, PyTorch layout (dense
 * `[out, in]`, conv `[out, in, kh, kw]`, norms `[C]`). Plain data, so alignment depends on no
 * model or backend; the stage wrappers convert from `Model`/`TensorRef`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { InvalidParams } from "./AlignError.ts"

/** One tensor: row-major float32 data of `shape`. @category models */
export interface Param {
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

/** Tensors by name. @category models */
export type Params = ReadonlyMap<string, Param>

/** Number of elements of a shape (1 for a scalar). */
export const numel = (shape: ReadonlyArray<number>): number => shape.reduce((n, d) => n * d, 1)

/** `[2, 3]` → `"[2, 3]"`, for messages. */
export const formatShape = (shape: ReadonlyArray<number>): string => `[${shape.join(", ")}]`

/**
 * Checks that each named tensor exists, that its data length matches its shape, and that it holds
 * only finite values (a NaN would silently poison every score it touches).
 *
 * @category validation
 */
export const checkTensors = (
  params: Params,
  names: Iterable<string>,
  model: string
): Effect.Effect<void, InvalidParams> =>
  Effect.suspend(() => {
    for (const name of names) {
      const param = params.get(name)
      if (param === undefined) {
        return Effect.fail(new InvalidParams({ model, tensor: name, detail: "missing from the parameter set" }))
      }
      if (!param.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        return Effect.fail(new InvalidParams({ model, tensor: name, detail: `invalid shape ${formatShape(param.shape)}` }))
      }
      if (param.data.length !== numel(param.shape)) {
        return Effect.fail(new InvalidParams({
          model,
          tensor: name,
          detail: `shape ${formatShape(param.shape)} needs ${numel(param.shape)} values, the data has ${param.data.length}`
        }))
      }
      const bad = param.data.findIndex((x) => !Number.isFinite(x))
      if (bad !== -1) {
        return Effect.fail(new InvalidParams({ model, tensor: name, detail: `element ${bad} is ${param.data[bad]}; weights must be finite` }))
      }
    }
    return Effect.void
  })

/**
 * Checks that `b` has every named tensor of `a` with the same shape, so the two models can be
 * matched unit for unit.
 *
 * @category validation
 */
export const checkSameShapes = (
  a: Params,
  b: Params,
  names: Iterable<string>
): Effect.Effect<void, InvalidParams> =>
  Effect.suspend(() => {
    for (const name of names) {
      const left = a.get(name)
      const right = b.get(name)
      if (left === undefined || right === undefined) {
        return Effect.fail(new InvalidParams({ model: left === undefined ? "a" : "b", tensor: name, detail: "missing from the parameter set" }))
      }
      if (left.shape.length !== right.shape.length || left.shape.some((d, i) => d !== right.shape[i])) {
        return Effect.fail(new InvalidParams({
          model: "b",
          tensor: name,
          detail: `shape ${formatShape(right.shape)} differs from model a's ${formatShape(left.shape)}; both models must share one architecture`
        }))
      }
    }
    return Effect.void
  })
