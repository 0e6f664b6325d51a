/**
 * `merge/karcher` (mergekit's `karcher`): θ = (Σ ‖θᵢ‖/N)·u with u the Karcher (Riemannian) mean
 * of the directions θᵢ/‖θᵢ‖ on the unit sphere, found by at most `max_iter` steps until the mean
 * log map is shorter than `tol`. See `kernels/Karcher.ts`.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as Kernel from "./kernels/Karcher.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Method from "./Method.ts"

const MaxIter = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Tol = Schema.Finite.check(Schema.isGreaterThan(0))

/** @category stage kinds */
export const Karcher = Method.define({
  kind: "merge/karcher",
  description: "Karcher mean: the Riemannian mean of the models' directions on the sphere, scaled by their mean norm.",
  reference: "https://en.wikipedia.org/wiki/Karcher_mean",
  base: "none",
  minModels: 2,
  rules: [],
  fields: {
    max_iter: MaxIter.annotate({ description: "most update steps of the mean" }).pipe(Stage.withDefault<typeof MaxIter>(10)),
    tol: Tol.annotate({ description: "stop when the mean log map is shorter than this; models of smaller norm take no part in the direction" }).pipe(Stage.withDefault<typeof Tol>(1e-5))
  },
  merge: (job, params) => {
    const { out, iterations, converged } = Kernel.apply({ maxIter: params.max_iter, tol: params.tol }, job.models)
    job.diagnose({ iterations, converged })
    return Result.succeed(out)
  },
  parallel: (pool, job, params, out) =>
    Effect.map(Parallel.karcher(pool, { maxIter: params.max_iter, tol: params.tol }, job.models, out), ({ iterations, converged }) => job.diagnose({ iterations, converged }))
})
