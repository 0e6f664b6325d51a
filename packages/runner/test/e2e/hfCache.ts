// A fake Hugging Face cache for tests: `HF_HOME/hub/models--org--name/snapshots/<rev>/` holding a
// tiny LLaMA folder, with `refs/main` naming the revision, as huggingface_hub lays it out. The CLI
// resolves a mergekit `model: org/name` there (never a download).
import * as fs from "node:fs"
import * as path from "node:path"
import { type TinyLlama, type Values, writeTinyLlama } from "../../../strategies/test/hf/tinyLlama.ts"

const REVISION = "0123abcd"

/** The snapshot folder of Hub id `org/name` in the cache at `hfHome`. */
export const snapshotOf = (hfHome: string, id: string): string =>
  path.join(hfHome, "hub", `models--${id.replace("/", "--")}`, "snapshots", REVISION)

/** Writes a tiny LLaMA as Hub id `org/name` into the cache at `hfHome`; returns its tensors' values. */
export const writeHubModel = async (hfHome: string, id: string, options: TinyLlama): Promise<Values> => {
  const repo = path.join(hfHome, "hub", `models--${id.replace("/", "--")}`)
  fs.mkdirSync(path.join(repo, "refs"), { recursive: true })
  fs.writeFileSync(path.join(repo, "refs", "main"), REVISION)
  return writeTinyLlama(snapshotOf(hfHome, id), options)
}
