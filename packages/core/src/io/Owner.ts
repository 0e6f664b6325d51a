/**
 * Processes as owners of files: a pid alone is not an identity (pids are reused after a process
 * dies), so an owner is the pid with its start time (field 22 of `/proc/<pid>/stat`, in clock
 * ticks since boot) and the host. Temporaries and lock files carry their owner, so that after a
 * `kill -9` another process can tell the leftovers of a dead process from the work of a live one.
 *
 * Where `/proc` is missing (macOS, Windows) the start time is unknown (`""`): liveness then falls
 * back to the pid alone. A process on another host cannot be checked at all: {@link isAlive}
 * answers `true` for it, so its files are never taken away from it.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"

/** A process, identified so that a reused pid is not mistaken for it. @category models */
export interface Owner {
  readonly pid: number
  /** Start time of the process, clock ticks since boot (`/proc/<pid>/stat` field 22); `""` where unknown. */
  readonly start: string
  readonly host: string
}

/** The start time of `pid` from `/proc/<pid>/stat`, or `undefined` where it cannot be read. */
const startOf = (pid: number | "self"): string | undefined => {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so fields are counted
  // after the last ")". Field 3 (state) is the first there, so field 22 is the 20th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const start = fields[19]
  return start !== undefined && /^\d+$/.test(start) ? start : undefined
}

/** This process (computed on each call: one small read of `/proc/self/stat`). @category constructors */
export const current = (): Owner => ({ pid: process.pid, start: startOf("self") ?? "", host: os.hostname() })

/** A filename-safe token for an owner: `"12345-987654"` (an unknown start is `0`). @category formatting */
export const token = (owner: Pick<Owner, "pid" | "start">): string => `${owner.pid}-${owner.start === "" ? "0" : owner.start}`

/** Reads a {@link token} back; `undefined` when `text` is not one. @category parsing */
export const parseToken = (text: string): { pid: number; start: string } | undefined => {
  const match = /^(\d+)-(\d+)$/.exec(text)
  if (match === null) return undefined
  const pid = Number(match[1])
  return Number.isSafeInteger(pid) && pid > 0 ? { pid, start: match[2]! } : undefined
}

const unknownStart = (start: string) => start === "" || start === "0"

/** Whether the owner runs on this host (its pid can be checked here). @category predicates */
export const isLocal = (owner: { readonly host?: string | undefined }): boolean => owner.host === undefined || owner.host === "" || owner.host === os.hostname()

/**
 * Whether the owner still runs. On another host: `true` (it cannot be told; such files are left
 * alone). Otherwise the pid must exist (`kill(pid, 0)`: `ESRCH` is dead, `EPERM` is alive, owned by
 * another user) and, where both start times are known, have the same start: a different start
 * is another process that reused the pid, so the owner is dead. @category predicates
 */
export const isAlive = (owner: { readonly pid: number; readonly start: string; readonly host?: string | undefined }): boolean => {
  if (!isLocal(owner)) return true
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0) return false
  try {
    process.kill(owner.pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  if (unknownStart(owner.start)) return true
  const start = startOf(owner.pid)
  return start === undefined || start === owner.start
}

/** A name for a temporary owned by this process: `${prefix}.${token}.${12 hex}`. @category constructors */
export const temporaryName = (prefix: string): string => `${prefix}.${token(current())}.${randomBytes(6).toString("hex")}`

/**
 * The owner token embedded in a name made by {@link temporaryName} (or an `AtomicFile`
 * temporary, `.name.<token>.<12 hex>.partial`), if any. @category parsing
 */
export const ownerOfName = (name: string): { pid: number; start: string } | undefined => {
  const match = /\.(\d+-\d+)\.[0-9a-f]{12}(?:\.partial)?$/.exec(name)
  return match === null ? undefined : parseToken(match[1]!)
}
