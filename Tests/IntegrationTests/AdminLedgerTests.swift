import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: balances, ledger history, adjustments, audit log")
struct AdminLedgerTests {
    @Test("an adjustment is booked, shows in balances and history, and is audited")
    func adjustment() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            let response = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.support,
                json: #"{"unit": "points", "delta": 250, "reason": "goodwill after complaint"}"#)
            #expect(response.status == .created, "\(response.text)")
            #expect(response.json["balances"]?["available"]?.int == 250)
            #expect(response.json["replayed"] == .bool(false))

            let balances = try await api.call(.get, "/v1/members/\(id)/balances", token: api.marketer).json
            #expect(balances == .object([
                "member_id": .integer(id),
                "points": .object(["available": .integer(250), "pending": .integer(0), "held": .integer(0)]),
                "cashback_minor": .object(["available": .integer(0), "pending": .integer(0), "held": .integer(0)]),
            ]))
            let history = try await api.call(.get, "/v1/members/\(id)/ledger", token: api.support).json
            let entry = try #require(history["items"]?[0])
            #expect(entry["kind"]?.string == "adjustment")
            #expect(entry["reason"]?.string == "goodwill after complaint")
            #expect(entry["actor"]?.string?.hasPrefix("admin:") == true)
            #expect(entry["reverses_entry_id"]?.isNull == true)

            let audit = try await api.auditRows("member:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["member.create", "member.adjust"])
            #expect(audit[1]["before"]?["available"]?.int == 0)
            #expect(audit[1]["after"]?["delta"]?.int == 250)
            #expect(audit[1]["role"]?.string == "support")
        }
    }

    @Test("the same idempotency key twice applies once; the header works too; another request with it is 409")
    func idempotency() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            let body = #"{"unit": "points", "delta": 100, "reason": "birthday bonus", "idempotency_key": "bday-2024"}"#
            let first = try await api.call(.post, "/v1/members/\(id)/adjustments", token: api.admin, json: body)
            #expect(first.status == .created)
            let second = try await api.call(.post, "/v1/members/\(id)/adjustments", token: api.admin, json: body)
            #expect(second.status == .ok)
            #expect(second.json["replayed"] == .bool(true))
            #expect(second.json["entry_id"] == first.json["entry_id"])

            let viaHeader = #"{"unit": "points", "delta": 100, "reason": "birthday bonus"}"#
            let third = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.admin, json: viaHeader, headers: [LedgerRoutes.idempotencyKeyHeader: "bday-2024"])
            #expect(third.json["replayed"] == .bool(true))

            let different = #"{"unit": "points", "delta": 999, "reason": "birthday bonus", "idempotency_key": "bday-2024"}"#
            try await api.call(.post, "/v1/members/\(id)/adjustments", token: api.admin, json: different)
                .expectProblem(.conflict, "idempotency_conflict")

            let balances = try await api.call(.get, "/v1/members/\(id)/balances", token: api.admin).json
            #expect(balances["points"]?["available"]?.int == 100)
            let history = try await api.call(.get, "/v1/members/\(id)/ledger", token: api.admin).json
            #expect(history["items"]?.array?.count == 1)
            #expect(try await api.auditRows("member:\(id)").filter { $0["action"]?.string == "member.adjust" }.count == 1)

            // Keys are per token: the same key from another token is a new request.
            let fromSupport = try await api.call(.post, "/v1/members/\(id)/adjustments", token: api.support, json: body)
            #expect(fromSupport.status == .created)
        }
    }

    @Test("support may adjust up to the limit; beyond it is 403 naming the limit")
    func supportLimit() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            let over = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.support,
                json: #"{"unit": "points", "delta": 10001, "reason": "too generous"}"#)
            #expect(over.expectProblem(.forbidden, "forbidden")["detail"]?.string?.contains("10000") == true)
            let negativeOver = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.support,
                json: #"{"unit": "points", "delta": -10001, "reason": "too strict"}"#)
            negativeOver.expectProblem(.forbidden, "forbidden")
            let atLimit = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.support,
                json: #"{"unit": "points", "delta": 10000, "reason": "exactly the limit"}"#)
            #expect(atLimit.status == .created)
            let admin = try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.admin,
                json: #"{"unit": "points", "delta": 50000, "reason": "admin has no limit"}"#)
            #expect(admin.status == .created)
            try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.readonly,
                json: #"{"unit": "points", "delta": 1, "reason": "readonly"}"#
            ).expectProblem(.forbidden, "forbidden")
        }
    }

    @Test("support's adjustments add up per token, unit and UTC day; past the daily limit is 403 with used and reset time")
    func supportDailyLimit() async throws {
        try await AdminHarness.run(policy: AdminPolicy(supportAdjustmentLimit: 10_000, supportDailyAdjustmentLimit: 25_000)) { api in
            let id = try await api.createMember()
            let path = "/v1/members/\(id)/adjustments"
            func adjust(_ delta: Int64, unit: String = "points", token: String? = nil, key: String? = nil) async throws -> TestResponse {
                let keyField = key.map { #", "idempotency_key": "\#($0)""# } ?? ""
                return try await api.call(
                    .post, path, token: token ?? api.support,
                    json: #"{"unit": "\#(unit)", "delta": \#(delta), "reason": "goodwill"\#(keyField)}"#)
            }
            #expect(try await adjust(10_000, key: "first").status == .created)
            #expect(try await adjust(10_000).status == .created)
            let refused = try await adjust(10_000).expectProblem(.forbidden, "daily_adjustment_limit_reached")
            let detail = try #require(refused["detail"]?.string)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let tomorrow = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: Date()))!
            let resetsAt = ISO8601DateFormatter().string(from: tomorrow)
            #expect(detail.contains("at most 25000 points per UTC day"), "\(detail)")
            #expect(detail.contains("20000 used today"), "\(detail)")
            #expect(detail.contains("resets at \(resetsAt)"), "\(detail)")
            // Debits count by their absolute value: 5,000 more reaches the limit exactly, one more is refused.
            #expect(try await adjust(-5_000).status == .created)
            try await adjust(-1).expectProblem(.forbidden, "daily_adjustment_limit_reached")
            // The refused ones wrote nothing.
            let balances = try await api.call(.get, "/v1/members/\(id)/balances", token: api.admin).json
            #expect(balances["points"]?["available"]?.int == 15_000)
            #expect(try await api.auditRows("member:\(id)").filter { $0["action"]?.string == "member.adjust" }.count == 3)
            // A replay is answered as before; another unit, another support token and admins have their own room.
            let replay = try await adjust(10_000, key: "first")
            #expect(replay.status == .ok && replay.json["replayed"] == .bool(true), "\(replay.text)")
            #expect(try await adjust(10_000, unit: "cashback_minor").status == .created)
            let other = try await api.makeToken(role: .support)
            #expect(try await adjust(10_000, token: other.text).status == .created)
            #expect(try await adjust(10_000, token: api.admin).status == .created)
        }
    }

    @Test("with the default limits, five +10,000 support adjustments in a row stop at the third")
    func supportDailyLimitDefault() async throws {
        #expect(AdminPolicy().supportDailyAdjustmentLimit == 25_000)
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            var statuses: [HTTPResponse.Status] = []
            for attempt in 1...5 {
                statuses.append(try await api.call(
                    .post, "/v1/members/\(id)/adjustments", token: api.support,
                    json: #"{"unit": "points", "delta": 10000, "reason": "in a row \#(attempt)"}"#
                ).status)
            }
            #expect(statuses == [.created, .created, .forbidden, .forbidden, .forbidden])
        }
    }

    @Test("concurrent support adjustments cannot together pass the daily limit")
    func supportDailyLimitConcurrent() async throws {
        try await AdminHarness.run(policy: AdminPolicy(supportAdjustmentLimit: 10_000, supportDailyAdjustmentLimit: 25_000)) { api in
            let id = try await api.createMember()
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for attempt in 0..<6 {
                    group.addTask {
                        try await api.call(
                            .post, "/v1/members/\(id)/adjustments", token: api.support,
                            json: #"{"unit": "points", "delta": 10000, "reason": "burst \#(attempt)"}"#
                        ).status
                    }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 2, "\(statuses)")
            #expect(statuses.filter { $0 == .forbidden }.count == 4, "\(statuses)")
            let balances = try await api.call(.get, "/v1/members/\(id)/balances", token: api.admin).json
            #expect(balances["points"]?["available"]?.int == 20_000)
        }
    }

    @Test("ledger refusals map to their codes; bad adjustment bodies are 400")
    func refusals() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            let path = "/v1/members/\(id)/adjustments"
            try await api.call(.post, path, token: api.admin, json: #"{"unit": "points", "delta": -5, "reason": "take back"}"#)
                .expectProblem(.conflict, "insufficient_balance")
            try await api.call(
                .post, "/v1/members/999999/adjustments", token: api.admin,
                json: #"{"unit": "points", "delta": 5, "reason": "nobody"}"#
            ).expectProblem(.notFound, "unknown_member")
            try await api.call(.post, path, token: api.admin, json: #"{"unit": "points", "delta": 0, "reason": "zero"}"#)
                .expectProblem(.badRequest, "invalid_amount")
            let bodies: [(String, String)] = [
                (#"{"unit": "points", "delta": 5, "reason": "ok"}"#, #"field "reason""#),
                (#"{"unit": "points", "delta": 5}"#, #"field "reason" is required"#),
                (#"{"unit": "stars", "delta": 5, "reason": "unit"}"#, #"field "unit""#),
                (#"{"unit": "points", "delta": "5", "reason": "type"}"#, #"field "delta" must be an integer"#),
                (#"{"unit": "points", "delta": 1.5, "reason": "type"}"#, #"field "delta" must be an integer"#),
                (#"{"unit": "points", "delta": 5, "reason": "typo", "idempotencykey": "k"}"#, #"unknown field "idempotencykey""#),
            ]
            for (json, detail) in bodies {
                let problem = try await api.call(.post, path, token: api.admin, json: json).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            // A blocked member can still be corrected by hand.
            _ = try await api.call(.post, "/v1/members/\(id)/block", token: api.admin)
            #expect(try await api.call(.post, path, token: api.admin, json: #"{"unit": "points", "delta": 5, "reason": "fix"}"#).status == .created)
            try await api.call(.get, "/v1/members/999999/balances", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.get, "/v1/members/999999/ledger", token: api.admin).expectProblem(.notFound, "not_found")
        }
    }

    @Test("ledger history is cursor-paged, newest first")
    func historyPaging() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            for delta in [10, 20, 30] as [Int64] { try await api.adjust(id, delta: delta) }
            let first = try await api.call(.get, "/v1/members/\(id)/ledger?limit=2", token: api.readonly).json
            #expect(first["items"]?.array?.map { $0["amount"]?.int } == [30, 20])
            let cursor = try #require(first["next_cursor"]?.string)
            let second = try await api.call(.get, "/v1/members/\(id)/ledger?limit=2&cursor=\(cursor)", token: api.readonly).json
            #expect(second["items"]?.array?.map { $0["amount"]?.int } == [10])
            #expect(second["next_cursor"]?.isNull == true)
            try await api.call(.get, "/v1/members/\(id)/ledger?limit=500", token: api.readonly)
                .expectProblem(.badRequest, "invalid_parameter")
        }
    }

    @Test("the audit log lists writes newest first, by resource, cursor-paged, for admins only")
    func auditLog() async throws {
        try await AdminHarness.run { api in
            let first = try await api.createMember()
            let second = try await api.createMember()
            _ = try await api.call(.post, "/v1/members/\(first)/block", token: api.support)

            let all = try await api.call(.get, "/v1/audit", token: api.admin).json
            #expect(all["items"]?.array?.map { $0["action"]?.string } == ["member.block", "member.create", "member.create"])
            let mine = try await api.call(.get, "/v1/audit?resource=member:\(first)&limit=1", token: api.admin).json
            #expect(mine["items"]?[0]?["action"]?.string == "member.block")
            #expect(mine["items"]?[0]?["actor_name"]?.string == "test support")
            let cursor = try #require(mine["next_cursor"]?.string)
            let older = try await api.call(.get, "/v1/audit?resource=member:\(first)&limit=1&cursor=\(cursor)", token: api.admin).json
            #expect(older["items"]?[0]?["action"]?.string == "member.create")
            let other = try await api.call(.get, "/v1/audit?resource=member:\(second)", token: api.admin).json
            #expect(other["items"]?.array?.count == 1)
            try await api.call(.get, "/v1/audit", token: api.readonly).expectProblem(.forbidden, "forbidden")
            try await api.call(.get, "/v1/audit", token: api.marketer).expectProblem(.forbidden, "forbidden")
        }
    }
}
