import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: open lots, and the expiry of adjustment lots")
struct AdminLotTests {
    static func rules() throws -> CurrentRules {
        try CurrentRules(directory: TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger)
    }

    static func adjust(_ api: AdminHarness, _ memberID: Int64, _ fields: String) async throws -> TestResponse {
        try await api.call(.post, "/v1/members/\(memberID)/adjustments", token: api.admin, json: "{\(fields)}")
    }

    @Test("a credit follows the program's expiry unless it gives expires_at (a time, or null for never)")
    func adjustmentExpiry() async throws {
        let rules = try Self.rules()
        let expiryDays = rules.current.ruleSet.expiryDays
        try #require(expiryDays > 0, "rules/program.yaml expires points")
        try await AdminHarness.run(rules: rules) { api in
            let id = try await api.createMember()
            let before = Date()
            #expect(try await Self.adjust(api, id, #""unit": "points", "delta": 300, "reason": "program expiry""#).status == .created)
            #expect(try await Self.adjust(
                api, id, #""unit": "points", "delta": 200, "reason": "fixed expiry", "expires_at": "2099-01-01T00:00:00Z""#
            ).status == .created)
            #expect(try await Self.adjust(api, id, #""unit": "points", "delta": 100, "reason": "never expires", "expires_at": null"#).status == .created)
            let after = Date()

            let lots = try #require(try await api.call(.get, "/v1/members/\(id)/lots", token: api.support).json["items"]?.array)
            #expect(lots.count == 3)
            let programExpiry = try #require(lots[0]["expires_at"]?.string.flatMap(RFC3339.parse), "\(lots[0])")
            let days = Double(expiryDays) * 86_400
            #expect(programExpiry >= before.addingTimeInterval(days - 1) && programExpiry <= after.addingTimeInterval(days + 1))
            #expect(lots[1]["expires_at"]?.string == "2099-01-01T00:00:00.000Z")
            #expect(lots[2]["expires_at"]?.isNull == true)
            #expect(lots.allSatisfy { $0["kind"]?.string == "adjustment" && $0["state"]?.string == "available" })
        }
    }

    @Test("expires_at is refused on a debit, in the past, or malformed, naming the field and the format")
    func adjustmentExpiryRefusals() async throws {
        try await AdminHarness.run(rules: try Self.rules()) { api in
            let id = try await api.createMember()
            let cases: [(String, String)] = [
                (#""unit": "points", "delta": -5, "reason": "debit", "expires_at": "2099-01-01T00:00:00Z""#,
                 #"field "expires_at" applies to credits only"#),
                (#""unit": "points", "delta": 5, "reason": "past", "expires_at": "2001-01-01T00:00:00Z""#,
                 #"field "expires_at" must be in the future"#),
                (#""unit": "points", "delta": 5, "reason": "bad", "expires_at": "2099-13-01""#,
                 #"field "expires_at" must be an RFC 3339 date-time"#),
                (#""unit": "points", "delta": 5, "reason": "type", "expires_at": 5"#, #"field "expires_at" must be a string"#),
            ]
            for (fields, detail) in cases {
                let problem = try await Self.adjust(api, id, fields).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(fields): \(problem)")
            }
        }
    }

    @Test("open lots show what is left of each, oldest first, by unit and page; spent lots are gone")
    func openLots() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            try await api.adjust(id, delta: 100)
            try await api.adjust(id, delta: 200)
            try await api.adjust(id, delta: 50, unit: "cashback_minor")
            // A debit takes lots in expiry order (none expires here, so oldest first): 100 of the first, 20 of the second.
            try await api.adjust(id, delta: -120)

            let all = try await api.call(.get, "/v1/members/\(id)/lots", token: api.readonly)
            #expect(all.status == .ok, "\(all.text)")
            let items = try #require(all.json["items"]?.array)
            #expect(items.map { $0["remaining_amount"]?.int } == [180, 50])
            #expect(items.map { $0["unit"]?.string } == ["points", "cashback_minor"])
            let first = items[0]
            #expect(first["original_amount"]?.int == 200)
            #expect(first["state"]?.string == "available")
            #expect(first["earned_at"]?.string != nil && first["available_at"]?.string != nil)
            #expect(first["expires_at"]?.isNull == true)
            // The entry that made it is in the member's history.
            let history = try await api.call(.get, "/v1/members/\(id)/ledger", token: api.admin).json["items"]?.array ?? []
            #expect(history.contains { $0["entry_id"] == first["entry_id"] && $0["amount"]?.int == 200 })
            #expect(all.json["next_cursor"]?.isNull == true)

            let points = try await api.call(.get, "/v1/members/\(id)/lots?unit=points", token: api.admin).json
            #expect(points["items"]?.array?.count == 1)
            let page = try await api.call(.get, "/v1/members/\(id)/lots?limit=1", token: api.admin).json
            #expect(page["items"]?.array?.count == 1)
            let cursor = try #require(page["next_cursor"]?.string)
            let next = try await api.call(.get, "/v1/members/\(id)/lots?limit=1&cursor=\(cursor)", token: api.admin).json
            #expect(next["items"]?[0]?["unit"]?.string == "cashback_minor")

            try await api.call(.get, "/v1/members/\(id)/lots", token: api.marketer).expectProblem(.forbidden, "forbidden")
            try await api.call(.get, "/v1/members/\(id)/lots?unit=stars", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/members/999999/lots", token: api.admin).expectProblem(.notFound, "not_found")
        }
    }
}
