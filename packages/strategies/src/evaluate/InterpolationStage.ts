/**
 * `evaluate/interpolation`: loss and accuracy along θ(λ) = (1−λ)·A + λ·B at `points` values of
 * λ, and the loss barrier — the largest gap between loss(λ) and the straight line between the
 * endpoints' losses. Writes the curve as an SVG plot into the run directory.
 *
 * @since 0.1.0
 */
import { AtomicFile, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as path from "node:path"
import * as DataSource from "../data/Source.ts"
import { ArchError } from "../models/ModelError.ts"
import * as Runnable from "../models/Runnable.ts"
import * as Interpolation from "./Interpolation.ts"
import * as Plot from "./Plot.ts"

/** @category stage kinds */
export const InterpolationKind = Stage.define({
  kind: "evaluate/interpolation",
  version: 1,
  description: "Loss and accuracy along the straight line between two models, and the loss barrier.",
  reference: "https://arxiv.org/abs/2209.04836",
  params: Schema.Struct({
    data: DataSource.dataField(),
    split: DataSource.splitField("test", "the samples to evaluate on"),
    /** Points along the line, both ends included. */
    points: Schema.Int.check(Schema.isGreaterThanOrEqualTo(2)).annotate({ description: "points along the line, both ends included" }).pipe(Stage.withDefault(11)),
    arch: Schema.optional(Runnable.ArchParam),
    /** A name for the curve in the plot (default: the stage id). */
    label: Schema.optional(Schema.String)
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: { a: Port.one(Port.ModelPort, "λ = 0"), b: Port.one(Port.ModelPort, "λ = 1") },
  output: Port.MetricsPort,
  resources: { backend: true },
  run: Effect.fn("Interpolation.run")(function* ({ id, params, inputs, resolvePath, runDir }) {
    const a = yield* Runnable.load(inputs.a, params.arch, resolvePath)
    const b = yield* Runnable.load(inputs.b, params.arch, resolvePath)
    if (JSON.stringify(a.arch) !== JSON.stringify(b.arch)) {
      return yield* new ArchError({ path: "arch", detail: `stage "${id}": models a and b have different architectures, so no straight line joins them` })
    }
    const data = yield* DataSource.load(params.data, params.split, resolvePath)
    const result = yield* Interpolation.interpolate(a.network, a.params, b.params, data, { points: params.points })
    for (const p of result.points) yield* Stage.event("interpolation.point", { lambda: p.lambda, loss: p.loss, accuracy: p.accuracy })
    const label = params.label ?? id
    const svg = Plot.interpolationSvg([{ label, points: result.points }], { title: `${label}: ${data.name}` })
    const artifact = `${id}.svg`
    yield* AtomicFile.writeWhole(path.join(runDir, artifact), svg)
    const mid = result.points.reduce((best, p) => (Math.abs(p.lambda - 0.5) < Math.abs(best.lambda - 0.5) ? p : best))
    yield* Effect.annotateCurrentSpan({ "crucible.interpolation.barrier": result.barrier.loss, "crucible.interpolation.mid_accuracy": mid.accuracy })
    return {
      values: { dataset: data.name, curve: result.points, barrier: result.barrier, midpoint: mid },
      artifacts: [artifact]
    }
  })
})
