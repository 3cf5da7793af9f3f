import Foundation
import Logging
import LoyaltyCore
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import NIOConcurrencyHelpers
import Testing

/// Keeps the messages and levels logged through it.
final class CapturedLog: Sendable {
    let lines = NIOLockedValueBox<[(Logger.Level, String)]>([])

    var logger: Logger {
        Logger(label: "captured") { _ in Handler(log: self) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(
            level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
            function: String, line: UInt
        ) {
            self.log.lines.withLockedValue { $0.append((level, message.description)) }
        }
    }
}

@Suite("Server start: the rules' tiers against the tier ladder")
struct TierCoverageCheckTests {
    @Test("warns naming tiers the ladder lacks and tiers the rules do not name; info when they agree")
    func startLog() async throws {
        let rules = try CurrentRules(directory: TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger)
        try await TestServices.withMigratedDatabase { _, client in
            let tiers = TierStore(client: client, logger: TestServices.logger)
            let captured = CapturedLog()
            await TierCoverageCheck.log(rules: rules.current.ruleSet, tiers: tiers, logger: captured.logger)
            let warnings = captured.lines.withLockedValue { $0 }.filter { $0.0 == .warning }.map(\.1)
            #expect(warnings.contains { $0.contains("lacks: gold, silver") }, "\(warnings)")

            _ = try await client.query(
                """
                INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
                VALUES ('silver', 'Silver', 10, 50000, 365), ('gold', 'Gold', 20, 150000, 365)
                """, logger: TestServices.logger)
            let agreeing = CapturedLog()
            await TierCoverageCheck.log(rules: rules.current.ruleSet, tiers: tiers, logger: agreeing.logger)
            let lines = agreeing.lines.withLockedValue { $0 }
            #expect(lines.allSatisfy { $0.0 != .warning } && lines.contains { $0.1 == "tier ladder matches the rules" }, "\(lines)")
        }
    }
}
