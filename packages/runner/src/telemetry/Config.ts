/**
 * Where telemetry goes, decided once from explicit options and the standard OpenTelemetry
 * environment variables. Pure: it reads the environment record it is given (never
 * `process.env` behind the caller's back), so the rules are testable and a run's settings are
 * one value that can be printed.
 *
 * Precedence, per signal (traces, metrics), highest first: an explicit option; the
 * signal-specific variable (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as a full URL); the generic
 * one (`OTEL_EXPORTER_OTLP_ENDPOINT`, a base URL to which `/v1/traces` or `/v1/metrics` is
 * appended for HTTP). With no endpoint anywhere the signal has no exporter at all, so nothing
 * ever tries to connect. `OTEL_SDK_DISABLED=true` turns every OTLP exporter off; a trace file,
 * being a local artefact explicitly asked for, is still written.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import packageJson from "../../package.json" with { type: "json" }
import { InvalidSetting } from "./TelemetryError.ts"

/** The OTLP wire protocols. `http/protobuf` is the default the OTLP exporter specification prescribes. @category models */
export type Protocol = "http/json" | "http/protobuf" | "grpc"

/** Every protocol, in the order they are documented. @category models */
export const protocols: ReadonlyArray<Protocol> = ["http/protobuf", "http/json", "grpc"]

/** A telemetry signal that can be exported over OTLP. @category models */
export type Signal = "traces" | "metrics"

/** What `Telemetry.layer` accepts. Every field is optional; an explicit field wins over its variable. @category models */
export interface TelemetryOptions {
  /** `service.name`; otherwise `OTEL_SERVICE_NAME`, then `OTEL_RESOURCE_ATTRIBUTES`, then "crucible". */
  readonly serviceName?: string
  /** `service.version`; defaults to the version of `@crucible/runner`. */
  readonly serviceVersion?: string
  /** Becomes the resource attribute `crucible.run.id`, so every span and metric names its run. */
  readonly runId?: string
  /** Also collect every span and write them at shutdown to this file as OTLP JSON. */
  readonly traceFile?: string
  /** Base OTLP endpoint for both signals, like `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://localhost:4318`). */
  readonly otlpUrl?: string
  /** The wire protocol for both signals, like `OTEL_EXPORTER_OTLP_PROTOCOL`. */
  readonly protocol?: Protocol
  /** Extra request headers for both signals, merged over `OTEL_EXPORTER_OTLP_HEADERS`. */
  readonly headers?: Readonly<Record<string, string>>
  /** The environment to read `OTEL_*` variables from; `process.env` when absent. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Resource attributes merged over `OTEL_RESOURCE_ATTRIBUTES`. */
  readonly resourceAttributes?: Readonly<Record<string, string>>
  /** How often metrics are pushed; otherwise `OTEL_METRIC_EXPORT_INTERVAL`, then 60 s. */
  readonly metricExportIntervalMillis?: number
  /**
   * The longest the layer's release waits for the exporters' last exports, all signals together;
   * when absent, the longest endpoint timeout plus {@link shutdownGraceMillis}.
   */
  readonly shutdownTimeoutMillis?: number
}

/** One OTLP destination. @category models */
export interface Endpoint {
  readonly signal: Signal
  readonly protocol: Protocol
  /** The full URL the exporter posts to (`…/v1/traces`), or the `host:port` target for gRPC. */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly timeoutMillis: number
}

/** The resolved settings of one run's telemetry. @category models */
export interface Settings {
  /** Resource attributes: `service.name`, `service.version`, `crucible.run.id`, and the user's. */
  readonly resource: Readonly<Record<string, string>>
  readonly traces: Endpoint | undefined
  readonly metrics: Endpoint | undefined
  readonly metricIntervalMillis: number
  readonly traceFile: string | undefined
  readonly shutdownTimeoutMillis: number
}

const signalVariable = { traces: "TRACES", metrics: "METRICS" } as const

/**
 * The OTLP export timeout when no `OTEL_EXPORTER_OTLP_*TIMEOUT` variable sets one. The
 * specification's 10 s is meant for long-lived services; a run awaits its last exports before it
 * ends, and 10 s per signal against an unreachable collector turned a 0.3 s run into 13 s. A
 * collector answers in milliseconds; set the variable for a slow one.
 *
 * @category constants
 */
export const defaultTimeoutMillis = 1_500

/**
 * How much longer than the longest export timeout the release waits, so an export that times out
 * is reported with the exporter's own error rather than cut off by the release.
 *
 * @category constants
 */
export const shutdownGraceMillis = 250

/** The Crucible default for `service.name`. @category constants */
export const defaultServiceName = "crucible"

/**
 * Resolves options and an environment into settings, failing with `InvalidSetting` naming the
 * first variable or option that cannot be used.
 *
 * @category constructors
 */
export const resolve = (
  options: TelemetryOptions = {},
  env: Readonly<Record<string, string | undefined>> = options.env ?? process.env
): Effect.Effect<Settings, InvalidSetting> =>
  Effect.gen(function* () {
    const read = (name: string): string | undefined => {
      const value = env[name]?.trim()
      return value === undefined || value === "" ? undefined : value
    }
    const disabled = read("OTEL_SDK_DISABLED")?.toLowerCase() === "true"
    const fromEnv = yield* keyValueList("OTEL_RESOURCE_ATTRIBUTES", read("OTEL_RESOURCE_ATTRIBUTES"))
    const attributes: Record<string, string> = { ...fromEnv, ...options.resourceAttributes }
    attributes["service.name"] = options.serviceName ?? read("OTEL_SERVICE_NAME") ?? attributes["service.name"] ?? defaultServiceName
    attributes["service.version"] = options.serviceVersion ?? attributes["service.version"] ?? packageJson.version
    if (options.runId !== undefined) attributes["crucible.run.id"] = options.runId

    const endpoint = (signal: Signal): Effect.Effect<Endpoint | undefined, InvalidSetting> =>
      Effect.gen(function* () {
        const upper = signalVariable[signal]
        const exporterVariable = `OTEL_${upper}_EXPORTER`
        const exporter = read(exporterVariable)?.toLowerCase()
        if (exporter !== undefined) {
          const names = exporter.split(",").map((name) => name.trim()).filter((name) => name !== "")
          const unknown = names.find((name) => name !== "otlp" && name !== "none")
          if (unknown !== undefined) {
            return yield* new InvalidSetting({ setting: exporterVariable, value: exporter, expected: `"otlp" or "none" (Crucible exports over OTLP only)` })
          }
          if (!names.includes("otlp")) return undefined
        }
        if (disabled) return undefined

        const protocolSetting = options.protocol !== undefined
          ? { setting: "options.protocol", value: options.protocol }
          : firstSet(read, [`OTEL_EXPORTER_OTLP_${upper}_PROTOCOL`, "OTEL_EXPORTER_OTLP_PROTOCOL"])
        const protocol = protocolSetting === undefined ? "http/protobuf" : yield* parseProtocol(protocolSetting.setting, protocolSetting.value)

        const specific = read(`OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`)
        const base = options.otlpUrl !== undefined
          ? { setting: "options.otlpUrl", value: options.otlpUrl.trim() }
          : specific === undefined ? firstSet(read, ["OTEL_EXPORTER_OTLP_ENDPOINT"]) : undefined
        const chosen = base !== undefined
          ? { setting: base.setting, url: protocol === "grpc" ? base.value : appendSignalPath(base.value, signal) }
          : specific !== undefined ? { setting: `OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`, url: specific } : undefined
        if (chosen === undefined) return undefined
        yield* checkUrl(chosen.setting, chosen.url, protocol)

        const headers = {
          ...(yield* keyValueList("OTEL_EXPORTER_OTLP_HEADERS", read("OTEL_EXPORTER_OTLP_HEADERS"))),
          ...(yield* keyValueList(`OTEL_EXPORTER_OTLP_${upper}_HEADERS`, read(`OTEL_EXPORTER_OTLP_${upper}_HEADERS`))),
          ...options.headers
        }
        const timeout = firstSet(read, [`OTEL_EXPORTER_OTLP_${upper}_TIMEOUT`, "OTEL_EXPORTER_OTLP_TIMEOUT"])
        const timeoutMillis = timeout === undefined ? defaultTimeoutMillis : yield* positiveMillis(timeout.setting, timeout.value)
        return { signal, protocol, url: chosen.url, headers, timeoutMillis }
      })

    const interval = options.metricExportIntervalMillis !== undefined
      ? { setting: "options.metricExportIntervalMillis", value: String(options.metricExportIntervalMillis) }
      : firstSet(read, ["OTEL_METRIC_EXPORT_INTERVAL"])
    const traces = yield* endpoint("traces")
    const metrics = yield* endpoint("metrics")
    const shutdown = options.shutdownTimeoutMillis === undefined
      ? Math.max(traces?.timeoutMillis ?? 0, metrics?.timeoutMillis ?? 0) + shutdownGraceMillis
      : yield* positiveMillis("options.shutdownTimeoutMillis", String(options.shutdownTimeoutMillis))
    return {
      resource: attributes,
      traces,
      metrics,
      metricIntervalMillis: interval === undefined ? 60_000 : yield* positiveMillis(interval.setting, interval.value),
      traceFile: options.traceFile,
      shutdownTimeoutMillis: shutdown
    }
  })

/** `base` + `/v1/<signal>`, as the OTLP exporter specification says for the generic endpoint. @category constructors */
export const appendSignalPath = (base: string, signal: Signal): string => `${base.endsWith("/") ? base : `${base}/`}v1/${signal}`

/**
 * Parses a W3C-Baggage-style list (`k1=v1,k2=v2`, values percent-encoded), the format of
 * `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`. Empty entries are skipped.
 *
 * @category parsing
 */
export const keyValueList = (setting: string, raw: string | undefined): Effect.Effect<Record<string, string>, InvalidSetting> =>
  Effect.gen(function* () {
    const result: Record<string, string> = {}
    if (raw === undefined) return result
    for (const entry of raw.split(",")) {
      if (entry.trim() === "") continue
      const equals = entry.indexOf("=")
      const key = equals < 0 ? "" : entry.slice(0, equals).trim()
      const decoded = equals < 0 ? undefined : percentDecode(entry.slice(equals + 1).trim())
      if (key === "" || decoded === undefined) {
        return yield* new InvalidSetting({ setting, value: raw, expected: `a comma-separated list of key=value pairs with percent-encoded values (bad entry ${JSON.stringify(entry.trim())})` })
      }
      result[key] = decoded
    }
    return result
  })

const percentDecode = (value: string): string | undefined => {
  try {
    return decodeURIComponent(value)
  } catch {
    return undefined
  }
}

const firstSet = (read: (name: string) => string | undefined, names: ReadonlyArray<string>) => {
  for (const setting of names) {
    const value = read(setting)
    if (value !== undefined) return { setting, value }
  }
  return undefined
}

const parseProtocol = (setting: string, value: string): Effect.Effect<Protocol, InvalidSetting> => {
  const found = protocols.find((protocol) => protocol === value.trim().toLowerCase())
  return found === undefined
    ? Effect.fail(new InvalidSetting({ setting, value, expected: `one of ${protocols.map((p) => `"${p}"`).join(", ")}` }))
    : Effect.succeed(found)
}

const checkUrl = (setting: string, url: string, protocol: Protocol): Effect.Effect<void, InvalidSetting> => {
  // gRPC accepts a bare host:port (secure by default); HTTP needs a full http(s) URL.
  const candidate = protocol === "grpc" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? `https://${url}` : url
  const parsed = URL.canParse(candidate) ? new URL(candidate) : undefined
  return parsed !== undefined && (parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.hostname !== ""
    ? Effect.void
    : Effect.fail(new InvalidSetting({ setting, value: url, expected: protocol === "grpc" ? "an http(s)://host:port URL or host:port" : "an absolute http:// or https:// URL" }))
}

const positiveMillis = (setting: string, value: string): Effect.Effect<number, InvalidSetting> => {
  const millis = Number(value)
  return Number.isFinite(millis) && millis > 0
    ? Effect.succeed(millis)
    : Effect.fail(new InvalidSetting({ setting, value, expected: "a positive number of milliseconds" }))
}
