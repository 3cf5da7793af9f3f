import Prometheus
import Foundation
import Hummingbird
import HummingbirdTesting
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// One admin application over a fresh migrated database, with a token per role.
struct AdminHarness: Sendable {
    let client: any TestClientProtocol
    let postgres: PostgresClient
    let tokens: [AdminRole: String]

    var admin: String { tokens[.admin]! }
    var marketer: String { tokens[.marketer]! }
    var support: String { tokens[.support]! }
    var readonly: String { tokens[.readonly]! }

    /// Runs `body` against `AdminApplication.build` over the real PostgreSQL (and Redis for `/ready`).
    static func run(
        cache: (@Sendable (RedisClient) throws -> MemberCache)? = nil,
        metrics: PrometheusCollectorRegistry? = nil,
        rules: CurrentRules? = nil,
        policy: AdminPolicy = AdminPolicy(),
        _ body: @Sendable (AdminHarness) async throws -> Void
    ) async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let memberCache = try cache?(redis)
        try await TestServices.withMigratedDatabase { _, postgres in
            var tokens: [AdminRole: String] = [:]
            let store = AdminTokenStore(client: postgres, logger: TestServices.logger)
            for role in AdminRole.allCases {
                tokens[role] = try await store.create(name: "test \(role.rawValue)", role: role, expiresInDays: nil).secret.text
            }
            let app = AdminApplication.build(
                host: "127.0.0.1", port: 0,
                probe: ReadinessProbe(postgres: postgres, redis: redis, databaseTarget: "test", timeoutMs: 3_000),
                logger: TestServices.logger, postgres: postgres, cache: memberCache, policy: policy, rules: rules,
                openAPIPath: AdminHarness.openAPIPath, metrics: metrics)
            let frozenTokens = tokens
            try await app.test(.router) { client in
                try await body(AdminHarness(client: client, postgres: postgres, tokens: frozenTokens))
            }
        }
    }

    static var openAPIPath: String {
        TestServices.packageRoot.appendingPathComponent("docs/openapi.json").path
    }

    /// Sends a request; `json` sets the body and `Content-Type: application/json`.
    @discardableResult
    func call(
        _ method: HTTPRequest.Method, _ uri: String, token: String?, json: String? = nil, headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Creates a member as admin and returns its id.
    func createMember(_ json: String = "{}") async throws -> Int64 {
        let response = try await call(.post, "/v1/members", token: admin, json: json)
        #expect(response.status == .created, "\(response.text)")
        return try #require(response.json["member_id"]?.int)
    }

    /// Applies an adjustment as admin and expects it to be booked.
    func adjust(_ memberID: Int64, delta: Int64, unit: String = "points") async throws {
        let response = try await call(
            .post, "/v1/members/\(memberID)/adjustments", token: admin,
            json: #"{"unit": "\#(unit)", "delta": \#(delta), "reason": "test adjustment"}"#)
        #expect(response.status == .created, "\(response.text)")
    }

    /// Creates a token directly in the store, for the expired and revoked cases.
    func makeToken(role: AdminRole) async throws -> (id: Int64, text: String) {
        let created = try await AdminTokenStore(client: postgres, logger: TestServices.logger)
            .create(name: "extra \(role.rawValue)", role: role, expiresInDays: 1)
        return (created.tokenID, created.secret.text)
    }

    /// The audit rows of `resource`, oldest first.
    func auditRows(_ resource: String) async throws -> [JSONValue] {
        let page = try await AuditLogStore(client: postgres, logger: TestServices.logger).page(resource: resource, before: nil, limit: 200)
        return try page.entries.reversed().map { entry in
            try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(entry))
        }
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    var json: JSONValue {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))) ?? .null
    }

    /// Expects an `application/problem+json` body with this status and code, and returns it.
    @discardableResult
    func expectProblem(_ status: HTTPResponse.Status, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue {
        #expect(self.status == status, "\(text)", sourceLocation: sourceLocation)
        #expect(headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
        let problem = json
        #expect(problem["type"]?.string == "urn:loyalty:problem:\(code)", "\(text)", sourceLocation: sourceLocation)
        #expect(problem["status"]?.int == Int64(status.code), sourceLocation: sourceLocation)
        #expect(problem["request_id"]?.string == headers[RequestIDMiddleware.headerName], sourceLocation: sourceLocation)
        #expect(problem["title"]?.string?.isEmpty == false, sourceLocation: sourceLocation)
        return problem
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        if case .object(let fields) = self { return fields[key] }
        return nil
    }

    subscript(index: Int) -> JSONValue? {
        if case .array(let items) = self, items.indices.contains(index) { return items[index] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var int: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    var array: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    var isNull: Bool { self == .null }
}
