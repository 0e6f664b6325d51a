/**
 * A pickle reader (protocols 0–5) that never executes anything. GLOBAL/STACK_GLOBAL/INST name
 * a global: the caller's allowlist resolves it to a pure JavaScript constructor or refuses it,
 * and a refusal stops the read at once with the global's name. REDUCE/NEWOBJ/OBJ call only
 * those constructors; BUILD only records state. Every length is checked against the bytes that
 * remain before anything is allocated, so a hostile pickle costs time and memory proportional
 * to its own size, and the machine has no recursion, so nesting cannot overflow the JS stack.
 *
 * @since 0.1.0
 */
import { type CallResult, Dict, type Global, isBuildable, isGlobal, latin1, List, PySet, Tuple, typeName } from "./Values.ts"

/** What the reader needs from its caller. @category models */
export interface Options {
  /** Resolves `module.name` to an allowlisted global, or undefined to refuse it. */
  readonly findGlobal: (module: string, name: string) => Global | undefined
  /** Resolves a persistent id (torch's storage references). */
  readonly persistentLoad: (pid: unknown) => CallResult
  /** Offset of the pickle in `bytes` (legacy torch files hold several back to back). */
  readonly start?: number
}

/** The result of {@link load}. @category models */
export type Outcome =
  | { readonly _tag: "Loaded"; readonly value: unknown; /** Offset just after STOP. */ readonly end: number }
  | { readonly _tag: "Unsafe"; readonly global: string }
  | { readonly _tag: "Invalid"; readonly detail: string; /** The bytes ended before STOP. */ readonly truncated?: true }

/** Integers longer than this many bytes (or digits) are refused: no checkpoint needs them. */
const MAX_LONG_BYTES = 1024

class Halt {
  readonly outcome: Outcome
  constructor(outcome: Outcome) {
    this.outcome = outcome
  }
}

/** Reads one pickle from `bytes`. @category constructors */
export const load = (bytes: Uint8Array, options: Options): Outcome => {
  try {
    return run(bytes, options)
  } catch (e) {
    if (e instanceof Halt) return e.outcome
    // Allocation failures (RangeError) or anything unforeseen: still a typed refusal.
    return { _tag: "Invalid", detail: `unreadable pickle: ${(e as Error)?.message ?? String(e)}` }
  }
}

const utf8 = new TextDecoder("utf-8")

const run = (bytes: Uint8Array, options: Options): Outcome => {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let pos = options.start ?? 0
  let opStart = pos
  const stack: Array<unknown> = []
  const marks: Array<number> = []
  const memo = new Map<number, unknown>()

  const invalid = (detail: string): never => {
    throw new Halt({ _tag: "Invalid", detail: `${detail} (opcode at offset ${opStart})` })
  }
  const need = (n: number) => {
    if (n < 0) invalid(`negative length ${n}`)
    if (pos + n > bytes.byteLength) throw new Halt({ _tag: "Invalid", truncated: true, detail: `needs ${n} more bytes but only ${bytes.byteLength - pos} remain: truncated pickle (opcode at offset ${opStart})` })
  }
  const u8 = () => (need(1), bytes[pos++]!)
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true))
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true))
  const i32 = () => (need(4), (pos += 4), dv.getInt32(pos - 4, true))
  const u64 = () => {
    need(8)
    const v = dv.getBigUint64(pos, true)
    pos += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) invalid(`length ${v} is beyond any file`)
    return Number(v)
  }
  const take = (n: number) => (need(n), bytes.subarray(pos, (pos += n)))
  const line = () => {
    const end = bytes.indexOf(0x0a, pos)
    if (end < 0) throw new Halt({ _tag: "Invalid", truncated: true, detail: `text argument without a terminating newline: truncated pickle (opcode at offset ${opStart})` })
    const text = latin1(bytes.subarray(pos, end))
    pos = end + 1
    return text
  }
  // As in CPython, a MARK hides what lies below it until the mark is popped.
  const floor = () => marks.at(-1) ?? 0
  const pop = (): unknown => (stack.length <= floor() ? invalid("pops an empty stack") : stack.pop())
  const top = (): unknown => (stack.length <= floor() ? invalid("reads an empty stack") : stack[stack.length - 1])
  const popMark = (): Array<unknown> => {
    const at = marks.pop()
    if (at === undefined) invalid("needs a MARK that is not there")
    return stack.splice(at!)
  }
  const lookup = (module: string, name: string): Global => {
    const g = options.findGlobal(module, name)
    if (g === undefined) throw new Halt({ _tag: "Unsafe", global: `${module}.${name}` })
    return g
  }
  const settle = (result: CallResult): unknown => ("refused" in result ? invalid(result.refused) : result.value)
  const call = (callable: unknown, args: unknown): unknown => {
    if (!isGlobal(callable)) return invalid(`calls a ${typeName(callable)}, which is not callable`)
    if (!(args instanceof Tuple)) return invalid(`calls ${callable.qualifiedName} with a ${typeName(args)} instead of an argument tuple`)
    return settle(callable.call(args.items))
  }
  const memoGet = (index: number) => (memo.has(index) ? memo.get(index) : invalid(`memo entry ${index} does not exist`))
  const setItems = (target: unknown, items: ReadonlyArray<unknown>) => {
    if (!(target instanceof Dict)) return invalid(`sets items on a ${typeName(target)}`)
    if (items.length % 2 !== 0) return invalid("odd number of items for a dict")
    for (let i = 0; i < items.length; i += 2) target.entries.set(hashable(items[i], invalid), items[i + 1])
  }
  const append = (target: unknown, items: ReadonlyArray<unknown>) => {
    if (!(target instanceof List)) return invalid(`appends to a ${typeName(target)}`)
    for (const item of items) target.items.push(item)
  }
  const integer = (text: string): number | bigint => {
    if (text.length > MAX_LONG_BYTES || !/^[+-]?\d+L?$/.test(text)) return invalid(`not an integer: ${JSON.stringify(text.slice(0, 40))}`)
    return normalize(BigInt(text.replace(/L$/, "")))
  }

  for (;;) {
    opStart = pos
    const op = u8()
    switch (op) {
      case 0x80: { // PROTO
        const v = u8()
        if (v > 5) invalid(`unsupported pickle protocol ${v}`)
        break
      }
      case 0x95: u64(); break // FRAME: framing is only a hint to buffered readers
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length !== 0) invalid(`STOP with ${stack.length} values on the stack and ${marks.length} open marks`)
        return { _tag: "Loaded", value: stack[0], end: pos }
      }
      case 0x28: marks.push(stack.length); break // MARK
      case 0x30: if (stack.length > floor()) stack.pop(); else popMark(); break // POP
      case 0x31: popMark(); break // POP_MARK
      case 0x32: stack.push(top()); break // DUP
      case 0x4e: stack.push(null); break // NONE
      case 0x88: stack.push(true); break // NEWTRUE
      case 0x89: stack.push(false); break // NEWFALSE
      case 0x4a: stack.push(i32()); break // BININT
      case 0x4b: stack.push(u8()); break // BININT1
      case 0x4d: stack.push(u16()); break // BININT2
      case 0x8a: stack.push(decodeLong(take(u8()))); break // LONG1
      case 0x8b: { // LONG4
        const n = i32()
        if (n < 0 || n > MAX_LONG_BYTES) invalid(`LONG4 of ${n} bytes`)
        stack.push(decodeLong(take(n)))
        break
      }
      case 0x49: { // INT
        const text = line()
        stack.push(text === "01" ? true : text === "00" ? false : integer(text))
        break
      }
      case 0x4c: stack.push(integer(line())); break // LONG
      case 0x46: { // FLOAT
        const text = line()
        if (!/^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)$/i.test(text)) invalid(`not a float: ${JSON.stringify(text.slice(0, 40))}`)
        stack.push(/nan/i.test(text) ? NaN : /inf/i.test(text) ? (text.startsWith("-") ? -Infinity : Infinity) : Number(text))
        break
      }
      case 0x47: need(8); stack.push(dv.getFloat64(pos, false)); pos += 8; break // BINFLOAT (big-endian)
      case 0x58: stack.push(utf8.decode(take(u32()))); break // BINUNICODE
      case 0x8c: stack.push(utf8.decode(take(u8()))); break // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8.decode(take(u64()))); break // BINUNICODE8
      case 0x56: stack.push(rawUnicodeEscape(line())); break // UNICODE
      case 0x53: stack.push(pythonStringLiteral(line(), invalid)); break // STRING
      case 0x54: { // BINSTRING
        const n = i32()
        stack.push(utf8.decode(take(n)))
        break
      }
      case 0x55: stack.push(utf8.decode(take(u8()))); break // SHORT_BINSTRING
      case 0x42: stack.push(take(u32()).slice()); break // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break // SHORT_BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break // BINBYTES8
      case 0x96: stack.push(take(u64()).slice()); break // BYTEARRAY8
      case 0x97: invalid("out-of-band buffers (NEXT_BUFFER) are not supported"); break
      case 0x98: break // READONLY_BUFFER: a no-op on an in-band buffer
      case 0x29: stack.push(new Tuple([])); break // EMPTY_TUPLE
      case 0x74: stack.push(new Tuple(popMark())); break // TUPLE
      case 0x85: stack.push(new Tuple([pop()])); break // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop()
        stack.push(new Tuple([pop(), b]))
        break
      }
      case 0x87: { // TUPLE3
        const c = pop()
        const b = pop()
        stack.push(new Tuple([pop(), b, c]))
        break
      }
      case 0x5d: stack.push(new List()); break // EMPTY_LIST
      case 0x6c: stack.push(new List(popMark())); break // LIST
      case 0x61: { // APPEND
        const item = pop()
        append(top(), [item])
        break
      }
      case 0x65: { // APPENDS
        const items = popMark()
        append(top(), items)
        break
      }
      case 0x7d: stack.push(new Dict()); break // EMPTY_DICT
      case 0x64: { // DICT
        const d = new Dict()
        setItems(d, popMark())
        stack.push(d)
        break
      }
      case 0x73: { // SETITEM
        const value = pop()
        const key = pop()
        setItems(top(), [key, value])
        break
      }
      case 0x75: { // SETITEMS
        const items = popMark()
        setItems(top(), items)
        break
      }
      case 0x8f: stack.push(new PySet([], false)); break // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark()
        const target = top()
        if (!(target instanceof PySet) || target.frozen) invalid(`adds items to a ${typeName(target)}`)
        for (const item of items) (target as PySet).items.push(hashable(item, invalid))
        break
      }
      case 0x91: stack.push(new PySet(popMark().map((x) => hashable(x, invalid)), true)); break // FROZENSET
      case 0x70: memo.set(integerIndex(line(), invalid), top()); break // PUT
      case 0x71: memo.set(u8(), top()); break // BINPUT
      case 0x72: memo.set(u32(), top()); break // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break // MEMOIZE
      case 0x67: stack.push(memoGet(integerIndex(line(), invalid))); break // GET
      case 0x68: stack.push(memoGet(u8())); break // BINGET
      case 0x6a: stack.push(memoGet(u32())); break // LONG_BINGET
      case 0x63: { // GLOBAL
        const module = line()
        stack.push(lookup(module, line()))
        break
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop()
        const module = pop()
        if (typeof module !== "string" || typeof name !== "string") invalid("STACK_GLOBAL needs two strings")
        stack.push(lookup(module as string, name as string))
        break
      }
      case 0x69: { // INST
        const module = line()
        const cls = lookup(module, line())
        stack.push(call(cls, new Tuple(popMark())))
        break
      }
      case 0x6f: { // OBJ
        const items = popMark()
        if (items.length === 0) invalid("OBJ without a class")
        stack.push(call(items[0], new Tuple(items.slice(1))))
        break
      }
      case 0x52: { // REDUCE
        const args = pop()
        stack.push(call(pop(), args))
        break
      }
      case 0x81: { // NEWOBJ
        const args = pop()
        stack.push(call(pop(), args))
        break
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop()
        const args = pop()
        const cls = pop()
        if (!(kwargs instanceof Dict) || kwargs.entries.size > 0) invalid("NEWOBJ_EX with keyword arguments is not supported")
        stack.push(call(cls, args))
        break
      }
      case 0x82: case 0x83: case 0x84: { // EXT1, EXT2, EXT4: the copyreg extension registry
        const code = op === 0x82 ? u8() : op === 0x83 ? u16() : i32()
        throw new Halt({ _tag: "Unsafe", global: `copyreg extension code ${code}` })
      }
      case 0x50: settleInto(stack, options.persistentLoad(line()), invalid); break // PERSID
      case 0x51: settleInto(stack, options.persistentLoad(pop()), invalid); break // BINPERSID
      case 0x62: { // BUILD
        const state = pop()
        const target = top()
        if (target instanceof Dict) {
          // OrderedDict's state is its __dict__ (or (dict, slots)): keep it as attributes.
          const dictState = state instanceof Tuple ? state.items[0] : state
          if (dictState !== null && !(dictState instanceof Dict)) invalid(`BUILD of a dict with a ${typeName(dictState)} state`)
          target.attributes = (dictState as Dict | null) ?? undefined
        } else if (isBuildable(target)) settle(target.setState(state))
        else invalid(`BUILD on a ${typeName(target)}`)
        break
      }
      default:
        invalid(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`)
    }
  }
}

const settleInto = (stack: Array<unknown>, result: CallResult, invalid: (d: string) => never) => {
  stack.push("refused" in result ? invalid(result.refused) : result.value)
}

const normalize = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v)

/** Little-endian two's complement, as LONG1/LONG4 store it. */
const decodeLong = (b: Uint8Array): number | bigint => {
  if (b.byteLength === 0) return 0
  let v = 0n
  for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!)
  if (b[b.byteLength - 1]! & 0x80) v -= 1n << BigInt(8 * b.byteLength)
  return normalize(v)
}

const integerIndex = (text: string, invalid: (d: string) => never): number => {
  if (!/^\d{1,10}$/.test(text)) invalid(`bad memo index ${JSON.stringify(text.slice(0, 20))}`)
  return Number(text)
}

/** Dict keys and set items must be hashable in Python: refuse mutable containers. */
const hashable = (key: unknown, invalid: (d: string) => never): unknown =>
  key instanceof List || key instanceof Dict || (key instanceof PySet && !key.frozen) ? invalid(`unhashable ${typeName(key)} used as a key`) : key

/** Protocol 0's UNICODE: latin-1 text where only \uXXXX and \UXXXXXXXX are escapes. */
const rawUnicodeEscape = (text: string): string =>
  text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u4: string | undefined, u8: string | undefined) => {
    const code = parseInt(u4 ?? u8!, 16)
    return code <= 0x10ffff ? String.fromCodePoint(code) : ""
  })

/** Protocol 0's STRING: a Python 2 repr, quoted, with backslash escapes. */
const pythonStringLiteral = (text: string, invalid: (d: string) => never): string => {
  const quote = text[0]
  if (text.length < 2 || (quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) invalid("STRING argument is not quoted")
  const body = text.slice(1, -1)
  const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", "'": "'", '"': '"', a: "\x07", b: "\b", f: "\f", v: "\v", "0": "\0" }
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) =>
    e[0] === "x" && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : /^[0-7]+$/.test(e) ? String.fromCharCode(parseInt(e, 8) & 0xff) : (simple[e] ?? `\\${e}`))
}
