import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: balances as of a past instant")
struct AdminBalanceHistoryTests {
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    @Test("as_of answers the balances as the ledger stood then; bad timestamps are 400 naming as_of")
    func asOf() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            try await api.adjust(id, delta: 100)
            let between = Date()
            try await api.adjust(id, delta: 50)
            try await api.adjust(id, delta: 7, unit: "cashback_minor")

            let then = try await api.call(.get, "/v1/members/\(id)/balances?as_of=\(Self.timestamp(between))", token: api.marketer)
            #expect(then.status == .ok, "\(then.text)")
            #expect(then.json["points"]?["available"]?.int == 100)
            #expect(then.json["cashback_minor"]?["available"]?.int == 0)
            #expect(then.json["as_of"]?.string.flatMap(RFC3339.parse) != nil)
            let now = try await api.call(.get, "/v1/members/\(id)/balances", token: api.marketer).json
            #expect(now["points"]?["available"]?.int == 150 && now["as_of"] == nil)
            // An offset (its + sent as %2B) names the same instant; before any entry the balances are zeros.
            let early = try await api.call(.get, "/v1/members/\(id)/balances?as_of=2001-01-01T02:00:00%2B02:00", token: api.admin).json
            #expect(early["points"]?["available"]?.int == 0 && early["as_of"]?.string?.hasPrefix("2001-01-01T00:00:00") == true, "\(early)")

            for bad in ["2026-01-01", "yesterday", "2026-02-30T00:00:00Z", "2026-01-01T25:00:00Z"] {
                let problem = try await api.call(.get, "/v1/members/\(id)/balances?as_of=\(bad)", token: api.admin)
                    .expectProblem(.badRequest, "invalid_parameter")
                #expect(problem["detail"]?.string?.contains(#""as_of""#) == true, "\(bad): \(problem)")
            }
            try await api.call(.get, "/v1/members/\(id)/balances?asof=2026-01-01T00:00:00Z", token: api.admin)
                .expectProblem(.badRequest, "invalid_parameter")
        }
    }
}
