import Hummingbird
import NIOCore

/// `GET /health`: the process is up. `GET /ready`: PostgreSQL and Redis answer; 503 names which is down.
/// `GET /openapi.json`: the API document read at start. `GET /metrics`: Prometheus text format. None needs a token
/// (metrics hold counts and timings, no personal data; keep the admin port off the public network).
enum HealthRoutes {
    @Sendable static func health(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        try JSONResponse.make(["status": "ok"])
    }

    @Sendable static func ready(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let report = await services.probe.check()
        return try JSONResponse.make(report, status: report.ready ? .ok : .serviceUnavailable)
    }

    @Sendable static func openAPI(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        guard let document = services.openAPIDocument else {
            throw APIProblem.notFound("the server found no OpenAPI document when it started")
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: document))
    }

    @Sendable static func metrics(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        guard let registry = services.metrics else {
            throw APIProblem.notFound("this server exports no metrics")
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}
