/**
 * The permutation spec of a resolved architecture, derived automatically: which axes of which
 * tensors share a permutation. Sequential networks (MLPs, CNNs with a flatten into dense layers,
 * with BatchNorm/LayerNorm) are chains; networks with residual blocks share one permutation along
 * the residual stream. Anything else needs a hand-written spec.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as Network from "../models/Network.ts"
import { SpecMismatch } from "./AlignError.ts"
import * as PermutationSpec from "./PermutationSpec.ts"

const layerOf = (node: Network.Node): PermutationSpec.Layer | undefined => {
  switch (node.kind) {
    case "linear": return PermutationSpec.linear(node.path, { bias: node.bias })
    case "conv2d": return PermutationSpec.conv(node.path, { bias: node.bias })
    case "batchnorm": return PermutationSpec.batchNorm(node.path)
    case "layernorm": return PermutationSpec.layerNorm(node.path)
    case "flatten": return node.inShape.length > 1 ? PermutationSpec.flatten(node.inShape.slice(1).reduce((a, b) => a * b, 1)) : undefined
    default: return undefined // relu, pools: they keep every unit where it is
  }
}

const layers = (nodes: ReadonlyArray<Network.Node>): Array<PermutationSpec.Layer> => nodes.flatMap((n) => layerOf(n) ?? [])

/** The spec of `network`, or a `SpecMismatch` saying why it cannot be derived. */
export const specOf = (network: Network.Network): Effect.Effect<PermutationSpec.PermutationSpec, SpecMismatch> => {
  const nodes = network.nodes
  const firstBlock = nodes.findIndex((n) => n.kind === "residual")
  if (firstBlock < 0) return Effect.succeed(PermutationSpec.chain(layers(nodes)))
  const lastBlock = nodes.findLastIndex((n) => n.kind === "residual")
  const blocks: Array<PermutationSpec.ResidualBlock> = []
  for (const node of nodes.slice(firstBlock, lastBlock + 1)) {
    if (node.kind === "residual") {
      blocks.push({ main: layers(node.body), ...(node.shortcut === undefined ? {} : { shortcut: layers(node.shortcut) }) })
    } else if (layerOf(node) !== undefined) {
      return Effect.fail(new SpecMismatch({
        permutation: "(derived)",
        tensor: node.path,
        detail: `layer "${node.path}" (${node.kind}) sits between residual blocks, so the permutation spec cannot be derived; give the stage a spec: by hand`
      }))
    }
  }
  return Effect.succeed(PermutationSpec.residual({ stem: layers(nodes.slice(0, firstBlock)), blocks, head: layers(nodes.slice(lastBlock + 1)) }))
}
