/**
 * `extract/lora`: a LoRA adapter that turns the base into (approximately) the fine-tune, written
 * as a PEFT adapter folder. Per decomposed weight, ΔW = W_ft − W_base ≈ B·A by truncated SVD
 * (ΔW ≈ U_r S_r V_rᵀ, B = U_r√S_r, A = √S_r V_rᵀ, as mergekit's `extract_lora`), at a fixed
 * `rank` or the smallest rank keeping an `energy` share of Σσ². `lora_alpha = r` (scale 1), and
 * per-module ranks that differ from the largest go to `rank_pattern`/`alpha_pattern`.
 *
 * The folder (`path`) gets `adapter_config.json`, `adapter_model.safetensors` and
 * `reconstruction.json`: the relative Frobenius error ‖ΔW − BA‖/‖ΔW‖ of each layer (from the
 * factors as stored, after `dtype`) and overall (√Σ‖ΔW − BA‖² / √Σ‖ΔW‖²), plus the tensors that
 * differ from the base but that no LoRA carries (norms, biases, left-out embeddings).
 *
 * @since 0.1.0
 */
import { DType, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import { Buffer } from "node:buffer"
import * as path from "node:path"
import * as Filter from "../merge/rules/Filter.ts"
import * as AdapterFolder from "./AdapterFolder.ts"
import { ExtractInputsMismatch, InvalidExtractParams, NothingToExtract } from "./ExtractError.ts"
import * as RandomizedSvd from "./RandomizedSvd.ts"
import * as Svd from "./Svd.ts"
import * as Targets from "./Targets.ts"

/** One decomposed layer's numbers, as `reconstruction.json` lists them. @category models */
export interface LayerReport {
  readonly module: string
  /** The weight's shape, [out, in] ([vocab, dim] for an embedding). */
  readonly shape: readonly [number, number]
  readonly rank: number
  /** ‖ΔW − B·A‖_F / ‖ΔW‖_F, from the stored factors. */
  readonly relative_error: number
  /** ‖ΔW‖_F. */
  readonly delta_norm: number
  /** The largest singular values of ΔW (at most 16), for choosing a rank. */
  readonly singular_values: ReadonlyArray<number>
}

const SHOWN_SINGULAR_VALUES = 16

/** @category stage kinds */
export const LoraExtract = Stage.define({
  kind: "extract/lora",
  // 2: layers whose smaller side exceeds 256 take the randomized SVD (other factors, same keys).
  version: 2,
  description: "Extracts a LoRA adapter (PEFT folder) from a fine-tune and its base by truncated SVD of each layer's ΔW.",
  reference: "https://github.com/arcee-ai/mergekit/blob/main/mergekit/scripts/extract_lora.py",
  params: Schema.Struct({
    /** The adapter folder to write, relative to the pipeline file. */
    path: Schema.String.annotate({ description: "the adapter folder to write (adapter_config.json, adapter_model.safetensors, reconstruction.json)" }),
    rank: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).annotate({ description: "the rank of every layer's factors (clamped to min(out, in)); give this or `energy`" })),
    energy: Schema.optional(Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)).annotate({
      description: "per layer, the smallest rank keeping this share of Σσ² (e.g. 0.99); give this or `rank`"
    })),
    modules: Schema.optional(Schema.Array(Filter.FilterPattern).annotate({ description: "module-name filters (globs, /regex/, or substrings): only matching modules are decomposed" })),
    embeddings: Schema.Boolean.annotate({ description: "also decompose input embeddings (as lora_embedding_A/B) and output heads" }).pipe(Stage.withDefault(false)),
    dtype: Schema.optional(DType.WritableDTypeName.annotate({ description: "dtype of the factors (F32, F16, BF16, F64); default: each weight's dtype in the fine-tune" })),
    base_model_name_or_path: Schema.optional(Schema.String.annotate({ description: "written to adapter_config.json; default: the base's folder (or file)" }))
  }),
  inputs: {
    model: Port.one(Port.ModelPort, "the fine-tune"),
    base: Port.one(Port.ModelPort, "the model it was fine-tuned from")
  },
  output: Port.FilesPort,
  check: {
    params: ({ params }) => [
      ...(params.rank === undefined) === (params.energy === undefined)
        ? [{ path: [params.rank === undefined ? "rank" : "energy"], message: "give either `rank: N` or `energy: 0.99` (the share of Σσ² each layer keeps), not both nor neither" }]
        : [],
      ...factorDType(params.dtype) === "invalid" ? [{ path: ["dtype"], message: `LoRA factors need a floating-point dtype (F32, F16, BF16 or F64), not ${params.dtype}` }] : []
    ],
    headers: ({ params, inputs }) => {
      const selection = Targets.select(inputs.model, inputs.base, params)
      return [
        ...selection.mismatches.map((m) => ({ path: ["base"], message: m })),
        ...selection.targets.length === 0 && selection.mismatches.length === 0 ? [{ path: params.modules === undefined ? ["model"] : ["modules"], message: `no 2-D weight of ${inputs.model.source} is selected for a LoRA` }] : []
      ]
    }
  },
  run: Effect.fn("LoraExtract.run")(function* ({ id, params, inputs, resolvePath, dryRun }) {
    const target = resolvePath(params.path)
    const dtype = factorDType(params.dtype)
    if (dtype === "invalid") return yield* new InvalidExtractParams({ stage: id, detail: `LoRA factors need a floating-point dtype (F32, F16, BF16 or F64), not ${params.dtype}` })
    if ((params.rank === undefined) === (params.energy === undefined)) {
      return yield* new InvalidExtractParams({ stage: id, detail: "give either `rank: N` or `energy: 0.99`, not both nor neither" })
    }
    const selection = Targets.select(inputs.model, inputs.base, params)
    if (selection.mismatches.length > 0) return yield* new ExtractInputsMismatch({ stage: id, mismatches: selection.mismatches })
    if (selection.targets.length === 0) {
      return yield* new NothingToExtract({ stage: id, model: inputs.model.source, detail: params.modules === undefined ? "it has no 2-D floating-point `.weight` tensor besides embeddings (set `embeddings: true` for those)" : `no module matches ${JSON.stringify(params.modules)}` })
    }
    // Not lazy, so the planner never runs it; a dry run still names the files it would write.
    if (dryRun) return { files: AdapterFolder.FILE_NAMES.map((f) => ({ path: path.join(target, f), bytes: 0, sha256: "" })) }
    yield* Effect.annotateCurrentSpan({ "crucible.io.path": target, "crucible.lora.layers": selection.targets.length })

    const tensors: Array<TensorRef.TensorRef> = []
    const layers: Array<LayerReport> = []
    let residual2 = 0
    let norm2 = 0
    for (const [i, t] of selection.targets.entries()) {
      const ft = inputs.model.tensors.get(t.tensor)!
      const delta = yield* deltaOf(ft, inputs.base.tensors.get(t.tensor)!, t)
      const [m, n] = Targets.decomposedShape(t)
      // Exact Jacobi for small layers, the randomized range finder for LLM-sized ones.
      const { method, rank, svd: decomposition } = RandomizedSvd.truncated(delta, m, n, params.rank !== undefined ? { rank: params.rank } : { energy: params.energy! })
      const factors = Svd.factors(decomposition, rank)
      const outDType = dtype ?? storedFloat(ft.dtype)
      const aBytes = DType.fromNumbers(factors.a, outDType)
      const bBytes = DType.fromNumbers(factors.b, outDType)
      const names = Targets.factorNames(t)
      tensors.push(TensorRef.fromBytes(names.a, outDType, [factors.rank, n], aBytes), TensorRef.fromBytes(names.b, outDType, [m, factors.rank], bBytes))
      // Measured on the factors as stored, so a lossy dtype shows in the error.
      const fit = Svd.reconstruction(delta, DType.toFloat64(bBytes, outDType), DType.toFloat64(aBytes, outDType), m, n, factors.rank)
      residual2 += fit.residual ** 2
      norm2 += fit.norm ** 2
      const layer: LayerReport = {
        module: t.module,
        shape: t.shape,
        rank: factors.rank,
        relative_error: Svd.relativeError(fit),
        delta_norm: fit.norm,
        singular_values: Array.from(decomposition.s.subarray(0, SHOWN_SINGULAR_VALUES))
      }
      layers.push(layer)
      yield* Stage.event("lora.layer", { module: t.module, rank: layer.rank, relative_error: layer.relative_error, svd: method, sweeps: decomposition.sweeps })
      yield* Stage.reportProgress({ stage: id, done: i + 1, total: selection.targets.length, unit: "tensors", detail: `${t.module} r=${layer.rank} err=${layer.relative_error.toPrecision(3)}` })
      yield* Effect.yieldNow
    }
    const overall = Svd.relativeError({ residual: Math.sqrt(residual2), norm: Math.sqrt(norm2) })
    const notCaptured = yield* changedOthers(selection.others, inputs.model.tensors, inputs.base.tensors)
    if (notCaptured.length > 0) {
      yield* Effect.logWarning(`stage ${id}: ${notCaptured.length} tensor${notCaptured.length === 1 ? " differs from the base but is" : "s differ from the base but are"} not in the adapter (${notCaptured.slice(0, 5).join(", ")}${notCaptured.length > 5 ? ", …" : ""}); see not_captured in reconstruction.json`)
    }
    yield* Stage.event("lora.overall", { relative_error: overall, layers: layers.length, not_captured: notCaptured.length })
    yield* Effect.annotateCurrentSpan({ "crucible.lora.relative_error": overall })

    const files = yield* AdapterFolder.write(target, {
      config: adapterConfig(layers, selection.targets, params.base_model_name_or_path ?? inputs.base.provenance?.donor ?? inputs.base.source),
      tensors,
      reconstruction: {
        ...(params.rank === undefined ? { energy: params.energy } : { rank: params.rank }),
        relative_error: overall,
        layers,
        not_captured: notCaptured
      }
    }, [...inputs.model.files, ...inputs.base.files]).pipe(Effect.withSpan("LoraExtract.write", { attributes: { "crucible.io.path": target } }))
    return { files }
  })
})

// The factors' dtype: undefined keeps each weight's; "invalid" for a name that is not a float dtype.
const factorDType = (name: string | undefined): DType.WritableDType | undefined | "invalid" => {
  if (name === undefined) return undefined
  const parsed = DType.parseWritable(name)
  return parsed !== undefined && DType.isFloat(parsed) ? parsed : "invalid"
}

// A weight's own dtype for its factors, when a writer has it (float8 weights get F32 factors).
const storedFloat = (dtype: DType.DType): DType.WritableDType => {
  const writable = DType.parseWritable(dtype)
  return writable !== undefined && DType.isFloat(writable) ? writable : "F32"
}

// ΔW (or ΔWᵀ for an embedding) in float64, row-major.
const deltaOf = (ft: TensorRef.TensorRef, base: TensorRef.TensorRef, t: Targets.Target) =>
  Effect.gen(function* () {
    const w = DType.toFloat64(yield* ft.read(), ft.dtype)
    const w0 = DType.toFloat64(yield* base.read(), base.dtype)
    const [rows, cols] = t.shape
    const delta = new Float64Array(rows * cols)
    if (!t.embedding) for (let i = 0; i < delta.length; i++) delta[i] = w[i]! - w0[i]!
    else for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) delta[j * rows + i] = w[i * cols + j]! - w0[i * cols + j]!
    return delta
  })

// Tensors outside the adapter whose bytes differ from the base's (or that the base lacks).
const changedOthers = (names: ReadonlyArray<string>, model: ReadonlyMap<string, TensorRef.TensorRef>, base: ReadonlyMap<string, TensorRef.TensorRef>) =>
  Effect.filter(names, (name) =>
    Effect.gen(function* () {
      const t = model.get(name)!
      const b = base.get(name)
      if (b === undefined || b.dtype !== t.dtype || b.shape.join() !== t.shape.join()) return true
      const [x, y] = [yield* t.read(), yield* b.read()]
      return !Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(y)
    }))

/**
 * `adapter_config.json` as PEFT (and mergekit's extract_lora) writes it: `r` the largest rank,
 * `lora_alpha = r`, and modules of another rank in `rank_pattern`/`alpha_pattern` (alpha = rank
 * keeps every layer's scale at 1).
 */
const adapterConfig = (layers: ReadonlyArray<LayerReport>, targets: ReadonlyArray<Targets.Target>, base: string) => {
  const r = Math.max(...layers.map((l) => l.rank))
  const pattern = Object.fromEntries(layers.filter((l) => l.rank !== r).map((l) => [l.module, l.rank]))
  return {
    base_model_name_or_path: base,
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r,
    lora_alpha: r,
    rank_pattern: pattern,
    alpha_pattern: pattern,
    target_modules: [...new Set(targets.map((t) => t.module.split(".").at(-1)!))].sort(),
    modules_to_save: null,
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true
  }
}
