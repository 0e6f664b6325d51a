/**
 * The process exit codes, decided in one place: 0 ok, 1 a stage failed, 2 invalid pipeline or
 * input, 130 interrupted (as a shell reports SIGINT), 143 terminated (SIGTERM).
 *
 * @since 0.1.0
 */
export const ExitCode = { ok: 0, stageFailed: 1, invalid: 2, interrupted: 130, terminated: 143 } as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** The code for a run's status. */
export const forRun = (status: "succeeded" | "failed" | "interrupted"): ExitCode =>
  status === "succeeded" ? ExitCode.ok : status === "interrupted" ? ExitCode.interrupted : ExitCode.stageFailed
