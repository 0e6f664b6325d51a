/**
 * A tiny WebAssembly assembler: just the instructions and sections the SIMD kernels (`Simd.ts`,
 * `Packed.ts`) use, so their modules are built in code from their instructions — nothing is
 * downloaded or compiled by a toolchain. Each instruction is a function or constant giving its
 * bytes; a module is one imported shared memory plus exported functions.
 *
 * @since 0.1.0
 */

/** Unsigned LEB128. @category encoding */
export const uleb = (value: number): Array<number> => {
  const out: Array<number> = []
  do {
    let byte = value & 0x7f
    value >>>= 7
    if (value !== 0) byte |= 0x80
    out.push(byte)
  } while (value !== 0)
  return out
}

/** Signed LEB128 of a 32-bit integer (i32.const immediates). @category encoding */
export const sleb = (value: number): Array<number> => {
  const out: Array<number> = []
  let v = value | 0
  for (;;) {
    const byte = v & 0x7f
    v >>= 7
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte)
      return out
    }
    out.push(byte | 0x80)
  }
}

/** A length-prefixed vector of already encoded items. @category encoding */
export const vec = (items: ReadonlyArray<ReadonlyArray<number>>): Array<number> => [...uleb(items.length), ...items.flat()]
/** A section: its id and its length-prefixed body. @category encoding */
export const section = (id: number, body: ReadonlyArray<number>): Array<number> => [id, ...uleb(body.length), ...body]
/** A name as the binary format stores it (ASCII here). @category encoding */
export const name = (s: string): Array<number> => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))]

/** Value types. @category types */
export const I32 = 0x7f, F64 = 0x7c, V128 = 0x7b

/**
 * Tells whether a view lies in `memory`. Each grow of a memory hands out a new `ArrayBuffer`
 * object, so the buffers seen are remembered: `note()` after a grow (as `Arena` does) keeps views
 * made before it recognised; without it, views made after the last grow are (as in a worker).
 *
 * @category memory
 */
export const owner = (memory: WebAssembly.Memory): { readonly owns: (view: ArrayBufferView) => boolean; readonly note: () => void } => {
  const buffers = new Set<ArrayBufferLike>([memory.buffer])
  const note = () => void buffers.add(memory.buffer)
  return {
    owns: (view) => {
      if (buffers.has(view.buffer)) return true
      note()
      return buffers.has(view.buffer)
    },
    note
  }
}

/** Memory immediates: alignment as log2 (a hint only), byte offset. @category encoding */
export const memarg = (align: number, offset: number): Array<number> => [align, ...uleb(offset)]
/** A SIMD (`0xfd`-prefixed) instruction and its immediates. @category encoding */
export const simd = (code: number, ...immediates: Array<number>): Array<number> => [0xfd, ...uleb(code), ...immediates]

/** A v128 constant of four 32-bit lanes, each `value`. @category instructions */
export const i32x4Bytes = (value: number): Array<number> => {
  const lane = [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff]
  return [...lane, ...lane, ...lane, ...lane]
}

/** The instructions, by their text-format names. @category instructions */
export const op = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32GeU: [0x4f],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  brIf: (depth: number) => [0x0d, depth],
  br: (depth: number) => [0x0c, depth],
  end: [0x0b],
  v128Load: (offset = 0) => simd(0x00, ...memarg(2, offset)),
  v128Load16x4U: (offset = 0) => simd(0x04, ...memarg(1, offset)),
  v128Store: (offset = 0) => simd(0x0b, ...memarg(2, offset)),
  v128Const: (bytes: ReadonlyArray<number>) => simd(0x0c, ...bytes),
  shuffle: (lanes: ReadonlyArray<number>) => simd(0x0d, ...lanes),
  i16x8Splat: () => simd(0x10),
  f64x2Splat: () => simd(0x14),
  i16x8Eq: () => simd(0x2d),
  i32x4Eq: () => simd(0x37),
  i32x4GtS: () => simd(0x3b),
  i32x4GeS: () => simd(0x3f),
  i32x4LtS: () => simd(0x39),
  v128And: () => simd(0x4e),
  v128Or: () => simd(0x50),
  v128Xor: () => simd(0x51),
  v128Bitselect: () => simd(0x52),
  v128AnyTrue: () => simd(0x53),
  f32x4DemoteF64x2Zero: () => simd(0x5e),
  f64x2PromoteLowF32x4: () => simd(0x5f),
  i16x8NarrowI32x4U: () => simd(0x86),
  i32x4Shl: () => simd(0xab),
  i32x4ShrU: () => simd(0xad),
  i32x4Add: () => simd(0xae),
  i32x4Sub: () => simd(0xb1),
  f32x4Add: () => simd(0xe4),
  f32x4Mul: () => simd(0xe6),
  f64x2Add: () => simd(0xf0),
  f64x2Mul: () => simd(0xf2),
  // Added for the TIES kernel (`TiesSimd.ts`).
  v128Load32Splat: (offset = 0) => simd(0x09, ...memarg(2, offset)),
  v128Load64Splat: (offset = 0) => simd(0x0a, ...memarg(3, offset)),
  f64x2Eq: () => simd(0x47),
  f64x2Lt: () => simd(0x49),
  f64x2Gt: () => simd(0x4a),
  f32x4Sub: () => simd(0xe5),
  f64x2Div: () => simd(0xf3),
  i32x4Splat: () => simd(0x11),
  v128Andnot: () => simd(0x4f),
  i64x2ExtendLowI32x4S: () => simd(0xc7),
  i64x2ExtendHighI32x4S: () => simd(0xc8)
}

/** `x += step` for an i32 local (`step` a constant or code that pushes an i32). @category control */
export const bump = (x: number, step: number | ReadonlyArray<number>): Array<number> => [
  ...op.localGet(x),
  ...(typeof step === "number" ? op.i32Const(step) : step),
  ...op.i32Add,
  ...op.localSet(x)
]

/** `while (n != 0) { body; n-- }` (the i32 local n is consumed). @category control */
export const countDown = (n: number, body: ReadonlyArray<number>): Array<number> => [
  ...op.block,
  ...op.loop,
  ...op.localGet(n),
  0x45, // i32.eqz: leave the loop when n is 0
  ...op.brIf(1),
  ...body,
  ...op.localGet(n),
  ...op.i32Const(1),
  ...op.i32Sub,
  ...op.localSet(n),
  ...op.br(0),
  ...op.end,
  ...op.end
]

/** Shuffle lanes: the high 8 bytes moved down (to promote the high pair of float32 lanes). @category instructions */
export const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]
/** Shuffle lanes: the low 8 bytes of the first operand, then the low 8 of the second. @category instructions */
export const JOIN_LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]

/** One exported function: its signature, extra locals (count, type) and instructions (without the final `end`). @category models */
export interface Func {
  readonly name: string
  readonly params: ReadonlyArray<number>
  readonly results: ReadonlyArray<number>
  readonly locals: ReadonlyArray<readonly [count: number, type: number]>
  readonly code: ReadonlyArray<number>
}

/**
 * A module that imports `env.memory` (shared, up to 4 GiB; with `shared: false` a private one,
 * which the garbage collector frees like any ArrayBuffer) and exports `functions`.
 *
 * @category constructors
 */
export const module = (functions: ReadonlyArray<Func>, shared = true): Uint8Array<ArrayBuffer> => {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))])
  const memoryImport = [...name("env"), ...name("memory"), 0x02, shared ? 0x03 : 0x01, ...uleb(0), ...uleb(65536)]
  // The code section is most of the bytes: its parts are copied once, into the result.
  const bodies = functions.map((f) => {
    const head = vec(f.locals.map(([count, type]) => [...uleb(count), type]))
    const size = head.length + f.code.length + 1
    return [uleb(size), head, f.code, op.end] as const
  })
  const codeSize = bodies.reduce((total, parts) => total + parts.reduce((t, p) => t + p.length, 0), 0) + uleb(bodies.length).length
  const parts: Array<ArrayLike<number>> = [
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    section(1, vec(types)),
    section(2, vec([memoryImport])),
    section(3, vec(functions.map((_, i) => uleb(i)))),
    section(7, vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    [10, ...uleb(codeSize)],
    uleb(bodies.length),
    ...bodies.flat()
  ]
  const out = new Uint8Array(parts.reduce((t, p) => t + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
