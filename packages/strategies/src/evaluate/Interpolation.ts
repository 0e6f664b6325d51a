/**
 * Linear mode connectivity: loss and accuracy of `θ(λ) = (1−λ)·A + λ·B` at `N` evenly spaced
 * `λ ∈ [0, 1]`, and the barriers (Frankle et al. 2020; Ainsworth et al. 2023):
 *
 * - loss barrier `max_λ [loss(λ) − ((1−λ)·loss(0) + λ·loss(1))]`;
 * - accuracy barrier `max_λ [((1−λ)·acc(0) + λ·acc(1)) − acc(λ)]`.
 *
 * Every tensor is interpolated, BatchNorm running statistics included; those are then not the
 * statistics of the interpolated network (recompute them, e.g. REPAIR, for BatchNorm networks).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Backend } from "../backend/Backend.ts"
import type { Dataset } from "../data/Dataset.ts"
import type { InputError, ParamError } from "../models/ModelError.ts"
import type { Network } from "../models/Network.ts"
import * as Params from "../models/Params.ts"
import * as Evaluate from "./Evaluate.ts"

/** One point of the path. */
export interface Point {
  readonly lambda: number
  readonly loss: number
  readonly accuracy: number
}

/** The largest gap to the endpoints' straight line, and where it is. */
export interface Barrier {
  readonly loss: number
  readonly lossAt: number
  readonly accuracy: number
  readonly accuracyAt: number
}

/** @category models */
export interface Interpolation {
  readonly points: ReadonlyArray<Point>
  readonly barrier: Barrier
}

/** `N` evenly spaced values from 0 to 1 inclusive (`N ≥ 2`). */
export const lambdas = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : i / (n - 1)))

/** The barriers of a path whose first point is λ = 0 and last is λ = 1. */
export const barrier = (points: ReadonlyArray<Point>): Barrier => {
  const first = points[0]
  const last = points[points.length - 1]
  if (first === undefined || last === undefined) return { loss: 0, lossAt: 0, accuracy: 0, accuracyAt: 0 }
  let best = { loss: -Infinity, lossAt: 0, accuracy: -Infinity, accuracyAt: 0 }
  for (const p of points) {
    const lossGap = p.loss - ((1 - p.lambda) * first.loss + p.lambda * last.loss)
    const accGap = (1 - p.lambda) * first.accuracy + p.lambda * last.accuracy - p.accuracy
    if (lossGap > best.loss) best = { ...best, loss: lossGap, lossAt: p.lambda }
    if (accGap > best.accuracy) best = { ...best, accuracy: accGap, accuracyAt: p.lambda }
  }
  return best
}

/** Options of {@link interpolate}. */
export interface InterpolateOptions {
  /** Points along the path including both ends (default 11). */
  readonly points?: number
  readonly batchSize?: number
}

/** Evaluates the straight path from `a` to `b` on `dataset`. */
export const interpolate = Effect.fn("Interpolation.interpolate")(function* (
  network: Network,
  a: Params.ParamSet,
  b: Params.ParamSet,
  dataset: Dataset,
  options: InterpolateOptions = {}
): Effect.fn.Return<Interpolation, InputError | ParamError, Backend> {
  const n = Math.max(2, Math.floor(options.points ?? 11))
  const validA = yield* Params.validate(network, a, "A")
  const validB = yield* Params.validate(network, b, "B")
  const points: Array<Point> = []
  for (const lambda of lambdas(n)) {
    const metrics = yield* Evaluate.evaluate(network, Params.lerp(validA, validB, lambda), dataset, options.batchSize === undefined ? {} : { batchSize: options.batchSize })
    points.push({ lambda, loss: metrics.loss, accuracy: metrics.accuracy })
  }
  return { points, barrier: barrier(points) }
})
