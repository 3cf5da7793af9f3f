import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: tiers")
struct AdminTierTests {
    static let silver = """
        {"code": "silver", "name": "Silver", "rank": 10, "qualification_spend_minor": 50000, "qualification_window_days": 365}
        """

    @Test("every role reads the ladder; admin creates, changes and deletes; each write audited with before and after")
    func crud() async throws {
        try await AdminHarness.run { api in
            let initial = try await api.call(.get, "/v1/tiers", token: api.readonly)
            #expect(initial.status == .ok, "\(initial.text)")
            #expect(initial.json["items"]?.array?.map { $0["code"]?.string } == ["base"])

            let created = try await api.call(.post, "/v1/tiers", token: api.admin, json: Self.silver)
            #expect(created.status == .created, "\(created.text)")
            #expect(created.headers[.location] == "/v1/tiers/silver")
            #expect(created.json["earn_rate_override_bp"]?.isNull == true)
            #expect(created.json["qualification_spend_minor"]?.int == 50_000)
            #expect(created.json["tier_id"]?.int != nil)

            for token in [api.marketer, api.support, api.readonly] {
                let read = try await api.call(.get, "/v1/tiers/silver", token: token)
                #expect(read.status == .ok)
                #expect(read.json == created.json)
            }

            let changed = try await api.call(
                .patch, "/v1/tiers/silver", token: api.admin, json: #"{"name": "Silver+", "earn_rate_override_bp": 125}"#)
            #expect(changed.status == .ok, "\(changed.text)")
            #expect(changed.json["name"]?.string == "Silver+")
            #expect(changed.json["earn_rate_override_bp"]?.int == 125)
            #expect(changed.json["rank"]?.int == 10)
            let cleared = try await api.call(.patch, "/v1/tiers/silver", token: api.admin, json: #"{"earn_rate_override_bp": null}"#)
            #expect(cleared.json["earn_rate_override_bp"]?.isNull == true, "\(cleared.text)")

            let list = try await api.call(.get, "/v1/tiers", token: api.support).json
            #expect(list["items"]?.array?.map { $0["code"]?.string } == ["base", "silver"])

            let deleted = try await api.call(.delete, "/v1/tiers/silver", token: api.admin)
            #expect(deleted.status == .noContent, "\(deleted.text)")
            try await api.call(.get, "/v1/tiers/silver", token: api.admin).expectProblem(.notFound, "unknown_tier")

            let audit = try await api.auditRows("tier:silver")
            #expect(audit.map { $0["action"]?.string } == ["tier.create", "tier.update", "tier.update", "tier.delete"])
            #expect(audit[0]["before"]?.isNull == true)
            #expect(audit[0]["after"]?["code"]?.string == "silver")
            #expect(audit[1]["before"]?["name"]?.string == "Silver")
            #expect(audit[1]["after"]?["name"]?.string == "Silver+")
            #expect(audit[3]["before"]?["name"]?.string == "Silver+")
            #expect(audit[3]["after"]?.isNull == true)
        }
    }

    @Test("only admin changes tiers: 403 for every other role, and nothing changes")
    func roles() async throws {
        try await AdminHarness.run { api in
            for token in [api.marketer, api.support, api.readonly] {
                try await api.call(.post, "/v1/tiers", token: token, json: Self.silver).expectProblem(.forbidden, "forbidden")
                try await api.call(.patch, "/v1/tiers/base", token: token, json: #"{"name": "X"}"#).expectProblem(.forbidden, "forbidden")
                try await api.call(.delete, "/v1/tiers/base", token: token).expectProblem(.forbidden, "forbidden")
            }
            try await api.call(.get, "/v1/tiers", token: nil).expectProblem(.unauthorized, "unauthenticated")
            #expect(try await api.call(.get, "/v1/tiers", token: api.admin).json["items"]?.array?.count == 1)
            #expect(try await api.auditRows("tier:silver").isEmpty)
        }
    }

    @Test("bad fields are 400 naming the field; a bad path code is 400; unknown codes are 404")
    func badInput() async throws {
        try await AdminHarness.run { api in
            let cases: [(json: String, detail: String)] = [
                (#"{"code": "gold", "name": "Gold", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 365, "colour": "x"}"#, #"unknown field "colour""#),
                (#"{"code": "gold", "name": "Gold", "rank": "20", "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "rank" must be an integer"#),
                (#"{"code": "gold", "name": "Gold", "rank": 20, "qualification_window_days": 365}"#, #"field "qualification_spend_minor" is required"#),
                (#"{"code": "Gold", "name": "Gold", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "code""#),
                (#"{"code": "gold\n", "name": "Gold", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "code""#),
                (#"{"code": "gold", "name": "", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "name""#),
                (#"{"code": "gold", "name": "G\u0000", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "name""#),
                (#"{"code": "gold", "name": "Gold", "rank": -1, "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "rank""#),
                (#"{"code": "gold", "name": "Gold", "rank": 99999999999, "qualification_spend_minor": 1, "qualification_window_days": 365}"#, #"field "rank""#),
                (#"{"code": "gold", "name": "Gold", "rank": 20, "qualification_spend_minor": -1, "qualification_window_days": 365}"#, #"field "qualification_spend_minor""#),
                (#"{"code": "gold", "name": "Gold", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 0}"#, #"field "qualification_window_days""#),
                (#"{"code": "gold", "name": "Gold", "rank": 20, "qualification_spend_minor": 1, "qualification_window_days": 365, "earn_rate_override_bp": 100001}"#, #"field "earn_rate_override_bp""#),
                (#"[1]"#, "JSON object"),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.post, "/v1/tiers", token: api.admin, json: json).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            let patches: [(json: String, detail: String)] = [
                (#"{"code": "other"}"#, #"field "code" cannot change"#),
                (#"{}"#, "no field"),
                (#"{"name": null}"#, #"field "name""#),
                (#"{"qualification_window_days": 1.5}"#, #"field "qualification_window_days" must be an integer"#),
                (#"{"nmae": "x"}"#, #"unknown field "nmae""#),
            ]
            for (json, detail) in patches {
                let problem = try await api.call(.patch, "/v1/tiers/base", token: api.admin, json: json).expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            try await api.call(.get, "/v1/tiers/Not-A-Code", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/tiers?x=1", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.patch, "/v1/tiers/nosuch", token: api.admin, json: #"{"name": "X"}"#).expectProblem(.notFound, "unknown_tier")
            try await api.call(.delete, "/v1/tiers/nosuch", token: api.admin).expectProblem(.notFound, "unknown_tier")
            try await api.call(.delete, "/v1/tiers/base", token: api.admin, json: #"{"force": true}"#).expectProblem(.badRequest, "invalid_body")
        }
    }

    @Test("ladder refusals are 409 with their own codes and change nothing")
    func conflicts() async throws {
        try await AdminHarness.run { api in
            try await api.call(.post, "/v1/tiers", token: api.admin, json: Self.silver)
            try await api.call(.post, "/v1/tiers", token: api.admin, json: Self.silver).expectProblem(.conflict, "conflict")
            try await api.call(
                .post, "/v1/tiers", token: api.admin,
                json: #"{"code": "gold", "name": "Gold", "rank": 10, "qualification_spend_minor": 90000, "qualification_window_days": 365}"#
            ).expectProblem(.conflict, "tier_rank_taken")
            try await api.call(
                .post, "/v1/tiers", token: api.admin,
                json: #"{"code": "gold", "name": "Gold", "rank": 20, "qualification_spend_minor": 40000, "qualification_window_days": 365}"#
            ).expectProblem(.conflict, "tier_thresholds_not_increasing")
            try await api.call(.patch, "/v1/tiers/base", token: api.admin, json: #"{"qualification_spend_minor": 10}"#)
                .expectProblem(.conflict, "tier_ladder_invalid")
            try await api.call(.patch, "/v1/tiers/silver", token: api.admin, json: #"{"qualification_spend_minor": 0}"#)
                .expectProblem(.conflict, "tier_thresholds_not_increasing")

            // A tier with members cannot go; neither can the last tier.
            _ = try await api.createMember(#"{"card_number": "TIER-0001", "tier_code": "silver"}"#)
            let inUse = try await api.call(.delete, "/v1/tiers/silver", token: api.admin).expectProblem(.conflict, "tier_in_use")
            #expect(inUse["detail"]?.string?.contains("1 members") == true, "\(inUse)")
            try await api.postgres.query("UPDATE members SET tier_id = (SELECT tier_id FROM tiers WHERE code = 'base')", logger: TestServices.logger)
            #expect(try await api.call(.delete, "/v1/tiers/silver", token: api.admin).status == .noContent)
            try await api.call(.delete, "/v1/tiers/base", token: api.admin).expectProblem(.conflict, "tier_ladder_invalid")

            let tiers = try await TierStore(client: api.postgres, logger: TestServices.logger).list()
            #expect(tiers.map(\.code) == ["base"])
            #expect(try await api.auditRows("tier:gold").isEmpty)
            #expect(try await api.auditRows("tier:base").isEmpty)
        }
    }

    @Test("a tier in members' tier history cannot be deleted")
    func history() async throws {
        try await AdminHarness.run { api in
            try await api.call(.post, "/v1/tiers", token: api.admin, json: Self.silver)
            let member = try await api.createMember(#"{"card_number": "TIER-0002"}"#)
            let moved = try await api.call(.patch, "/v1/members/\(member)", token: api.admin, json: #"{"tier_code": "silver"}"#)
            #expect(moved.status == .ok, "\(moved.text)")
            try await api.call(.patch, "/v1/members/\(member)", token: api.admin, json: #"{"tier_code": "base"}"#)
            let problem = try await api.call(.delete, "/v1/tiers/silver", token: api.admin).expectProblem(.conflict, "tier_in_use")
            #expect(problem["detail"]?.string?.contains("tier changes") == true, "\(problem)")
        }
    }
}
