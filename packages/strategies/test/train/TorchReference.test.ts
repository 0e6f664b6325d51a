/**
 * Crucible against PyTorch 1.13 on the values committed under `fixtures/models/` (made by
 * `fixtures/models/generate.py`): the PyTorch state_dict loads by name, the forward logits match
 * in eval and train mode, and two SGD-momentum and two Adam steps give the same weights and
 * BatchNorm buffers.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { Backend } from "../../src/backend/Backend.ts"
import * as Arch from "../../src/models/Arch.ts"
import * as Forward from "../../src/models/Forward.ts"
import * as Network from "../../src/models/Network.ts"
import * as Params from "../../src/models/Params.ts"
import * as Optimizer from "../../src/train/Optimizer.ts"
import * as Trainer from "../../src/train/Trainer.ts"
import { worstError } from "../models/fixtures.ts"

const FIXTURES = path.join(import.meta.dirname, "..", "..", "fixtures", "models")
const decodeOptimizer = Schema.decodeUnknownSync(Optimizer.Optimizer)

const loadFixture = (name: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const meta = JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.arch.json`), "utf8")) as {
        arch: unknown
        steps: number
        sgd: unknown
        adam: unknown
      }
      const arch = yield* Arch.decode(meta.arch)
      const network = yield* Network.resolve(arch)
      const read = (file: string) => Effect.flatMap(Safetensors.read(path.join(FIXTURES, file)), (model) => Params.fromModel(network, model))
      const io = yield* Safetensors.read(path.join(FIXTURES, `${name}.io.safetensors`))
      const tensor = (key: string) => Effect.map(TensorRef.readFloat32(io.tensors.get(key)!), (data) => ({ shape: io.tensors.get(key)!.shape, data }))
      return {
        network,
        steps: meta.steps,
        sgd: decodeOptimizer(meta.sgd),
        adam: decodeOptimizer(meta.adam),
        init: yield* read(`${name}.init.safetensors`),
        afterSgd: yield* read(`${name}.sgd.safetensors`),
        afterAdam: yield* read(`${name}.adam.safetensors`),
        x: yield* tensor("x"),
        y: Int32Array.from((yield* tensor("y")).data),
        logitsEval: yield* tensor("logits.eval"),
        logitsTrain: yield* tensor("logits.train")
      }
    })
  )

const expectClose = (got: Params.ParamSet, want: Params.ParamSet, atol: number, rtol: number) => {
  assert.deepStrictEqual([...got.keys()], [...want.keys()])
  for (const [name, w] of want) {
    const g = got.get(name)!
    assert.deepStrictEqual(g.shape, w.shape, name)
    expect(worstError(g.data, w.data, atol, rtol), name).toBeLessThan(1)
  }
}

layer(Backend.layer())("PyTorch reference", (it) => {
  for (const name of ["mlp", "cnn"]) {
    describe(name, () => {
      it.effect("loads the PyTorch state_dict by name and reproduces its logits in eval and train mode", () =>
        Effect.gen(function* () {
          const f = yield* loadFixture(name)
          const evalOut = yield* Forward.forward(f.network, f.init, f.x)
          expect(worstError(evalOut.output.data, f.logitsEval.data, 1e-5, 1e-4)).toBeLessThan(1)
          const trainOut = yield* Forward.forward(f.network, f.init, f.x, { mode: "train", batchSize: f.x.shape[0]! })
          expect(worstError(trainOut.output.data, f.logitsTrain.data, 1e-5, 1e-4)).toBeLessThan(1)
        })
      )

      for (const which of ["sgd", "adam"] as const) {
        it.effect(`${which}: the weights and buffers after two train-mode steps equal PyTorch's`, () =>
          Effect.gen(function* () {
            const f = yield* loadFixture(name)
            const trainer = Trainer.make(f.network, f.init, { optimizer: f[which] })
            try {
              for (let s = 0; s < f.steps; s++) trainer.step(f.x.data, f.y, f[which].lr)
              const after = trainer.params()
              expectClose(after, which === "sgd" ? f.afterSgd : f.afterAdam, 2e-6, 1e-4)
              // and the step actually moved the weights (the comparison is not vacuous)
              const moved = worstError(after.get("layers.0.weight")!.data, f.init.get("layers.0.weight")!.data, 1e-6, 0)
              expect(moved).toBeGreaterThan(10)
            } finally {
              trainer.dispose()
            }
          })
        )
      }
    })
  }
})
