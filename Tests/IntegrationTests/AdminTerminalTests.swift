import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import POSProtocol
import Testing

@Suite("Admin API: terminals")
struct AdminTerminalTests {
    /// Whether `secret` (base64) passes the SCRAM-style check against the keys stored for `terminalID`.
    static func secretWorks(_ api: AdminHarness, _ terminalID: String, _ secret: String) async throws -> Bool {
        let record = try #require(try await TerminalStore(client: api.postgres, logger: TestServices.logger).find(terminalID: terminalID))
        let bytes = try #require(Data(base64Encoded: secret))
        let message = TerminalAuth.authMessage(
            terminalID: terminalID, clientNonce: TerminalAuth.randomBytes(16), serverNonce: TerminalAuth.randomBytes(16), salt: record.salt)
        let proof = TerminalAuth.clientProof(secret: Array(bytes), salt: record.salt, iterations: record.iterations, authMessage: message)
        return record.isActive && TerminalAuth.verify(proof: proof.proof, storedKey: record.storedKey, authMessage: message)
    }

    @Test("register shows the secret once; rotate replaces it; disable stops it; reads never show it; all audited without key material")
    func lifecycle() async throws {
        try await AdminHarness.run { api in
            let registered = try await api.call(
                .post, "/v1/terminals", token: api.admin, json: #"{"terminal_id": "till-01", "store_id": "berlin-mitte"}"#)
            #expect(registered.status == .created, "\(registered.text)")
            #expect(registered.headers[.location] == "/v1/terminals/till-01")
            #expect(registered.headers[.cacheControl] == "no-store")
            #expect(registered.json["status"]?.string == "active")
            let secret = try #require(registered.json["secret"]?.string)
            #expect(Data(base64Encoded: secret)?.count == 32)
            #expect(try await Self.secretWorks(api, "till-01", secret))

            let read = try await api.call(.get, "/v1/terminals/till-01", token: api.admin)
            #expect(read.status == .ok)
            #expect(read.json["secret"] == nil)
            #expect(read.json["store_id"]?.string == "berlin-mitte")
            try await api.call(.post, "/v1/terminals", token: api.admin, json: #"{"terminal_id": "till-01", "store_id": "x"}"#)
                .expectProblem(.conflict, "conflict")

            let rotated = try await api.call(.post, "/v1/terminals/till-01/rotate", token: api.admin)
            #expect(rotated.status == .ok, "\(rotated.text)")
            #expect(rotated.headers[.cacheControl] == "no-store")
            let newSecret = try #require(rotated.json["secret"]?.string)
            #expect(newSecret != secret)
            #expect(try await Self.secretWorks(api, "till-01", newSecret))
            #expect(try await !Self.secretWorks(api, "till-01", secret))

            let disabled = try await api.call(.post, "/v1/terminals/till-01/disable", token: api.admin)
            #expect(disabled.status == .ok, "\(disabled.text)")
            #expect(disabled.json["status"]?.string == "disabled")
            #expect(disabled.json["secret"] == nil)
            #expect(try await !Self.secretWorks(api, "till-01", newSecret))
            #expect(try await api.call(.post, "/v1/terminals/till-01/disable", token: api.admin).json == disabled.json)

            // Rotating a disabled terminal brings it back with the new secret only.
            let revived = try await api.call(.post, "/v1/terminals/till-01/rotate", token: api.admin)
            #expect(revived.json["status"]?.string == "active")
            #expect(try await Self.secretWorks(api, "till-01", try #require(revived.json["secret"]?.string)))

            let audit = try await api.auditRows("terminal:till-01")
            #expect(audit.map { $0["action"]?.string } == ["terminal.register", "terminal.rotate", "terminal.disable", "terminal.rotate"])
            #expect(audit[2]["before"]?["status"]?.string == "active")
            #expect(audit[2]["after"]?["status"]?.string == "disabled")
            let auditText = String(decoding: try JSONEncoder().encode(audit), as: UTF8.self)
            for secret in [secret, newSecret] { #expect(!auditText.contains(secret)) }
            #expect(!auditText.contains("secret") && !auditText.contains("key"), "\(auditText)")
        }
    }

    @Test("list: ordered by id, paged, filtered by store and status")
    func list() async throws {
        try await AdminHarness.run { api in
            for (id, store) in [("t-3", "s1"), ("t-1", "s1"), ("t-2", "s2")] {
                let response = try await api.call(
                    .post, "/v1/terminals", token: api.admin, json: #"{"terminal_id": "\#(id)", "store_id": "\#(store)"}"#)
                #expect(response.status == .created)
            }
            try await api.call(.post, "/v1/terminals/t-2/disable", token: api.admin)
            let first = try await api.call(.get, "/v1/terminals?limit=2", token: api.admin).json
            #expect(first["items"]?.array?.map { $0["terminal_id"]?.string } == ["t-1", "t-2"])
            #expect(first["items"]?[0]?["secret"] == nil)
            let cursor = try #require(first["next_cursor"]?.string)
            let second = try await api.call(.get, "/v1/terminals?limit=2&cursor=\(cursor)", token: api.admin).json
            #expect(second["items"]?.array?.map { $0["terminal_id"]?.string } == ["t-3"])
            #expect(second["next_cursor"]?.isNull == true)
            let store = try await api.call(.get, "/v1/terminals?store_id=s1", token: api.admin).json
            #expect(store["items"]?.array?.map { $0["terminal_id"]?.string } == ["t-1", "t-3"])
            let disabled = try await api.call(.get, "/v1/terminals?status=disabled", token: api.admin).json
            #expect(disabled["items"]?.array?.map { $0["terminal_id"]?.string } == ["t-2"])
        }
    }

    @Test("admin only: 403 for every other role, even to read")
    func roles() async throws {
        try await AdminHarness.run { api in
            try await api.call(.post, "/v1/terminals", token: api.admin, json: #"{"terminal_id": "t1", "store_id": "s"}"#)
            for token in [api.marketer, api.support, api.readonly] {
                try await api.call(.get, "/v1/terminals", token: token).expectProblem(.forbidden, "forbidden")
                try await api.call(.get, "/v1/terminals/t1", token: token).expectProblem(.forbidden, "forbidden")
                try await api.call(.post, "/v1/terminals", token: token, json: #"{"terminal_id": "t2", "store_id": "s"}"#)
                    .expectProblem(.forbidden, "forbidden")
                try await api.call(.post, "/v1/terminals/t1/rotate", token: token).expectProblem(.forbidden, "forbidden")
                try await api.call(.post, "/v1/terminals/t1/disable", token: token).expectProblem(.forbidden, "forbidden")
            }
            #expect(try await api.auditRows("terminal:t1").count == 1)
            #expect(try await api.auditRows("terminal:t2").isEmpty)
        }
    }

    @Test("bad fields are 400 naming the field; bad ids and query parameters are 400; unknown terminals are 404")
    func badInput() async throws {
        try await AdminHarness.run { api in
            let cases: [(json: String, detail: String)] = [
                (#"{"terminal_id": "t1", "store_id": "s", "secret": "mine"}"#, #"unknown field "secret""#),
                (#"{"terminal_id": "t 1", "store_id": "s"}"#, #"field "terminal_id""#),
                (#"{"terminal_id": "t1\n", "store_id": "s"}"#, #"field "terminal_id""#),
                (#"{"terminal_id": "", "store_id": "s"}"#, #"field "terminal_id""#),
                (#"{"terminal_id": 7, "store_id": "s"}"#, #"field "terminal_id" must be a string"#),
                (#"{"terminal_id": "t1"}"#, #"field "store_id" is required"#),
                (#"{"terminal_id": "t1", "store_id": ""}"#, #"field "store_id""#),
                (#"{"terminal_id": "t1", "store_id": "\#(String(repeating: "s", count: 65))"}"#, #"field "store_id""#),
                (#"{"terminal_id": "t1", "store_id": "a\u0000b"}"#, #"field "store_id""#),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.post, "/v1/terminals", token: api.admin, json: json).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            try await api.call(.get, "/v1/terminals/bad%20id", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.post, "/v1/terminals/bad%20id/rotate", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/terminals?status=gone", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/terminals?cursor=%20", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/terminals?limit=0", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/terminals/nope", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.post, "/v1/terminals/nope/rotate", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.post, "/v1/terminals/nope/disable", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.post, "/v1/terminals/nope/disable", token: api.admin, json: #"{"now": true}"#)
                .expectProblem(.badRequest, "invalid_body")
            #expect(try await api.auditRows("terminal:nope").isEmpty)
        }
    }
}
