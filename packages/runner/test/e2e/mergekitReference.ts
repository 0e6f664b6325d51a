// mergekit's semantics in float64, written from its source (commit a6e4028) for the corpus test and
// sharing no code with Crucible's compiler or kernels: what a tensor's output is, given a mergekit
// config and the input models' values.
// - parameters (config.py `evaluate_setting`, `ConfigReader.parameter`): a number; a list of
//   numbers is a gradient interpolated at t; a list of { filter, value } takes the first entry
//   whose filter is a substring of the tensor name (no filter: any); a model's own setting first,
//   then its slice's `parameters`, then the config's `parameters`, then the method's default — a
//   level whose filters match nothing falls through to the next (ConfigReader.parameter);
// - t (plan.py `plan_slice`, `plan_module`): layer i of an n-layer slice is at i / (n − 1) (1 for
//   one layer); embeddings, the final norm and lm_head are planned with t = 0;
// - slices (plan.py): output layers are the slices' layers in order; embeddings come from the first
//   slice's sources, the final norm and lm_head from the last's;
// - linear, slerp (merge_methods/linear.py, slerp.py) here; ties through the generalized
//   task-arithmetic reference, arcee_fusion through mergekitReferences.ts (both float64 references
//   of the strategies tests).
import { generalized } from "../../../strategies/test/merge/kernels/reference.ts"
import { arceeFusion } from "../../../strategies/test/merge/mergekitReferences.ts"

/** A mergekit config as YAML gives it (the keys the corpus uses). */
export interface MergekitConfig {
  readonly merge_method: string
  readonly base_model?: string
  readonly models?: ReadonlyArray<{ readonly model: string; readonly parameters?: Record<string, unknown> }>
  readonly slices?: ReadonlyArray<{
    readonly sources: ReadonlyArray<{ readonly model: string; readonly layer_range: readonly [number, number]; readonly parameters?: Record<string, unknown> }>
    readonly parameters?: Record<string, unknown>
  }>
  readonly parameters?: Record<string, unknown>
  readonly dtype?: string
}

/** An input model's tensors (float64 of the stored values), by name. */
export type Tensors = ReadonlyMap<string, { readonly values: Float64Array }>

const LAYER = /^model\.layers\.(\d+)\.(.+)$/

/** A model's layer count: the distinct `model.layers.<i>` indices of its tensors. */
export const layerCount = (tensors: Tensors): number => new Set([...tensors.keys()].flatMap((k) => LAYER.exec(k)?.[1] ?? [])).size

/** mergekit's `evaluate_setting`: a setting's number for a tensor at position t, or undefined when no filter matches. */
export const evaluateSetting = (setting: unknown, tensor: string, t: number): number | undefined => {
  if (typeof setting === "number") return setting
  if (!Array.isArray(setting)) throw new Error(`unexpected setting ${JSON.stringify(setting)}`)
  if (setting.every((e) => typeof e === "number")) {
    const values = setting as ReadonlyArray<number>
    const scaled = t * (values.length - 1)
    const i0 = Math.trunc(scaled)
    const i1 = Math.min(values.length - 1, i0 + 1)
    const frac = scaled - i0
    return (1 - frac) * values[i0]! + frac * values[i1]!
  }
  for (const cond of setting as ReadonlyArray<{ filter?: string | null; value: unknown }>) {
    if (cond.filter == null || cond.filter === "*" || tensor.includes(cond.filter)) return evaluateSetting(cond.value, tensor, t)
  }
  return undefined
}

/** One source of an output tensor: the model, its tensor name, and the settings that apply to it. */
interface Source {
  readonly model: string
  readonly tensor: string
  readonly parameters: Record<string, unknown> | undefined
}

/** What mergekit plans for output tensor `name`: the sources, their slice's parameters, and t. */
const plan = (config: MergekitConfig, layersOf: (model: string) => number, name: string): { sources: Array<Source>; t: number; sliceParameters?: Record<string, unknown> | undefined } => {
  const slices = config.slices ?? [{
    sources: [...config.models!, ...(config.base_model !== undefined && !config.models!.some((m) => m.model === config.base_model) ? [{ model: config.base_model }] : [])]
      .map((m) => ({ model: m.model, layer_range: [0, layersOf(m.model)] as const, parameters: "parameters" in m ? m.parameters : undefined }))
  }]
  const layer = LAYER.exec(name)
  if (layer === null) {
    const slice = name === "model.embed_tokens.weight" ? slices[0]! : slices[slices.length - 1]!
    return { sources: slice.sources.map((s) => ({ model: s.model, tensor: name, parameters: s.parameters })), t: 0, sliceParameters: "parameters" in slice ? slice.parameters : undefined }
  }
  let index = Number(layer[1])
  for (const slice of slices) {
    const n = slice.sources[0]!.layer_range[1] - slice.sources[0]!.layer_range[0]
    if (index < n) {
      return {
        sources: slice.sources.map((s) => ({ model: s.model, tensor: `model.layers.${s.layer_range[0] + index}.${layer[2]}`, parameters: s.parameters })),
        t: n > 1 ? index / (n - 1) : 1,
        sliceParameters: "parameters" in slice ? slice.parameters : undefined
      }
    }
    index -= n
  }
  throw new Error(`output layer ${layer[1]} is past the slices`)
}

/** The number of output layers: the slices' lengths, summed. */
export const outputLayers = (config: MergekitConfig, layersOf: (model: string) => number): number =>
  config.slices === undefined
    ? layersOf(config.base_model ?? config.models![0]!.model)
    : config.slices.reduce((s, slice) => s + slice.sources[0]!.layer_range[1] - slice.sources[0]!.layer_range[0], 0)

/** mergekit's slerp (merge_methods/slerp.py): whole-tensor directions, lerp when nearly colinear. */
export const slerp = (t: number, v0: Float64Array, v1: Float64Array): Float64Array => {
  const norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
  const n0 = norm(v0), n1 = norm(v1)
  const u0 = n0 > 1e-8 ? v0.map((x) => x / n0) : v0
  const u1 = n1 > 1e-8 ? v1.map((x) => x / n1) : v1
  const dot = u0.reduce((s, x, j) => s + x * u1[j]!, 0)
  if (Math.abs(dot) > 0.9995) return v0.map((x, j) => (1 - t) * x + t * v1[j]!)
  const theta0 = Math.acos(dot)
  const s0 = Math.sin(theta0 - theta0 * t) / Math.sin(theta0)
  const s1 = Math.sin(theta0 * t) / Math.sin(theta0)
  return v0.map((x, j) => s0 * x + s1 * v1[j]!)
}

/**
 * The float64 value mergekit computes for output tensor `name` of `shape`, from the input models'
 * tensors (`models.get(ref)`, ref as the config names the model).
 */
export const expectedTensor = (config: MergekitConfig, models: (ref: string) => Tensors, name: string, shape: ReadonlyArray<number>): Float64Array => {
  const { sources, t, sliceParameters } = plan(config, (ref) => layerCount(models(ref)), name)
  const values = (s: Source) => models(s.model).get(s.tensor)!.values
  const parameter = (p: string, s: Source | undefined, fallback?: number): number => {
    const own = s?.parameters?.[p] === undefined ? undefined : evaluateSetting(s.parameters[p], s.tensor, t)
    const slice = sliceParameters?.[p] === undefined ? undefined : evaluateSetting(sliceParameters[p], name, t)
    const global = config.parameters?.[p] === undefined ? undefined : evaluateSetting(config.parameters[p], name, t)
    const v = own ?? slice ?? global ?? fallback
    if (v === undefined) throw new Error(`no ${p} for ${s?.model ?? "the merge"} at ${name}`)
    return v
  }
  const flag = (p: string, fallback: boolean): boolean => (config.parameters?.[p] ?? fallback) as boolean
  const base = sources.find((s) => s.model === config.base_model)
  const others = sources.filter((s) => s !== base)
  switch (config.merge_method) {
    case "passthrough":
      return values(sources[0]!).slice()
    case "linear": {
      const weights = sources.map((s) => parameter("weight", s))
      const total = weights.reduce((a, b) => a + b, 0)
      const normalize = flag("normalize", true)
      return values(sources[0]!).map((_, j) => sources.reduce((acc, s, i) => acc + weights[i]! * values(s)[j]!, 0) / (normalize ? total : 1))
    }
    case "slerp":
      return slerp(parameter("t", undefined), values(base!), values(others[0]!))
    case "ties":
      return generalized(Float32Array.from(values(base!)), others.map((s) => Float32Array.from(values(s))), {
        weights: others.map((s) => parameter("weight", s)),
        density: others.map((s) => parameter("density", s, 1)),
        sparsify: "magnitude",
        consensus: "sum",
        rescale: "none",
        normalize: flag("normalize", true),
        tensor: name,
        shape
      })
    case "arcee_fusion":
      return Float64Array.from(arceeFusion(shape, [...values(others[0]!)], [...values(base!)]))
    default:
      throw new Error(`no reference for merge_method ${config.merge_method}`)
  }
}
