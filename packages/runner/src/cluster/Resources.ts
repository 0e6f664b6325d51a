/**
 * What a worker offers and what a stage needs, as cluster shard groups. effect/cluster places an
 * entity on a runner that hosts the entity's shard group; a worker hosts one group per (device,
 * memory tier) it can serve — every tier up to its memory — so a stage sent to the group of its
 * device and the smallest tier that holds its memory lands only on a worker that fits it. No
 * scheduler of ours decides placement: the cluster's shard assignment does.
 *
 * @since 0.2.0
 */
import { bytes as formatBytes } from "../cli/Format.ts"

/** A device a worker offers. @category models */
export type Device = "cpu" | "gpu"

/** @category models */
export interface WorkerResources {
  readonly devices: ReadonlyArray<Device>
  /** Bytes of memory the worker gives stages (`--memory`). */
  readonly memoryBytes: number
  /** Stages it runs at once (`--slots`). */
  readonly slots: number
}

/** @category models */
export interface StageNeeds {
  readonly device: Device
  /** Estimated peak working memory (the plan's estimate; 0 when the plan cannot tell). */
  readonly memoryBytes: number
}

/** The group the workflows themselves live in: every worker hosts it. */
export const WORKFLOW_GROUP = "default"

const GiB = 1024 ** 3
/** Memory tiers, powers of two from 512 MiB to 1 TiB: a stage needing more than 1 TiB fits no worker. */
export const TIERS: ReadonlyArray<number> = Array.from({ length: 12 }, (_, i) => 2 ** i * GiB / 2)

const DEVICES: ReadonlyArray<Device> = ["cpu", "gpu"]

const tierName = (bytes: number) => (bytes < GiB ? `${bytes / 1024 ** 2}MiB` : `${bytes / GiB}GiB`)

/** The group of `device` and memory tier `tier`, e.g. `cpu-4GiB`. */
export const groupName = (device: Device, tier: number): string => `${device}-${tierName(tier)}`

/** Every group a cluster knows (all runners and clients must agree on this list). */
export const ALL_GROUPS: ReadonlyArray<string> = [WORKFLOW_GROUP, ...DEVICES.flatMap((d) => TIERS.map((t) => groupName(d, t)))]

/** The groups a worker hosts: the workflows', and each of its devices at every tier up to its memory. */
export const groupsOf = (worker: Pick<WorkerResources, "devices" | "memoryBytes">): ReadonlyArray<string> =>
  [WORKFLOW_GROUP, ...worker.devices.flatMap((d) => TIERS.filter((t) => t <= worker.memoryBytes).map((t) => groupName(d, t)))]

/** The group a stage is sent to: its device at the smallest tier that holds its memory; undefined above the largest tier. */
export const groupFor = (needs: StageNeeds): string | undefined => {
  const tier = TIERS.find((t) => t >= needs.memoryBytes)
  return tier === undefined ? undefined : groupName(needs.device, tier)
}

/** Whether `worker` can run a stage that needs `needs` (it hosts the stage's group). */
export const fits = (worker: Pick<WorkerResources, "devices" | "memoryBytes">, needs: StageNeeds): boolean => {
  const group = groupFor(needs)
  return group !== undefined && groupsOf(worker).includes(group)
}

/** The needs as a user reads them: `gpu, 3.2 GB`. */
export const describeNeeds = (needs: StageNeeds): string => `${needs.device}, ${formatBytes(needs.memoryBytes)} of memory`

/** Parses `--devices cpu,gpu`. */
export const parseDevices = (text: string): ReadonlyArray<Device> | undefined => {
  const devices = text.split(",").map((d) => d.trim()).filter((d) => d.length > 0)
  return devices.length > 0 && devices.every((d): d is Device => d === "cpu" || d === "gpu") ? [...new Set(devices)] : undefined
}
