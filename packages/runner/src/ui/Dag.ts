/**
 * The pipeline DAG as a picture: a layered layout (left to right, a stage one column after the
 * last stage it reads from; within a column, stages ordered by the mean row of their neighbours
 * to keep edges from crossing), and its SVG. Pure functions: the live page, the report and the
 * tests get the same boxes for the same pipeline.
 *
 * Each stage is a `<g class="node" data-stage="id" data-state="…">`, so the live page recolours a
 * stage by changing one attribute, and a `rect.bar` whose width is the stage's progress.
 *
 * @since 0.1.0
 */
import * as ProgressBar from "../cli/Progress.ts"
import { clip, escape, num } from "./Html.ts"
import type { Progress, StageState } from "./RunView.ts"

/** A stage to place. @category models */
export interface DagNode {
  readonly id: string
  readonly kind: string
  readonly dependsOn: ReadonlyArray<string>
}

/** A placed stage. @category models */
export interface PlacedNode {
  readonly id: string
  readonly kind: string
  /** Column: 0 for stages that read from no stage. */
  readonly layer: number
  /** Row within the column. */
  readonly row: number
  readonly x: number
  readonly y: number
}

/** @category models */
export interface PlacedEdge {
  readonly from: string
  readonly to: string
  /** SVG path data: a cubic curve from the right side of `from` to the left side of `to`. */
  readonly d: string
}

/** @category models */
export interface DagLayout {
  readonly width: number
  readonly height: number
  readonly nodeWidth: number
  readonly nodeHeight: number
  readonly nodes: ReadonlyArray<PlacedNode>
  readonly edges: ReadonlyArray<PlacedEdge>
}

const NODE_HEIGHT = 48
const GAP_X = 56
const GAP_Y = 18
const PAD = 12
const LABEL_MAX = 24

/**
 * The column of each stage: 1 + the largest column of the stages it depends on. Dependencies on
 * unknown stages are ignored; a cycle (which a valid pipeline never has) is cut where it closes.
 */
export const layers = (nodes: ReadonlyArray<DagNode>): ReadonlyMap<string, number> => {
  const byId = new Map(nodes.map((n) => [n.id, n] as const))
  const layer = new Map<string, number>()
  const visiting = new Set<string>()
  const visit = (id: string): number => {
    const known = layer.get(id)
    if (known !== undefined) return known
    if (visiting.has(id)) return -1
    visiting.add(id)
    const deps = (byId.get(id)?.dependsOn ?? []).filter((d) => byId.has(d))
    const value = deps.length === 0 ? 0 : 1 + Math.max(...deps.map(visit))
    visiting.delete(id)
    layer.set(id, Math.max(0, value))
    return Math.max(0, value)
  }
  for (const n of nodes) visit(n.id)
  return layer
}

const mean = (xs: ReadonlyArray<number>): number | undefined => (xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length)

/**
 * Rows within each column: first in pipeline order, then by a few barycenter sweeps (down using
 * the rows of dependencies, up using the rows of dependents), a stage with no neighbour keeping
 * its place. Stable, so equal inputs give equal pictures.
 */
export const order = (nodes: ReadonlyArray<DagNode>, layerOf: ReadonlyMap<string, number>): ReadonlyArray<ReadonlyArray<string>> => {
  const depth = Math.max(0, ...layerOf.values()) + 1
  const columns: Array<Array<string>> = Array.from({ length: depth }, () => [])
  for (const n of nodes) columns[layerOf.get(n.id) ?? 0]!.push(n.id)
  const deps = new Map(nodes.map((n) => [n.id, n.dependsOn] as const))
  const dependents = new Map<string, Array<string>>(nodes.map((n) => [n.id, []]))
  for (const n of nodes) for (const d of n.dependsOn) dependents.get(d)?.push(n.id)
  const rowOf = new Map<string, number>()
  const index = () => columns.forEach((c) => c.forEach((id, i) => rowOf.set(id, i)))
  const sweep = (column: Array<string>, neighbours: (id: string) => ReadonlyArray<string>) => {
    const keyed = column.map((id, i) => ({ id, key: mean(neighbours(id).flatMap((n) => rowOf.get(n) ?? [])) ?? i, i }))
    keyed.sort((a, b) => a.key - b.key || a.i - b.i)
    column.splice(0, column.length, ...keyed.map((k) => k.id))
    index()
  }
  index()
  for (let pass = 0; pass < 2; pass++) {
    for (let l = 1; l < depth; l++) sweep(columns[l]!, (id) => deps.get(id) ?? [])
    for (let l = depth - 2; l >= 0; l--) sweep(columns[l]!, (id) => dependents.get(id) ?? [])
  }
  for (let l = 1; l < depth; l++) sweep(columns[l]!, (id) => deps.get(id) ?? [])
  return columns
}

/** Places every stage and routes every edge. */
export const layout = (nodes: ReadonlyArray<DagNode>): DagLayout => {
  const layerOf = layers(nodes)
  const columns = order(nodes, layerOf)
  const longest = Math.max(8, ...nodes.map((n) => Math.min(LABEL_MAX, Math.max(n.id.length, n.kind.length))))
  const nodeWidth = Math.round(longest * 7.4 + 24)
  const tallest = Math.max(1, ...columns.map((c) => c.length))
  const placed = new Map<string, PlacedNode>()
  const byId = new Map(nodes.map((n) => [n.id, n] as const))
  columns.forEach((column, layer) => {
    // Shorter columns are centred against the tallest.
    const offset = ((tallest - column.length) * (NODE_HEIGHT + GAP_Y)) / 2
    column.forEach((id, row) => {
      placed.set(id, { id, kind: byId.get(id)!.kind, layer, row, x: PAD + layer * (nodeWidth + GAP_X), y: PAD + offset + row * (NODE_HEIGHT + GAP_Y) })
    })
  })
  const edges: Array<PlacedEdge> = []
  for (const n of nodes) {
    for (const dep of new Set(n.dependsOn)) {
      const a = placed.get(dep)
      const b = placed.get(n.id)
      if (a === undefined || b === undefined) continue
      const x1 = a.x + nodeWidth
      const y1 = a.y + NODE_HEIGHT / 2
      const x2 = b.x
      const y2 = b.y + NODE_HEIGHT / 2
      const bend = Math.max(GAP_X / 2, (x2 - x1) / 2)
      edges.push({ from: dep, to: n.id, d: `M${num(x1)},${num(y1)} C${num(x1 + bend)},${num(y1)} ${num(x2 - bend)},${num(y2)} ${num(x2)},${num(y2)}` })
    }
  }
  return {
    width: PAD * 2 + columns.length * nodeWidth + Math.max(0, columns.length - 1) * GAP_X,
    height: PAD * 2 + tallest * NODE_HEIGHT + (tallest - 1) * GAP_Y,
    nodeWidth,
    nodeHeight: NODE_HEIGHT,
    nodes: nodes.map((n) => placed.get(n.id)!),
    edges
  }
}

/** The fraction of a stage's work done, in [0, 1], if it reported progress: in the bar's one measure (bytes when reported). */
export const fractionDone = (progress: Progress | undefined): number | undefined =>
  progress === undefined ? undefined : ProgressBar.fraction(ProgressBar.amount(progress))

/** What the SVG shows of each stage. */
export interface NodeState {
  readonly state: StageState
  readonly progress?: Progress | undefined
  /** From the results store, or the value of an earlier stage with the same key. */
  readonly cached?: boolean | undefined
  readonly sameAs?: string | undefined
}

/** The reuse line of a node: `cached`, `= train` (same as), both, or nothing. */
export const reuseText = (s: Pick<NodeState, "cached" | "sameAs">): string =>
  [s.cached === true ? "cached" : "", s.sameAs === undefined ? "" : `= ${s.sameAs}`].filter((t) => t !== "").join(" ")

/** The DAG as an SVG element; stage boxes link to `#stage-<id>` (their details on the same page). */
export const svg = (dag: DagLayout, states: ReadonlyMap<string, NodeState>): string => {
  const w = dag.nodeWidth
  const h = dag.nodeHeight
  const edges = dag.edges.map((e) => `<path class="edge" data-from="${escape(e.from)}" data-to="${escape(e.to)}" d="${e.d}" marker-end="url(#dag-arrow)"/>`)
  const nodes = dag.nodes.map((n) => {
    const s = states.get(n.id) ?? { state: "pending" }
    const fraction = fractionDone(s.progress)
    const done = s.state === "succeeded" ? 1 : fraction ?? 0
    const reuse = reuseText(s)
    const reuseTitle = [s.cached === true ? "cached" : "", s.sameAs === undefined ? "" : `same as ${s.sameAs}`].filter((t) => t !== "").join(", ")
    return [
      `<g class="node" data-stage="${escape(n.id)}" data-state="${s.state}"${s.cached === true ? ` data-cached="true"` : ""} transform="translate(${num(n.x)},${num(n.y)})">`,
      `<a href="#stage-${escape(n.id)}"><title>${escape(`${n.id} (${n.kind}): ${s.state}${reuseTitle === "" ? "" : ` (${reuseTitle})`}`)}</title>`,
      `<rect class="box" width="${w}" height="${h}" rx="6"/>`,
      `<text class="id" x="10" y="19">${escape(clip(n.id, LABEL_MAX))}</text>`,
      `<text class="kind" x="10" y="35">${escape(clip(n.kind, LABEL_MAX))}</text>`,
      `<text class="reuse" x="${w - 8}" y="19" text-anchor="end">${escape(clip(reuse, 14))}</text>`,
      `<rect class="bar" x="1" y="${h - 5}" height="4" width="${num((w - 2) * done)}" data-width="${w - 2}"/>`,
      `</a></g>`
    ].join("")
  })
  return [
    `<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="${dag.width}" height="${dag.height}" viewBox="0 0 ${dag.width} ${dag.height}" role="img" aria-label="pipeline stages and their dependencies">`,
    `<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>`,
    ...edges,
    ...nodes,
    `</svg>`
  ].join("")
}
