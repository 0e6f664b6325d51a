import { describe, expect, it } from "vitest"
import { DType, Model, Port, Registry, Stage, type TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Reporter } from "../../src/Events.ts"
import * as Runner from "../../src/Runner.ts"
import { readModel, writeModel } from "./models.ts"

// A user's own stage kind, defined outside Crucible: multiplies every float tensor by `factor`.
const Scale = Stage.define({
  kind: "user/scale",
  version: 1,
  description: "scales a model",
  params: Schema.Struct({ factor: Schema.Finite }),
  inputs: { model: Port.one(Port.ModelPort) },
  output: Port.ModelPort,
  resources: { lazy: true },
  run: ({ params, inputs }) =>
    Effect.succeed(Model.make("scaled", Array.from(inputs.model.tensors.values(), (t): TensorRef.TensorRef => ({
      ...t,
      read: (range) => Effect.map(t.read(range), (bytes) => DType.fromNumbers(DType.toFloat64(bytes, t.dtype).map((x) => x * params.factor), "F32"))
    })), {}, inputs.model.files))
})

describe("a user's stage kind", () => {
  it("is registered from code and used from YAML, validated like a built-in", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-custom-"))
    const a = await writeModel(path.join(dir, "a.safetensors"), [{ name: "w", shape: [3, 5] }], 9)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: custom
stages:
  a: { uses: load, with: { path: a.safetensors } }
  twice: { uses: user/scale, with: { model: a, factor: 2 } }
  out: { uses: save, with: { model: twice, path: out.safetensors } }
`)
    const kinds = Registry.make([Scale])
    const result = await Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), { kinds, runsDir: path.join(dir, "runs") }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    expect(result.status).toBe("succeeded")
    const out = await readModel(path.join(dir, "out.safetensors"))
    expect(Array.from(out.get("w")!.values)).toEqual(Array.from(a.get("w")!, (x) => Math.fround(x * 2)))

    const invalid = await Effect.runPromise(Effect.flip(Runner.decode(`version: 1
name: bad
stages:
  a: { uses: load, with: { path: a.safetensors } }
  twice: { uses: user/scale, with: { model: a, factor: "two" } }
`, { kinds })))
    expect(invalid.problems.map((p) => [p.code, p.stage, p.position?.line])).toEqual([["InvalidParam", "twice", 5]])
    // Without the user's registry the kind is unknown.
    const unknown = await Effect.runPromise(Effect.flip(Runner.decode(`version: 1
name: bad
stages:
  a: { uses: user/scale, with: { factor: 2 } }
`)))
    expect(unknown.problems[0]!.code).toBe("UnknownStageKind")
  })
})
