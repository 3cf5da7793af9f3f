import Foundation
import Hummingbird
import HummingbirdTesting
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: segments and campaigns")
struct AdminCampaignTests {
    /// `count` active members tagged `tag` (card numbers `<prefix>-000001`, ...).
    static func seedMembers(_ api: AdminHarness, count: Int, tag: String, prefix: String) async throws {
        try await api.postgres.query(
            """
            INSERT INTO members (card_number, tags, tier_id)
            SELECT \(prefix) || '-' || lpad(i::text, 6, '0'), ARRAY[\(tag)]::text[], (SELECT min(tier_id) FROM tiers)
            FROM generate_series(1, \(Int32(count))) AS i
            """, logger: TestServices.logger)
    }

    static func createSegment(_ api: AdminHarness, name: String, tag: String) async throws -> Int64 {
        let response = try await api.call(
            .post, "/v1/segments", token: api.marketer, json: #"{"name": "\#(name)", "definition": {"tags_any": ["\#(tag)"]}}"#)
        #expect(response.status == .created, "\(response.text)")
        return try #require(response.json["segment_id"]?.int)
    }

    static func createCampaign(_ api: AdminHarness, _ json: String, token: String? = nil) async throws -> Int64 {
        let response = try await api.call(.post, "/v1/campaigns", token: token ?? api.marketer, json: json)
        #expect(response.status == .created, "\(response.text)")
        #expect(response.json["state"]?.string == "draft")
        return try #require(response.json["campaign_id"]?.int)
    }

    static func bonusJSON(segment: Int64, budget: Int64 = 1_000_000, name: String = "Spring bonus") -> String {
        """
        {"kind": "bonus", "name": "\(name)", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
         "segment_id": \(segment), "bonus_points": 100, "bonus_expires_days": 90, "budget_points": \(budget)}
        """
    }

    /// A JSON number, whether it was written with a fraction or not.
    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .number(let number)?: number
        case .integer(let integer)?: Double(integer)
        default: nil
        }
    }

    static let multiplierJSON = """
        {"kind": "multiplier", "name": "Double points weekend", "starts_at": "2025-06-07T00:00:00Z",
         "ends_at": "2099-06-09T00:00:00.000Z", "multiplier_bp": 20000, "categories": ["grocery"]}
        """

    @Test("segments: a bad definition field is 400 naming it; preview counts without saving; create fills, GET and list read, refresh refills; all audited")
    func segments() async throws {
        try await AdminHarness.run { api in
            try await Self.seedMembers(api, count: 30, tag: "vip", prefix: "SV")
            try await Self.seedMembers(api, count: 20, tag: "other", prefix: "SO")

            let cases: [(json: String, detail: String)] = [
                (#"{"name": "x", "definition": {"teirs": ["gold"]}}"#, #"field "definition.teirs""#),
                (#"{"name": "x", "definition": {"birthday_month": 13}}"#, #"field "definition.birthday_month""#),
                (#"{"name": "x", "definition": {"purchases": {"window": 30}}}"#, #"field "definition.purchases.window""#),
                (#"{"name": "x", "definition": {"consent": "fax"}}"#, #"field "definition.consent""#),
                (#"{"name": "x", "definition": {"tiers": "gold"}}"#, #"field "definition.tiers""#),
                (#"{"name": "x", "definition": [1]}"#, #"field "definition""#),
                (#"{"name": "x"}"#, #"field "definition" is required"#),
                (#"{"name": "", "definition": {}}"#, #"field "name""#),
                (#"{"nmae": "x", "definition": {}}"#, #"unknown field "nmae""#),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.post, "/v1/segments", token: api.marketer, json: json)
                    .expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }

            let preview = try await api.call(
                .post, "/v1/segments/preview", token: api.marketer, json: #"{"definition": {"tags_any": ["vip"]}}"#)
            #expect(preview.status == .ok, "\(preview.text)")
            #expect(preview.json == .object(["member_count": .integer(30)]))
            try await api.call(.post, "/v1/segments/preview", token: api.marketer, json: #"{"definition": {"tags": ["vip"]}}"#)
                .expectProblem(.badRequest, "invalid_body")
            #expect(try await api.call(.get, "/v1/segments", token: api.readonly).json["items"]?.array?.isEmpty == true)

            let created = try await api.call(
                .post, "/v1/segments", token: api.marketer,
                json: #"{"name": "VIPs", "definition": {"tags_any": ["vip"], "last_purchase_before": "2099-01-01T00:00:00Z"}}"#)
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(created.json["segment_id"]?.int)
            #expect(created.headers[.location] == "/v1/segments/\(id)")
            #expect(created.json["member_count"]?.int == 30)
            #expect(created.json["definition"] == .object([
                "tags_any": .array([.string("vip")]), "last_purchase_before": .string("2099-01-01T00:00:00Z"),
            ]))
            try await api.call(.post, "/v1/segments", token: api.admin, json: #"{"name": "VIPs", "definition": {}}"#)
                .expectProblem(.conflict, "conflict")

            let read = try await api.call(.get, "/v1/segments/\(id)", token: api.readonly)
            #expect(read.status == .ok)
            #expect(read.json == created.json)
            try await api.call(.get, "/v1/segments/\(id + 100)", token: api.readonly).expectProblem(.notFound, "not_found")
            let second = try await Self.createSegment(api, name: "Others", tag: "other")
            let page = try await api.call(.get, "/v1/segments?limit=1", token: api.support).json
            #expect(page["items"]?[0]?["segment_id"]?.int == second)
            let cursor = try #require(page["next_cursor"]?.string)
            let next = try await api.call(.get, "/v1/segments?limit=1&cursor=\(cursor)", token: api.support).json
            #expect(next["items"]?[0]?["segment_id"]?.int == id)

            try await Self.seedMembers(api, count: 5, tag: "vip", prefix: "SN")
            let refreshed = try await api.call(.post, "/v1/segments/\(id)/refresh", token: api.admin)
            #expect(refreshed.status == .ok, "\(refreshed.text)")
            #expect(refreshed.json["member_count"]?.int == 35)
            try await api.call(.post, "/v1/segments/\(id + 100)/refresh", token: api.admin).expectProblem(.notFound, "not_found")

            // Writes are for marketers and admins; every role reads.
            try await api.call(.post, "/v1/segments", token: api.support, json: #"{"name": "S", "definition": {}}"#)
                .expectProblem(.forbidden, "forbidden")
            try await api.call(.post, "/v1/segments/preview", token: api.readonly, json: #"{"definition": {}}"#)
                .expectProblem(.forbidden, "forbidden")
            try await api.call(.post, "/v1/segments/\(id)/refresh", token: api.support).expectProblem(.forbidden, "forbidden")

            let audit = try await api.auditRows("segment:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["segment.create", "segment.refresh"])
            #expect(audit[0]["role"]?.string == "marketer")
            #expect(audit[0]["after"]?["name"]?.string == "VIPs")
            #expect(audit[0]["request_id"]?.string == created.headers[RequestIDMiddleware.headerName])
            #expect(audit[1]["before"] == .object(["member_count": .integer(30)]))
            #expect(audit[1]["after"] == .object(["member_count": .integer(35)]))
        }
    }

    @Test("campaign bodies: a window ending before its start, a multiplier out of range, a negative budget, an unknown segment are 400 naming the field")
    func invalidCampaigns() async throws {
        try await AdminHarness.run { api in
            let segment = try await Self.createSegment(api, name: "Everyone", tag: "x")
            let window = #""starts_at": "2025-06-01T00:00:00Z", "ends_at": "2025-07-01T00:00:00Z""#
            let bonus = #""kind": "bonus", "name": "B", \#(window), "segment_id": \#(segment), "bonus_points": 10, "bonus_expires_days": 30"#
            let multiplier = #""kind": "multiplier", "name": "M", \#(window)"#
            let cases: [(json: String, detail: String)] = [
                (#"{"kind": "multiplier", "name": "M", "starts_at": "2025-06-01T00:00:00Z", "ends_at": "2025-05-01T00:00:00Z", "multiplier_bp": 20000}"#,
                 #"field "ends_at" must be after starts_at"#),
                (#"{"kind": "bonus", "name": "B", "starts_at": "2025-06-01T00:00:00Z", "ends_at": "2025-06-01T00:00:00Z", "segment_id": \#(segment), "bonus_points": 10, "bonus_expires_days": 30}"#,
                 #"field "ends_at" must be after starts_at"#),
                ("{\(multiplier), \"multiplier_bp\": 5000}", #"field "multiplier_bp""#),
                ("{\(multiplier), \"multiplier_bp\": 200000}", #"field "multiplier_bp""#),
                ("{\(multiplier), \"extra_rate_bp\": -1}", #"field "extra_rate_bp""#),
                ("{\(multiplier), \"multiplier_bp\": 20000, \"extra_rate_bp\": 100}", #""multiplier_bp", "extra_rate_bp""#),
                ("{\(multiplier)}", #""multiplier_bp", "extra_rate_bp""#),
                ("{\(multiplier), \"multiplier_bp\": 20000, \"categories\": []}", #"field "categories""#),
                ("{\(multiplier), \"multiplier_bp\": 20000, \"skus\": [\"a b\"]}", #"field "skus""#),
                ("{\(multiplier), \"multiplier_bp\": 20000, \"bonus_points\": 5}", #"field "bonus_points" is not for multiplier campaigns"#),
                ("{\(bonus), \"budget_points\": -1}", #"field "budget_points" must not be negative"#),
                ("{\(bonus), \"multiplier_bp\": 20000}", #"field "multiplier_bp" is not for bonus campaigns"#),
                (#"{"kind": "bonus", "name": "B", \#(window), "segment_id": \#(segment), "bonus_points": 0, "bonus_expires_days": 30}"#, #"field "bonus_points""#),
                (#"{"kind": "bonus", "name": "B", \#(window), "segment_id": \#(segment), "bonus_points": 5, "bonus_expires_days": 0}"#, #"field "bonus_expires_days""#),
                (#"{"kind": "bonus", "name": "B", \#(window), "bonus_points": 5, "bonus_expires_days": 3}"#, #"field "segment_id" is required"#),
                (#"{"kind": "bonus", "name": "B", \#(window), "segment_id": \#(segment + 50), "bonus_points": 5, "bonus_expires_days": 3}"#, #"field "segment_id" names no segment"#),
                (#"{"kind": "multiplier", "name": "M", "starts_at": "June", "ends_at": "2025-07-01T00:00:00Z", "multiplier_bp": 20000}"#, #"field "starts_at""#),
                (#"{"kind": "stamp", "name": "S"}"#, #"field "kind""#),
                (#"{"kind": "multiplier", "nmae": "M"}"#, #"unknown field "nmae""#),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.post, "/v1/campaigns", token: api.marketer, json: json)
                    .expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            #expect(try await api.call(.get, "/v1/campaigns", token: api.readonly).json["items"]?.array?.isEmpty == true)
            // Only marketers and admins create.
            try await api.call(.post, "/v1/campaigns", token: api.support, json: Self.multiplierJSON).expectProblem(.forbidden, "forbidden")
            try await api.call(.post, "/v1/campaigns", token: api.readonly, json: Self.multiplierJSON).expectProblem(.forbidden, "forbidden")
        }
    }

    @Test("a multiplier campaign is created as a draft, scheduled, then served to the checkout; cancelled it is not")
    func multiplierLifecycle() async throws {
        try await AdminHarness.run { api in
            let id = try await Self.createCampaign(api, Self.multiplierJSON)
            let draft = try await api.call(.get, "/v1/campaigns/\(id)", token: api.readonly)
            #expect(draft.status == .ok)
            #expect(draft.json["kind"]?.string == "multiplier")
            #expect(draft.json["multiplier_bp"]?.int == 20_000)
            #expect(draft.json["extra_rate_bp"]?.isNull == true)
            #expect(draft.json["categories"] == .array([.string("grocery")]))
            #expect(draft.json["starts_at"]?.string == "2025-06-07T00:00:00.000Z")
            #expect(draft.json["progress"]?.isNull == true)
            let store = CampaignStore(client: api.postgres, logger: TestServices.logger)
            #expect(try await store.multipliers(lookbackDays: 30).isEmpty, "a draft does not apply")

            let scheduled = try await api.call(.post, "/v1/campaigns/\(id)/schedule", token: api.marketer)
            #expect(scheduled.status == .ok, "\(scheduled.text)")
            #expect(scheduled.json["state"]?.string == "scheduled")
            #expect(try await store.multipliers(lookbackDays: 30).map(\.campaignID) == [id])
            try await api.call(.post, "/v1/campaigns/\(id)/schedule", token: api.marketer).expectProblem(.conflict, "conflict")
            try await api.call(.post, "/v1/campaigns/\(id)/trigger", token: api.marketer).expectProblem(.conflict, "not_a_bonus_campaign")

            let cancelled = try await api.call(.post, "/v1/campaigns/\(id)/cancel", token: api.admin)
            #expect(cancelled.json["state"]?.string == "cancelled", "\(cancelled.text)")
            // Still loaded, for offline purchases made while it was in force; in force for none made from now on.
            #expect(try await store.multipliers(lookbackDays: 30).allSatisfy { !$0.isActive(at: Date()) && $0.cancelledAt != nil })
            try await api.call(.post, "/v1/campaigns/\(id)/cancel", token: api.admin).expectProblem(.conflict, "conflict")
            try await api.call(.post, "/v1/campaigns/\(id + 100)/cancel", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.post, "/v1/campaigns/\(id + 100)/trigger", token: api.admin).expectProblem(.notFound, "unknown_campaign")
            try await api.call(.get, "/v1/campaigns/\(id + 100)", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.post, "/v1/campaigns/\(id)/schedule", token: api.support).expectProblem(.forbidden, "forbidden")

            // A window already over cannot be scheduled.
            let past = try await Self.createCampaign(api, """
                {"kind": "multiplier", "name": "Last year", "starts_at": "2024-01-01T00:00:00Z", "ends_at": "2024-01-02T00:00:00Z",
                 "extra_rate_bp": 500, "tier_codes": ["base"]}
                """, token: api.admin)
            try await api.call(.post, "/v1/campaigns/\(past)/schedule", token: api.marketer).expectProblem(.conflict, "conflict")

            let audit = try await api.auditRows("campaign:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["campaign.create", "campaign.schedule", "campaign.cancel"])
            #expect(audit[0]["role"]?.string == "marketer")
            #expect(audit[0]["after"]?["multiplier_bp"]?.int == 20_000)
            #expect(audit[1]["before"] == .object(["state": .string("draft")]))
            #expect(audit[1]["after"] == .object(["state": .string("scheduled")]))
            #expect(audit[2]["role"]?.string == "admin")
        }
    }

    @Test("PATCH changes a draft only: the result is checked as on create, null clears, kind cannot change, audited; a scheduled campaign is 409")
    func patchDraft() async throws {
        try await AdminHarness.run { api in
            let segment = try await Self.createSegment(api, name: "Everyone", tag: "x")
            let id = try await Self.createCampaign(api, Self.multiplierJSON)
            let changed = try await api.call(
                .patch, "/v1/campaigns/\(id)", token: api.marketer,
                json: #"{"name": "Triple points", "multiplier_bp": null, "extra_rate_bp": 500, "categories": null, "segment_id": \#(segment)}"#)
            #expect(changed.status == .ok, "\(changed.text)")
            #expect(changed.json["name"]?.string == "Triple points")
            #expect(changed.json["multiplier_bp"]?.isNull == true)
            #expect(changed.json["extra_rate_bp"]?.int == 500)
            #expect(changed.json["categories"]?.isNull == true)
            #expect(changed.json["segment_id"]?.int == segment)
            #expect(changed.json["starts_at"]?.string == "2025-06-07T00:00:00.000Z", "untouched fields stay")

            let cases: [(json: String, detail: String)] = [
                (#"{"ends_at": "2025-06-01T00:00:00Z"}"#, #"field "ends_at" must be after starts_at"#),
                (#"{"extra_rate_bp": 200000}"#, #"field "extra_rate_bp""#),
                (#"{"multiplier_bp": 20000}"#, #""multiplier_bp", "extra_rate_bp""#),
                (#"{"name": null}"#, #"field "name" is required"#),
                (#"{"kind": "bonus"}"#, #"field "kind" cannot change"#),
                (#"{"bonus_points": 5}"#, #"field "bonus_points" is not for multiplier campaigns"#),
                (#"{"segment_id": \#(segment + 9)}"#, #"field "segment_id" names no segment"#),
                (#"{"nmae": "x"}"#, #"unknown field "nmae""#),
                ("{}", "names no field"),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.patch, "/v1/campaigns/\(id)", token: api.marketer, json: json)
                    .expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            let bonus = try await Self.createCampaign(api, Self.bonusJSON(segment: segment))
            let budget = try await api.call(.patch, "/v1/campaigns/\(bonus)", token: api.admin, json: #"{"budget_points": null, "bonus_points": 7}"#)
            #expect(budget.json["budget_points"]?.isNull == true, "\(budget.text)")
            #expect(budget.json["bonus_points"]?.int == 7)
            try await api.call(.patch, "/v1/campaigns/\(bonus)", token: api.admin, json: #"{"budget_points": -5}"#)
                .expectProblem(.badRequest, "invalid_body")
            try await api.call(.patch, "/v1/campaigns/\(bonus)", token: api.support, json: #"{"bonus_points": 8}"#)
                .expectProblem(.forbidden, "forbidden")

            #expect(try await api.call(.post, "/v1/campaigns/\(id)/schedule", token: api.marketer).status == .ok)
            try await api.call(.patch, "/v1/campaigns/\(id)", token: api.marketer, json: #"{"name": "Late"}"#)
                .expectProblem(.conflict, "conflict")
            try await api.call(.patch, "/v1/campaigns/\(id + 100)", token: api.marketer, json: #"{"name": "Late"}"#)
                .expectProblem(.notFound, "not_found")

            let audit = try await api.auditRows("campaign:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["campaign.create", "campaign.update", "campaign.schedule"])
            #expect(audit[1]["before"] == .object([
                "name": .string("Double points weekend"), "multiplier_bp": .integer(20_000), "extra_rate_bp": .null,
                "categories": .array([.string("grocery")]), "segment_id": .null,
            ]))
            #expect(audit[1]["after"]?["extra_rate_bp"]?.int == 500)
        }
    }

    @Test("a bonus campaign: scheduled, triggered (twice: 409), run to the end, finished with progress; a finished one cannot be triggered")
    func bonusLifecycle() async throws {
        try await AdminHarness.run { api in
            try await Self.seedMembers(api, count: 120, tag: "vip", prefix: "BV")
            try await Self.seedMembers(api, count: 10, tag: "other", prefix: "BO")
            let segment = try await Self.createSegment(api, name: "VIPs", tag: "vip")
            let id = try await Self.createCampaign(api, Self.bonusJSON(segment: segment))
            let draft = try await api.call(.get, "/v1/campaigns/\(id)", token: api.readonly).json
            #expect(draft["bonus_points"]?.int == 100)
            #expect(draft["budget_points"]?.int == 1_000_000)
            #expect(draft["progress"]?["awarded_members"]?.int == 0)
            #expect(draft["progress"]?["target_members"]?.isNull == true)

            // A draft is not paid out before someone schedules it.
            try await api.call(.post, "/v1/campaigns/\(id)/trigger", token: api.marketer).expectProblem(.conflict, "conflict")
            #expect(try await api.call(.post, "/v1/campaigns/\(id)/schedule", token: api.marketer).status == .ok)

            let triggered = try await api.call(.post, "/v1/campaigns/\(id)/trigger", token: api.marketer)
            #expect(triggered.status == .accepted, "\(triggered.text)")
            #expect(triggered.json["state"]?.string == "running")
            #expect(triggered.json["progress"]?["target_members"]?.int == 120)
            try await api.call(.post, "/v1/campaigns/\(id)/trigger", token: api.admin)
                .expectProblem(.conflict, "campaign_already_running")
            try await api.call(.post, "/v1/campaigns/\(id)/trigger", token: api.support).expectProblem(.forbidden, "forbidden")
            // The segment is not refilled while it is being paid.
            try await api.call(.post, "/v1/segments/\(segment)/refresh", token: api.marketer).expectProblem(.conflict, "conflict")
            let running = try await api.call(.get, "/v1/campaigns?state=running", token: api.readonly).json
            #expect(running["items"]?.array?.count == 1)

            let store = CampaignStore(client: api.postgres, logger: TestServices.logger)
            let first = try await store.awardBatch(id, batchSize: 50, actor: "test-runner")
            #expect(first.paid == 50 && first.done == false)
            let midway = try await api.call(.get, "/v1/campaigns/\(id)", token: api.readonly).json
            #expect(midway["progress"]?["awarded_members"]?.int == 50)
            #expect(midway["progress"]?["awarded_points"]?.int == 5_000)

            #expect(await CampaignRunner(store: store, logger: TestServices.logger).runOnce())
            let finished = try await api.call(.get, "/v1/campaigns/\(id)", token: api.readonly)
            #expect(finished.status == .ok)
            let progress = try #require(finished.json["progress"])
            #expect(finished.json["state"]?.string == "finished", "\(finished.text)")
            #expect(progress["awarded_members"]?.int == 120)
            #expect(progress["target_members"]?.int == 120)
            #expect(progress["awarded_points"]?.int == 12_000)
            #expect(progress["budget_points"]?.int == 1_000_000)
            #expect(progress["finish_reason"]?.string == "everyone paid")
            // Numbers once the run has taken time: members per second, and nothing left to go.
            #expect(Self.number(progress["rate_per_s"]).map { $0 > 0 } == true, "\(progress)")
            #expect(Self.number(progress["eta_s"]) == 0, "\(progress)")

            try await api.call(.post, "/v1/campaigns/\(id)/trigger", token: api.marketer).expectProblem(.conflict, "campaign_ended")
            try await api.call(.post, "/v1/campaigns/\(id)/cancel", token: api.marketer).expectProblem(.conflict, "conflict")
            let finishedList = try await api.call(.get, "/v1/campaigns?state=finished", token: api.readonly).json
            #expect(finishedList["items"]?[0]?["campaign_id"]?.int == id)
            try await api.call(.get, "/v1/campaigns?state=done", token: api.readonly).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/campaigns?kind=bonus", token: api.readonly).expectProblem(.badRequest, "invalid_parameter")

            let paid = try await api.postgres.query(
                "SELECT count(*)::int8 FROM journal_entries WHERE kind = 'campaign_bonus'", logger: TestServices.logger)
            for try await count in paid.decode(Int64.self) { #expect(count == 120) }

            let audit = try await api.auditRows("campaign:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["campaign.create", "campaign.schedule", "campaign.trigger"])
            #expect(audit[2]["after"] == .object(["state": .string("running"), "target_members": .integer(120)]))
            #expect(audit[2]["request_id"]?.string == triggered.headers[RequestIDMiddleware.headerName])
        }
    }

    @Test("cancelling a running bonus campaign stops its run at the next batch")
    func cancelRunning() async throws {
        try await AdminHarness.run { api in
            try await Self.seedMembers(api, count: 40, tag: "vip", prefix: "CV")
            let segment = try await Self.createSegment(api, name: "VIPs", tag: "vip")
            let id = try await Self.createCampaign(api, Self.bonusJSON(segment: segment, budget: 0, name: "Capped at nothing"))
            let other = try await Self.createCampaign(api, Self.bonusJSON(segment: segment, name: "Stopped"))
            for campaign in [id, other] {
                #expect(try await api.call(.post, "/v1/campaigns/\(campaign)/schedule", token: api.marketer).status == .ok)
                #expect(try await api.call(.post, "/v1/campaigns/\(campaign)/trigger", token: api.marketer).status == .accepted)
            }
            let store = CampaignStore(client: api.postgres, logger: TestServices.logger)
            #expect(try await store.awardBatch(other, batchSize: 10, actor: "test").paid == 10)
            let cancelled = try await api.call(.post, "/v1/campaigns/\(other)/cancel", token: api.marketer)
            #expect(cancelled.json["state"]?.string == "cancelled", "\(cancelled.text)")
            #expect(cancelled.json["progress"]?["finish_reason"]?.string == "cancelled")
            let after = try await store.awardBatch(other, batchSize: 10, actor: "test")
            #expect(after.paid == 0 && after.done == true && after.awardedMembers == 10)
            try await api.call(.post, "/v1/campaigns/\(other)/trigger", token: api.marketer).expectProblem(.conflict, "campaign_ended")

            // A budget of 0 pays nobody: the run ends at once on the budget.
            await CampaignRunner(store: store, logger: TestServices.logger).runOnce()
            let capped = try await api.call(.get, "/v1/campaigns/\(id)", token: api.readonly).json
            #expect(capped["state"]?.string == "finished")
            #expect(capped["progress"]?["finish_reason"]?.string == "budget")
            #expect(capped["progress"]?["awarded_points"]?.int == 0)
            #expect(try await api.auditRows("campaign:\(other)").map { $0["action"]?.string }
                == ["campaign.create", "campaign.schedule", "campaign.trigger", "campaign.cancel"])
        }
    }

    @Test("birthday and welcome campaigns: created as drafts without a segment, scheduled, paid by the runner (which marks the paid members' cached balances as old), and never triggered by hand")
    func occasionCampaigns() async throws {
        let namespace = "test-occasion-\(UUID().uuidString.prefix(8))"
        @Sendable func makeCache(_ redis: RedisClient) throws -> MemberCache {
            var configuration = MemberCache.Configuration()
            configuration.namespace = namespace
            return try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
        }
        try await AdminHarness.run(cache: makeCache) { api in
            let today = Date.now.formatted(.iso8601.year().month().day().dateSeparator(.dash))
            let born = "1992" + today.dropFirst(4)  // a leap year, so 29 February works too
            let id = try await api.createMember(#"{"card_number": "CARD-BDAY", "birth_date": "\#(born)"}"#)
            let cache = try makeCache(try TestServices.redisClient())
            let snapshot = CachedMember(
                memberID: id, tierCode: "base", tierName: "Member", status: "active", cardNumber: "CARD-BDAY",
                points: .init(available: 0), cashbackMinor: .init(available: 0), ledgerVersion: 0)
            #expect(try await cache.put(snapshot) == .stored)

            // A bonus (blast) still needs its segment; birthday and welcome campaigns do not.
            try await api.call(.post, "/v1/campaigns", token: api.marketer, json: """
                {"kind": "bonus", "name": "No segment", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": 100, "bonus_expires_days": 90}
                """).expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/campaigns", token: api.marketer, json: """
                {"kind": "welcome", "name": "Welcome", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": 100, "bonus_expires_days": 90, "multiplier_bp": 20000}
                """).expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/campaigns", token: api.marketer, json: """
                {"kind": "birthday", "name": "Birthday", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": -5, "bonus_expires_days": 90}
                """).expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/campaigns", token: api.marketer, json: """
                {"kind": "birthday", "name": "Birthday", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": 20000000000000000, "bonus_expires_days": 90}
                """).expectProblem(.badRequest, "invalid_body")
            let birthday = try await Self.createCampaign(api, """
                {"kind": "birthday", "name": "Birthday", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": 250, "bonus_expires_days": 30, "budget_points": 100000}
                """)
            let welcome = try await Self.createCampaign(api, """
                {"kind": "welcome", "name": "Welcome", "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": 100, "bonus_expires_days": 90}
                """)
            let patched = try await api.call(.patch, "/v1/campaigns/\(birthday)", token: api.marketer, json: #"{"bonus_points": 300}"#)
            #expect(patched.status == .ok && patched.json["bonus_points"]?.int == 300, "\(patched.text)")

            let store = CampaignStore(client: api.postgres, logger: TestServices.logger)
            let runner = CampaignRunner(store: store, cache: cache, logger: TestServices.logger)
            // Drafts are not paid.
            #expect(await runner.runOccasionsOnce() == false)
            for campaign in [birthday, welcome] {
                #expect(try await api.call(.post, "/v1/campaigns/\(campaign)/schedule", token: api.marketer).status == .ok)
                try await api.call(.post, "/v1/campaigns/\(campaign)/trigger", token: api.marketer)
                    .expectProblem(.conflict, "not_a_bonus_campaign")
            }
            #expect(await runner.runOccasionsOnce() == true)
            #expect(await runner.runOccasionsOnce() == false)
            let after = try await api.call(.get, "/v1/campaigns/\(birthday)", token: api.readonly).json
            #expect(after["state"]?.string == "running")
            #expect(after["progress"]?["awarded_members"]?.int == 1 && after["progress"]?["awarded_points"]?.int == 300)
            let balance = try await api.call(.get, "/v1/members/\(id)/balances", token: api.readonly)
            #expect(balance.text.contains("300"), "\(balance.text)")
            // The till's cached copy from before the bonus is not served any more.
            #expect(await cache.member(id: id) == .miss)
        }
    }

    @Test("client mistakes found by generated requests are 400s, not 500s or silent acceptance: control characters in codes, out-of-range timestamps, empty query values")
    func generatedMistakes() async throws {
        try await AdminHarness.run { api in
            try await api.call(.post, "/v1/segments/preview", token: api.marketer, json: #"{"definition": {"tags_any": ["a\u0000b"]}}"#)
                .expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/segments", token: api.marketer, json: #"{"name": "x", "definition": {"tiers": ["\u0007"]}}"#)
                .expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/segments/preview", token: api.marketer, json: #"{"definition": {"last_purchase_before": "2024-01-01T12:99:00Z"}}"#)
                .expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/campaigns", token: api.marketer, json: """
                {"kind": "welcome", "name": "W", "starts_at": "2025-02-29T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                 "bonus_points": 100, "bonus_expires_days": 90}
                """).expectProblem(.badRequest, "invalid_body")
            // Lengths count code points as the document and PostgreSQL do: 60 letters with 3 combining marks each
            // are 60 characters to Swift but 240 to PostgreSQL (this was a 500 from the table's CHECK).
            let zalgo = String(repeating: "a\u{0301}\u{0316}\u{0317}", count: 60)
            try await api.call(.post, "/v1/segments", token: api.marketer, json: #"{"name": "\#(zalgo)", "definition": {}}"#)
                .expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/segments", token: api.marketer, json: #"{"name": "\t\#(String(repeating: "x", count: 100))", "definition": {}}"#)
                .expectProblem(.badRequest, "invalid_body")
            try await api.call(.post, "/v1/members", token: api.admin, json: #"{"tags": ["ok", "bad\u0000tag"]}"#)
                .expectProblem(.badRequest, "invalid_body")
            let member = try await api.createMember()
            try await api.call(.post, "/v1/members/\(member)/adjustments", token: api.admin,
                               json: #"{"unit": "points", "delta": 9223372036854775806, "reason": "fuzz"}"#)
                .expectProblem(.badRequest, "invalid_amount")
            try await api.call(.get, "/v1/campaigns?state=", token: api.readonly).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/segments?limit=", token: api.readonly).expectProblem(.badRequest, "invalid_parameter")
            // Null is the same as absent in a definition, as the document says.
            let preview = try await api.call(.post, "/v1/segments/preview", token: api.marketer, json: #"{"definition": {"last_purchase_before": null}}"#)
            #expect(preview.status == .ok, "\(preview.text)")
            let rows = try await api.postgres.query("SELECT count(*) FROM segments", logger: TestServices.logger)
            for try await count in rows.decode(Int64.self) { #expect(count == 0) }
        }
    }
}
