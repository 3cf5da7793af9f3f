import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: a member's tier history")
struct AdminTierHistoryTests {
    @Test("tier changes are listed newest first with from, to, reason, actor and the actor's role")
    func tierHistory() async throws {
        try await AdminHarness.run { api in
            for (code, rank, spend) in [("silver", 10, 50_000), ("gold", 20, 100_000)] {
                let created = try await api.call(
                    .post, "/v1/tiers", token: api.admin,
                    json: #"{"code": "\#(code)", "name": "\#(code)", "rank": \#(rank), "qualification_spend_minor": \#(spend), "qualification_window_days": 365}"#)
                #expect(created.status == .created, "\(created.text)")
            }
            let id = try await api.createMember()
            let empty = try await api.call(.get, "/v1/members/\(id)/tier-history", token: api.support)
            #expect(empty.status == .ok, "\(empty.text)")
            #expect(empty.json["items"]?.array?.isEmpty == true)

            for code in ["silver", "gold"] {
                let patched = try await api.call(.patch, "/v1/members/\(id)", token: api.admin, json: #"{"tier_code": "\#(code)"}"#)
                #expect(patched.status == .ok, "\(patched.text)")
            }
            // A tier review's change, as the job records it.
            _ = try await api.postgres.query(
                """
                SELECT tier_record_change(m.member_id, m.tier_id, t.tier_id, 'review: spend 0 is below 100000', 0, 'job:tier-review')
                FROM members m, tiers t WHERE m.member_id = \(id) AND t.code = 'silver'
                """, logger: TestServices.logger)

            let history = try await api.call(.get, "/v1/members/\(id)/tier-history", token: api.readonly)
            let items = try #require(history.json["items"]?.array, "\(history.text)")
            #expect(items.map { "\($0["from_tier"]?.string ?? "?")>\($0["to_tier"]?.string ?? "?")" } == ["gold>silver", "silver>gold", "base>silver"])
            #expect(items[0]["actor"]?.string == "job:tier-review" && items[0]["actor_role"]?.string == "job")
            #expect(items[1]["actor"]?.string?.hasPrefix("admin:") == true && items[1]["actor_role"]?.string == "admin")
            #expect(items[1]["reason"]?.string?.contains("set by admin token") == true)
            #expect(items.allSatisfy { $0["changed_at"]?.string.flatMap(RFC3339.parse) != nil && $0["change_id"]?.int != nil })

            let page = try await api.call(.get, "/v1/members/\(id)/tier-history?limit=2", token: api.admin).json
            #expect(page["items"]?.array?.count == 2)
            let cursor = try #require(page["next_cursor"]?.string)
            let rest = try await api.call(.get, "/v1/members/\(id)/tier-history?limit=2&cursor=\(cursor)", token: api.admin).json
            #expect(rest["items"]?.array?.map { $0["to_tier"]?.string } == ["silver"])
            #expect(rest["next_cursor"]?.isNull == true)

            try await api.call(.get, "/v1/members/\(id)/tier-history", token: api.marketer).expectProblem(.forbidden, "forbidden")
            try await api.call(.get, "/v1/members/999999/tier-history", token: api.admin).expectProblem(.notFound, "not_found")
        }
    }
}
