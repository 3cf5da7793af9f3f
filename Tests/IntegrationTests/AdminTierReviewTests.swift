import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API and command line: the tier review, previewed and run")
struct AdminTierReviewTests {
    static func rules() throws -> CurrentRules {
        try CurrentRules(directory: TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger)
    }

    /// A gold member 90 days after the last change, reviewed 40 days ago, with no spend: due for a downgrade.
    static func lapsedGoldMember(_ postgres: PostgresClient) async throws -> Int64 {
        let tiers = TierStore(client: postgres, logger: TestServices.logger)
        if try await tiers.list().count == 1 {
            _ = try await tiers.upsert(Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 10_000, qualificationWindowDays: 365))
            _ = try await tiers.upsert(Tier(code: "gold", name: "Gold", rank: 2, qualificationSpendMinor: 50_000, qualificationWindowDays: 365))
        }
        let member = try await MemberStore(client: postgres, logger: TestServices.logger).create(NewMember())
        try await postgres.query(
            """
            UPDATE members SET tier_id = (SELECT tier_id FROM tiers WHERE code = 'gold'),
                tier_changed_at = now() - interval '90 days', tier_reviewed_at = now() - interval '40 days'
            WHERE member_id = \(member)
            """, logger: TestServices.logger)
        return member
    }

    @Test("GET /v1/tier-review/preview lists each due member's decision, pages, honours as_of, changes nothing, and is admin only")
    func preview() async throws {
        try await AdminHarness.run(rules: try Self.rules()) { api in
            let first = try await Self.lapsedGoldMember(api.postgres)
            let second = try await Self.lapsedGoldMember(api.postgres)
            _ = try await api.createMember()  // reviewed today: not due now

            let response = try await api.call(.get, "/v1/tier-review/preview", token: api.admin)
            #expect(response.status == .ok, "\(response.text)")
            let page = response.json
            #expect(page["review_every_days"]?.int == 30 && page["grace_days"]?.int == 30)
            #expect(page["as_of"]?.string.flatMap(RFC3339.parse) != nil)
            #expect(page["next_cursor"]?.isNull == true)
            let items = try #require(page["items"]?.array, "\(response.text)")
            #expect(items.map { $0["member_id"]?.int } == [first, second])
            #expect(items[0]["current_tier"]?.string == "gold" && items[0]["new_tier"]?.string == "silver")
            #expect(items[0]["action"]?.string == "downgrade" && items[0]["qualifying_spend_minor"]?.int == 0)
            #expect(items[0]["reason"]?.string?.contains("down one rank") == true)
            #expect(items[0]["tier_reviewed_at"]?.string.flatMap(RFC3339.parse) != nil)

            let paged = try await api.call(.get, "/v1/tier-review/preview?limit=1", token: api.admin).json
            let cursor = try #require(paged["next_cursor"]?.string)
            let next = try await api.call(.get, "/v1/tier-review/preview?limit=1&cursor=\(cursor)", token: api.admin).json
            #expect(next["items"]?.array?.map { $0["member_id"]?.int } == [second])

            // 31 days on, the member created today is due as well (and keeps the lowest tier).
            let asOf = RulesBody.timestamp(Date().addingTimeInterval(31 * 86_400))
            let later = try await api.call(.get, "/v1/tier-review/preview?as_of=\(asOf)", token: api.admin).json
            #expect(later["items"]?.array?.count == 3)
            #expect(later["items"]?.array?.last?["action"]?.string == "keep")

            // A preview changes nothing.
            let tiers = TierStore(client: api.postgres, logger: TestServices.logger)
            #expect(try await tiers.tierCode(memberID: first) == "gold")
            #expect(try await tiers.history(memberID: first, before: nil, limit: 10).changes.isEmpty)

            try await api.call(.get, "/v1/tier-review/preview?as_of=yesterday", token: api.admin)
                .expectProblem(.badRequest, "invalid_parameter")
            for token in [api.marketer, api.support, api.readonly] {
                try await api.call(.get, "/v1/tier-review/preview", token: token).expectProblem(.forbidden, "forbidden")
            }
        }
    }

    @Test("loyalty tiers review --dry-run prints what the review would do and changes nothing; without it the review runs")
    func commandLine() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            let member = try await Self.lapsedGoldMember(client)
            let urlText = try CommandLineTests.databaseURLText(url.database)
            let rulesDirectory = TestServices.packageRoot.appendingPathComponent("rules").path
            let tiers = TierStore(client: client, logger: TestServices.logger)

            let dry = try await CommandLineTests.run(["tiers", "review", "--dry-run", "--rules-dir", rulesDirectory], databaseURL: urlText)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("member \(member): gold -> silver (downgrade), qualifying spend 0"), "\(dry.stdout)")
            #expect(dry.stdout.contains("1 members due") && dry.stdout.contains("nothing was changed"), "\(dry.stdout)")
            #expect(try await tiers.tierCode(memberID: member) == "gold")

            let before = try await CommandLineTests.run(
                ["tiers", "review", "--dry-run", "--as-of", "2000-01-01T00:00:00Z", "--rules-dir", rulesDirectory], databaseURL: urlText)
            #expect(before.status == 0 && before.stdout.contains("0 members due"), "\(before.stdout)\(before.stderr)")

            let refused = try await CommandLineTests.run(["tiers", "review", "--as-of", "2030-01-01T00:00:00Z"], databaseURL: urlText)
            #expect(refused.status != 0 && refused.stderr.contains("--dry-run"), "\(refused.stderr)")

            let real = try await CommandLineTests.run(["tiers", "review", "--rules-dir", rulesDirectory], databaseURL: urlText)
            #expect(real.status == 0, "\(real.stderr)")
            #expect(real.stdout.contains("reviewed 1 members: 0 upgraded, 1 downgraded"), "\(real.stdout)")
            #expect(try await tiers.tierCode(memberID: member) == "silver")
            let history = try await tiers.history(memberID: member, before: nil, limit: 10).changes
            #expect(history.map(\.actor) == ["job:tier-review"])
        }
    }
}
