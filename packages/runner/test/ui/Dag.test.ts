import { describe, expect, it } from "vitest"
import * as Dag from "../../src/ui/Dag.ts"

const node = (id: string, dependsOn: ReadonlyArray<string> = [], kind = "merge/linear"): Dag.DagNode => ({ id, kind, dependsOn })

// Edges (a→b) and (c→d) cross when a is above c but d is above b.
const crossings = (layout: Dag.DagLayout): number => {
  const at = new Map(layout.nodes.map((n) => [n.id, n] as const))
  let count = 0
  for (const [i, e] of layout.edges.entries()) {
    for (const f of layout.edges.slice(i + 1)) {
      const [a, b, c, d] = [at.get(e.from)!, at.get(e.to)!, at.get(f.from)!, at.get(f.to)!]
      if (a.layer !== c.layer || b.layer !== d.layer) continue
      if ((a.y - c.y) * (b.y - d.y) < 0) count++
    }
  }
  return count
}

describe("DAG layout", () => {
  it("puts each stage one column after the last stage it reads from", () => {
    const nodes = [node("a", [], "load"), node("b", ["a"]), node("c", ["a"]), node("d", ["b", "c"]), node("e", [], "load"), node("f", ["e", "d"])]
    expect(Object.fromEntries(Dag.layers(nodes))).toEqual({ a: 0, b: 1, c: 1, d: 2, e: 0, f: 3 })
  })

  it("places boxes on a grid without overlap and routes every edge from the right side of its source to the left side of its target", () => {
    const nodes = [node("a", [], "load"), node("b", ["a"]), node("c", ["a"]), node("d", ["b", "c"]), node("e", [], "load")]
    const dag = Dag.layout(nodes)
    const w = dag.nodeWidth
    const h = dag.nodeHeight
    for (const n of dag.nodes) expect(n.x).toBe(12 + n.layer * (w + 56))
    for (const [i, p] of dag.nodes.entries()) {
      for (const q of dag.nodes.slice(i + 1)) {
        const apart = p.x + w <= q.x || q.x + w <= p.x || p.y + h <= q.y || q.y + h <= p.y
        expect(apart, `${p.id} and ${q.id} overlap`).toBe(true)
      }
      expect(p.x + w).toBeLessThanOrEqual(dag.width)
      expect(p.y + h).toBeLessThanOrEqual(dag.height)
    }
    expect(dag.edges.map((e) => `${e.from}->${e.to}`).sort()).toEqual(["a->b", "a->c", "b->d", "c->d"])
    const at = new Map(dag.nodes.map((n) => [n.id, n] as const))
    for (const e of dag.edges) {
      const numbers = e.d.match(/-?\d+(\.\d+)?/g)!.map(Number)
      const [x1, y1] = numbers
      const [x2, y2] = numbers.slice(-2)
      expect([x1, y1]).toEqual([at.get(e.from)!.x + w, at.get(e.from)!.y + h / 2])
      expect([x2, y2]).toEqual([at.get(e.to)!.x, at.get(e.to)!.y + h / 2])
    }
  })

  it("orders a column by its dependencies' rows, so edges that would cross in file order do not", () => {
    // File order puts y (reads q) above x (reads p) while p is above q: one crossing unless reordered.
    const nodes = [node("p", [], "load"), node("q", [], "load"), node("y", ["q"]), node("x", ["p"])]
    const dag = Dag.layout(nodes)
    expect(crossings(dag)).toBe(0)
    expect(Dag.order(nodes, Dag.layers(nodes))[1]).toEqual(["x", "y"])
  })

  it("is deterministic, ignores references to unknown stages, and terminates on a cycle", () => {
    const nodes = [node("a", ["ghost"]), node("b", ["a", "c"]), node("c", ["b"])]
    expect(Dag.layout(nodes)).toEqual(Dag.layout(nodes))
    expect(Dag.layers(nodes).get("a")).toBe(0)
    expect([...Dag.layers(nodes).keys()].sort()).toEqual(["a", "b", "c"])
  })

  it("draws every stage with its state, its progress as a bar, and escapes names", () => {
    const dag = Dag.layout([node("a", [], "load"), node("b", ["a"], "<script>x</script>")])
    const svg = Dag.svg(dag, new Map<string, Dag.NodeState>([
      ["a", { state: "succeeded" }],
      ["b", { state: "running", progress: { done: 3, total: 12, unit: "tensors" } }]
    ]))
    expect(svg).toContain(`<g class="node" data-stage="a" data-state="succeeded"`)
    expect(svg).toContain(`<g class="node" data-stage="b" data-state="running"`)
    expect(svg).not.toContain("<script>")
    expect(svg).toContain("&lt;script&gt;")
    const bars = [...svg.matchAll(/<rect class="bar"[^>]* width="([\d.]+)" data-width="(\d+)"/g)].map((m) => [Number(m[1]), Number(m[2])])
    expect(bars).toEqual([[dag.nodeWidth - 2, dag.nodeWidth - 2], [Math.round(((dag.nodeWidth - 2) * 3) / 12 * 100) / 100, dag.nodeWidth - 2]])
    expect(svg.match(/<path class="edge" data-from="a" data-to="b"/g)).toHaveLength(1)
  })
})
