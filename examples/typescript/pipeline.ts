// The quickstart's average of two PyTorch checkpoints, composed in TypeScript, then scaled by a
// stage kind of our own (./kinds.ts). Run it as any pipeline:
//
//   npm run crucible -- run examples/typescript/pipeline.ts
//
// The default export is the builder; Crucible validates its IR with the kinds it uses, so
// `user/scale` needs no registration. pipeline.yaml beside this file is the same pipeline in YAML.
import { Builder } from "@crucible/core"
import { Linear, Load, Save } from "@crucible/strategies"
import { Scale } from "./kinds.ts"

const p = Builder.make("typescript", { description: "average two checkpoints, then halve the result with a kind of our own" })
const a = p.stage("a", Load, { path: "../../packages/core/fixtures/torch/merge_a.pt" })
const b = p.stage("b", Load, { path: "../../packages/core/fixtures/torch/merge_b.pt" })
const avg = p.stage("avg", Linear, { models: [a, b], weights: [0.3, 0.7] })
const half = p.stage("half", Scale, { model: avg, factor: 0.5 })
p.stage("out", Save, { model: half, path: "out/half.safetensors" })

export default p
