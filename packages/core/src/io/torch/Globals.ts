/**
 * The globals a PyTorch checkpoint may name, and what each builds — the same set torch's own
 * `weights_only` unpickler allows for dense tensors, plus the builtins that protocol 2 uses to
 * spell bytes and sets. Each is a pure function producing data (a tensor *description*: a
 * storage reference with offset, shape and strides); any other global is refused by name.
 *
 * @since 0.1.0
 */
import type { DType } from "../../tensor/DType.ts"
import { asInteger, asSequence, type CallResult, Dict, type Global, global, isGlobal, latin1, List, PySet, Tuple, typeName } from "../pickle/Values.ts"

/** A storage a checkpoint references by key: its bytes live in `data/<key>` (zip) or after the pickles (legacy). @category models */
export interface StorageRef {
  readonly _tag: "Storage"
  readonly key: string
  readonly dtype: DType
  /** Elements of `dtype`. */
  readonly numel: number
  readonly location: string
  /** Legacy storage views: this storage is `numel` elements at `offset` of storage `root`. */
  readonly view?: { readonly root: string; readonly offset: number }
}

/** A tensor as torch rebuilds it: a strided view of a storage. @category models */
export class TensorView {
  readonly storage: StorageRef
  /** In elements. */
  readonly offset: number
  readonly shape: ReadonlyArray<number>
  readonly stride: ReadonlyArray<number>
  constructor(storage: StorageRef, offset: number, shape: ReadonlyArray<number>, stride: ReadonlyArray<number>) {
    this.storage = storage
    this.offset = offset
    this.shape = shape
    this.stride = stride
  }
  /** A plain tensor's BUILD state is empty (hooks are never serialised); anything else is a subclass. */
  setState(state: unknown): CallResult {
    return isEmpty(state) ? { value: this } : { refused: `tensor with Python state (${typeName(state)}) is a tensor subclass, which is not supported` }
  }
}

const isEmpty = (u: unknown) => u === null || (u instanceof Dict && u.entries.size === 0) || (u instanceof Tuple && u.items.every(isEmpty))

const ok = (value: unknown): CallResult => ({ value })
const refuse = (refused: string): CallResult => ({ refused })

const unsupported = (what: string) => ({ unsupported: `${what} tensors are not supported` })
/** Storage classes by name: the dtype they hold, or why they cannot be read. */
const storageTypes: Readonly<Record<string, { readonly dtype: DType } | { readonly unsupported: string }>> = {
  DoubleStorage: { dtype: "F64" }, FloatStorage: { dtype: "F32" }, HalfStorage: { dtype: "F16" }, BFloat16Storage: { dtype: "BF16" },
  LongStorage: { dtype: "I64" }, IntStorage: { dtype: "I32" }, ShortStorage: { dtype: "I16" }, CharStorage: { dtype: "I8" },
  ByteStorage: { dtype: "U8" }, BoolStorage: { dtype: "BOOL" }, UntypedStorage: { dtype: "U8" },
  Float8_e4m3fnStorage: { dtype: "F8_E4M3" }, Float8_e5m2Storage: { dtype: "F8_E5M2" },
  ComplexFloatStorage: unsupported("complex"), ComplexDoubleStorage: unsupported("complex"),
  QInt8Storage: unsupported("quantized"), QUInt8Storage: unsupported("quantized"), QInt32Storage: unsupported("quantized"),
  QUInt4x2Storage: unsupported("quantized"), QUInt2x4Storage: unsupported("quantized")
}

const dtypeNames = [
  "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
  "complex32", "complex64", "complex128", "double", "float", "half", "long", "int", "short"
]

/** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
const rebuildTensor = (args: ReadonlyArray<unknown>): CallResult => {
  const [storage, offset, size, stride] = args
  if (!isStorage(storage)) return refuse(`_rebuild_tensor_v2 expects a storage, got a ${typeName(storage)}`)
  const at = asInteger(offset)
  const shape = integers(size)
  const strides = integers(stride)
  if (at === undefined || at < 0) return refuse(`tensor storage offset ${String(offset)} is not a non-negative integer`)
  if (shape === undefined || shape.some((d) => d < 0)) return refuse(`tensor size ${typeName(size)} is not a tuple of non-negative integers`)
  if (strides === undefined || strides.length !== shape.length || strides.some((s) => s < 0)) return refuse(`tensor stride does not match its ${shape.length} dimensions`)
  return ok(new TensorView(storage, at, shape, strides))
}

const integers = (u: unknown): Array<number> | undefined => {
  const items = asSequence(u)
  if (items === undefined) return undefined
  const out = items.map(asInteger)
  return out.every((x) => x !== undefined) ? (out as Array<number>) : undefined
}

const isStorage = (u: unknown): u is StorageRef => typeof u === "object" && u !== null && (u as StorageRef)._tag === "Storage"

const isTensorClass = (u: unknown) => isGlobal(u) && (u.qualifiedName === "torch.Tensor" || u.qualifiedName === "torch.nn.parameter.Parameter")

const asBytes = (text: unknown, encoding: unknown): CallResult => {
  if (typeof text !== "string") return refuse(`_codecs.encode of a ${typeName(text)}`)
  if (encoding !== "latin1" && encoding !== "latin-1") return refuse(`_codecs.encode with encoding ${typeof encoding === "string" ? JSON.stringify(encoding) : typeName(encoding)} (only latin1 spells bytes)`)
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c > 0xff) return refuse("_codecs.encode: character outside latin1")
    out[i] = c
  }
  return ok(out)
}

const setOf = (frozen: boolean) => (args: ReadonlyArray<unknown>): CallResult => {
  if (args.length === 0) return ok(new PySet([], frozen))
  const items = asSequence(args[0])
  return items === undefined ? refuse(`set() of a ${typeName(args[0])}`) : ok(new PySet([...items], frozen))
}

const bytesOf = (args: ReadonlyArray<unknown>): CallResult => {
  if (args.length === 0) return ok(new Uint8Array(0))
  if (args[0] instanceof Uint8Array) return ok(args[0].slice())
  if (typeof args[0] === "string") return asBytes(args[0], args[1])
  const items = asSequence(args[0])?.map(asInteger)
  return items !== undefined && items.every((b) => b !== undefined && b >= 0 && b < 256) ? ok(Uint8Array.from(items as Array<number>)) : refuse("bytes() of something that is not bytes")
}

const orderedDict = (args: ReadonlyArray<unknown>): CallResult => {
  const d = new Dict(true)
  const pairs = args.length === 0 ? [] : asSequence(args[0])
  if (pairs === undefined) return refuse(`OrderedDict() of a ${typeName(args[0])}`)
  for (const pair of pairs) {
    const kv = asSequence(pair)
    if (kv === undefined || kv.length !== 2) return refuse("OrderedDict() of something that is not (key, value) pairs")
    d.entries.set(kv[0], kv[1])
  }
  return ok(d)
}

/** A numpy dtype, as `numpy.dtype(name, align, copy)` followed by BUILD with its byte order. */
class NumpyDType {
  readonly name: string
  byteOrder = "="
  constructor(name: string) {
    this.name = name
  }
  setState(state: unknown): CallResult {
    const order = asSequence(state)?.[1]
    if (typeof order === "string") this.byteOrder = order
    return { value: this }
  }
}

/** `numpy.core.multiarray.scalar(dtype, bytes)`: training checkpoints store metrics this way. */
const numpyScalar = (args: ReadonlyArray<unknown>): CallResult => {
  const [dtype, raw] = args
  if (!(dtype instanceof NumpyDType) || !(raw instanceof Uint8Array)) return refuse("numpy scalar without a dtype and bytes")
  const little = dtype.byteOrder !== ">"
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  const readers: Record<string, [number, (o: number) => number | bigint | boolean]> = {
    f8: [8, (o) => dv.getFloat64(o, little)], f4: [4, (o) => dv.getFloat32(o, little)],
    i8: [8, (o) => dv.getBigInt64(o, little)], i4: [4, (o) => dv.getInt32(o, little)], i2: [2, (o) => dv.getInt16(o, little)], i1: [1, (o) => dv.getInt8(o)],
    u8: [8, (o) => dv.getBigUint64(o, little)], u4: [4, (o) => dv.getUint32(o, little)], u2: [2, (o) => dv.getUint16(o, little)], u1: [1, (o) => dv.getUint8(o)],
    b1: [1, (o) => dv.getUint8(o) !== 0]
  }
  const reader = readers[dtype.name]
  if (reader === undefined || raw.byteLength !== reader[0]) return refuse(`numpy scalar of dtype ${dtype.name} is not supported`)
  const v = reader[1](0)
  return ok(typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v)
}

const allowlist = new Map<string, Global>()
const allow = (name: string, call?: (args: ReadonlyArray<unknown>) => CallResult, data?: unknown) => allowlist.set(name, global(name, call, data))

allow("collections.OrderedDict", orderedDict)
allow("torch._utils._rebuild_tensor_v2", rebuildTensor)
allow("torch._utils._rebuild_tensor", rebuildTensor)
allow("torch._utils._rebuild_parameter", (args) => (args[0] instanceof TensorView ? ok(args[0]) : refuse("_rebuild_parameter of something that is not a tensor")))
allow("torch._utils._rebuild_parameter_with_state", (args) => (args[0] instanceof TensorView ? ok(args[0]) : refuse("_rebuild_parameter_with_state of something that is not a tensor")))
allow("torch._utils._rebuild_qtensor", () => refuse("quantized tensors are not supported"))
allow("torch._utils._rebuild_sparse_tensor", () => refuse("sparse tensors are not supported"))
allow("torch._utils._rebuild_meta_tensor_no_storage", () => refuse("meta tensors have no data to read"))
const fromTypeV2 = (args: ReadonlyArray<unknown>): CallResult => {
  // (func, new_type, args, state): only plain tensors and parameters are data.
  const [func, type, inner] = args
  if (!isTensorClass(type)) return refuse(`tensor subclass ${typeName(type)} is not supported`)
  if (!isGlobal(func) || !(inner instanceof Tuple)) return refuse("_rebuild_from_type_v2 without a rebuild function and its arguments")
  return func.call(inner.items)
}
allow("torch._tensor._rebuild_from_type_v2", fromTypeV2)
allow("torch._tensor._rebuild_from_type", fromTypeV2)
allow("torch.Tensor")
allow("torch.nn.parameter.Parameter")
allow("torch.Size", (args) => (args.length === 0 ? ok(new Tuple([])) : integers(args[0]) ? ok(new Tuple(asSequence(args[0])!)) : refuse("torch.Size of something that is not integers")))
allow("torch.device", (args) => (typeof args[0] === "string" ? ok(args[0]) : refuse("torch.device of something that is not a string")))
for (const [name, kind] of Object.entries(storageTypes)) {
  allow(`torch.${name}`, undefined, kind)
  allow(`torch.cuda.${name}`, undefined, kind)
}
allow("torch.storage.UntypedStorage", undefined, storageTypes.UntypedStorage)
for (const name of dtypeNames) allow(`torch.${name}`)
for (const builtins of ["builtins", "__builtin__"]) {
  allow(`${builtins}.set`, setOf(false))
  allow(`${builtins}.frozenset`, setOf(true))
  allow(`${builtins}.bytes`, bytesOf)
  allow(`${builtins}.bytearray`, bytesOf)
  allow(`${builtins}.list`, (args) => ok(new List([...(asSequence(args[0]) ?? [])])))
  allow(`${builtins}.tuple`, (args) => ok(new Tuple([...(asSequence(args[0]) ?? [])])))
}
allow("_codecs.encode", (args) => asBytes(args[0], args[1]))
allow("numpy.core.multiarray.scalar", numpyScalar)
allow("numpy._core.multiarray.scalar", numpyScalar)
allow("numpy.dtype", (args) => (typeof args[0] === "string" ? ok(new NumpyDType(args[0])) : refuse("numpy.dtype of something that is not a name")))

/** Resolves a global against the allowlist; undefined means refuse (nothing is ever imported). */
export const findGlobal = (module: string, name: string): Global | undefined =>
  allowlist.get(`${module === "torch.tensor" ? "torch._tensor" : module}.${name}`)

/** The qualified names on the allowlist, for documentation and tests. */
export const allowed = (): ReadonlyArray<string> => [...allowlist.keys()]

/**
 * Resolves torch's persistent ids, `('storage', StorageType, key, location, numel)` (and the
 * legacy form with a sixth `view_metadata`), to one StorageRef per key — so tensors that share
 * a storage (tied weights) share one reference, as they do in torch.
 */
export const persistentLoader = (): { readonly load: (pid: unknown) => CallResult; readonly storages: ReadonlyMap<string, StorageRef> } => {
  const byKey = new Map<string, StorageRef>()
  const load = (pid: unknown): CallResult => {
    const items = asSequence(pid)
    const tag = text(items?.[0])
    if (items === undefined || tag !== "storage") return refuse(tag === "module" ? "the checkpoint pickles whole nn.Module classes (save model.state_dict() instead)" : `unknown persistent id ${typeName(pid)}${tag === undefined ? "" : ` "${tag}"`}`)
    const [, type, rawKey, rawLocation, rawNumel, viewMetadata] = items
    const kind = isGlobal(type) ? (type.data as (typeof storageTypes)[string] | undefined) : undefined
    if (kind === undefined) return refuse(`storage of type ${typeName(type)}`)
    if ("unsupported" in kind) return refuse(`${kind.unsupported} (${typeName(type)})`)
    const key = text(rawKey)
    const numel = asInteger(rawNumel)
    if (key === undefined || numel === undefined || numel < 0) return refuse("malformed storage reference")
    const root = byKey.get(key) ?? { _tag: "Storage" as const, key, dtype: kind.dtype, numel, location: text(rawLocation) ?? "cpu" }
    if (root.dtype !== kind.dtype || root.numel !== numel) return refuse(`storage "${key}" is referenced with two different types or sizes`)
    byKey.set(key, root)
    if (viewMetadata === undefined || viewMetadata === null) return ok(root)
    const view = asSequence(viewMetadata)
    const viewKey = text(view?.[0])
    const offset = asInteger(view?.[1])
    const size = asInteger(view?.[2])
    if (viewKey === undefined || offset === undefined || size === undefined || offset < 0 || size < 0 || offset + size > numel) return refuse(`malformed view of storage "${key}"`)
    const existing = byKey.get(viewKey)
    if (existing !== undefined) return ok(existing)
    const storage: StorageRef = { ...root, key: viewKey, numel: size, view: { root: key, offset } }
    byKey.set(viewKey, storage)
    return ok(storage)
  }
  return { load, storages: byKey }
}

const text = (u: unknown): string | undefined => (typeof u === "string" ? u : u instanceof Uint8Array ? latin1(u) : undefined)
