/**
 * Which weights of a fine-tune a LoRA adapter decomposes, from headers alone: 2-D floating-point
 * `<module>.weight` tensors (q/k/v/o_proj, gate/up/down_proj, …), each with the PEFT names of its
 * factors. Input embeddings (`embed_tokens`, `wte`, … as `hf/Architecture.ts` names them) and output heads (`lm_head`, `embed_out`)
 * are left out unless asked for, as in mergekit's `extract_lora` (`--embed-lora`); an embedding is
 * decomposed transposed, as PEFT's `lora_embedding_A`/`_B` expect.
 *
 * @since 0.1.0
 */
import { DType, type Model, TensorRef } from "@crucible/core"
import { Result } from "effect"
import * as Architecture from "../hf/Architecture.ts"
import * as Filter from "../merge/rules/Filter.ts"

/** One weight to decompose. @category models */
export interface Target {
  /** The tensor's name in both models, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly tensor: string
  /** The module's name (the tensor's without `.weight`), as PEFT names it. */
  readonly module: string
  /** An input embedding: ΔWᵀ is decomposed and stored as `lora_embedding_A`/`_B`. */
  readonly embedding: boolean
  /** The weight's shape, [out, in] (an embedding's: [vocab, dim]). */
  readonly shape: readonly [number, number]
}

/** What {@link select} found. @category models */
export interface Selection {
  readonly targets: ReadonlyArray<Target>
  /** Tensors of the fine-tune the adapter does not decompose (norms, biases, left-out embeddings…). */
  readonly others: ReadonlyArray<string>
  /** Selected weights the base cannot be compared with: missing, or of another shape. */
  readonly mismatches: ReadonlyArray<string>
}

/** Options of {@link select}. @category models */
export interface SelectOptions {
  /** Module-name filters (see `merge/rules/Filter.ts`): a module is kept when one matches. */
  readonly modules?: ReadonlyArray<string> | undefined
  /** Decompose embeddings and output heads too. */
  readonly embeddings: boolean
}

const OUTPUT_HEAD = /(^|\.)(lm_head|embed_out)$/

/**
 * The weights of `model` to decompose against `base`, in the fine-tune's order.
 *
 * @category constructors
 */
export const select = (model: Model.Model, base: Model.Model, options: SelectOptions): Selection => {
  // Patterns are checked by the params Schema (Filter.FilterPattern); one that fails here matches nothing.
  const matchers = options.modules?.flatMap((p) => {
    const compiled = Filter.compile(p)
    return Result.isSuccess(compiled) ? [compiled.success] : []
  })
  const targets: Array<Target> = []
  const others: Array<string> = []
  const mismatches: Array<string> = []
  for (const t of model.tensors.values()) {
    const module = t.name.endsWith(".weight") ? t.name.slice(0, -".weight".length) : undefined
    const embedding = module !== undefined && Architecture.isInputEmbedding(t.name)
    const decomposable = module !== undefined && t.shape.length === 2 && DType.isFloat(t.dtype) &&
      (options.embeddings || !(embedding || OUTPUT_HEAD.test(module))) &&
      (matchers === undefined || matchers.some((m) => m(module)))
    if (!decomposable) {
      others.push(t.name)
      continue
    }
    const b = base.tensors.get(t.name)
    if (b === undefined) mismatches.push(`${t.name}: not in the base ${base.source}`)
    else if (b.shape.length !== 2 || b.shape[0] !== t.shape[0] || b.shape[1] !== t.shape[1]) {
      mismatches.push(`${t.name}: ${TensorRef.formatShape(t.shape)} in the fine-tune, ${TensorRef.formatShape(b.shape)} in the base`)
    } else targets.push({ tensor: t.name, module, embedding, shape: [t.shape[0]!, t.shape[1]!] })
  }
  return { targets, others, mismatches }
}

/** PEFT's names of a target's factors in `adapter_model.safetensors`. @category naming */
export const factorNames = (target: Target): { readonly a: string; readonly b: string } =>
  target.embedding
    ? { a: `base_model.model.${target.module}.lora_embedding_A`, b: `base_model.model.${target.module}.lora_embedding_B` }
    : { a: `base_model.model.${target.module}.lora_A.weight`, b: `base_model.model.${target.module}.lora_B.weight` }

/** The matrix decomposed for a target, as [rows, cols]: ΔW, or ΔWᵀ for an embedding. @category naming */
export const decomposedShape = (target: Target): readonly [number, number] =>
  target.embedding ? [target.shape[1], target.shape[0]] : target.shape
