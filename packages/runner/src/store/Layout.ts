/**
 * Where the results store keeps things (default root: `<runs>/.cache`, shared by every run of
 * one runs folder). One place names every path, so the executor, `crucible cache` and the
 * interruption message agree:
 *
 * ```
 * <root>/results/<key>/result.json   what the stage produced (a ResultRecord) — its mtime is the last use
 * <root>/results/<key>/model.safetensors, metrics.json, artifacts/…   the payload
 * <root>/work/<key>/                 a stage's scratch across runs (training checkpoints) until it finishes
 * <root>/locks/<key>.lock            the run computing that key now (pid, start time, host)
 * <root>/locks/path-<hash>.lock      the run writing that output path now
 * <root>/tmp/<owner>.<random>/       results being published (renamed into results/ when whole)
 * <root>/digests/                    file digests by device, inode, size and mtime
 * ```
 *
 * @since 0.2.0
 */
import type { Model } from "@crucible/core"
import { createHash } from "node:crypto"
import * as path from "node:path"

/** The folder of a stored result. */
export const resultDir = (root: string, key: string): string => path.join(root, "results", key)
/** The record of a stored result; its presence means the result is whole (the folder is renamed into place). */
export const resultFile = (root: string, key: string): string => path.join(resultDir(root, key), RESULT_FILE)
/** A stage's scratch folder across runs (its `cacheDir`): checkpoints of training, removed once its result is stored. */
export const workDir = (root: string, key: string): string => path.join(root, "work", key)
/** The lock file of a key. */
export const lockFile = (root: string, key: string): string => path.join(root, "locks", `${key}.lock`)
/** The lock file of an output path: two runs sharing a store never write one output at once. */
export const pathLockFile = (root: string, target: string): string =>
  path.join(root, "locks", `path-${createHash("sha256").update(path.resolve(target)).digest("hex").slice(0, 32)}.lock`)
/** Where results are assembled before they are renamed into `results/`. */
export const tmpDir = (root: string): string => path.join(root, "tmp")
/** The file-digest cache. */
export const digestsDir = (root: string): string => path.join(root, "digests")

export const RESULTS = "results"
export const WORK = "work"
export const RESULT_FILE = "result.json"
/** A stored model's file inside its result folder. */
export const MODEL_FILE = "model.safetensors"
/** A stored metrics value inside its result folder. */
export const METRICS_FILE = "metrics.json"
/** Files a metrics stage wrote beside its metrics (plots), copied here by their run-relative path. */
export const ARTIFACTS = "artifacts"

/** Who computes a result: the key, the kind, and the stage (id), run and pipeline that computed it. @category models */
export interface Producer {
  readonly key: string
  readonly kind: string
  readonly version: number
  readonly stage: string
  readonly runId: string
  readonly pipeline: string
}

/** What `result.json` says. @category models */
export interface ResultRecord extends Producer {
  readonly crucible: { readonly resultVersion: 1 }
  readonly type: "model" | "metrics" | "files"
  readonly createdAt: string
  /** Bytes of the payload in the store (a `files` result's files live at their output paths: 0). */
  readonly bytes: number
  /** `model`: its `source` and metadata as the stage made them (the stored file's header adds provenance keys). */
  readonly source?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /** `model`: the Hugging Face folders it came from (Model.provenance), for an output folder's config and card. */
  readonly provenance?: Model.Provenance | undefined
  /** `metrics`: the artifacts' run-relative paths (stored under `artifacts/`). */
  readonly artifacts?: ReadonlyArray<string> | undefined
  /** `files`: the files the stage wrote, with the digests a later run checks before skipping it. */
  readonly files?: ReadonlyArray<{ readonly path: string; readonly bytes: number; readonly sha256: string }> | undefined
}
