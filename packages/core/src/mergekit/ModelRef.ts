/**
 * mergekit model references, resolved to folders on this machine: a local folder (relative to the
 * config file), or a Hugging Face Hub id `org/name[@revision]` found in the local Hugging Face
 * cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), in
 * `models--org--name/snapshots/<revision>/` — the revision `refs/<revision or main>` names, else
 * the only (or newest) snapshot. Crucible never downloads: an absent model is a typed error naming
 * the folder it expected.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** A Hub model that is not in the local cache. @category errors */
export class HubModelNotCached extends Schema.TaggedError<HubModelNotCached>()("HubModelNotCached", {
  id: Schema.String,
  expected: Schema.String
}) {
  override get message() {
    return `model "${this.id}" is not in the local Hugging Face cache: expected the folder ${this.expected}; Crucible never downloads — fetch it first (\`hf download ${this.id.split("@")[0]}\`), or name a local folder`
  }
}

/** A reference that names no folder and no Hub id, or a form Crucible does not take (`model+lora`). @category errors */
export class UnsupportedModelRef extends Schema.TaggedError<UnsupportedModelRef>()("UnsupportedModelRef", {
  ref: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `model "${this.ref}": ${this.detail}`
  }
}

/** The environment variables the Hugging Face cache is found by. @category models */
export interface Env {
  readonly HF_HUB_CACHE?: string | undefined
  readonly HF_HOME?: string | undefined
  readonly HOME?: string | undefined
}

/** A resolved reference: the folder to load, as written for the pipeline (relative to the config, or absolute). @category models */
export interface Resolved {
  readonly ref: string
  readonly path: string
  readonly hub: boolean
  /** A short name for stage ids: the last path segment of the folder or Hub id. */
  readonly shortName: string
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/

/** The Hugging Face hub cache folder of `env`. @category resolution */
export const hubCache = (env: Env): string =>
  env.HF_HUB_CACHE ?? (env.HF_HOME !== undefined ? path.join(env.HF_HOME, "hub") : path.join(env.HOME ?? os.homedir(), ".cache", "huggingface", "hub"))

const isDir = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() === true

/** The snapshot folder of `org/name` at `revision` (default: main) in the cache, or the error naming where it was expected. @category resolution */
export const resolveHub = (id: string, revision: string | undefined, env: Env): Result.Result<string, HubModelNotCached> => {
  const repo = path.join(hubCache(env), `models--${id.replace("/", "--")}`)
  const snapshots = path.join(repo, "snapshots")
  const shown = revision === undefined ? id : `${id}@${revision}`
  const ref = path.join(repo, "refs", revision ?? "main")
  if (fs.existsSync(ref)) {
    const sha = fs.readFileSync(ref, "utf8").trim()
    if (isDir(path.join(snapshots, sha))) return Result.succeed(path.join(snapshots, sha))
    return Result.fail(new HubModelNotCached({ id: shown, expected: path.join(snapshots, sha) + path.sep }))
  }
  if (revision !== undefined) {
    return isDir(path.join(snapshots, revision))
      ? Result.succeed(path.join(snapshots, revision))
      : Result.fail(new HubModelNotCached({ id: shown, expected: path.join(snapshots, revision) + path.sep }))
  }
  const found = isDir(snapshots) ? fs.readdirSync(snapshots).filter((s) => isDir(path.join(snapshots, s))) : []
  if (found.length === 0) return Result.fail(new HubModelNotCached({ id: shown, expected: path.join(snapshots, "<revision>") + path.sep }))
  // No refs/main: the newest snapshot, as a cache filled by hand usually has one.
  const newest = found.map((s) => ({ s, t: fs.statSync(path.join(snapshots, s)).mtimeMs })).sort((a, b) => b.t - a.t || a.s.localeCompare(b.s))[0]!.s
  return Result.succeed(path.join(snapshots, newest))
}

/**
 * Resolves a reference as mergekit reads it: an existing folder first (here relative to the
 * config's folder `baseDir`), then a Hub id from the cache. `model+lora` is refused.
 *
 * @category resolution
 */
export const resolve = (ref: string, baseDir: string, env: Env): Result.Result<Resolved, HubModelNotCached | UnsupportedModelRef> => {
  if (ref.includes("+")) return Result.fail(new UnsupportedModelRef({ ref, detail: "a model with a LoRA applied (model+lora) is not supported; merge the adapter into the model first and reference the merged folder" }))
  const shortName = (p: string) => path.basename(p.replace(/[\\/]+$/, "")) || p
  if (isDir(path.resolve(baseDir, ref))) return Result.succeed({ ref, path: ref, hub: false, shortName: shortName(ref) })
  const at = ref.lastIndexOf("@")
  const id = at > 0 ? ref.slice(0, at) : ref
  const revision = at > 0 ? ref.slice(at + 1) : undefined
  if (!HUB_ID.test(id)) {
    return Result.fail(new UnsupportedModelRef({ ref, detail: `no such folder ${path.resolve(baseDir, ref)} (local folders are relative to the config file), and not a Hub id "org/name"` }))
  }
  return Result.map(resolveHub(id, revision, env), (folder) => ({ ref, path: folder, hub: true, shortName: shortName(id) }))
}
