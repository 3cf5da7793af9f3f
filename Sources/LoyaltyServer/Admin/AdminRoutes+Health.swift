import Foundation
import Hummingbird

/// `GET /health`: the process is up. `GET /ready`: PostgreSQL and Redis answer; 503 names which is down.
struct HealthRoutes: Sendable {
    let probe: ReadinessProbe

    func register(on router: Router<some RequestContext>) {
        router.get("/health") { _, _ in
            JSONBody(["status": "ok"])
        }
        router.get("/ready") { _, _ in
            let report = await probe.check()
            return EncodedResponse(report, status: report.ready ? .ok : .serviceUnavailable)
        }
    }
}

/// A JSON body with an explicit status.
struct EncodedResponse<Value: Encodable & Sendable>: ResponseGenerator {
    let value: Value
    let status: HTTPResponse.Status

    init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

typealias JSONBody = EncodedResponse<[String: String]>
