/**
 * Spreading a run's units over the workers. The cluster places an entity by the hash of its id
 * (its shard) and the shard's owner (a consistent-hash ring of the live runners of the shard's
 * group); a run's units hashed as they come can land unevenly (8 fine-tunes on one worker, 4 on
 * the other). So at submission each unit's entity id gets a suffix (`#k`) chosen for the shard
 * the ring gives to the least loaded worker of its group, in the order units become ready — the
 * same ring the cluster builds (effect's `HashRing` over the runners and weights it registered),
 * computed from the runners alive now. Placement stays the cluster's: if workers come or go
 * before a unit starts, the unit goes where its shard is then owned, only less evenly.
 *
 * @since 0.2.0
 */
import { HashRing } from "effect"
import { RunnerAddress } from "effect/cluster"
import { unitEntityId } from "./Protocol.ts"

/** A live runner as the cluster registered it. @category models */
export interface RingRunner {
  readonly host: string
  readonly port: number
  readonly groups: ReadonlyArray<string>
  readonly weight: number
}

/**
 * The entity id of each unit (`<group>:<run>/<unit>[#k]`), chosen so consecutive units of a group
 * go to its workers in turn. `shardOf` is the cluster's `getShardId` (1-based shard index).
 */
export const spread = (
  runId: string,
  units: ReadonlyArray<{ readonly id: string; readonly group: string }>,
  runners: ReadonlyArray<RingRunner>,
  shardsPerGroup: number,
  shardOf: (entityId: string, group: string) => number
): ReadonlyMap<string, string> => {
  const owners = new Map<string, ReadonlyArray<string> | undefined>()
  const ownersOf = (group: string) => {
    if (!owners.has(group)) {
      const ring = HashRing.make<RunnerAddress.RunnerAddress>()
      for (const r of runners) if (r.groups.includes(group)) HashRing.add(ring, RunnerAddress.make(r.host, r.port), { weight: r.weight })
      owners.set(group, HashRing.getShards(ring, shardsPerGroup)?.map((a) => `${a.host}:${a.port}`))
    }
    return owners.get(group)
  }
  const load = new Map<string, number>()
  const chosen = new Map<string, string>()
  for (const unit of units) {
    const base = unitEntityId(unit.group, runId, unit.id)
    const shardOwners = ownersOf(unit.group)
    const hosts = runners.filter((r) => r.groups.includes(unit.group)).map((r) => `${r.host}:${r.port}`)
    if (shardOwners === undefined || hosts.length < 2) {
      chosen.set(unit.id, base)
      continue
    }
    const target = hosts.reduce((best, h) => ((load.get(h) ?? 0) < (load.get(best) ?? 0) ? h : best))
    let id = base
    // Each try lands on a worker with probability about its share of shards: a few tries suffice.
    for (let k = 1; k <= 256 && shardOwners[shardOf(id, unit.group) - 1] !== target; k++) id = `${base}#${k}`
    const owner = shardOwners[shardOf(id, unit.group) - 1]!
    load.set(owner, (load.get(owner) ?? 0) + 1)
    chosen.set(unit.id, id)
  }
  return chosen
}
