/**
 * A model is a named, ordered set of lazy tensors plus string metadata — what a checkpoint
 * holds, whatever its format. Stages pass models between them; bytes move only when read.
 *
 * @since 0.1.0
 */
import type { TensorRef } from "../tensor/TensorRef.ts"
import { byteLength, totalByteLength } from "../tensor/TensorRef.ts"

/** @category models */
export interface Model {
  /** Tensors by name, in the order of the source (a writer keeps it). */
  readonly tensors: ReadonlyMap<string, TensorRef>
  /** String metadata (safetensors `__metadata__`), carried to outputs. */
  readonly metadata: Readonly<Record<string, string>>
  /** Where it came from: a file path or a stage id, for messages. */
  readonly source: string
  /** The files its bytes are read from, transitively: a writer refuses to overwrite them. */
  readonly files: ReadonlyArray<string>
  /** Where its weights come from, when they come from Hugging Face folders (see {@link Provenance}). */
  readonly provenance?: Provenance | undefined
}

/**
 * Where a model's weights come from, for writers that describe it: a Hugging Face output folder
 * takes its `config.json`, tokenizer and small files from the `donor`, and its model card names
 * the `base`, the `folders` and the `methods`. `load` of a folder with a `config.json` starts one;
 * stages that combine models (merges, slices) combine their inputs' with {@link combine}.
 *
 * @category models
 */
export interface Provenance {
  /** The Hugging Face folders the weights come from, the base first when there is one, without repeats. */
  readonly folders: ReadonlyArray<string>
  /** The folder whose config.json, tokenizer and small files an output folder takes. */
  readonly donor?: string | undefined
  /** The base model's folder, when the model was merged onto one. */
  readonly base?: string | undefined
  /** The stage kinds that made it, from the sources out (e.g. ["merge/ties"]). */
  readonly methods: ReadonlyArray<string>
  /**
   * The folder whose tokenizer files an output folder takes, when not the donor's: `tokenizer/align`
   * writes one for the vocabulary it permuted the embeddings to.
   */
  readonly tokenizer?: string | undefined
}

/** A model read from the Hugging Face folder `folder` (one with a config.json). @category constructors */
export const fromFolder = (folder: string): Provenance => ({ folders: [folder], donor: folder, methods: [] })

/**
 * The provenance of a model that `method` made from `models` (and `base`): the donor (and the
 * tokenizer folder) is the base's, else the first model's that has one. Undefined when no input has any.
 *
 * @category constructors
 */
export const combine = (method: string, inputs: { readonly base?: Model | undefined; readonly models: ReadonlyArray<Model> }): Provenance | undefined => {
  const all = [...(inputs.base === undefined ? [] : [inputs.base]), ...inputs.models].flatMap((m) => (m.provenance === undefined ? [] : [m.provenance]))
  if (all.length === 0) return undefined
  const donor = inputs.base?.provenance?.donor ?? all.find((p) => p.donor !== undefined)?.donor
  const base = inputs.base?.provenance?.donor
  const tokenizer = inputs.base?.provenance?.tokenizer ?? all.find((p) => p.tokenizer !== undefined)?.tokenizer
  return {
    folders: [...new Set(all.flatMap((p) => p.folders))],
    ...(donor === undefined ? {} : { donor }),
    ...(base === undefined ? {} : { base }),
    ...(tokenizer === undefined ? {} : { tokenizer }),
    methods: [...new Set([...all.flatMap((p) => p.methods), method])]
  }
}

/** @category constructors */
export const make = (
  source: string,
  tensors: Iterable<TensorRef>,
  metadata: Readonly<Record<string, string>> = {},
  files: ReadonlyArray<string> = []
): Model => ({
  source,
  metadata,
  files,
  tensors: new Map(Array.from(tensors, (t) => [t.name, t] as const))
})

/** Whether a stage's value is a model (its tensors by name), not plain data (metrics, files). @category guards */
export const isModel = (value: unknown): value is Model =>
  typeof value === "object" && value !== null && (value as Model).tensors instanceof Map

/** Total bytes of all tensors in their stored dtypes. */
export const totalBytes = (model: Model): number => totalByteLength(model.tensors.values())

/** The largest tensor's bytes: the unit that bounds a streaming stage's memory. */
export const largestTensorBytes = (model: Model): number => {
  let max = 0
  for (const t of model.tensors.values()) max = Math.max(max, byteLength(t))
  return max
}
