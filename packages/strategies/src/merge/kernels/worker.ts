/**
 * The entry of a pool worker thread: runs `Ops` on the ranges the pool sends, on views of shared
 * memory. Loaded as `new Worker(new URL("./worker.ts", import.meta.url))`, so it must run under
 * Node's type stripping as is (relative `.ts` imports, erasable syntax only).
 *
 * Protocol: the pool sends `{ id, op, args, start, end }` and gets `{ id, ok: true, result }` or
 * `{ id, ok: false, error }`; the worker posts `"ready"` once its imports have loaded.
 *
 * @since 0.1.0
 */
import { parentPort, workerData } from "node:worker_threads"
import { type OpName, run } from "./Ops.ts"
import * as Packed from "./Packed.ts"
import * as Simd from "./Simd.ts"
import * as TiesSimd from "./TiesSimd.ts"
import { decode } from "./Transfer.ts"

/** A range of one op, as the pool sends it. @category protocol */
export interface Request {
  readonly id: number
  readonly op: OpName
  readonly args: Record<string, unknown>
  readonly start: number
  readonly end: number
}

/** @category protocol */
export type Response =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

const port = parentPort
if (port !== null) {
  const memory = (workerData as { memory?: WebAssembly.Memory } | undefined)?.memory
  const simd = memory !== undefined && Simd.isSupported() ? Simd.make(memory) : undefined
  // One set of range-wise window kernels per worker, reused by every op call it runs.
  const ctx = { simd, packed: simd !== undefined ? Packed.make(simd.memory) : undefined, ties: TiesSimd.cache() }
  port.on("message", (request: Request) => {
    let response: Response
    try {
      const args = decode(request.args, memory)
      response = { id: request.id, ok: true, result: run(request.op, args as never, request.start, request.end, ctx) }
    } catch (cause) {
      response = { id: request.id, ok: false, error: cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause) }
    }
    port.postMessage(response)
  })
  port.postMessage("ready")
}
