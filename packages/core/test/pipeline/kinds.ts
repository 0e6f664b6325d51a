// Small stage kinds for testing the pipeline machinery: core knows no real stage kind.
import { Effect, Schema } from "effect"
import * as Model from "../../src/model/Model.ts"
import * as Port from "../../src/pipeline/Port.ts"
import * as Registry from "../../src/pipeline/Registry.ts"
import * as Stage from "../../src/pipeline/Stage.ts"

export const Source = Stage.define({
  kind: "test/source",
  version: 1,
  description: "an empty model",
  params: Schema.Struct({ path: Schema.String }),
  inputs: {},
  output: Port.ModelPort,
  run: ({ params }) => Effect.succeed(Model.make(params.path, []))
})

export const Average = Stage.define({
  kind: "test/average",
  version: 1,
  description: "averages models",
  params: Schema.Struct({ weights: Schema.optional(Schema.Array(Schema.Finite)), normalize: Schema.optional(Schema.Boolean) }),
  inputs: { models: Port.many(Port.ModelPort, { min: 2 }), base: Port.optional(Port.ModelPort) },
  output: Port.ModelPort,
  run: ({ inputs }) => Effect.succeed(inputs.models[0]!)
})

export const Score = Stage.define({
  kind: "test/score",
  version: 1,
  description: "measures a model",
  params: Schema.Struct({ points: Schema.optional(Schema.Int) }),
  inputs: { model: Port.one(Port.ModelPort) },
  output: Port.MetricsPort,
  run: () => Effect.succeed({ values: { accuracy: 1 } })
})

export const Sink = Stage.define({
  kind: "test/sink",
  version: 1,
  description: "consumes a model",
  params: Schema.Struct({ path: Schema.String }),
  inputs: { model: Port.one(Port.ModelPort) },
  output: Port.FilesPort,
  run: () => Effect.succeed({ files: [] })
})

export const registry = Registry.make([Source, Average, Score, Sink])
