/**
 * The kernels against values computed by PyTorch/numpy in
 * fixtures/merge/make_reference.py (committed with its output, reference.json).
 */
import { Result } from "effect"
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import * as Linear from "../../../src/merge/kernels/Linear.ts"
import * as Slerp from "../../../src/merge/kernels/Slerp.ts"
import * as TaskArithmetic from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { expectClose } from "./helpers.ts"

interface Case {
  readonly method: "linear" | "task-arithmetic" | "ties" | "slerp"
  readonly params: Record<string, unknown>
  readonly inputs: ReadonlyArray<string>
  readonly expected: ReadonlyArray<number>
}
const fixture = JSON.parse(fs.readFileSync(new URL("../../../fixtures/merge/reference.json", import.meta.url), "utf8")) as {
  readonly shape: ReadonlyArray<number>
  readonly inputs: Record<string, ReadonlyArray<number>>
  readonly cases: ReadonlyArray<Case>
}
const input = (name: string) => Float32Array.from(fixture.inputs[name]!)
const base = input("base")

const compute = (c: Case): Float32Array => {
  const xs = c.inputs.map(input)
  const out = new Float32Array(base.length)
  const p = c.params as {
    readonly weights: ReadonlyArray<number>
    readonly normalize?: boolean
    readonly lambda?: number
    readonly density?: number
    readonly consensus?: "sum" | "count"
    readonly t: number
    readonly base?: boolean
  }
  switch (c.method) {
    case "linear":
      Linear.apply(Result.getOrThrow(Linear.plan({ weights: p.weights, normalize: p.normalize ?? true }, xs.length, "fixture")), out, xs)
      return out
    case "task-arithmetic":
    case "ties": {
      const switches = c.method === "ties" ? { ...TaskArithmetic.presets.ties, consensus: p.consensus ?? "sum" } : TaskArithmetic.presets["task-arithmetic"]
      const plan = Result.getOrThrow(TaskArithmetic.plan({ ...switches, weights: p.weights, lambda: p.lambda ?? 1, density: p.density ?? 1 }, fixture.shape, xs.length, "fixture"))
      TaskArithmetic.apply(TaskStatistics.prepare(plan, base, xs), out, base, xs)
      return out
    }
    case "slerp": {
      const withBase = p.base === true
      const plan = Result.getOrThrow(Slerp.plan({ t: p.t }, Slerp.statistics(xs[0]!, xs[1]!, withBase ? base : undefined), withBase, "fixture"))
      Slerp.apply(plan, out, xs[0]!, xs[1]!, withBase ? base : undefined)
      return out
    }
  }
}

describe("kernels against PyTorch/numpy reference values", () => {
  it("the fixture is the committed one", () => {
    expect(fixture.cases.length).toBe(9)
    expect(base.length).toBe(128)
  })
  it.each(fixture.cases.map((c) => [`${c.method} ${JSON.stringify(c.params)}`, c] as const))("%s", (_, c) => {
    expectClose(compute(c), c.expected, 2, 1e-7)
  })
})
