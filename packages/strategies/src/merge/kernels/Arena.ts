/**
 * Float32 arrays and raw byte slots carved out of one shared WebAssembly memory: a
 * `SharedArrayBuffer` that worker threads see without copies and that the SIMD kernels
 * (`Simd.ts`, and `Packed.ts` on bf16/f16/f32 bytes) can address. A stage that reads tensors
 * straight into arena arrays gets the fastest kernels with no extra copy.
 *
 * First-fit allocation with coalescing of adjacent free blocks, 64-byte aligned; the memory
 * grows on demand up to `maxBytes` (4 GiB at most, the limit of 32-bit WebAssembly). Growing never
 * moves memory, so arrays handed out earlier stay valid.
 *
 * @since 0.1.0
 */

import * as Wasm from "./Wasm.ts"

const PAGE = 65536
const ALIGN = 64
const MAX_PAGES = 65536

/** @category models */
export interface Arena {
  readonly memory: WebAssembly.Memory
  /** A zero-filled array of `length` floats, or undefined when the arena is full. */
  readonly alloc: (length: number) => Float32Array<SharedArrayBuffer> | undefined
  /** Zero-filled raw bytes (64-byte aligned: room for packed bf16/f16/f32 tensors), or undefined when the arena is full. */
  readonly allocBytes: (byteLength: number) => Uint8Array<SharedArrayBuffer> | undefined
  /** Returns a view from {@link Arena.alloc} or {@link Arena.allocBytes} to the arena (others are ignored). */
  readonly free: (view: ArrayBufferView) => void
  /** Whether `view` (any typed array or DataView) lives in this arena's memory. */
  readonly owns: (view: ArrayBufferView) => boolean
  /** Bytes handed out and not freed. */
  readonly used: () => number
}

interface Block {
  start: number
  size: number
}

/** An arena of at most `maxBytes` (default 4 GiB), starting with `initialBytes`. @category constructors */
export const make = (options: { readonly maxBytes?: number; readonly initialBytes?: number } = {}): Arena => {
  const maxPages = Math.min(MAX_PAGES, Math.ceil((options.maxBytes ?? MAX_PAGES * PAGE) / PAGE))
  const initialPages = Math.min(maxPages, Math.ceil((options.initialBytes ?? 16 * PAGE) / PAGE))
  const memory = new WebAssembly.Memory({ initial: initialPages, maximum: maxPages, shared: true })
  const free: Array<Block> = [{ start: 0, size: initialPages * PAGE }]
  const taken = new Map<number, number>()
  const buffers = Wasm.owner(memory)
  let capacity = initialPages * PAGE
  let inUse = 0
  let everUsed = 0

  const grow = (bytes: number): boolean => {
    const last = free[free.length - 1]
    const tailFree = last !== undefined && last.start + last.size === capacity ? last.size : 0
    const pages = Math.ceil((bytes - tailFree) / PAGE)
    if (capacity / PAGE + pages > maxPages) return false
    memory.grow(pages)
    buffers.note()
    if (tailFree > 0) last!.size += pages * PAGE
    else free.push({ start: capacity, size: pages * PAGE })
    capacity += pages * PAGE
    return true
  }

  // The byte offset of a zero-filled block of at least `byteLength` bytes, or undefined.
  const allocate = (byteLength: number): number | undefined => {
    const bytes = Math.max(ALIGN, Math.ceil(byteLength / ALIGN) * ALIGN)
    let at = free.findIndex((b) => b.size >= bytes)
    if (at < 0) {
      if (!grow(bytes)) return undefined
      at = free.findIndex((b) => b.size >= bytes)
    }
    const block = free[at]!
    const start = block.start
    block.start += bytes
    block.size -= bytes
    if (block.size === 0) free.splice(at, 1)
    taken.set(start, bytes)
    inUse += bytes
    // Memory above everything ever handed out is still as WebAssembly created it: zero. Filling
    // it anyway would touch (page-fault) every page before the first real write.
    if (start < everUsed) new Uint8Array(memory.buffer, start, byteLength).fill(0)
    everUsed = Math.max(everUsed, start + bytes)
    return start
  }

  const alloc = (length: number): Float32Array<SharedArrayBuffer> | undefined => {
    const start = allocate(length * 4)
    return start === undefined ? undefined : new Float32Array(memory.buffer as unknown as SharedArrayBuffer, start, length)
  }

  const allocBytes = (byteLength: number): Uint8Array<SharedArrayBuffer> | undefined => {
    const start = allocate(byteLength)
    return start === undefined ? undefined : new Uint8Array(memory.buffer as unknown as SharedArrayBuffer, start, byteLength)
  }

  const owns = buffers.owns

  const release = (view: ArrayBufferView): void => {
    const bytes = owns(view) ? taken.get(view.byteOffset) : undefined
    if (bytes === undefined) return
    taken.delete(view.byteOffset)
    inUse -= bytes
    const start = view.byteOffset
    let at = free.findIndex((b) => b.start > start)
    if (at < 0) at = free.length
    free.splice(at, 0, { start, size: bytes })
    const next = free[at + 1]
    if (next !== undefined && start + bytes === next.start) {
      free[at]!.size += next.size
      free.splice(at + 1, 1)
    }
    const previous = free[at - 1]
    if (previous !== undefined && previous.start + previous.size === start) {
      previous.size += free[at]!.size
      free.splice(at, 1)
    }
  }

  return { memory, alloc, allocBytes, free: release, owns, used: () => inUse }
}
