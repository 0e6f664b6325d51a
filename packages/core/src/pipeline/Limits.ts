/**
 * The limits a pipeline file is parsed under: they stop a tiny or hostile file from pinning a core
 * or exhausting memory (a billion-laughs alias chain, a megabyte of `[`, nesting deep enough to
 * overflow the stack), and each one a real pipeline may need is raised by name. The CLI reads them
 * from `CRUCIBLE_PIPELINE_LIMITS` (e.g. `stages=200000,bytes=64MB`); a program passes them to
 * `Yaml.parse` / `Yaml.check` / `Yaml.decode`.
 *
 * @since 0.1.0
 */

/** @category models */
export interface Limits {
  /** The size of the pipeline file, in bytes (UTF-8). */
  readonly bytes: number
  /** The stages under `stages:`. */
  readonly stages: number
  /** The values of the file, estimated from above by its lines and the commas inside `[ ]` and `{ }`. */
  readonly values: number
  /** The keys of any other one mapping. */
  readonly keys: number
  /** How deep collections nest (the top-level mapping is depth 1). */
  readonly depth: number
  /** The aliases (`*name`) in the file. */
  readonly aliases: number
  /** The nodes that expanding every alias adds to the document (bounds "billion laughs"). */
  readonly expansion: number
}

/** The limits when none is raised: far above any real pipeline, far below what hurts. @category constructors */
export const defaults: Limits = {
  bytes: 16 * 1024 * 1024,
  stages: 10_000,
  values: 250_000,
  keys: 10_000,
  depth: 64,
  aliases: 10_000,
  expansion: 1_000_000
}

/** The environment variable the CLI reads limits from. @category constants */
export const ENV = "CRUCIBLE_PIPELINE_LIMITS"

const UNITS: Record<string, number> = { "": 1, K: 1024, KB: 1024, M: 1024 ** 2, MB: 1024 ** 2, G: 1024 ** 3, GB: 1024 ** 3 }

/**
 * Limits from a spec like `stages=200000,depth=128,bytes=64MB` (byte sizes take K/KB, M/MB, G/GB,
 * 1024-based), over `base`; an entry not understood is an error that says what is accepted.
 *
 * @category constructors
 */
export const fromSpec = (spec: string | undefined, base: Limits = defaults): { readonly limits: Limits } | { readonly error: string } => {
  if (spec === undefined || spec.trim() === "") return { limits: base }
  const out: Record<string, number> = { ...base }
  for (const entry of spec.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const match = /^([a-z]+)\s*=\s*(\d[\d_]*)\s*([a-z]*)$/i.exec(entry)
    const name = match?.[1]
    const unit = (match?.[3] ?? "").toUpperCase()
    if (match === null || name === undefined || !(name in base) || UNITS[unit] === undefined || (unit !== "" && name !== "bytes")) {
      return { error: `${ENV}: "${entry}" is not name=number; names are ${Object.keys(base).join(", ")} (bytes may end in KB, MB or GB), e.g. stages=200000,bytes=64MB` }
    }
    const value = Number(match[2]!.replaceAll("_", "")) * UNITS[unit]!
    if (!Number.isSafeInteger(value) || value < 1) return { error: `${ENV}: "${entry}": the limit must be a whole number ≥ 1` }
    out[name] = value
  }
  return { limits: out as unknown as Limits }
}

/** What a problem says to raise a limit. @category formatting */
export const howToRaise = (name: keyof Limits, needed?: number): string =>
  `raise it with ${ENV}=${name}=${needed === undefined ? "N" : String(needed)} if the file is meant to be this large`
