/**
 * A real OTLP receiver on 127.0.0.1 for tests — what a collector, Jaeger or Tempo would be in
 * production. It listens on two free ports:
 *
 * - HTTP: `POST /v1/traces` and `POST /v1/metrics`, bodies `application/json` (OTLP/JSON) or
 *   `application/x-protobuf` (decoded with protobufjs and the OTLP `.proto` subset in
 *   `./proto`), optionally gzip-compressed;
 * - gRPC: `TraceService/Export` and `MetricsService/Export` (grpc-js + proto-loader).
 *
 * Everything received is normalised (`OtlpDecode`) so a test asserts the same way whatever the
 * protocol.
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { gunzipSync } from "node:zlib"
import protobuf from "protobufjs"
import { afterEach, beforeEach } from "vitest"
import { metricsOf, spansOf, type ReceivedMetric, type ReceivedSpan, type Via } from "./OtlpDecode.ts"

export type { ReceivedMetric, ReceivedSpan } from "./OtlpDecode.ts"

/** One export request as it arrived. */
export interface ReceivedRequest {
  readonly signal: "traces" | "metrics"
  readonly via: Exclude<Via, "file">
  /** Request headers (HTTP) or metadata (gRPC), lower-case keys. */
  readonly headers: Readonly<Record<string, string>>
}

/** A running receiver. */
export interface OtlpReceiver {
  /** Base URL of the HTTP endpoint, e.g. `http://127.0.0.1:40123` (no `/v1/...`). */
  readonly httpUrl: string
  /** URL of the gRPC endpoint, e.g. `http://127.0.0.1:40124`. */
  readonly grpcUrl: string
  readonly spans: ReadonlyArray<ReceivedSpan>
  readonly metrics: ReadonlyArray<ReceivedMetric>
  readonly requests: ReadonlyArray<ReceivedRequest>
  /** Requests the receiver could not decode (each a message); a correct exporter causes none. */
  readonly errors: ReadonlyArray<string>
  /** TCP connections accepted by the HTTP server plus gRPC calls received. */
  readonly connections: number
  /** Resolves once `predicate` holds (checked now and after every request); rejects after `timeoutMs`. */
  readonly waitFor: (predicate: (receiver: OtlpReceiver) => boolean, timeoutMs?: number) => Promise<void>
  readonly close: () => Promise<void>
}

const protoRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), "proto")
const serviceFiles = ["opentelemetry/proto/collector/trace/v1/trace_service.proto", "opentelemetry/proto/collector/metrics/v1/metrics_service.proto"]
// The same object shape from protobufjs and proto-loader, so one normaliser reads both.
const objectOptions = { longs: String, enums: Number, defaults: false, oneofs: true } as const

const loadRoot = (): protobuf.Root => {
  const root = new protobuf.Root()
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(protoRoot, target))
  return root.loadSync(serviceFiles)
}

const flatHeaders = (headers: http.IncomingHttpHeaders | Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).map(([key, value]) => [key.toLowerCase(), Array.isArray(value) ? value.join(",") : String(value)]))

/** Starts a receiver on free ports of 127.0.0.1. */
export const start = async (): Promise<OtlpReceiver> => {
  const root = loadRoot()
  const requestTypes = {
    traces: root.lookupType("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
    metrics: root.lookupType("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest")
  }
  const spans: Array<ReceivedSpan> = []
  const metrics: Array<ReceivedMetric> = []
  const requests: Array<ReceivedRequest> = []
  const errors: Array<string> = []
  const waiters = new Set<() => void>()
  let connections = 0

  const record = (signal: "traces" | "metrics", via: ReceivedRequest["via"], body: Record<string, unknown>, headers: Record<string, string>) => {
    requests.push({ signal, via, headers })
    if (signal === "traces") spans.push(...spansOf(body, via))
    else metrics.push(...metricsOf(body, via))
    for (const wake of waiters) wake()
  }

  const server = http.createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const signal = request.url === "/v1/traces" ? "traces" : request.url === "/v1/metrics" ? "metrics" : undefined
      if (request.method !== "POST" || signal === undefined) {
        response.writeHead(404).end()
        return
      }
      const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim()
      try {
        const raw = Buffer.concat(chunks)
        const body = request.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw
        if (contentType === "application/json") {
          record(signal, "http/json", JSON.parse(body.toString("utf8")), flatHeaders(request.headers))
          response.writeHead(200, { "content-type": "application/json" }).end("{}")
        } else if (contentType === "application/x-protobuf") {
          const type = requestTypes[signal]
          record(signal, "http/protobuf", type.toObject(type.decode(body), objectOptions), flatHeaders(request.headers))
          // An empty protobuf message encodes as zero bytes.
          response.writeHead(200, { "content-type": "application/x-protobuf" }).end()
        } else {
          errors.push(`unsupported content-type ${JSON.stringify(contentType)} on ${request.url}`)
          response.writeHead(415).end()
        }
      } catch (error) {
        errors.push(`cannot decode ${contentType} on ${request.url}: ${String(error)}`)
        response.writeHead(400).end()
      }
    })
  })
  server.on("connection", () => connections++)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))

  const definition = protoLoader.loadSync(serviceFiles, { ...objectOptions, keepCase: false, includeDirs: [protoRoot] })
  const services = grpc.loadPackageDefinition(definition) as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: Record<string, grpc.ServiceClientConstructor> }; metrics: { v1: Record<string, grpc.ServiceClientConstructor> } } } }
  }
  const grpcServer = new grpc.Server()
  const handler = (signal: "traces" | "metrics"): grpc.UntypedServiceImplementation => ({
    Export: (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      connections++
      record(signal, "grpc", call.request, flatHeaders(call.metadata.getMap()))
      callback(null, {})
    }
  })
  grpcServer.addService(services.opentelemetry.proto.collector.trace.v1.TraceService!.service, handler("traces"))
  grpcServer.addService(services.opentelemetry.proto.collector.metrics.v1.MetricsService!.service, handler("metrics"))
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)))
  )

  const receiver: OtlpReceiver = {
    httpUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    spans,
    metrics,
    requests,
    errors,
    get connections() {
      return connections
    },
    waitFor: (predicate, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!predicate(receiver)) return
          cleanup()
          resolve()
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`OtlpReceiver.waitFor: not satisfied after ${timeoutMs} ms; got ${spans.length} spans (${spans.map((s) => s.name).join(", ")}), ${metrics.length} metrics (${[...new Set(metrics.map((m) => m.name))].join(", ")}), errors: ${errors.join("; ") || "none"}`))
        }, timeoutMs)
        const cleanup = () => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      }),
    close: async () => {
      server.closeAllConnections()
      await Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        new Promise<void>((resolve) => {
          // A client may keep its HTTP/2 session open; do not let it hold the test up.
          const force = setTimeout(() => grpcServer.forceShutdown(), 1_000)
          grpcServer.tryShutdown(() => {
            clearTimeout(force)
            resolve()
          })
        })
      ])
    }
  }
  return receiver
}

/** A receiver that is closed when the scope closes. */
export const acquire: Effect.Effect<OtlpReceiver, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(start),
  (receiver) => Effect.promise(receiver.close)
)

/**
 * For each test of the calling `describe` block: a receiver on loopback and a fresh temporary
 * folder, both gone after the test. Read them through the returned object (they change per test).
 */
export const eachTest = (): { readonly receiver: OtlpReceiver; readonly directory: string } => {
  const current = { receiver: undefined as unknown as OtlpReceiver, directory: "" }
  beforeEach(async () => {
    current.receiver = await start()
    current.directory = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-otel-"))
  })
  afterEach(async () => {
    await current.receiver.close()
    fs.rmSync(current.directory, { recursive: true, force: true })
  })
  return current
}
