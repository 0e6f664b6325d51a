/**
 * Why a cluster run could not be submitted, followed or listed.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

/** A unit whose needs no live worker meets: it would wait forever, so the run is refused. @category errors */
export class NoWorkerFits extends Schema.TaggedError<NoWorkerFits>()("NoWorkerFits", {
  stage: Schema.String,
  needs: Schema.String,
  workers: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `stage "${this.stage}" needs ${this.needs}, and no worker of the cluster offers it (${this.workers.length === 0 ? "no worker is running: start one with `crucible worker --cluster … --store …`" : `workers: ${this.workers.join("; ")}`})`
  }
}

/** Postgres could not be reached, or its cluster tables read. @category errors */
export class ClusterUnreachable extends Schema.TaggedError<ClusterUnreachable>()("ClusterUnreachable", {
  cluster: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `the cluster at ${this.cluster} could not be reached: ${this.detail}`
  }
}

/** `crucible attach RUN_ID`: the store has no run of that id. @category errors */
export class ClusterRunNotFound extends Schema.TaggedError<ClusterRunNotFound>()("ClusterRunNotFound", {
  runId: Schema.String,
  file: Schema.String
}) {
  override get message(): string {
    return `no cluster run "${this.runId}" in the store (${this.file} does not exist or is not a run's record)`
  }
}
