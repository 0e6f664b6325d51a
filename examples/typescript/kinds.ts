// A stage kind of your own: one `Stage.define` value per kind. Crucible imports this module when a
// pipeline names it (`kinds: [./kinds.ts]` in YAML, `--kinds kinds.ts` on the command line) or
// when a TypeScript pipeline uses the kind; `crucible validate`, `plan`, `run`, the cache keys,
// the traces and the dashboard then treat it as a built-in kind.
import { DType, Lineage, Model, Port, Stage, type TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"

/** θ' = factor · θ for every floating-point tensor (others are passed through), computed lazily as a consumer reads. */
export const Scale = Stage.define({
  kind: "user/scale",
  version: 1,
  description: "multiplies every floating-point tensor by `factor`",
  params: Schema.Struct({ factor: Schema.Finite }),
  inputs: { model: Port.one(Port.ModelPort, "the model to scale") },
  output: Port.ModelPort,
  // Lazy: the stage composes lazy tensors from headers; `save` pulls the values.
  resources: { lazy: true },
  run: ({ id, params, inputs }) =>
    Effect.succeed(
      Model.make(
        id,
        Array.from(inputs.model.tensors.values(), (t): TensorRef.TensorRef =>
          DType.isFloat(t.dtype)
            ? {
                name: t.name,
                dtype: "F32",
                shape: t.shape,
                read: (range) => Effect.map(t.read(range), (bytes) => DType.fromNumbers(DType.toFloat64(bytes, t.dtype).map((x) => x * params.factor), "F32")),
                // For `crucible plan`: a range of it reads the same range of t, holding t's bytes, float64 and float32 per element.
                lineage: Lineage.derived([t], { perElement: DType.byteSize[t.dtype] + 8 + 4 })
              }
            : t
        ),
        inputs.model.metadata,
        inputs.model.files
      )
    )
})
