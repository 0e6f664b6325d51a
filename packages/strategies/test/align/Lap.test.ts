import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Lap from "../../src/align/Lap.ts"
import { isPermutation } from "../../src/align/Permute.ts"
import * as Random from "../../src/align/internal/Random.ts"

/** The optimum over all n! assignments, enumerated recursively. */
const bruteForce = (scores: Float64Array, n: number): number => {
  const used = new Uint8Array(n)
  const best = (row: number): number => {
    if (row === n) return 0
    let top = -Infinity
    for (let j = 0; j < n; j++) {
      if (used[j] === 1) continue
      used[j] = 1
      top = Math.max(top, scores[row * n + j]! + best(row + 1))
      used[j] = 0
    }
    return top
  }
  return best(0)
}

const solve = (scores: Float64Array, n: number, options?: Lap.Options) => Effect.runSync(Lap.maximize(scores, n, options))

const uniform = (random: Random.Random, n: number) => Float64Array.from({ length: n * n }, () => random.next())

/** Asserts `u[i] + v[j] ≥ S[i, j]`, equality on the assignment, and Σ potentials = score. */
const assertCertified = (scores: Float64Array, n: number, result: Lap.Assignment, tolerance: number) => {
  const { rowPotential: u, columnPotential: v, columnOf } = result
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const slack = u[i]! + v[j]! - scores[i * n + j]!
      if (slack < -tolerance) assert.fail(`dual infeasible at [${i}, ${j}]: slack ${slack}`)
    }
    assert.closeTo(u[i]! + v[columnOf[i]!]!, scores[i * n + columnOf[i]!]!, tolerance)
  }
  const dual = u.reduce((s, x) => s + x, 0) + v.reduce((s, x) => s + x, 0)
  assert.closeTo(dual, result.score, tolerance * n)
}

describe("Lap.maximize", () => {
  it("finds the brute-force optimum of random matrices up to 8×8", () => {
    const random = Random.make(1)
    for (let n = 1; n <= 8; n++) {
      for (let trial = 0; trial < 25; trial++) {
        const scores = uniform(random, n)
        const result = solve(scores, n)
        assert.isTrue(isPermutation(result.columnOf, n))
        assert.closeTo(result.score, bruteForce(scores, n), 1e-12)
        assert.closeTo(result.score, Array.from(result.columnOf).reduce((s, j, i) => s + scores[i * n + j]!, 0), 1e-12)
      }
    }
  })

  it("finds the optimum of integer matrices full of ties, negative scores and large offsets", () => {
    const random = Random.make(2)
    for (let n = 2; n <= 8; n++) {
      for (let trial = 0; trial < 25; trial++) {
        const offset = trial % 3 === 0 ? 1e6 : trial % 3 === 1 ? -50 : 0
        const scores = Float64Array.from({ length: n * n }, () => random.int(4) + offset)
        const result = solve(scores, n)
        assert.isTrue(isPermutation(result.columnOf, n))
        assert.strictEqual(result.score, bruteForce(scores, n))
      }
    }
  })

  it("returns potentials that certify optimality (n = 60, 257)", () => {
    const random = Random.make(3)
    for (const n of [60, 257]) {
      const scores = Float64Array.from({ length: n * n }, () => random.normal())
      assertCertified(scores, n, solve(scores, n), 1e-9)
    }
  })

  it("recovers a hidden permutation of noisy points at n = 512", () => {
    const n = 512
    const d = 16
    const random = Random.make(4)
    const hidden = Random.permutation(random, n)
    const x = Float64Array.from({ length: n * d }, () => random.normal())
    // y_j is x_i plus noise where hidden[i] = j; scores are negated squared distances.
    const y = new Float64Array(n * d)
    for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) y[hidden[i]! * d + t] = x[i * d + t]! + 0.05 * random.normal()
    const scores = new Float64Array(n * n)
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0
        for (let t = 0; t < d; t++) s -= (x[i * d + t]! - y[j * d + t]!) ** 2
        scores[i * n + j] = s
      }
    }
    const result = solve(scores, n)
    assert.deepStrictEqual(Array.from(result.columnOf), Array.from(hidden))
    assertCertified(scores, n, result, 1e-8)
  })

  it("gives the same optimum from a warm start on a perturbed matrix", () => {
    const n = 200
    const random = Random.make(5)
    const scores = Float64Array.from({ length: n * n }, () => random.normal())
    const first = solve(scores, n)
    const perturbed = scores.map((s) => s + 0.05 * random.normal())
    const cold = solve(perturbed, n)
    const warm = solve(perturbed, n, { warmStart: first.columnPotential })
    assert.closeTo(warm.score, cold.score, 1e-9)
    assertCertified(perturbed, n, warm, 1e-9)
    // Any prices are a valid (if poor) start.
    const arbitrary = solve(perturbed, n, { warmStart: Float64Array.from({ length: n }, () => 10 * random.normal()) })
    assert.closeTo(arbitrary.score, cold.score, 1e-9)
  })

  it("handles empty, 1×1 and constant matrices", () => {
    assert.strictEqual(solve(new Float64Array(0), 0).columnOf.length, 0)
    assert.deepStrictEqual(Array.from(solve(Float64Array.of(-3), 1).columnOf), [0])
    const constant = solve(new Float64Array(36).fill(2.5), 6)
    assert.isTrue(isPermutation(constant.columnOf, 6))
    assert.strictEqual(constant.score, 15)
  })

  it("is deterministic", () => {
    const random = Random.make(6)
    const scores = Float64Array.from({ length: 100 * 100 }, () => random.int(3))
    assert.deepStrictEqual(Array.from(solve(scores, 100).columnOf), Array.from(solve(scores, 100).columnOf))
  })

  it("rejects malformed scores with InvalidScores", () => {
    const failure = (scores: Float64Array, n: number, options?: Lap.Options) => {
      const error = Effect.runSync(Effect.flip(Lap.maximize(scores, n, options)))
      assert.strictEqual(error._tag, "InvalidScores")
      return error.message
    }
    assert.include(failure(new Float64Array(5), 2), "expected 4 scores")
    assert.include(failure(Float64Array.of(1, 2, Number.NaN, 4), 2), "score [1, 0] is NaN")
    assert.include(failure(Float64Array.of(1, Infinity, 3, 4), 2), "score [0, 1] is Infinity")
    assert.include(failure(new Float64Array(0), -1), "non-negative integer")
    assert.include(failure(new Float64Array(4), 2, { warmStart: new Float64Array(3) }), "warm start")
  })
})
