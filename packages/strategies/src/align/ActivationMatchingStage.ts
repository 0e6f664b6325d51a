/**
 * `align/activation-matching`: Git Re-Basin's activation matching — runs both models on the same
 * samples, correlates each layer's units across the models, and permutes `model` so that its
 * units line up with `reference`'s (one linear assignment per permutation). Each permutation is
 * matched on the output of the layer that opens it (`P_<layer>`); conv maps count every spatial
 * position as a sample.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Forward from "../models/Forward.ts"
import type { HostTensor } from "../models/Layout.ts"
import * as Runnable from "../models/Runnable.ts"
import * as ActivationMatching from "./ActivationMatching.ts"
import { SpecMismatch } from "./AlignError.ts"
import { specOf } from "./FromNetwork.ts"
import * as Pair from "./Pair.ts"
import * as PermutationSpec from "./PermutationSpec.ts"
import * as Permute from "./Permute.ts"

/** @category stage kinds */
export const ActivationMatchingKind = Stage.define({
  kind: "align/activation-matching",
  version: 1,
  description: "Permutes a model's hidden units to match a reference model's by correlating their activations on data.",
  reference: "https://arxiv.org/abs/2209.04836",
  params: Schema.Struct({
    data: DataSource.dataField(),
    split: DataSource.splitField("train", "the samples whose activations are correlated"),
    /** Samples to correlate over (the first ones). */
    samples: Schema.Int.check(Schema.isGreaterThan(0)).annotate({ description: "samples to correlate over (the first ones)" }).pipe(Stage.withDefault(2000)),
    arch: Schema.optional(Runnable.ArchParam),
    spec: Schema.optional(PermutationSpec.PermutationSpec)
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: { reference: Port.one(Port.ModelPort, "the model whose units to match (A)"), model: Port.one(Port.ModelPort, "the model to permute (B)") },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("ActivationMatching.run")(function* ({ id, params, inputs, resolvePath }) {
    const { a, b } = yield* Pair.load(id, inputs, params.arch, resolvePath)
    const spec = params.spec ?? (yield* specOf(a.network))
    const layers = new Map(Object.keys(spec).map((perm) => [perm, perm.replace(/^P_/, "")] as const))
    for (const [perm, layer] of layers) {
      if (!a.network.activationNames.includes(layer)) {
        return yield* new SpecMismatch({ permutation: perm, tensor: layer, detail: `no activation "${layer}" to match permutation ${perm} on; name permutations P_<layer> after the layer whose outputs they order` })
      }
    }
    const data = yield* DataSource.load(params.data, params.split, resolvePath)
    const n = Math.min(data.count, params.samples)
    const x: HostTensor = { shape: [n, ...data.shape], data: data.x.subarray(0, n * (data.x.length / data.count)) }
    const capture = [...new Set(layers.values())]
    const actA = (yield* Forward.forward(a.network, a.params, x, { capture })).activations
    const actB = (yield* Forward.forward(b.network, b.params, x, { capture })).activations
    const result = yield* ActivationMatching.match(new Map([...layers].map(([perm, layer]) => [perm, { a: unitsLast(actA.get(layer)!), b: unitsLast(actB.get(layer)!) }] as const)))
    for (const [perm, report] of result.layers) yield* Stage.event("align.layer", { permutation: perm, before: report.before, after: report.after })
    const aligned = yield* Permute.apply(b.params, spec, result.permutations)
    return Runnable.toModel(b.network, aligned, `${id} (aligned ${inputs.model.source})`, inputs.model.metadata)
  })
})

/** [N, C, …spatial] → rows N·spatial, columns C (a dense layer's [N, C] is unchanged). */
const unitsLast = (t: HostTensor): ActivationMatching.Activations => {
  const [n, c, ...rest] = t.shape as [number, number, ...Array<number>]
  const spatial = rest.reduce((p, q) => p * q, 1)
  if (spatial === 1) return { samples: n, units: c, data: t.data }
  const out = new Float32Array(t.data.length)
  for (let s = 0; s < n; s++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < spatial; p++) out[(s * spatial + p) * c + ch] = t.data[(s * c + ch) * spatial + p]!
  return { samples: n * spatial, units: c, data: out }
}
