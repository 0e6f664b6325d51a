/**
 * The name a Hugging Face model card gives a model folder: the Hub id of a snapshot in the local
 * Hugging Face cache (`…/hub/models--org--name/snapshots/<sha>` → `org/name`, the layout
 * `huggingface_hub` writes), else the folder's own name.
 *
 * @since 0.1.0
 */
import * as path from "node:path"

const CACHE_REPO = /^models--(.+)$/

/**
 * The Hub id of a cache snapshot folder, or undefined for any other folder.
 *
 * @category getters
 */
export const ofSnapshot = (folder: string): string | undefined => {
  const parts = path.resolve(folder).split(path.sep)
  const snapshots = parts.length - 2
  if (snapshots < 1 || parts[snapshots] !== "snapshots") return undefined
  const repo = CACHE_REPO.exec(parts[snapshots - 1]!)
  // The cache joins the id's parts with "--" (`models--meta-llama--Llama-3.1-8B`).
  return repo === null ? undefined : repo[1]!.split("--").join("/")
}

/**
 * How a model card names `folder`: its Hub id when it is a cache snapshot, else its name.
 *
 * @category getters
 */
export const of = (folder: string): string => ofSnapshot(folder) ?? path.basename(path.resolve(folder))
