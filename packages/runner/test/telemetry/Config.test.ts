import { Effect, Result } from "effect"
import { describe, expect, it } from "vitest"
import * as Config from "../../src/telemetry/Config.ts"
import { InvalidSetting } from "../../src/telemetry/TelemetryError.ts"

const resolve = (env: Record<string, string>, options: Config.TelemetryOptions = {}) => Effect.runSync(Config.resolve({ ...options, env }))

const failure = (env: Record<string, string>, options: Config.TelemetryOptions = {}): InvalidSetting => {
  const result = Effect.runSync(Effect.result(Config.resolve({ ...options, env })))
  if (Result.isSuccess(result)) throw new Error(`expected a failure, got ${JSON.stringify(result.success)}`)
  expect(result.failure).toBeInstanceOf(InvalidSetting)
  return result.failure
}

describe("Config.resolve: endpoints", () => {
  it("configures nothing when no endpoint is given, whatever else is set", () => {
    const settings = resolve({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_HEADERS: "a=b" })
    expect(settings.traces).toBeUndefined()
    expect(settings.metrics).toBeUndefined()
    expect(settings.traceFile).toBeUndefined()
  })

  it("appends /v1/<signal> to the generic endpoint for HTTP, with or without a trailing slash, and defaults to http/protobuf", () => {
    const plain = resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })
    expect(plain.traces).toEqual({ signal: "traces", protocol: "http/protobuf", url: "http://collector:4318/v1/traces", headers: {}, timeoutMillis: Config.defaultTimeoutMillis })
    expect(plain.metrics?.url).toBe("http://collector:4318/v1/metrics")
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel.example/base/" }).traces?.url).toBe("https://otel.example/base/v1/traces")
  })

  it("uses the signal-specific endpoint as given, and lets it win over the generic one", () => {
    const settings = resolve({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://generic:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:9999/custom/path"
    })
    expect(settings.traces?.url).toBe("http://traces:9999/custom/path")
    expect(settings.metrics?.url).toBe("http://generic:4318/v1/metrics")
  })

  it("leaves a gRPC endpoint's URL untouched, and takes the signal-specific protocol over the generic one", () => {
    const settings = resolve({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://collector:4318/v1/metrics"
    })
    expect(settings.traces).toMatchObject({ protocol: "grpc", url: "http://collector:4317" })
    expect(settings.metrics).toMatchObject({ protocol: "http/json", url: "http://collector:4318/v1/metrics" })
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }).traces?.url).toBe("collector:4317")
  })

  it("lets explicit options win over every variable", () => {
    const settings = resolve(
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://env:1/v1/traces", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_HEADERS: "k=env,only=env" },
      { otlpUrl: "http://explicit:4318", protocol: "http/json", headers: { k: "option" } }
    )
    expect(settings.traces).toMatchObject({ protocol: "http/json", url: "http://explicit:4318/v1/traces", headers: { k: "option", only: "env" } })
  })

  it("merges signal-specific headers over generic ones and percent-decodes values", () => {
    const settings = resolve({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_HEADERS: " authorization = Basic%20dXNlcjpwdw%3D%3D , x-shared=generic ,",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-shared=traces"
    })
    expect(settings.traces?.headers).toEqual({ authorization: "Basic dXNlcjpwdw==", "x-shared": "traces" })
    expect(settings.metrics?.headers).toEqual({ authorization: "Basic dXNlcjpwdw==", "x-shared": "generic" })
  })

  it("reads per-signal timeouts and the metric export interval", () => {
    const settings = resolve({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
      OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "700",
      OTEL_METRIC_EXPORT_INTERVAL: "15000"
    })
    expect(settings.traces?.timeoutMillis).toBe(2500)
    expect(settings.metrics?.timeoutMillis).toBe(700)
    expect(settings.metricIntervalMillis).toBe(15_000)
    expect(resolve({}).metricIntervalMillis).toBe(60_000)
    // The release waits for both signals at once: the longer timeout, and a little more.
    expect(settings.shutdownTimeoutMillis).toBe(2500 + Config.shutdownGraceMillis)
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).shutdownTimeoutMillis).toBe(Config.defaultTimeoutMillis + Config.shutdownGraceMillis)
  })

  it("turns every exporter off with OTEL_SDK_DISABLED=true but keeps the trace file", () => {
    const settings = resolve({ OTEL_SDK_DISABLED: "TRUE", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, { otlpUrl: "http://explicit:4318", traceFile: "out/trace.json" })
    expect(settings.traces).toBeUndefined()
    expect(settings.metrics).toBeUndefined()
    expect(settings.traceFile).toBe("out/trace.json")
    expect(resolve({ OTEL_SDK_DISABLED: "false", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).traces).toBeDefined()
  })

  it("turns one signal off with OTEL_<SIGNAL>_EXPORTER=none", () => {
    const settings = resolve({ OTEL_TRACES_EXPORTER: "none", OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })
    expect(settings.traces).toBeUndefined()
    expect(settings.metrics?.url).toBe("http://c:4318/v1/metrics")
  })

  it("treats empty variables as unset", () => {
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "  ", OTEL_SERVICE_NAME: "" }).traces).toBeUndefined()
    expect(resolve({ OTEL_SERVICE_NAME: "" }).resource["service.name"]).toBe("crucible")
  })
})

describe("Config.resolve: resource", () => {
  it("defaults service.name to crucible and service.version to the runner's version", () => {
    expect(resolve({}).resource).toEqual({ "service.name": "crucible", "service.version": "0.1.0" })
  })

  it("ranks service.name: option, OTEL_SERVICE_NAME, resource attributes", () => {
    const attributes = "service.name=from-attributes,service.version=9.9.9,host.name=box%2D1"
    expect(resolve({ OTEL_RESOURCE_ATTRIBUTES: attributes }).resource).toEqual({ "service.name": "from-attributes", "service.version": "9.9.9", "host.name": "box-1" })
    expect(resolve({ OTEL_RESOURCE_ATTRIBUTES: attributes, OTEL_SERVICE_NAME: "from-env" }).resource["service.name"]).toBe("from-env")
    expect(resolve({ OTEL_SERVICE_NAME: "from-env" }, { serviceName: "from-option", serviceVersion: "1.2.3" }).resource).toMatchObject({ "service.name": "from-option", "service.version": "1.2.3" })
  })

  it("adds crucible.run.id and the option's attributes over the variable's", () => {
    const settings = resolve({ OTEL_RESOURCE_ATTRIBUTES: "team=a,zone=eu" }, { runId: "r-1", resourceAttributes: { team: "b" } })
    expect(settings.resource).toEqual({ "service.name": "crucible", "service.version": "0.1.0", team: "b", zone: "eu", "crucible.run.id": "r-1" })
  })
})

describe("Config.resolve: invalid settings name the variable", () => {
  it("rejects an unknown protocol", () => {
    const error = failure({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "thrift" })
    expect(error.setting).toBe("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    expect(error.message).toBe(`telemetry: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="thrift" is invalid: expected one of "http/protobuf", "http/json", "grpc"`)
  })

  it("rejects URLs that are not absolute http(s) URLs", () => {
    expect(failure({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }).setting).toBe("OTEL_EXPORTER_OTLP_ENDPOINT")
    expect(failure({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "ftp://c/v1/metrics" }).setting).toBe("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    expect(failure({}, { otlpUrl: "not a url" }).setting).toBe("options.otlpUrl")
  })

  it("rejects malformed key=value lists", () => {
    const headers = failure({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_HEADERS: "a=1,broken" })
    expect(headers.setting).toBe("OTEL_EXPORTER_OTLP_HEADERS")
    expect(headers.message).toContain(`bad entry "broken"`)
    expect(failure({ OTEL_RESOURCE_ATTRIBUTES: "k=%E0%A4%A" }).setting).toBe("OTEL_RESOURCE_ATTRIBUTES")
    expect(failure({ OTEL_RESOURCE_ATTRIBUTES: "=value" }).setting).toBe("OTEL_RESOURCE_ATTRIBUTES")
  })

  it("rejects non-positive timeouts and intervals, and exporters other than otlp", () => {
    expect(failure({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TIMEOUT: "0" }).setting).toBe("OTEL_EXPORTER_OTLP_TIMEOUT")
    expect(failure({ OTEL_METRIC_EXPORT_INTERVAL: "soon" }).setting).toBe("OTEL_METRIC_EXPORT_INTERVAL")
    expect(failure({}, { shutdownTimeoutMillis: -1 }).setting).toBe("options.shutdownTimeoutMillis")
    expect(failure({ OTEL_TRACES_EXPORTER: "zipkin" }).setting).toBe("OTEL_TRACES_EXPORTER")
  })
})
