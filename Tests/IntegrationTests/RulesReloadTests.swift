import Foundation
import LoyaltyServer
import LoyaltyTestSupport
import Testing

@Suite("Rules in force and reloading")
struct RulesReloadTests {
    func scratchCopy() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let source = TestServices.packageRoot.appendingPathComponent("rules/program.yaml")
        try FileManager.default.copyItem(at: source, to: directory.appendingPathComponent("program.yaml"))
        return directory
    }

    @Test("a valid change is reloaded with a new version; a broken file is rejected and the old rules stay")
    func reloadKeepsOldOnError() throws {
        let directory = try scratchCopy()
        defer { try? FileManager.default.removeItem(at: directory) }
        let rules = try CurrentRules(directory: directory, logger: TestServices.logger)
        let first = rules.current.version
        #expect(rules.reload() == .unchanged(version: first))

        let file = directory.appendingPathComponent("program.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        try text.replacingOccurrences(of: "minimum_points: 500", with: "minimum_points: 600")
            .write(to: file, atomically: true, encoding: .utf8)
        guard case .reloaded(let from, let to) = rules.reload() else {
            Issue.record("a valid change was not reloaded")
            return
        }
        #expect(from == first && to != first)
        #expect(rules.current.ruleSet.redemption.minimumPoints == 600)

        try "earn: [not a map".write(to: file, atomically: true, encoding: .utf8)
        guard case .rejected(let kept, let reason) = rules.reload() else {
            Issue.record("a broken file was accepted")
            return
        }
        #expect(kept == to)
        #expect(reason.contains("program.yaml"))
        #expect(rules.current.version == to)
    }

    @Test("the server refuses to start with invalid rules, naming the file and field")
    func invalidRulesAtStart() throws {
        let directory = try scratchCopy()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("program.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        try text.replacingOccurrences(of: "currency: EUR", with: "currency: euro").write(to: file, atomically: true, encoding: .utf8)
        #expect {
            try CurrentRules(directory: directory, logger: TestServices.logger)
        } throws: { error in
            "\(error)".contains("program.yaml:") && "\(error)".contains("program.currency")
        }
    }
}
