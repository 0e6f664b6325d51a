import { describe, expect, it } from "vitest"
import * as Interrupted from "../../src/cli/Interrupted.ts"
import type { Interrupted as Event } from "../../src/Interruption.ts"

describe("resumeCommand", () => {
  it("repeats the arguments without --run-id, quoting what a shell would split", () => {
    expect(Interrupted.resumeCommand(["run", "p.yaml", "--run-id", "r1", "--runs-dir", "my runs", "--json"])).toBe("crucible run p.yaml --runs-dir 'my runs' --json")
    expect(Interrupted.resumeCommand(["run", "it's.yaml", "--run-id=r1", "--memory-limit", "4GB"])).toBe(`crucible run 'it'\\''s.yaml' --memory-limit 4GB`)
  })
})

describe("message", () => {
  const event: Event = {
    type: "run-interrupted",
    time: 0,
    runDir: "/work/runs/r1",
    durationMs: 65_000,
    finished: [{ stage: "a", kind: "train" }],
    failed: [],
    interrupted: [{ stage: "b", kind: "train" }, { stage: "mid", kind: "merge/linear" }],
    notStarted: [{ stage: "out", kind: "save" }],
    saved: [
      { stage: "a", kind: "train", dir: "/work/runs/.cache/results/k1/result.json", use: "reused" },
      { stage: "b", kind: "train", dir: "/work/runs/.cache/work/k2", use: "resumed" }
    ],
    resume: "crucible run p.yaml"
  }

  it("says what finished, what was stopped, where the run is, what a re-run picks up and how to start it", () => {
    expect(Interrupted.message(event, "/work")).toBe(
      [
        "interrupted after 1 min 5 s",
        "  finished:    a (train)",
        "  stopped:     b (train), mid (merge/linear)",
        "  not started: out (save)",
        "  run directory: runs/r1 (manifest.json has each stage's state)",
        "  a re-run picks up what the runs folder's results store keeps:",
        "    a (train): stored, reused as it is (runs/.cache/results/k1/result.json)",
        "    b (train): resumes from its last checkpoint (runs/.cache/work/k2)",
        "  every other stage runs again",
        "  to run it again: crucible run p.yaml"
      ].join("\n")
    )
  })

  it("says so when nothing was kept, and shows paths outside the working directory as they are", () => {
    const text = Interrupted.message({ ...event, saved: [] }, "/elsewhere")
    expect(text).toContain("  run directory: /work/runs/r1 (")
    expect(text).toContain("  nothing was stored or checkpointed: a re-run runs every stage again")
  })
})
