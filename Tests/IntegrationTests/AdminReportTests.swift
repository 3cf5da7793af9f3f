import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Admin API: reports")
struct AdminReportTests {
    static let day: TimeInterval = 86_400

    static func utcDay(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    static func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    /// A base member with 1,000 available points (expiring in 10 days, 200 of them redeemed) and 500 pending (expiring
    /// in 20 days), booked on 2025-01-10 and 11; a silver member with 300 cashback, 100 of it held.
    static func seed(_ api: AdminHarness) async throws -> (base: Int64, silver: Int64) {
        let created = try await api.call(
            .post, "/v1/tiers", token: api.admin,
            json: #"{"code": "silver", "name": "Silver", "rank": 10, "qualification_spend_minor": 50000, "qualification_window_days": 365}"#)
        #expect(created.status == .created)
        let base = try await api.createMember(#"{"card_number": "REP-0001"}"#)
        let silver = try await api.createMember(#"{"card_number": "REP-0002", "tier_code": "silver"}"#)
        let ledger = LedgerStore(client: api.postgres, logger: TestServices.logger)
        let now = Date()
        func key(_ name: String) throws -> IdempotencyKey { try IdempotencyKey(scope: "test", key: name) }
        _ = try await ledger.accrue(AccrualRequest(
            memberID: base, unit: .points, amount: 1_000, availableAt: now - day, expiresAt: now + 10 * day,
            occurredAt: date("2025-01-10T12:00:00Z"), actor: "test"), key: key("a1"))
        _ = try await ledger.accrue(AccrualRequest(
            memberID: base, unit: .points, amount: 500, availableAt: now + 5 * day, expiresAt: now + 20 * day,
            occurredAt: date("2025-01-10T23:59:59Z"), actor: "test"), key: key("a2"))
        _ = try await ledger.accrue(AccrualRequest(
            memberID: silver, unit: .cashbackMinor, amount: 300, availableAt: now - day, expiresAt: nil,
            occurredAt: date("2025-01-11T00:00:00Z"), actor: "test"), key: key("a3"))
        _ = try await ledger.redeem(RedemptionRequest(
            memberID: base, unit: .points, amount: 200, holdID: nil, occurredAt: date("2025-01-11T08:00:00Z"), actor: "test"),
            key: key("r1"))
        _ = try await ledger.hold(HoldRequest(memberID: silver, unit: .cashbackMinor, amount: 100, expiresAt: now + 600, actor: "test"),
                                  key: key("h1"))
        return (base, silver)
    }

    @Test("liability sums available, pending and held per tier and unit, every tier and unit listed, with totals")
    func liability() async throws {
        try await AdminHarness.run { api in
            _ = try await Self.seed(api)
            let response = try await api.call(.get, "/v1/reports/liability", token: api.marketer)
            #expect(response.status == .ok, "\(response.text)")
            let items = try #require(response.json["items"]?.array)
            #expect(items.map { "\($0["tier_code"]?.string ?? "")/\($0["unit"]?.string ?? "")" }
                == ["base/cashback_minor", "base/points", "silver/cashback_minor", "silver/points"])
            func row(_ index: Int) -> [Int64?] {
                ["available", "pending", "held", "members"].map { items[index][$0]?.int }
            }
            #expect(row(0) == [0, 0, 0, 0])
            #expect(row(1) == [800, 500, 0, 1])
            #expect(row(2) == [200, 0, 100, 1])
            #expect(row(3) == [0, 0, 0, 0])
            let totals = try #require(response.json["totals"]?.array)
            #expect(totals.map { $0["unit"]?.string } == ["cashback_minor", "points"])
            #expect(totals[1]["available"]?.int == 800 && totals[1]["pending"]?.int == 500)
            #expect(totals[0]["held"]?.int == 100)
            #expect(response.json["generated_at"]?.string != nil)
        }
    }

    @Test("expiring lists what expires per day within the next N days")
    func expiring() async throws {
        try await AdminHarness.run { api in
            _ = try await Self.seed(api)
            let now = Date()
            let month = try await api.call(.get, "/v1/reports/expiring", token: api.readonly)
            #expect(month.status == .ok, "\(month.text)")
            #expect(month.json["days"]?.int == 30)
            #expect(month.json["unit"]?.isNull == true)
            let items = try #require(month.json["items"]?.array)
            #expect(items.map { $0["date"]?.string } == [Self.utcDay(now + 10 * Self.day), Self.utcDay(now + 20 * Self.day)])
            #expect(items.map { $0["amount"]?.int } == [800, 500])
            #expect(items.map { $0["unit"]?.string } == ["points", "points"])
            #expect(items[0]["lots"]?.int == 1 && items[0]["members"]?.int == 1)

            let fortnight = try await api.call(.get, "/v1/reports/expiring?days=15&unit=points", token: api.admin).json
            #expect(fortnight["items"]?.array?.map { $0["amount"]?.int } == [800])
            let cashback = try await api.call(.get, "/v1/reports/expiring?unit=cashback_minor", token: api.admin).json
            #expect(cashback["items"]?.array?.isEmpty == true)
        }
    }

    @Test("daily totals accruals and redemptions per UTC day, every day and unit listed")
    func daily() async throws {
        try await AdminHarness.run { api in
            _ = try await Self.seed(api)
            let response = try await api.call(.get, "/v1/reports/daily?from=2025-01-09&to=2025-01-11", token: api.admin)
            #expect(response.status == .ok, "\(response.text)")
            #expect(response.json["from"]?.string == "2025-01-09" && response.json["to"]?.string == "2025-01-11")
            let items = try #require(response.json["items"]?.array)
            #expect(items.count == 6)
            func totals(_ date: String, _ unit: String) -> [Int64?] {
                let item = items.first { $0["date"]?.string == date && $0["unit"]?.string == unit }
                return ["accrued", "accruals", "redeemed", "redemptions"].map { item?[$0]?.int }
            }
            #expect(totals("2025-01-09", "points") == [0, 0, 0, 0])
            #expect(totals("2025-01-10", "points") == [1_500, 2, 0, 0])
            #expect(totals("2025-01-11", "points") == [0, 0, 200, 1])
            #expect(totals("2025-01-11", "cashback_minor") == [300, 1, 0, 0])

            let points = try await api.call(.get, "/v1/reports/daily?from=2025-01-10&to=2025-01-10&unit=points", token: api.marketer).json
            #expect(points["items"]?.array?.count == 1)
            let defaults = try await api.call(.get, "/v1/reports/daily", token: api.readonly).json
            #expect(defaults["items"]?.array?.count == 60)
            #expect(defaults["to"]?.string == Self.utcDay(Date()))
        }
    }

    @Test("support may not read reports; bad parameters are 400 naming them")
    func refusals() async throws {
        try await AdminHarness.run { api in
            for path in ["/v1/reports/liability", "/v1/reports/expiring", "/v1/reports/daily"] {
                try await api.call(.get, path, token: api.support).expectProblem(.forbidden, "forbidden")
                try await api.call(.get, path, token: nil).expectProblem(.unauthorized, "unauthenticated")
                try await api.call(.get, path + "?extra=1", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            }
            let cases: [(path: String, detail: String)] = [
                ("/v1/reports/expiring?days=0", #""days""#),
                ("/v1/reports/expiring?days=366", #""days""#),
                ("/v1/reports/expiring?days=ten", #""days""#),
                ("/v1/reports/expiring?unit=miles", #""unit""#),
                ("/v1/reports/daily?from=2025-02-30&to=2025-03-01", #""from""#),
                ("/v1/reports/daily?from=2025-1-01&to=2025-03-01", #""from""#),
                ("/v1/reports/daily?from=1999-12-31&to=2000-01-01", #""from""#),
                ("/v1/reports/daily?to=2025-13-01", #""to""#),
                ("/v1/reports/daily?from=2025-03-02&to=2025-03-01", #""from" must not be after"#),
                ("/v1/reports/daily?from=2024-01-01&to=2025-01-01", "366 days"),
                ("/v1/reports/daily?from=2025-01-01&to=2025-01-02&unit=x", #""unit""#),
                ("/v1/reports/daily?from=2025-01-01&from=2025-01-02", "more than once"),
            ]
            for (path, detail) in cases {
                let problem = try await api.call(.get, path, token: api.admin).expectProblem(.badRequest, "invalid_parameter")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(path): \(problem)")
            }
            // The longest range is fine.
            let year = try await api.call(.get, "/v1/reports/daily?from=2024-01-01&to=2024-12-31", token: api.admin)
            #expect(year.status == .ok)
            #expect(year.json["items"]?.array?.count == 732)
        }
    }
}
