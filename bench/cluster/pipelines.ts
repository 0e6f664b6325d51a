// The two pipelines the bench runs, written into a folder of their own per configuration (so every
// configuration writes its outputs afresh): examples/soup as it is (or with its epochs scaled), and N
// independent tiny units for the scheduling overhead.
import * as fs from "node:fs"
import * as path from "node:path"
import { ROOT } from "./cluster.ts"

/**
 * A copy of examples/soup (pipeline + arch) in `dir`; `epochsScale` ≠ 1 rewrites every `epochs: E` as
 * max(1, round(E × scale)). Returns the pipeline's path.
 */
export const writeSoup = (dir: string, epochsScale: number): string => {
  fs.mkdirSync(dir, { recursive: true })
  const source = path.join(ROOT, "examples", "soup")
  fs.copyFileSync(path.join(source, "mlp.arch.yaml"), path.join(dir, "mlp.arch.yaml"))
  let yaml = fs.readFileSync(path.join(source, "pipeline.yaml"), "utf8")
  if (epochsScale !== 1) yaml = yaml.replace(/epochs: (\d+)/g, (_, e: string) => `epochs: ${Math.max(1, Math.round(Number(e) * epochsScale))}`)
  const file = path.join(dir, "pipeline.yaml")
  fs.writeFileSync(file, yaml)
  return file
}

/** The soup's stages that train (the work a second worker can share). */
export const soupTrainings = (file: string): number => (fs.readFileSync(file, "utf8").match(/uses: train\b/g) ?? []).length

/**
 * `units` independent units: two lazy loads of the torch fixtures, and per unit a lazy linear merge
 * with its own weights saved to its own file — so each unit is `load, load, merge/linear, save`, a few
 * milliseconds of work, and the cluster's cost per unit is what remains.
 */
export const writeTiny = (dir: string, units: number): string => {
  fs.mkdirSync(dir, { recursive: true })
  const fixtures = path.join(ROOT, "packages", "core", "fixtures", "torch")
  const lines = [
    "version: 1",
    "name: cluster-bench-tiny",
    `description: ${units} independent merge-and-save units (scheduling overhead).`,
    "stages:",
    `  a: { uses: load, with: { path: ${path.join(fixtures, "merge_a.pt")} } }`,
    `  b: { uses: load, with: { path: ${path.join(fixtures, "merge_b.pt")} } }`
  ]
  for (let i = 0; i < units; i++) {
    const id = String(i).padStart(3, "0")
    const w = (i + 1) / (units + 1)
    lines.push(`  m${id}: { uses: merge/linear, with: { models: [a, b], weights: [${w.toFixed(6)}, ${(1 - w).toFixed(6)}] } }`)
    lines.push(`  s${id}: { uses: save, with: { model: m${id}, path: out/m${id}.safetensors } }`)
  }
  const file = path.join(dir, "pipeline.yaml")
  fs.writeFileSync(file, `${lines.join("\n")}\n`)
  return file
}
