/**
 * PyTorch's default initialisation, seeded:
 * - `nn.Linear` / `nn.Conv2d` weight: `kaiming_uniform_(a=√5)`, i.e. U(−b, b) with
 *   b = gain·√(3/fan_in), gain = √(2/(1+a²)) = √(1/3), so b = 1/√fan_in;
 * - their bias: U(−1/√fan_in, 1/√fan_in);
 * - BatchNorm / LayerNorm: weight 1, bias 0; running_mean 0, running_var 1, num_batches_tracked 0.
 *
 * The distributions are PyTorch's; the random numbers are Crucible's (`backend/Random.ts`), one
 * stream per tensor derived from `(seed, tensor name)`, so a tensor's values do not change when
 * another layer is added or removed.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Random from "../backend/Random.ts"
import type * as Arch from "./Arch.ts"
import type { HostTensor } from "./Layout.ts"
import type { ArchError } from "./ModelError.ts"
import * as Network from "./Network.ts"
import type { ParamSet } from "./Params.ts"

/** The bound of PyTorch's default uniform init for a fan-in: 1/√fan_in. */
export const defaultBound = (fanIn: number): number => (fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0)

const initTensor = (spec: Network.ParamSpec, seed: number): HostTensor => {
  const size = spec.shape.reduce((a, b) => a * b, 1)
  const data = new Float32Array(size)
  const isAffine = spec.module === "linear" || spec.module === "conv2d"
  if (isAffine) {
    const rng = Random.make(Random.derive(seed, "init", spec.name))
    const bound = defaultBound(spec.fanIn)
    for (let i = 0; i < size; i++) data[i] = rng.uniform(-bound, bound)
  } else if (spec.role === "weight" || spec.role === "running_var") {
    data.fill(1)
  }
  return { shape: spec.shape, data }
}

/** Initial parameters of a resolved network. */
export const initNetwork = (network: Network.Network, seed: number): ParamSet =>
  new Map(network.params.map((spec) => [spec.name, initTensor(spec, seed)] as const))

/** Initial parameters of an architecture, PyTorch's default init seeded by `seed`. */
export const init = (arch: Arch.Arch, seed: number): Effect.Effect<ParamSet, ArchError> =>
  Effect.map(Network.resolve(arch), (network) => initNetwork(network, seed))
