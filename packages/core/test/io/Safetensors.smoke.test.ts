import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Safetensors from "../../src/io/safetensors/Safetensors.ts"
import * as Model from "../../src/model/Model.ts"
import * as TensorRef from "../../src/tensor/TensorRef.ts"
import * as DType from "../../src/tensor/DType.ts"

describe("safetensors round trip", () => {
  it("writes and reads back tensors of several dtypes", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "st-"))
    const file = path.join(dir, "m.safetensors")
    const a = TensorRef.fromBytes("a", "F32", [2, 3], DType.fromNumbers([1, 2, 3, 4, 5, 6], "F32"))
    const b = TensorRef.fromBytes("b", "BF16", [2], DType.fromNumbers([0.5, -3], "BF16"))
    const c = TensorRef.fromBytes("c", "I64", [], DType.fromNumbers([7], "I64"))
    const written = await Effect.runPromise(Safetensors.write(file, Model.make("mem", [a, b, c], { note: "x" }), { chunkElements: 4 }))
    expect(written.tensors).toBe(3)
    const back = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const m = yield* Safetensors.read(file)
      return {
        meta: m.metadata,
        a: Array.from(yield* TensorRef.readFloat32(m.tensors.get("a")!)),
        b: Array.from(yield* TensorRef.readFloat32(m.tensors.get("b")!)),
        c: Array.from(yield* TensorRef.readFloat32(m.tensors.get("c")!)),
        part: Array.from(yield* TensorRef.readFloat32(m.tensors.get("a")!, { start: 2, end: 5 }))
      }
    })))
    expect(back).toEqual({ meta: { note: "x" }, a: [1, 2, 3, 4, 5, 6], b: [0.5, -3], c: [7], part: [3, 4, 5] })
    expect(fs.readdirSync(dir)).toEqual(["m.safetensors"])
  })
})
