/**
 * OTLP/gRPC export of metrics: `MetricsService/Export` with the request encoded by
 * `@opentelemetry/otlp-transformer`'s protobuf serializer.
 *
 * Written here because `@opentelemetry/exporter-metrics-otlp-grpc` is not among the installed
 * packages; it is a stand-in of the same behaviour (one unary call per collection, the
 * exporter's timeout as the call deadline, insecure only for `http://` URLs) and can be
 * replaced by that package without changing any caller.
 *
 * @since 0.1.0
 */
import type { ChannelCredentials, Client, Metadata } from "@grpc/grpc-js"
import { ProtobufMetricsSerializer } from "@opentelemetry/otlp-transformer"
import { AggregationTemporality, type PushMetricExporter, type ResourceMetrics } from "@opentelemetry/sdk-metrics"
import type { Endpoint } from "./Config.ts"

const exportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

type ExportResult = Parameters<Parameters<PushMetricExporter["export"]>[1]>[0]
// ExportResultCode of @opentelemetry/core, which is not a direct dependency.
const success: ExportResult = { code: 0 }
const failure = (error: Error): ExportResult => ({ code: 1, error })

/** The gRPC target (`host:port`) and whether the channel is plaintext, from an endpoint URL. @category parsing */
export const grpcTarget = (url: string): { readonly target: string; readonly insecure: boolean } => {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { target: url, insecure: false }
  const parsed = new URL(url)
  return { target: parsed.host, insecure: parsed.protocol === "http:" }
}

/** Builds gRPC metadata carrying the endpoint's headers. @category constructors */
export const metadataOf = (grpc: typeof import("@grpc/grpc-js"), headers: Readonly<Record<string, string>>): Metadata => {
  const metadata = new grpc.Metadata()
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value)
  return metadata
}

/** A push exporter sending cumulative metrics to an OTLP/gRPC receiver. @category constructors */
export const make = (grpc: typeof import("@grpc/grpc-js"), endpoint: Endpoint): PushMetricExporter => {
  const { target, insecure } = grpcTarget(endpoint.url)
  const credentials: ChannelCredentials = insecure ? grpc.credentials.createInsecure() : grpc.credentials.createSsl()
  let client: Client | undefined = new grpc.Client(target, credentials)
  const metadata = metadataOf(grpc, endpoint.headers)
  const inFlight = new Set<Promise<void>>()

  const send = (metrics: ResourceMetrics, done: (result: ExportResult) => void): void => {
    const body = ProtobufMetricsSerializer.serializeRequest(metrics)
    if (client === undefined) return done(failure(new Error("the OTLP/gRPC metric exporter is shut down")))
    if (body === undefined) return done(failure(new Error("the metrics could not be encoded as OTLP protobuf")))
    const call = new Promise<void>((resolve) => {
      client!.makeUnaryRequest(
        exportMethod,
        (request: Uint8Array) => Buffer.from(request.buffer, request.byteOffset, request.byteLength),
        (response: Buffer) => response,
        body,
        metadata,
        { deadline: Date.now() + endpoint.timeoutMillis },
        (error) => {
          done(error ? failure(error) : success)
          resolve()
        }
      )
    })
    inFlight.add(call)
    void call.finally(() => inFlight.delete(call))
  }

  const forceFlush = async (): Promise<void> => {
    await Promise.all(inFlight)
  }

  return {
    export: send,
    forceFlush,
    selectAggregationTemporality: () => AggregationTemporality.CUMULATIVE,
    shutdown: async () => {
      await forceFlush()
      client?.close()
      client = undefined
    }
  }
}
