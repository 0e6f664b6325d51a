/**
 * What makes a model runnable: its architecture. Stages that run models take `arch:` (inline, or a
 * YAML/JSON file, or a TF.js `model.json` whose Sequential topology is converted) or read it from
 * the model's metadata (`crucible.arch`), which `train` writes and merges, alignment and saves
 * carry along — so a merged model can be evaluated without repeating its architecture. A model
 * read from a TF.js `model.json` runs without `arch:`: its topology (`tfjs.modelTopology`) gives
 * the architecture and its weights are renamed to PyTorch names and layouts
 * (`TfjsTopology.ts`). Parameters convert to and from core's lazy `Model` here.
 *
 * @since 0.1.0
 */
import { type IoError, Model, type Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import { parse as parseYaml } from "yaml"
import * as Arch from "./Arch.ts"
import * as Init from "./Init.ts"
import { ArchError } from "./ModelError.ts"
import * as Network from "./Network.ts"
import * as Params from "./Params.ts"
import * as TfjsTopology from "./TfjsTopology.ts"

/** The metadata key holding a model's architecture as JSON. */
export const ARCH_KEY = "crucible.arch"

/** `arch:` as written: an architecture, or the path of a YAML/JSON file holding one. @category schemas */
export const ArchParam = Schema.Union([Schema.String, Schema.Record(Schema.String, Schema.Unknown)])
export type ArchParam = typeof ArchParam.Type

/** What `arch:` reads: the file when it names one. */
export const archReads = (param: ArchParam | undefined): ReadonlyArray<Stage.Read> => typeof param === "string" ? [{ file: param }] : []

const topologyError = (e: TfjsTopology.TfjsTopologyError) => new ArchError({ path: `${e.source}: ${e.layer}`, detail: e.detail })

/** A parsed file is a TF.js model.json when it has a `modelTopology`. */
const isModelJson = (raw: unknown): raw is { readonly modelTopology: unknown } =>
  typeof raw === "object" && raw !== null && !Array.isArray(raw) && "modelTopology" in raw

/** Reads `arch:`; a string is a file relative to the pipeline (YAML/JSON spec, or a TF.js model.json). */
export const decodeArch = (param: ArchParam, resolvePath: (p: string) => string): Effect.Effect<Arch.Arch, ArchError> =>
  Effect.gen(function* () {
    if (typeof param !== "string") return yield* Arch.decode(param)
    const file = resolvePath(param)
    const raw = yield* Effect.try({
      try: () => parseYaml(fs.readFileSync(file, "utf8")) as unknown,
      catch: (e) => new ArchError({ path: file, detail: `cannot read the architecture file: ${e instanceof Error ? e.message : String(e)}` })
    })
    if (isModelJson(raw)) return (yield* TfjsTopology.fromTopology(raw.modelTopology, file).pipe(Effect.mapError(topologyError))).arch
    return yield* Arch.decode(raw, file)
  })

/** The architecture of `model`: from `arch:` when given, else from its metadata. */
export const archOf = (model: Model.Model, param: ArchParam | undefined, resolvePath: (p: string) => string): Effect.Effect<Arch.Arch, ArchError> =>
  Effect.gen(function* () {
    if (param !== undefined) return yield* decodeArch(param, resolvePath)
    const stored = model.metadata[ARCH_KEY]
    if (stored === undefined && TfjsTopology.hasTopology(model)) return (yield* TfjsTopology.fromModel(model).pipe(Effect.mapError(topologyError))).arch
    if (stored === undefined) {
      return yield* new ArchError({ path: "arch", detail: `${model.source} carries no architecture (no "${ARCH_KEY}" metadata nor TF.js topology): give the stage an arch: parameter` })
    }
    return yield* Arch.decode(JSON.parse(stored), `${model.source} metadata ${ARCH_KEY}`)
  })

/** The architecture a training stage builds: `init`'s (with `arch` over it) when it starts from a model, else `arch`. */
export const archFor = (init: Model.Model | undefined, param: ArchParam | undefined, resolvePath: (p: string) => string) =>
  init === undefined ? decodeArch(param ?? {}, resolvePath) : archOf(init, param, resolvePath)

/** A training stage's network and first weights: `init`'s when it is given, else fresh ones drawn from `seed`. */
export const startingPoint = (init: Model.Model | undefined, param: ArchParam | undefined, seed: number, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    const network = yield* Network.resolve(yield* archFor(init, param, resolvePath))
    const params = init === undefined ? Init.initNetwork(network, seed) : (yield* load(init, param, resolvePath)).params
    return { network, params }
  })

/** A model's network and parameters (all tensors read). */
export const load = (model: Model.Model, param: ArchParam | undefined, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    const arch = yield* archOf(model, param, resolvePath)
    const network = yield* Network.resolve(arch)
    // A TF.js model keeps Keras names and layouts until its own topology maps them to PyTorch's.
    const tfjsNamed = TfjsTopology.hasTopology(model) && !network.params.every((p) => model.tensors.has(p.name))
    const torchModel = tfjsNamed
      ? yield* TfjsTopology.toTorchModel(model, yield* TfjsTopology.fromModel(model).pipe(Effect.mapError(topologyError)))
      : model
    const params = yield* Params.fromModel(network, torchModel)
    return { arch, network, params }
  })

/** A model of `params` that carries its architecture. */
export const toModel = (network: Network.Network, params: Params.ParamSet, source: string, metadata: Readonly<Record<string, string>> = {}): Model.Model =>
  Params.toModel(network, params, source, { ...metadata, [ARCH_KEY]: JSON.stringify(network.arch) })

/** The error types `load` may fail with, for stage signatures. */
export type LoadError = Effect.Error<ReturnType<typeof load>> | IoError.ModelIoError
