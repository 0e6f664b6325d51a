/**
 * The shape of a Llama-2-7B checkpoint as Hugging Face saves it: tensor names and shapes in
 * state-dict order, the config.json, and the split into ≤ 5 GB safetensors shards with their
 * `model.safetensors.index.json`. Pure: no files are touched here.
 */

/** Llama-2-7B's dimensions; only the layer count varies in the bench. */
export const LLAMA_7B = { hidden: 4096, intermediate: 11008, heads: 32, vocab: 32000, layers: 32 } as const

/** The dimensions of one generated model. */
export interface Dims {
  readonly hidden: number
  readonly intermediate: number
  readonly heads: number
  readonly vocab: number
  readonly layers: number
}

/** One tensor of the checkpoint. */
export interface TensorSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
}

/** Every tensor, in the order `save_pretrained` writes them (embedding, layers 0…L−1, final norm, head). */
export const tensors = (d: Dims): Array<TensorSpec> => {
  const out: Array<TensorSpec> = [{ name: "model.embed_tokens.weight", shape: [d.vocab, d.hidden] }]
  for (let l = 0; l < d.layers; l++) {
    const p = `model.layers.${l}`
    for (const proj of ["q", "k", "v", "o"]) out.push({ name: `${p}.self_attn.${proj}_proj.weight`, shape: [d.hidden, d.hidden] })
    out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [d.intermediate, d.hidden] })
    out.push({ name: `${p}.mlp.up_proj.weight`, shape: [d.intermediate, d.hidden] })
    out.push({ name: `${p}.mlp.down_proj.weight`, shape: [d.hidden, d.intermediate] })
    out.push({ name: `${p}.input_layernorm.weight`, shape: [d.hidden] })
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [d.hidden] })
  }
  out.push({ name: "model.norm.weight", shape: [d.hidden] })
  out.push({ name: "lm_head.weight", shape: [d.vocab, d.hidden] })
  return out
}

/** Elements of a tensor. */
export const numel = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** Parameters of the whole model (6.74 B for Llama-2-7B). */
export const parameters = (d: Dims): number => tensors(d).reduce((t, s) => t + numel(s.shape), 0)

/** The HF config.json of a Llama model with these dimensions, stored as bfloat16. */
export const config = (d: Dims) => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: d.hidden,
  intermediate_size: d.intermediate,
  num_attention_heads: d.heads,
  num_key_value_heads: d.heads,
  num_hidden_layers: d.layers,
  vocab_size: d.vocab,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  hidden_act: "silu",
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: "bfloat16",
  transformers_version: "4.36.0"
})

/** A tensor placed in a shard: its bytes run from `begin` to `end` of the shard's data section. */
export interface Placed extends TensorSpec {
  readonly begin: number
  readonly end: number
}

/** One safetensors shard: its file name, tensors, and header (JSON, padded to 8 bytes). */
export interface Shard {
  readonly file: string
  readonly tensors: ReadonlyArray<Placed>
  readonly header: Uint8Array
  /** The file's size: 8 + header + data. */
  readonly bytes: number
}

/** HF's default `max_shard_size` (5 GB). */
export const MAX_SHARD_BYTES = 5e9

/** bf16: two bytes an element. */
const BYTES = 2

const encodeHeader = (placed: ReadonlyArray<Placed>): Uint8Array => {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } }
  for (const t of placed) header[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [t.begin, t.end] }
  const json = JSON.stringify(header)
  return new TextEncoder().encode(json + " ".repeat((8 - (json.length % 8)) % 8))
}

/** Tensors split greedily, in order, into shards of at most `maxBytes` (as `save_pretrained` does). */
export const shards = (d: Dims, maxBytes = MAX_SHARD_BYTES): Array<Shard> => {
  const groups: Array<Array<TensorSpec>> = [[]]
  let size = 0
  for (const t of tensors(d)) {
    const bytes = numel(t.shape) * BYTES
    if (size + bytes > maxBytes && groups.at(-1)!.length > 0) {
      groups.push([])
      size = 0
    }
    groups.at(-1)!.push(t)
    size += bytes
  }
  const n = String(groups.length).padStart(5, "0")
  return groups.map((group, k) => {
    let offset = 0
    const placed = group.map((t) => {
      const begin = offset
      offset += numel(t.shape) * BYTES
      return { ...t, begin, end: offset }
    })
    const header = encodeHeader(placed)
    return { file: `model-${String(k + 1).padStart(5, "0")}-of-${n}.safetensors`, tensors: placed, header, bytes: 8 + header.length + offset }
  })
}

/** The `model.safetensors.index.json` of these shards. */
export const index = (all: ReadonlyArray<Shard>) => {
  const weight_map: Record<string, string> = {}
  let total = 0
  for (const s of all) for (const t of s.tensors) {
    weight_map[t.name] = s.file
    total += t.end - t.begin
  }
  return { metadata: { total_size: total }, weight_map }
}
