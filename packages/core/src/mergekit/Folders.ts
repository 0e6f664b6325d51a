/**
 * Small helpers of the compiler: readable, unique stage ids, and a model folder's layer count
 * from its `config.json` (to see that a slice spans a whole model).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** A name as a stage-id fragment: letters, digits, `_` and `-`, starting with a letter or `_`. @category ids */
export const stageSlug = (name: string): string => {
  const slug = name.replace(/[^A-Za-z0-9_-]+/g, "_")
  return /^[A-Za-z_]/.test(slug) ? slug : `m_${slug}`
}

/** `base`, or `base_2`, `base_3`… when taken; the id is then taken. @category ids */
export const uniqueId = (base: string, taken: Set<string>): string => {
  let id = base
  for (let n = 2; taken.has(id); n++) id = `${base}_${n}`
  taken.add(id)
  return id
}

/** `num_hidden_layers` (or gpt2's `n_layer`) of a folder's config.json; undefined when unreadable. @category folders */
export const readLayerCount = (folder: string | undefined): number | undefined => {
  if (folder === undefined) return undefined
  try {
    const config = JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8")) as Record<string, unknown>
    const n = config.num_hidden_layers ?? config.n_layer
    return typeof n === "number" ? n : undefined
  } catch {
    return undefined
  }
}
