import Foundation
import LoyaltyCore
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("scripts/demo.sql: the data the README's examples use")
struct DemoDataTests {
    static func apply(_ client: PostgresClient) async throws {
        let text = try String(contentsOf: TestServices.packageRoot.appendingPathComponent("scripts/demo.sql"), encoding: .utf8)
        let statements = try SQLScript.split(text)
        // One connection: the script has its own BEGIN and COMMIT.
        try await client.withConnection { connection in
            for statement in statements {
                _ = try await connection.query(PostgresQuery(unsafeSQL: statement.text), logger: TestServices.logger)
            }
        }
    }

    @Test("seeds the tier ladder rules/ names and member 42 with card 4000123412341234; a second run adds nothing")
    func demoData() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await Self.apply(client)
            try await Self.apply(client)
            let tiers = try await TierStore(client: client, logger: TestServices.logger).list().map(\.code)
            let rules = try CurrentRules(directory: TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger)
            #expect(TierCoverage(rules: rules.current.ruleSet, ladderCodes: tiers).isConsistent, "\(tiers)")

            let rows = try await client.query(
                "SELECT member_id, card_number FROM members ORDER BY member_id", logger: TestServices.logger)
            var members: [(Int64, String)] = []
            for try await row in rows.decode((Int64, String).self) { members.append(row) }
            #expect(members.count == 3)
            #expect(members.first.map { $0.0 == 42 && $0.1 == "4000123412341234" } == true, "\(members)")
        }
    }
}
