import { afterEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Tail from "../../src/ui/Tail.ts"
import { tmp } from "./fixtures.ts"

const tails: Array<Tail.Tail> = []
const dirs: Array<string> = []
afterEach(() => {
  tails.splice(0).forEach((t) => t.stop())
  dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true }))
})
const scratch = () => {
  const dir = tmp("tail")
  dirs.push(dir)
  return dir
}

const waitFor = async (check: () => boolean, ms = 5000) => {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out")
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe("following a line file", () => {
  it("delivers each complete line once, in order, holding a line until its newline — even one split inside a character", () => {
    const file = path.join(scratch(), "events.jsonl")
    fs.writeFileSync(file, "zero\none\ntw")
    const got: Array<[string, number]> = []
    const tail = Tail.follow(file, { onLine: (line, i) => got.push([line, i]) })
    tails.push(tail)
    expect(got).toEqual([["zero", 0], ["one", 1]])
    const accent = Buffer.from("o é\n", "utf8")
    fs.appendFileSync(file, accent.subarray(0, 3)) // "o " and the first byte of "é"
    tail.drain()
    expect(got).toHaveLength(2)
    fs.appendFileSync(file, accent.subarray(3))
    fs.appendFileSync(file, "three\n")
    tail.drain()
    tail.drain()
    expect(got).toEqual([["zero", 0], ["one", 1], ["two é", 2], ["three", 3]])
    expect(tail.lines()).toBe(4)
  })

  it("skips lines before fromLine, and picks up a file created later without being asked", async () => {
    const file = path.join(scratch(), "events.jsonl")
    const got: Array<number> = []
    tails.push(Tail.follow(file, { fromLine: 2, pollMs: 50, onLine: (_line, i) => got.push(i) }))
    fs.writeFileSync(file, "a\nb\nc\n")
    await waitFor(() => got.length === 1)
    fs.appendFileSync(file, "d\n")
    await waitFor(() => got.length === 2)
    expect(got).toEqual([2, 3])
  })

  it("stops delivering once stopped, even from inside a callback", () => {
    const file = path.join(scratch(), "events.jsonl")
    fs.writeFileSync(file, "a\nb\nc\n")
    const got: Array<string> = []
    const tail: Tail.Tail = Tail.follow(file, { onLine: (line) => { got.push(line); if (line === "b") queueMicrotask(() => tail.stop()) } })
    expect(got).toEqual(["a", "b", "c"])
    tail.stop()
    fs.appendFileSync(file, "d\n")
    tail.drain()
    expect(got).toEqual(["a", "b", "c"])
  })
})
