/**
 * mergekit's merge methods (`mergekit/merge_methods/registry.py`, commit a6e4028) as Crucible
 * merge kinds: the kind, how the base model is passed, and each parameter's Crucible name and
 * form. Per-model parameters are mergekit's `tensor_parameters` (looked up per model, then per
 * slice, then globally); the others are its `parameters` (per slice, then globally: a model's own
 * setting of them is ignored, as mergekit ignores it).
 *
 * @since 0.1.0
 */

/**
 * How a method takes the base model:
 * - `required` / `optional`: Crucible's `base` input (task vectors are taken from it), and the
 *   base is not one of the merged `models` (mergekit leaves it out of the task vectors);
 * - `first`: no base input; the base is `models[0]` (SLERP's t = 0 end, NearSwap-like methods);
 * - `listed`: the base is merged like any model (linear, passthrough: mergekit adds it to the
 *   models when it is not listed, and so does the compiler);
 * - `none`: the base is ignored.
 *
 * @category models
 */
export type BaseUse = "required" | "optional" | "first" | "listed" | "none"

/** A per-model parameter: its Crucible name, whether it takes rules (gradients, filters), its default. @category models */
export interface ModelParam {
  readonly as: string
  readonly rules: boolean
  /** The value a model without a setting gets (mergekit's default), when some other model has one. */
  readonly default: number
}

/** A global parameter: its Crucible name, whether it takes rules, and how a mergekit value maps (rescale: bool → l1/none). @category models */
export interface GlobalParam {
  readonly as: string
  readonly rules: boolean
  readonly map?: (value: boolean | number | string) => unknown
  /** Accepted and ignored, with this note (int8_mask). */
  readonly ignored?: string
}

/** @category models */
export interface Method {
  readonly kind: string
  readonly base: BaseUse
  readonly perModel: Readonly<Record<string, ModelParam>>
  readonly global: Readonly<Record<string, GlobalParam>>
}

const rule = (as: string, def: number): ModelParam => ({ as, rules: true, default: def })
const plain = (as: string): GlobalParam => ({ as, rules: false })
const INT8_MASK: GlobalParam = { as: "int8_mask", rules: false, ignored: "int8_mask is accepted and has no effect: Crucible keeps its masks exact (it only saves memory in mergekit)" }

/** mergekit's generalized task arithmetic: TIES, DARE, breadcrumbs, DELLA are presets of it. */
const taskArithmetic = (kind: string): Method => ({
  kind,
  base: "required",
  perModel: { weight: rule("weights", 1), density: rule("density", 1), gamma: rule("gamma", 0.01), epsilon: rule("epsilon", 0.15) },
  global: {
    normalize: plain("normalize"),
    // mergekit's `rescale: true` is the L1-norm-preserving rescale (RescaleNorm.l1).
    rescale: { as: "rescale", rules: false, map: (v) => (v === true ? "l1" : v === false ? "none" : v) },
    lambda: { as: "lambda", rules: true },
    int8_mask: INT8_MASK
  }
})

/** The methods by mergekit name. @category registry */
export const methods = {
  linear: { kind: "merge/linear", base: "listed", perModel: { weight: { as: "weights", rules: false, default: 1 } }, global: { normalize: plain("normalize") } },
  task_arithmetic: taskArithmetic("merge/task-arithmetic"),
  ties: taskArithmetic("merge/ties"),
  dare_ties: taskArithmetic("merge/dare-ties"),
  dare_linear: taskArithmetic("merge/dare-linear"),
  breadcrumbs: taskArithmetic("merge/breadcrumbs"),
  breadcrumbs_ties: taskArithmetic("merge/breadcrumbs-ties"),
  della: taskArithmetic("merge/della"),
  della_linear: taskArithmetic("merge/della-linear"),
  slerp: { kind: "merge/slerp", base: "first", perModel: {}, global: { t: { as: "t", rules: true } } },
  multislerp: { kind: "merge/multislerp", base: "optional", perModel: { weight: rule("weights", 1) }, global: { normalize_weights: plain("normalize_weights") } },
  model_stock: { kind: "merge/model-stock", base: "required", perModel: {}, global: { filter_wise: plain("filter_wise") } },
  passthrough: { kind: "merge/passthrough", base: "listed", perModel: { scale: rule("scale", 1) }, global: {} },
  nuslerp: { kind: "merge/nuslerp", base: "optional", perModel: { weight: rule("weight", 1) }, global: { nuslerp_flatten: plain("nuslerp_flatten"), nuslerp_row_wise: plain("nuslerp_row_wise") } },
  karcher: { kind: "merge/karcher", base: "none", perModel: {}, global: { max_iter: plain("max_iter"), tol: plain("tol") } },
  sce: { kind: "merge/sce", base: "required", perModel: {}, global: { select_topk: { as: "select_topk", rules: true }, int8_mask: INT8_MASK } },
  nearswap: { kind: "merge/nearswap", base: "required", perModel: {}, global: { t: { as: "t", rules: true } } },
  arcee_fusion: { kind: "merge/arcee-fusion", base: "required", perModel: {}, global: {} }
} satisfies Record<string, Method>

/** A mergekit method name. @category registry */
export type MethodName = keyof typeof methods

/** The method of a name, if mergekit has it. @category registry */
export const get = (name: string): Method | undefined => (Object.hasOwn(methods, name) ? methods[name as MethodName] : undefined)
