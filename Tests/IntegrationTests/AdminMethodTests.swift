import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: methods a path does not take are 405 with Allow")
struct AdminMethodTests {
    @Test("TRACE, DELETE, GET on a POST-only path: 405 method_not_allowed with Allow, without a token; unknown paths stay 404")
    func examples() async throws {
        try await AdminHarness.run { api in
            let trace = try await api.call(.trace, "/v1/members", token: nil)
            trace.expectProblem(.methodNotAllowed, "method_not_allowed")
            #expect(trace.headers[.allow] == "GET, POST")
            let delete = try await api.call(.delete, "/v1/members/5", token: api.admin)
            delete.expectProblem(.methodNotAllowed, "method_not_allowed")
            #expect(delete.headers[.allow] == "GET, PATCH")
            // The literal route wins over /v1/segments/{id}, as in the router.
            let preview = try await api.call(.get, "/v1/segments/preview", token: api.admin)
            #expect(preview.status == .methodNotAllowed && preview.headers[.allow] == "POST")
            #expect(try await api.call(.put, "/health", token: nil).headers[.allow] == "GET")
            // Routes still answer, and unknown paths are still 404.
            #expect(try await api.call(.get, "/health", token: nil).status == .ok)
            #expect(try await api.call(.get, "/v1/segments/1", token: api.admin).status == .notFound)
            try await api.call(.get, "/v1/nothing", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.trace, "/v1/members/5/nothing", token: nil).expectProblem(.notFound, "not_found")
        }
    }

    @Test("for every documented path, each method docs/openapi.json does not list is 405 and Allow lists exactly those it does")
    func matchesDocument() async throws {
        let operations = try AdminRouteTableTests.operations()
        var documented: [String: Set<String>] = [:]
        for key in operations.keys {
            let parts = key.split(separator: " ", maxSplits: 1)
            documented[String(parts[1]), default: []].insert(String(parts[0]))
        }
        let methods: [HTTPRequest.Method] = [.get, .put, .post, .delete, .patch, .options, .trace]
        let paths = documented
        try await AdminHarness.run { api in
            for (path, allowed) in paths.sorted(by: { $0.key < $1.key }) {
                let concrete = path.replacingOccurrences(of: "{id}", with: "1").replacingOccurrences(of: "{code}", with: "gold")
                for method in methods where !allowed.contains(method.rawValue) {
                    let response = try await api.call(method, concrete, token: api.admin)
                    #expect(response.status == .methodNotAllowed, "\(method) \(path): \(response.status)")
                    #expect(response.headers[.allow] == allowed.sorted().joined(separator: ", "), "\(method) \(path)")
                }
            }
        }
    }
}
