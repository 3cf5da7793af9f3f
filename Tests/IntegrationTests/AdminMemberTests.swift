import Foundation
import Hummingbird
import HummingbirdTesting
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: members")
struct AdminMemberTests {
    static let fullMember = """
        {"card_number": "CARD-1001", "phone": "+4915112345678", "email": "Ada@Example.com", "given_name": "Ada",
         "family_name": "Lovelace", "birth_date": "1990-12-10", "tags": ["vip", "vip", "newsletter"],
         "consents": {"email": true, "sms": false}}
        """

    @Test("create answers 201 with Location and ETag, GET reads it back, the write is audited")
    func createAndRead() async throws {
        try await AdminHarness.run { api in
            let created = try await api.call(.post, "/v1/members", token: api.admin, json: Self.fullMember)
            #expect(created.status == .created, "\(created.text)")
            let member = created.json
            let id = try #require(member["member_id"]?.int)
            #expect(created.headers[.location] == "/v1/members/\(id)")
            #expect(created.headers[.eTag] == "\"1\"")
            #expect(member["tier_code"]?.string == "base")
            #expect(member["status"]?.string == "active")
            #expect(member["birth_date"]?.string == "1990-12-10")
            #expect(member["tags"] == .array([.string("vip"), .string("newsletter")]))
            #expect(member["consents"] == .object(["email": .bool(true), "sms": .bool(false), "push": .bool(false)]))
            #expect(member["erased_at"]?.isNull == true)

            let read = try await api.call(.get, "/v1/members/\(id)", token: api.readonly)
            #expect(read.status == .ok)
            #expect(read.json == member)

            let audit = try await api.auditRows("member:\(id)")
            #expect(audit.count == 1)
            #expect(audit[0]["action"]?.string == "member.create")
            #expect(audit[0]["role"]?.string == "admin")
            #expect(audit[0]["actor_name"]?.string == "test admin")
            #expect(audit[0]["after"]?["card_number"]?.string == "CARD-1001")
            #expect(audit[0]["request_id"]?.string == created.headers[RequestIDMiddleware.headerName])
        }
    }

    @Test("an unknown field, a wrong type and bad values are 400 invalid_body naming the field")
    func invalidBodies() async throws {
        try await AdminHarness.run { api in
            let cases: [(json: String, detail: String)] = [
                (#"{"emial": "a@b.c"}"#, #"unknown field "emial""#),
                (#"{"phone": 4915112345678}"#, #"field "phone" must be a string"#),
                (#"{"consents": {"fax": true}}"#, #"unknown field "consents.fax""#),
                (#"{"consents": {"sms": "yes"}}"#, #"field "consents.sms" must be true or false"#),
                (#"{"tags": ["ok", 3]}"#, #"field "tags" must be an array of strings"#),
                (#"{"card_number": "x"}"#, #"field "card_number""#),
                (#"{"birth_date": "1990-02-30"}"#, #"field "birth_date""#),
                (#"{"tier_code": "platinum"}"#, #"field "tier_code""#),
                (#"[1, 2]"#, "JSON object"),
                (#"{"card_number": "#, "not valid JSON"),
            ]
            for (json, detail) in cases {
                let problem = try await api.call(.post, "/v1/members", token: api.admin, json: json)
                    .expectProblem(.badRequest, "invalid_body")
                #expect(problem["detail"]?.string?.contains(detail) == true, "\(json): \(problem)")
            }
            // Nothing was written by any of them.
            let rows = try await api.postgres.query("SELECT count(*) FROM members", logger: TestServices.logger)
            for try await count in rows.decode(Int64.self) { #expect(count == 0) }
        }
    }

    @Test("an oversized body is 413, a body that is not JSON is 415")
    func bodyLimits() async throws {
        try await AdminHarness.run { api in
            let big = #"{"given_name": ""# + String(repeating: "x", count: 70_000) + #""}"#
            try await api.call(.post, "/v1/members", token: api.admin, json: big).expectProblem(.contentTooLarge, "payload_too_large")
            try await api.call(.post, "/v1/members", token: api.admin, json: "{}", headers: [.contentType: "text/plain"])
                .expectProblem(.unsupportedMediaType, "unsupported_media_type")
            // A body without any Content-Type is not taken for JSON either.
            try await api.client.execute(
                uri: "/v1/members", method: .post, headers: [.authorization: "Bearer \(api.admin)"], body: ByteBuffer(string: "{}")
            ) { response in
                response.expectProblem(.unsupportedMediaType, "unsupported_media_type")
            }
            #expect(try await api.call(
                .post, "/v1/members", token: api.admin, json: "{}", headers: [.contentType: "application/json; charset=utf-8"]
            ).status == .created)
        }
    }

    @Test("a card or phone already in use is 409 conflict, on create and on update")
    func identifiersInUse() async throws {
        try await AdminHarness.run { api in
            _ = try await api.createMember(#"{"card_number": "CARD-2001", "phone": "+4930123456"}"#)
            let second = try await api.createMember(#"{"card_number": "CARD-2002"}"#)
            let again = try await api.call(.post, "/v1/members", token: api.admin, json: #"{"card_number": "CARD-2001"}"#)
            #expect(again.expectProblem(.conflict, "conflict")["detail"]?.string?.contains("card number") == true)
            try await api.call(.patch, "/v1/members/\(second)", token: api.support, json: #"{"phone": "+4930123456"}"#)
                .expectProblem(.conflict, "conflict")
            let unchanged = try await api.call(.get, "/v1/members/\(second)", token: api.admin).json
            #expect(unchanged["phone"]?.isNull == true)
            #expect(unchanged["version"]?.int == 1)
        }
    }

    @Test("PATCH changes only what it names, null clears, a stale If-Match is 409, the audit row holds the change")
    func patch() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember(Self.fullMember)
            let updated = try await api.call(
                .patch, "/v1/members/\(id)", token: api.support,
                json: #"{"email": "ada@lovelace.dev", "birth_date": null, "consents": {"push": true}}"#,
                headers: [.ifMatch: "\"1\""])
            #expect(updated.status == .ok, "\(updated.text)")
            #expect(updated.headers[.eTag] == "\"2\"")
            let member = updated.json
            #expect(member["email"]?.string == "ada@lovelace.dev")
            #expect(member["birth_date"]?.isNull == true)
            #expect(member["given_name"]?.string == "Ada")
            #expect(member["consents"] == .object(["email": .bool(true), "sms": .bool(false), "push": .bool(true)]))

            let stale = try await api.call(
                .patch, "/v1/members/\(id)", token: api.support, json: #"{"given_name": "Augusta"}"#, headers: [.ifMatch: "1"])
            stale.expectProblem(.conflict, "conflict")
            try await api.call(.patch, "/v1/members/\(id)", token: api.support, json: #"{"given_name": "A"}"#, headers: [.ifMatch: "soon"])
                .expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.patch, "/v1/members/\(id)", token: api.support, json: "{}").expectProblem(.badRequest, "invalid_body")
            try await api.call(.patch, "/v1/members/\(id)", token: api.support, json: #"{"tier_code": null}"#)
                .expectProblem(.badRequest, "invalid_body")

            let audit = try await api.auditRows("member:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["member.create", "member.update"])
            #expect(audit[1]["role"]?.string == "support")
            #expect(audit[1]["before"] == .object([
                "email": .string("Ada@Example.com"), "birth_date": .string("1990-12-10"),
                "consents": .object(["email": .bool(true), "sms": .bool(false), "push": .bool(false)]),
            ]))
            #expect(audit[1]["after"]?["birth_date"]?.isNull == true)
        }
    }

    @Test("only an admin sets a tier through PATCH; it is recorded in the tier history with the token and its role")
    func tierChange() async throws {
        try await AdminHarness.run { api in
            try await api.postgres.query(
                "INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days) VALUES ('gold', 'Gold', 1, 100000, 365)",
                logger: TestServices.logger)
            let id = try await api.createMember()
            // Support may edit the profile, not the tier (which sets the earn rate); nothing changes.
            try await api.call(.patch, "/v1/members/\(id)", token: api.support, json: #"{"tier_code": "gold", "given_name": "Ada"}"#)
                .expectProblem(.forbidden, "forbidden")
            let unchanged = try await api.call(.get, "/v1/members/\(id)", token: api.admin).json
            #expect(unchanged["tier_code"]?.string == "base" && unchanged["given_name"]?.isNull != false)
            let updated = try await api.call(.patch, "/v1/members/\(id)", token: api.admin, json: #"{"tier_code": "gold"}"#)
            #expect(updated.json["tier_code"]?.string == "gold", "\(updated.text)")
            let reasons = try await api.postgres.query("SELECT reason FROM tier_changes WHERE member_id = \(id)", logger: TestServices.logger)
            for try await reason in reasons.decode(String.self) { #expect(reason.hasPrefix("set by admin token "), "\(reason)") }
            let rows = try await api.postgres.query(
                """
                SELECT f.code, t.code, c.actor FROM tier_changes c
                JOIN tiers f ON f.tier_id = c.from_tier_id JOIN tiers t ON t.tier_id = c.to_tier_id
                WHERE c.member_id = \(id)
                """, logger: TestServices.logger)
            var changes: [String] = []
            for try await (from, to, actor) in rows.decode((String, String, String).self) { changes.append("\(from)>\(to) \(actor)") }
            #expect(changes.count == 1)
            #expect(changes.first?.hasPrefix("base>gold admin:") == true, "\(changes)")
            // Setting the tier it already has records nothing more.
            _ = try await api.call(.patch, "/v1/members/\(id)", token: api.admin, json: #"{"tier_code": "gold"}"#)
            let count = try await api.postgres.query("SELECT count(*) FROM tier_changes", logger: TestServices.logger)
            for try await value in count.decode(Int64.self) { #expect(value == 1) }
            try await api.call(.patch, "/v1/members/\(id)", token: api.admin, json: #"{"tier_code": "diamond"}"#)
                .expectProblem(.badRequest, "invalid_body")
        }
    }

    @Test("search by exactly one of card, phone, email; cursor-paged")
    func search() async throws {
        try await AdminHarness.run { api in
            let first = try await api.createMember(#"{"card_number": "CARD-3001", "email": "shared@example.com"}"#)
            let second = try await api.createMember(#"{"phone": "+4930999999", "email": "SHARED@example.com"}"#)

            let byCard = try await api.call(.get, "/v1/members?card=CARD-3001", token: api.marketer).json
            #expect(byCard["items"]?.array?.map { $0["member_id"]?.int } == [first])
            #expect(byCard["next_cursor"]?.isNull == true)
            let byPhone = try await api.call(.get, "/v1/members?phone=%2B4930999999", token: api.readonly).json
            #expect(byPhone["items"]?.array?.map { $0["member_id"]?.int } == [second])

            let page1 = try await api.call(.get, "/v1/members?email=Shared@Example.com&limit=1", token: api.admin).json
            #expect(page1["items"]?.array?.map { $0["member_id"]?.int } == [first])
            let cursor = try #require(page1["next_cursor"]?.string)
            let page2 = try await api.call(.get, "/v1/members?email=shared@example.com&limit=1&cursor=\(cursor)", token: api.admin).json
            #expect(page2["items"]?.array?.map { $0["member_id"]?.int } == [second])

            for query in ["", "?card=A&phone=%2B123456", "?name=x", "?card=CARD-3001&limit=0", "?card=A&cursor=abc"] {
                try await api.call(.get, "/v1/members\(query)", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            }
        }
    }

    @Test("block and unblock change the status once each and are audited; unknown and malformed ids")
    func blockAndUnblock() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember()
            let blocked = try await api.call(.post, "/v1/members/\(id)/block", token: api.support)
            #expect(blocked.json["status"]?.string == "blocked")
            // Again: nothing changes, nothing is audited.
            #expect(try await api.call(.post, "/v1/members/\(id)/block", token: api.support).json["version"]?.int == 2)
            let unblocked = try await api.call(.post, "/v1/members/\(id)/unblock", token: api.admin, json: "{}")
            #expect(unblocked.json["status"]?.string == "active")
            try await api.call(.post, "/v1/members/\(id)/block", token: api.admin, json: #"{"why": "x"}"#)
                .expectProblem(.badRequest, "invalid_body")

            let audit = try await api.auditRows("member:\(id)")
            #expect(audit.map { $0["action"]?.string } == ["member.create", "member.block", "member.unblock"])
            #expect(audit[1]["after"] == .object(["status": .string("blocked")]))

            try await api.call(.get, "/v1/members/999999", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.post, "/v1/members/999999/block", token: api.admin).expectProblem(.notFound, "not_found")
            try await api.call(.get, "/v1/members/abc", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
            try await api.call(.get, "/v1/members/-1", token: api.admin).expectProblem(.badRequest, "invalid_parameter")
        }
    }

    @Test("erase clears personal data, keeps the ledger and its balances, redacts the member's audit rows")
    func erase() async throws {
        try await AdminHarness.run { api in
            let id = try await api.createMember(Self.fullMember)
            try await api.adjust(id, delta: 700)
            try await api.adjust(id, delta: -200)
            try await api.adjust(id, delta: 90, unit: "cashback_minor")
            _ = try await api.call(.patch, "/v1/members/\(id)", token: api.admin, json: #"{"given_name": "Augusta Ada"}"#)

            let erased = try await api.call(.post, "/v1/members/\(id)/erase", token: api.admin)
            #expect(erased.status == .ok, "\(erased.text)")
            let member = erased.json
            #expect(member["status"]?.string == "erased")
            for field in AdminMember.personalFields { #expect(member[field]?.isNull == true, "\(field)") }
            #expect(member["erased_at"]?.string != nil)
            #expect(try await api.call(.post, "/v1/members/\(id)/erase", token: api.admin).json == member)

            let balances = try await api.call(.get, "/v1/members/\(id)/balances", token: api.admin).json
            #expect(balances["points"]?["available"]?.int == 500)
            #expect(balances["cashback_minor"]?["available"]?.int == 90)
            let history = try await api.call(.get, "/v1/members/\(id)/ledger", token: api.admin).json
            #expect(history["items"]?.array?.count == 3)
            let report = try await LedgerAudit(client: api.postgres, logger: TestServices.logger).run()
            #expect(report.isClean, "\(report.checks.filter { $0.violations > 0 })")

            // Nobody finds the member by its old identifiers, and no audit row still holds them.
            #expect(try await api.call(.get, "/v1/members?card=CARD-1001", token: api.admin).json["items"] == .array([]))
            let audit = try await api.auditRows("member:\(id)")
            #expect(audit.last?["action"]?.string == "member.erase")
            #expect(audit.last?["after"]?["erased_fields"]?.array?.count == 6)
            let everything = String(decoding: try JSONEncoder().encode(audit), as: UTF8.self)
            for value in ["CARD-1001", "+4915112345678", "Ada@Example.com", "Lovelace", "1990-12-10", "Augusta"] {
                #expect(!everything.contains(value), "\(value) survived erasure in the audit log")
            }
            #expect(audit.first?["after"]?["card_number"]?.string == "[erased]")

            // An erased member takes no more adjustments and no profile changes.
            try await api.call(
                .post, "/v1/members/\(id)/adjustments", token: api.admin,
                json: #"{"unit": "points", "delta": 5, "reason": "after erasure"}"#
            ).expectProblem(.conflict, "member_not_active")
            try await api.call(.patch, "/v1/members/\(id)", token: api.admin, json: #"{"given_name": "X"}"#)
                .expectProblem(.conflict, "conflict")
            try await api.call(.post, "/v1/members/\(id)/unblock", token: api.admin).expectProblem(.conflict, "conflict")
        }
    }

    @Test("a block drops the till's cached copy of the member")
    func cacheInvalidation() async throws {
        let namespace = "test-admin-\(UUID().uuidString.prefix(8))"
        try await AdminHarness.run(cache: { redis in
            var configuration = MemberCache.Configuration()
            configuration.namespace = namespace
            return try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
        }) { api in
            let id = try await api.createMember(#"{"card_number": "CARD-4001"}"#)
            var configuration = MemberCache.Configuration()
            configuration.namespace = namespace
            let cache = try MemberCache(redis: try TestServices.redisClient(), configuration: configuration, logger: TestServices.logger)
            let snapshot = CachedMember(
                memberID: id, tierCode: "base", tierName: "Member", status: "active", cardNumber: "CARD-4001",
                points: .init(available: 0), cashbackMinor: .init(available: 0), ledgerVersion: 0)
            #expect(try await cache.put(snapshot) == .stored)
            #expect(await cache.member(id: id) == .hit(snapshot.withoutIdentifiers))
            #expect(try await api.call(.post, "/v1/members/\(id)/block", token: api.admin).status == .ok)
            #expect(await cache.member(id: id) == .miss)
            #expect(await cache.member(card: "CARD-4001") == .miss)
        }
    }

    @Test("an erasure removes the member's blob and the index keys of its card and phone from Redis before it answers")
    func erasureClearsTheCache() async throws {
        let namespace = "test-erase-\(UUID().uuidString.prefix(8))"
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        try await AdminHarness.run(cache: { redis in
            var configuration = MemberCache.Configuration()
            configuration.namespace = namespace
            return try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
        }) { api in
            let id = try await api.createMember(#"{"card_number": "CARD-4777", "phone": "+4930477777"}"#)
            var configuration = MemberCache.Configuration()
            configuration.namespace = namespace
            let cache = try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
            let snapshot = CachedMember(
                memberID: id, tierCode: "base", tierName: "Member", status: "active", cardNumber: "CARD-4777",
                phone: "+4930477777", points: .init(available: 0), cashbackMinor: .init(available: 0), ledgerVersion: 0)
            #expect(try await cache.put(snapshot) == .stored)
            #expect(await cache.member(card: "CARD-4777") == .hit(snapshot.withoutIdentifiers))
            func indexKeys() async throws -> [String] {
                (try await redis.send(["KEYS", "\(namespace):*"]).elements ?? []).compactMap(\.string)
                    .filter { $0.contains(":card:") || $0.contains(":phone:") }
            }
            #expect(try await indexKeys().count == 2)

            #expect(try await api.call(.post, "/v1/members/\(id)/erase", token: api.admin).status == .ok)
            #expect(try await indexKeys().isEmpty)
            #expect(await cache.member(card: "CARD-4777") == .miss)
            #expect(await cache.member(phone: "+4930477777") == .miss)
            #expect(await cache.member(id: id) == .miss)
        }
    }

    @Test("an unexpected database failure is 500 internal with the request id and nothing internal")
    func internalError() async throws {
        try await AdminHarness.run { api in
            try await api.postgres.query("DROP TABLE admin_audit_log", logger: TestServices.logger)
            let response = try await api.call(.post, "/v1/members", token: api.admin, json: "{}")
            let problem = response.expectProblem(.internalServerError, "internal")
            #expect(!response.text.contains("admin_audit_log"))
            #expect(problem["request_id"]?.string?.isEmpty == false)
            // The member insert rolled back with its missing audit row.
            let rows = try await api.postgres.query("SELECT count(*) FROM members", logger: TestServices.logger)
            for try await count in rows.decode(Int64.self) { #expect(count == 0) }
        }
    }
}
