/**
 * TF.js core, the instance strategies' modules use: bench/ has no node_modules, so the bare
 * specifier resolves only in the kit (gpu-kit/node_modules, next to the bundle); from the
 * repository it is resolved from packages/strategies. The same for the webgpu backend package.
 */
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const load = async (specifier: string): Promise<any> => {
  try {
    return await import(specifier)
  } catch {
    const strategies = createRequire(path.join(import.meta.dirname, "..", "..", "packages", "strategies", "package.json"))
    return import(pathToFileURL(strategies.resolve(specifier)).href)
  }
}

export const tf: typeof import("@tensorflow/tfjs-core") = await load(["@tensorflow", "tfjs-core"].join("/"))
export const loadWebGpuBackend = (): Promise<any> => load(["@tensorflow", "tfjs-backend-webgpu"].join("/"))
