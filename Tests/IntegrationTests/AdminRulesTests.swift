import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: rules")
struct AdminRulesTests {
    /// A scratch rules folder holding a copy of rules/program.yaml, and the rules loaded from it.
    static func scratchRules() throws -> (directory: URL, rules: CurrentRules) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("admin-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: TestServices.packageRoot.appendingPathComponent("rules/program.yaml"), to: directory.appendingPathComponent("program.yaml"))
        return (directory, try CurrentRules(directory: directory, logger: TestServices.logger))
    }

    static var programText: String {
        get throws { try String(contentsOf: TestServices.packageRoot.appendingPathComponent("rules/program.yaml"), encoding: .utf8) }
    }

    /// `{"files": {"program.yaml": <text>}}`.
    static func upload(_ text: String, name: String = "program.yaml") throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: ["files": [name: text]]), as: UTF8.self)
    }

    @Test("every role reads the version, activation time and files; without rules the route is 404")
    func current() async throws {
        let (directory, rules) = try Self.scratchRules()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await AdminHarness.run(rules: rules) { api in
            for token in [api.admin, api.marketer, api.support, api.readonly] {
                let response = try await api.call(.get, "/v1/rules", token: token)
                #expect(response.status == .ok, "\(response.text)")
                #expect(response.json["version"]?.string == rules.current.version)
                #expect(response.json["files"] == .array([.string("program.yaml")]))
                #expect(response.json["activated_at"]?.string?.hasSuffix("Z") == true)
                #expect(response.json["currency"]?.string == "EUR")
            }
        }
        try await AdminHarness.run { api in
            try await api.call(.get, "/v1/rules", token: api.admin).expectProblem(.notFound, "not_found")
        }
    }

    @Test("validate reports the loader's problems with file, line and field, and changes nothing")
    func validate() async throws {
        let (directory, rules) = try Self.scratchRules()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await AdminHarness.run(rules: rules) { api in
            let same = try await api.call(.post, "/v1/rules/validate", token: api.marketer, json: try Self.upload(try Self.programText))
            #expect(same.status == .ok, "\(same.text)")
            #expect(same.json["valid"] == .bool(true))
            #expect(same.json["version"]?.string == rules.current.version)
            #expect(same.json["same_as_current"] == .bool(true))
            #expect(same.json["problems"] == .array([]))

            let changed = try Self.programText.replacingOccurrences(of: "minimum_points: 500", with: "minimum_points: 600")
            let other = try await api.call(.post, "/v1/rules/validate", token: api.admin, json: try Self.upload(changed)).json
            #expect(other["valid"] == .bool(true))
            #expect(other["same_as_current"] == .bool(false))

            let broken = try Self.programText.replacingOccurrences(of: "minimum_points: 500", with: "minimum_points: -5")
            let refused = try await api.call(.post, "/v1/rules/validate", token: api.admin, json: try Self.upload(broken))
            #expect(refused.status == .ok, "\(refused.text)")
            #expect(refused.json["valid"] == .bool(false))
            #expect(refused.json["version"]?.isNull == true)
            let problem = try #require(refused.json["problems"]?[0])
            #expect(problem["file"]?.string == "program.yaml")
            #expect(problem["field"]?.string == "redemption.minimum_points", "\(problem)")
            #expect(problem["line"]?.int != nil)

            let garbage = try await api.call(.post, "/v1/rules/validate", token: api.admin, json: try Self.upload("earn: [not a map")).json
            #expect(garbage["valid"] == .bool(false))
            #expect(garbage["problems"]?.array?.isEmpty == false)
            #expect(rules.current.version == same.json["version"]?.string)
        }
    }

    @Test("validate: bad bodies are 400 naming the field; support and readonly are 403")
    func validateRefusals() async throws {
        let (directory, rules) = try Self.scratchRules()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await AdminHarness.run(rules: rules) { api in
            let cases: [(json: String, detail: String)] = [
                (#"{"files": {"program.yaml": "x"}, "dry": true}"#, #"unknown field "dry""#),
                (#"{}"#, #"field "files" is required"#),
                (#"{"files": ["program.yaml"]}"#, #"field "files" must be an object"#),
                (#"{"files": {}}"#, #"field "files" must hold 1-16 files"#),
                (#"{"files": {"../program.yaml": "x"}}"#, "not a rules file name"),
                (#"{"files": {"program.txt": "x"}}"#, "not a rules file name"),
                (#"{"files": {".hidden.yaml": "x"}}"#, "not a rules file name"),
                (#"{"files": {"program.yaml": 5}}"#, #"field "files.program.yaml" must be a string"#),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.post, "/v1/rules/validate", token: api.admin, json: json).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            for token in [api.support, api.readonly] {
                try await api.call(.post, "/v1/rules/validate", token: token, json: try Self.upload("x")).expectProblem(.forbidden, "forbidden")
            }
        }
    }

    @Test("reload: unchanged, reloaded (audited, recorded in the history) or rejected with problems; admin only")
    func reload() async throws {
        let (directory, rules) = try Self.scratchRules()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = rules.current.version
        try await AdminHarness.run(rules: rules) { api in
            for token in [api.marketer, api.support, api.readonly] {
                try await api.call(.post, "/v1/rules/reload", token: token).expectProblem(.forbidden, "forbidden")
            }
            let unchanged = try await api.call(.post, "/v1/rules/reload", token: api.admin)
            #expect(unchanged.status == .ok, "\(unchanged.text)")
            #expect(unchanged.json["outcome"]?.string == "unchanged")
            #expect(unchanged.json["version"]?.string == first)

            let file = directory.appendingPathComponent("program.yaml")
            let text = try String(contentsOf: file, encoding: .utf8)
            try text.replacingOccurrences(of: "minimum_points: 500", with: "minimum_points: 600").write(to: file, atomically: true, encoding: .utf8)
            let reloaded = try await api.call(.post, "/v1/rules/reload", token: api.admin).json
            #expect(reloaded["outcome"]?.string == "reloaded")
            #expect(reloaded["previous_version"]?.string == first)
            let second = try #require(reloaded["version"]?.string)
            #expect(second != first && rules.current.version == second)
            #expect(try await api.call(.get, "/v1/rules", token: api.readonly).json["version"]?.string == second)
            let history = try await RulesHistoryStore(client: api.postgres, logger: TestServices.logger).recent()
            #expect(history.last?.version == second)

            try "earn: [not a map".write(to: file, atomically: true, encoding: .utf8)
            let rejected = try await api.call(.post, "/v1/rules/reload", token: api.admin).json
            #expect(rejected["outcome"]?.string == "rejected")
            #expect(rejected["version"]?.string == second)
            #expect(rejected["problems"]?.array?.isEmpty == false)
            #expect(rules.current.version == second)
            try await api.call(.post, "/v1/rules/reload", token: api.admin, json: #"{"force": true}"#).expectProblem(.badRequest, "invalid_body")

            let audit = try await api.auditRows("rules")
            #expect(audit.map { $0["action"]?.string } == ["rules.reload"])
            #expect(audit.first?["before"]?["version"]?.string == first)
            #expect(audit.first?["after"]?["version"]?.string == second)
        }
    }
}
