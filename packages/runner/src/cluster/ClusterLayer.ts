/**
 * The cluster as layers, on effect/cluster + effect/workflow with SQL storage on PostgreSQL
 * (`@effect/sql-pg`): a worker is a cluster runner (it listens for other runners on `--listen`,
 * hosts the shard groups of its resources, runs units and workflows); a submitter is a client only
 * (it starts, follows and lists workflows, and hosts nothing). Messages, replies, workflow state
 * and runner registrations live in Postgres: a worker or the submitter may die and the run goes on.
 *
 * @since 0.2.0
 */
import { NodeClusterSocket } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Duration, Layer, Option, Redacted } from "effect"
import { ClusterWorkflowEngine, RunnerAddress, type ShardingConfig } from "effect/cluster"
import * as Telemetry from "../telemetry/Telemetry.ts"
import * as Resources from "./Resources.ts"
import * as RunFlow from "./RunFlow.ts"
import * as Worker from "./Worker.ts"

// Shards per resource group: enough to spread a run's units over a few workers, few enough that
// every worker can lock the shards of all its groups (Postgres advisory locks) quickly.
export const SHARDS_PER_GROUP = 16

// Faster than the library's defaults, which suit long-lived services: a dead worker is found
// within seconds (not a minute), so its units go to another one soon.
const timings: Partial<ShardingConfig.ShardingConfig["Service"]> = {
  runnerHealthCheckInterval: Duration.seconds(2),
  entityMessagePollInterval: Duration.seconds(1),
  refreshAssignmentsInterval: Duration.seconds(1),
  shardLockRefreshInterval: Duration.seconds(2),
  shardLockExpiration: Duration.seconds(10),
  entityTerminationTimeout: Duration.seconds(5)
}

/** Postgres, from `--cluster postgres://…`. */
export const sql = (url: string) => PgClient.layer({ url: Redacted.make(url) })

/** @category models */
export interface WorkerLayerOptions extends Worker.WorkerOptions {
  readonly cluster: string
  /** Where other runners reach this one (`--listen host:port`). */
  readonly host: string
  readonly port: number
}

/** A worker: runs units of its resource groups and the workflows of runs. */
export const worker = (options: WorkerLayerOptions) =>
  Layer.mergeAll(Worker.layer(options), RunFlow.layer).pipe(
    Layer.provide(ClusterWorkflowEngine.layer),
    // The worker's own spans (a unit, the workflow's activities) go over OTLP when OTEL_* says so;
    // each unit's run exports its stages itself (and writes them to its trace.json).
    Layer.provide(Layer.orDie(Telemetry.layer({ resourceAttributes: { "crucible.worker.id": options.id } }))),
    Layer.provideMerge(NodeClusterSocket.layer({
      storage: "sql",
      shardingConfig: {
        ...timings,
        runnerAddress: Option.some(RunnerAddress.make(options.host, options.port)),
        shardsPerGroup: SHARDS_PER_GROUP,
        availableShardGroups: Resources.ALL_GROUPS,
        assignedShardGroups: Resources.groupsOf(options.resources)
      }
    })),
    Layer.provideMerge(sql(options.cluster))
  )

/** A client of the cluster: submits, follows and lists runs; runs nothing. */
export const client = (cluster: string) =>
  ClusterWorkflowEngine.layer.pipe(
    Layer.provideMerge(NodeClusterSocket.layer({
      storage: "sql",
      clientOnly: true,
      shardingConfig: { ...timings, shardsPerGroup: SHARDS_PER_GROUP, availableShardGroups: Resources.ALL_GROUPS }
    })),
    Layer.provideMerge(sql(cluster))
  )
