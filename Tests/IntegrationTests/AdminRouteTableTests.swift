import Prometheus
import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: the route table and docs/openapi.json agree")
struct AdminRouteTableTests {
    static let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    static func document() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: AdminHarness.openAPIPath))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// "METHOD /path" → the operation object, for every operation of the document.
    static func operations() throws -> [String: [String: Any]] {
        let paths = try #require(try document()["paths"] as? [String: [String: Any]])
        var operations: [String: [String: Any]] = [:]
        for (path, item) in paths {
            for method in methods {
                if let operation = item[method] as? [String: Any] { operations["\(method.uppercased()) \(path)"] = operation }
            }
        }
        return operations
    }

    @Test("every route is documented and every documented operation is a route")
    func sameRoutes() throws {
        let table = Set(AdminRouteTable.routes.map { "\($0.method.rawValue) \($0.path)" })
        #expect(table.count == AdminRouteTable.routes.count, "a route is listed twice")
        let documented = Set(try Self.operations().keys)
        #expect(table.subtracting(documented).isEmpty, "routes missing from docs/openapi.json: \(table.subtracting(documented).sorted())")
        #expect(documented.subtracting(table).isEmpty, "documented but not routed: \(documented.subtracting(table).sorted())")
        for required in ["GET /health", "GET /ready", "GET /openapi.json"] { #expect(table.contains(required)) }
    }

    @Test("each operation's security and x-roles match the route's access")
    func sameAccess() throws {
        let operations = try Self.operations()
        for route in AdminRouteTable.routes {
            let key = "\(route.method.rawValue) \(route.path)"
            let operation = try #require(operations[key], "\(key)")
            switch route.access {
            case .anonymous:
                #expect((operation["security"] as? [Any])?.isEmpty == true, "\(key) must declare security: []")
                #expect(operation["x-roles"] == nil, "\(key)")
            case .roles(let roles):
                #expect(operation["security"] == nil, "\(key) must use the global bearer security")
                let documented = Set((operation["x-roles"] as? [String]) ?? [])
                #expect(documented == Set(roles.map(\.rawValue)), "\(key): x-roles \(documented.sorted())")
                let statuses = Set(((operation["responses"] as? [String: Any]) ?? [:]).keys)
                #expect(statuses.isSuperset(of: ["401", "403"]), "\(key) documents 401 and 403")
            }
        }
    }

    @Test("admin may use every protected route; readonly only GETs; only admin erases and reads the audit log")
    func roleRules() {
        for route in AdminRouteTable.routes {
            guard case .roles(let roles) = route.access else { continue }
            #expect(roles.contains(.admin), "\(route.path)")
            if route.method != .get { #expect(!roles.contains(.readonly), "\(route.method) \(route.path)") }
            if route.path.hasSuffix("/erase") || route.path == "/v1/audit" { #expect(roles == [.admin]) }
        }
    }

    @Test("GET /openapi.json serves the document without a token")
    func servesDocument() async throws {
        try await AdminHarness.run { api in
            let response = try await api.call(.get, "/openapi.json", token: nil)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let served = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            #expect(served?["openapi"] as? String == "3.1.0")
            #expect(try await api.call(.get, "/health", token: nil).status == .ok)
        }
    }

    @Test("GET /metrics exports the registry in Prometheus text format without a token, and 404 without one")
    func servesMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(name: "loyalty_test_total", labels: [("kind", "probe")]).increment(by: Int64(3))
        try await AdminHarness.run(metrics: registry) { api in
            let response = try await api.call(.get, "/metrics", token: nil)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = String(buffer: response.body)
            #expect(text.contains(#"loyalty_test_total{kind="probe"} 3"#), "\(text)")
        }
        try await AdminHarness.run { api in
            let response = try await api.call(.get, "/metrics", token: nil)
            #expect(response.status == .notFound)
        }
    }
}
