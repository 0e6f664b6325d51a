/**
 * Finding the state dict inside whatever a user passed to `torch.save`: the dict itself, a
 * training checkpoint `{"model": …, "optimizer": …, "epoch": …}`, a Lightning checkpoint
 * `{"state_dict": …}`, or a path the caller names with `key`. Nested dicts and lists of tensors
 * are flattened to dotted names, as `nn.Module.state_dict()` names them.
 *
 * The walk is iterative and bounded (depth, visits), so a hostile pickle that builds a cycle
 * or an exponentially shared structure is refused instead of exhausting the stack or the CPU.
 *
 * @since 0.1.0
 */
import { Dict, List, Tuple, typeName } from "../pickle/Values.ts"
import { TensorView } from "./Globals.ts"

/** Keys under which checkpoints commonly keep the model's state dict, in order of preference. */
export const COMMON_KEYS = ["state_dict", "model_state_dict", "model", "module", "net", "network", "ema", "model_ema", "params", "weights"] as const

const MAX_DEPTH = 64
const MAX_VISITS = 2_000_000

/** A selection problem: `key` when the caller's key is at fault, else the file's structure. */
export interface Problem {
  readonly kind: "key" | "structure"
  readonly detail: string
}

/** The named tensors of the state dict in `root`, selected by `key` when given. */
export const select = (root: unknown, key?: string): ReadonlyArray<readonly [string, TensorView]> | Problem => {
  if (key !== undefined) {
    const node = navigate(root, key)
    if (typeof node === "object" && node !== null && "kind" in node) return node as Problem
    if (node instanceof TensorView) return [[key.split(".").at(-1) ?? key, node]]
    const found = flatten(node, "")
    return isProblem(found) ? found : found.length === 0 ? { kind: "key", detail: `"${key}" holds no tensors` } : found
  }
  return discover(root, 0)
}

const discover = (root: unknown, depth: number): ReadonlyArray<readonly [string, TensorView]> | Problem => {
  if (root instanceof TensorView) return [["tensor", root]]
  if (!(root instanceof Dict)) {
    const all = flatten(root, "")
    return isProblem(all) || all.length > 0 ? all : { kind: "structure", detail: `the checkpoint holds a ${typeName(root)} with no tensors` }
  }
  // A dict with tensors as direct values is a state dict.
  for (const value of root.entries.values()) if (value instanceof TensorView) return flatten(root, "")
  if (depth < 4) {
    for (const k of COMMON_KEYS) {
      const value = root.entries.get(k)
      if (value === undefined) continue
      const inner = discover(value, depth + 1)
      if (isProblem(inner) || inner.length > 0) return inner
    }
  }
  const candidates: Array<unknown> = []
  for (const [k, value] of root.entries) {
    const inner = flatten(value, "")
    if (isProblem(inner)) return inner
    if (inner.length > 0) candidates.push(k)
  }
  // flatten() has bounded the depth already: this descent follows a single chain of dicts.
  if (candidates.length === 1) return discover(root.entries.get(candidates[0]), depth + 1)
  if (candidates.length === 0) return { kind: "structure", detail: `no tensors found (top-level keys: ${keysOf(root)})` }
  return { kind: "structure", detail: `several entries hold tensors (${candidates.map((c) => `"${String(c)}"`).join(", ")}): choose one with key` }
}

/**
 * Follows `key` through dicts and lists. State-dict names contain dots themselves, so at each
 * dict the longest run of the remaining parts that is one of its keys wins.
 */
const navigate = (root: unknown, key: string): unknown => {
  const parts = key.split(".")
  let node = root
  let i = 0
  while (i < parts.length) {
    let next = -1
    if (node instanceof Dict) {
      const dict: Dict = node
      for (let j = parts.length; j > i && next < 0; j--) {
        const candidate = parts.slice(i, j).join(".")
        const k = dict.entries.has(candidate) ? candidate : /^-?\d+$/.test(candidate) && dict.entries.has(Number(candidate)) ? Number(candidate) : undefined
        if (k !== undefined) {
          node = dict.entries.get(k)
          next = j
        }
      }
    } else if ((node instanceof List || node instanceof Tuple) && /^\d+$/.test(parts[i]!) && Number(parts[i]) < node.items.length) {
      node = node.items[Number(parts[i])]
      next = i + 1
    }
    if (next < 0) return { kind: "key", detail: `no entry "${parts[i]}" in "${key}" (available: ${node instanceof Dict ? keysOf(node) : `a ${typeName(node)}`})` } satisfies Problem
    i = next
  }
  return node
}

/** Tensors under `node`, named by their path; non-tensor leaves (epochs, hyper-parameters) are skipped. */
const flatten = (node: unknown, prefix: string): Array<readonly [string, TensorView]> | Problem => {
  const out: Array<readonly [string, TensorView]> = []
  const todo: Array<readonly [string, unknown, number]> = [[prefix, node, 0]]
  let visits = 0
  while (todo.length > 0) {
    const [name, value, depth] = todo.pop()!
    if (++visits > MAX_VISITS) return { kind: "structure", detail: `the pickle's structure has more than ${MAX_VISITS} nodes (a pickle bomb?)` }
    if (value instanceof TensorView) {
      out.push([name, value])
      continue
    }
    const children = value instanceof Dict ? [...value.entries] : value instanceof List || value instanceof Tuple ? value.items.map((v, i) => [i, v] as const) : undefined
    if (children === undefined) continue
    if (depth >= MAX_DEPTH) return { kind: "structure", detail: `containers nested deeper than ${MAX_DEPTH} levels (a cyclic or hostile pickle?)` }
    // Pushed in reverse so the walk (and the model) keeps the checkpoint's order.
    for (let i = children.length - 1; i >= 0; i--) {
      const [k, v] = children[i]!
      todo.push([name === "" ? String(k) : `${name}.${String(k)}`, v, depth + 1])
    }
  }
  const seen = new Set<string>()
  for (const [name] of out) {
    if (seen.has(name)) return { kind: "structure", detail: `two tensors are both named "${name}"` }
    seen.add(name)
  }
  return out
}

const isProblem = (u: unknown): u is Problem => typeof u === "object" && u !== null && !Array.isArray(u) && "kind" in u

const keysOf = (d: Dict): string => {
  const keys = [...d.entries.keys()].map((k) => (typeof k === "string" ? JSON.stringify(k) : typeof k === "number" || typeof k === "bigint" ? String(k) : typeName(k)))
  return keys.length > 12 ? `${keys.slice(0, 12).join(", ")}, …` : keys.join(", ") || "none"
}
