/**
 * The models of the end-to-end merge bench: a LLaMA-shaped float32 checkpoint of 256 MiB (an
 * embedding, a decoder layer's attention and MLP matrices, norm vectors), written as safetensors. Model 0 is the base; every other model is the base plus a small task vector, so
 * TIES has something real to trim and elect. Values come from a counter-based hash of
 * (seed, tensor, element), so any element range is generated independently and the files are
 * byte-identical on every run.
 */
import * as Safetensors from "../../packages/core/src/io/safetensors/Safetensors.ts"
import * as Model from "../../packages/core/src/model/Model.ts"
import * as TensorRef from "../../packages/core/src/tensor/TensorRef.ts"
import { Effect } from "./effect.ts"

/**
 * Tensor names and shapes of one model, in file order: 67.1M floats (256 MiB) at the default
 * sizes — three [4096, 4096] matrices (embedding, q and o projections), four [1024, 4096]-ish
 * ones (k, v, MLP up/down, as grouped-query attention and a narrow MLP give), four [4096] vectors.
 */
export const layout = (hidden = 4096): Array<readonly [string, ReadonlyArray<number>]> => {
  const narrow = hidden / 4
  const p = "model.layers.0"
  return [
    ["model.embed_tokens.weight", [hidden, hidden]],
    [`${p}.input_layernorm.weight`, [hidden]],
    [`${p}.self_attn.q_proj.weight`, [hidden, hidden]],
    [`${p}.self_attn.q_proj.bias`, [hidden]],
    [`${p}.self_attn.k_proj.weight`, [narrow, hidden]],
    [`${p}.self_attn.v_proj.weight`, [narrow, hidden]],
    [`${p}.self_attn.o_proj.weight`, [hidden, hidden]],
    [`${p}.post_attention_layernorm.weight`, [hidden]],
    [`${p}.mlp.up_proj.weight`, [narrow, hidden]],
    [`${p}.mlp.down_proj.weight`, [hidden, narrow]],
    ["model.norm.weight", [hidden]]
  ]
}

/** A 32-bit integer hash (lowbias32 by Chris Wellons): good enough to look random, and cheap. */
export const hash = (x: number): number => {
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d)
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b)
  return (x ^ (x >>> 16)) >>> 0
}

// Roughly bell-shaped in (−1, 1): the mean of two uniforms.
const noise = (seed: number, i: number): number => (hash((seed + i) | 0) + hash((seed ^ 0x5bd1e995) + i * 3)) / 4294967296 - 1

const values = (tensor: number, shape: ReadonlyArray<number>, model: number, start: number, end: number): Float32Array<ArrayBuffer> => {
  const out = new Float32Array(end - start)
  const isVector = shape.length === 1
  // Norm weights sit around 1, matrices around 0 with a fan-in scale, as in a trained model.
  const scale = isVector ? 0.1 : 1 / Math.sqrt(shape[1]!)
  const center = isVector ? 1 : 0
  const baseSeed = hash(tensor * 7919 + 1)
  const taskSeed = hash(tensor * 104729 + model * 15485863 + 2)
  for (let j = 0, i = start; j < out.length; j++, i++) {
    const base = center + scale * noise(baseSeed, i)
    out[j] = model === 0 ? base : base + 0.05 * scale * noise(taskSeed, i)
  }
  return out
}

/** Model `index` (0 = base) as a lazy model whose tensors are generated on read. */
export const synthetic = (index: number, hidden?: number): Model.Model =>
  Model.make(`synthetic-${index}`, layout(hidden).map(([name, shape], t): TensorRef.TensorRef => ({
    name,
    dtype: "F32",
    shape,
    read: (range) => {
      const { start, end } = TensorRef.rangeOf({ shape }, range)
      return Effect.succeed(new Uint8Array(values(t, shape, index, start, end).buffer))
    }
  })))

/** Writes `count` models as `<dir>/model<i>.safetensors`; returns their paths. */
export const writeAll = async (dir: string, count: number, hidden?: number): Promise<Array<string>> => {
  const paths: Array<string> = []
  for (let i = 0; i < count; i++) {
    const file = `${dir}/model${i}.safetensors`
    await Effect.runPromise(Safetensors.write(file, synthetic(i, hidden)))
    paths.push(file)
  }
  return paths
}
