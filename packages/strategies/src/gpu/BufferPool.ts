/// <reference types="@webgpu/types" />
/**
 * A device's recycled buffers: the merge kernels' storage, uniform and read-back (MAP_READ)
 * buffers go back here after a call instead of being destroyed, and the next call of any kernel
 * takes them again. Owned by the device's `GpuHandle` (no module state), reaching the kernels
 * through the run's `GpuMerge`.
 *
 * - **Size classes.** A request is rounded up to the next of 4, 5, 6 or 7 × 2ᵏ bytes (at most 25%
 *   more than asked; at least 256 bytes), so tensors of nearby sizes share buffers. A storage
 *   class never exceeds the device's `maxStorageBufferBindingSize` (the kernels bind whole
 *   buffers): a request past the last class below it is made at its own size.
 * - **Bound.** Idle buffers hold at most `budget` bytes together; a buffer given back beyond it is
 *   destroyed, and so is every idle buffer on {@link BufferPool.close} (the handle closing), after
 *   which every given-back buffer is destroyed. Buffers in use are the kernels' (they are as large
 *   as without the pool, rounded to their class).
 * - **Safety.** A buffer comes back whatever its kernel's fate (`Device.scoped` gives back on
 *   success, failure and interruption); a read-back buffer still mapped or being mapped is
 *   destroyed instead of kept. GPU work already submitted that uses a given-back buffer is ordered
 *   before any later `writeBuffer` or dispatch on the one queue, so reuse needs no wait.
 *
 * @since 0.2.0
 */

/** What a buffer is for. @category models */
export type Usage = "storage" | "uniform" | "staging"

/** The pool's counters (for tests and benches: reuse is counted, not timed). @category models */
export interface Stats {
  /** Buffers created by {@link BufferPool.take}. */
  readonly created: number
  /** Takes served by an idle buffer. */
  readonly reused: number
  /** Buffers destroyed: beyond the budget, mapped, foreign, or at close. */
  readonly destroyed: number
  /** Buffers taken and not given back. */
  readonly outstanding: number
  /** Idle buffers and their bytes (≤ `budget`). */
  readonly idle: number
  readonly idleBytes: number
  readonly budget: number
}

/** @category models */
export interface BufferPool {
  /** A buffer of at least `bytes` for `usage`: an idle one of its size class, or a new one. */
  readonly take: (usage: Usage, bytes: number, label: string) => GPUBuffer
  /** Gives back a buffer {@link take} made: kept idle within the budget, else destroyed (also one it did not make). */
  readonly give: (buffer: GPUBuffer) => void
  readonly stats: () => Stats
  /** Destroys the idle buffers; buffers given back later are destroyed. */
  readonly close: () => void
}

/** The default bound of idle bytes: 1 GiB, at most a quarter of the device's largest buffer. @category constants */
export const defaultBudget = (limits: { readonly maxBufferSize: number }): number => Math.min(2 ** 30, Math.floor(limits.maxBufferSize / 4))

const MIN_CLASS = 256

const flags = (usage: Usage): number =>
  usage === "storage"
    ? GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC
    : usage === "uniform"
      ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
      : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST

/**
 * The bytes a request of `bytes` is made with: the next of 4, 5, 6, 7 × 2ᵏ (≥ 256), or `bytes`
 * rounded to 16 when that class would pass `cap`.
 *
 * @category classes
 */
export const sizeClass = (bytes: number, cap: number): number => {
  const exact = Math.max(16, Math.ceil(bytes / 16) * 16)
  if (exact <= MIN_CLASS) return MIN_CLASS
  const k = Math.floor(Math.log2(exact)) - 2
  let size = 4 * 2 ** k
  while (size < exact) size += 2 ** k
  return size <= cap ? size : exact
}

/**
 * A pool on `device` holding at most `budget` idle bytes ({@link defaultBudget} of the device's
 * limits when not given).
 *
 * @category constructors
 */
export const make = (device: GPUDevice, budget: number = defaultBudget(device.limits)): BufferPool => {
  const idle = new Map<string, Array<GPUBuffer>>()
  // Buffers out, with their class key: only these are kept when given back.
  const out = new Map<GPUBuffer, string>()
  let idleBytes = 0
  let idleCount = 0
  let created = 0
  let reused = 0
  let destroyed = 0
  let closed = false

  const destroy = (buffer: GPUBuffer) => {
    buffer.destroy()
    destroyed++
  }

  const take = (usage: Usage, bytes: number, label: string): GPUBuffer => {
    const cap = usage === "storage" ? Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) : device.limits.maxBufferSize
    const size = sizeClass(bytes, cap)
    const key = `${usage}:${size}`
    const free = idle.get(key)
    const kept = free?.pop()
    if (kept !== undefined) {
      idleBytes -= kept.size
      idleCount--
      reused++
      kept.label = label
      out.set(kept, key)
      return kept
    }
    const buffer = device.createBuffer({ label, size, usage: flags(usage) })
    created++
    out.set(buffer, key)
    return buffer
  }

  const give = (buffer: GPUBuffer): void => {
    const key = out.get(buffer)
    out.delete(buffer)
    // Foreign, closed, still mapped (a failed or interrupted read-back) or over the budget: gone.
    if (key === undefined || closed || buffer.mapState !== "unmapped" || idleBytes + buffer.size > budget) return destroy(buffer)
    const free = idle.get(key)
    if (free === undefined) idle.set(key, [buffer])
    else free.push(buffer)
    idleBytes += buffer.size
    idleCount++
  }

  return {
    take,
    give,
    stats: () => ({ created, reused, destroyed, outstanding: out.size, idle: idleCount, idleBytes, budget }),
    close: () => {
      closed = true
      for (const free of idle.values()) free.forEach(destroy)
      idle.clear()
      idleBytes = 0
      idleCount = 0
    }
  }
}
