import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Admin API: authentication, roles, request ids")
struct AdminAuthTests {
    @Test("no token, a malformed one and an unknown one answer 401 with a Bearer challenge")
    func missingAndBadTokens() async throws {
        try await AdminHarness.run { api in
            let missing = try await api.call(.get, "/v1/members/1", token: nil)
            let problem = missing.expectProblem(.unauthorized, "unauthenticated")
            #expect(missing.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            #expect(problem["instance"]?.string == "/v1/members/1")

            for header in ["Bearer nonsense", "Basic dXNlcjpwdw==", "Bearer lyt_short", "Bearer"] {
                let response = try await api.call(.get, "/v1/members/1", token: nil, headers: [.authorization: header])
                response.expectProblem(.unauthorized, "unauthenticated")
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            }
            let unknown = try await api.call(.get, "/v1/members/1", token: AdminTokenSecret.generate().text)
            unknown.expectProblem(.unauthorized, "unauthenticated")
        }
    }

    @Test("an expired token and a revoked token answer 401")
    func expiredAndRevoked() async throws {
        try await AdminHarness.run { api in
            let expired = try await api.makeToken(role: .admin)
            try await api.postgres.query(
                "UPDATE admin_tokens SET expires_at = now() - interval '1 minute' WHERE token_id = \(expired.id)",
                logger: TestServices.logger)
            let expiredAnswer = try await api.call(.get, "/v1/audit", token: expired.text)
            #expect(expiredAnswer.expectProblem(.unauthorized, "unauthenticated")["detail"]?.string?.contains("expired") == true)

            let revoked = try await api.makeToken(role: .admin)
            #expect(try await api.call(.get, "/v1/audit", token: revoked.text).status == .ok)
            #expect(try await AdminTokenStore(client: api.postgres, logger: TestServices.logger).revoke(tokenID: revoked.id))
            // An accepted token is remembered for a second (AdminTokenCache): refused within that bound, not later.
            let revokedAt = ContinuousClock.now
            var lastAcceptedStart: ContinuousClock.Instant?
            var sentAt = ContinuousClock.now
            var revokedAnswer = try await api.call(.get, "/v1/audit", token: revoked.text)
            while revokedAnswer.status == .ok, ContinuousClock.now - revokedAt < .seconds(10) {
                lastAcceptedStart = sentAt
                try await Task.sleep(for: .milliseconds(50))
                sentAt = ContinuousClock.now
                revokedAnswer = try await api.call(.get, "/v1/audit", token: revoked.text)
            }
            // No request sent a full time-to-live after the revocation was accepted.
            if let lastAcceptedStart { #expect(lastAcceptedStart - revokedAt < AdminTokenCache.timeToLive) }
            #expect(revokedAnswer.expectProblem(.unauthorized, "unauthenticated")["detail"]?.string?.contains("revoked") == true)
        }
    }

    @Test("roles: readonly may only GET, marketer reads search and balances, support cannot erase or read the audit log")
    func roles() async throws {
        try await AdminHarness.run { api in
            let memberID = try await api.createMember(#"{"card_number": "ROLE-0001"}"#)

            let readonlyPost = try await api.call(.post, "/v1/members", token: api.readonly, json: "{}")
            let problem = readonlyPost.expectProblem(.forbidden, "forbidden")
            #expect(problem["detail"]?.string?.contains("admin") == true)
            try await api.call(.post, "/v1/members/\(memberID)/block", token: api.readonly).expectProblem(.forbidden, "forbidden")
            #expect(try await api.call(.get, "/v1/members/\(memberID)", token: api.readonly).status == .ok)
            #expect(try await api.call(.get, "/v1/members/\(memberID)/ledger", token: api.readonly).status == .ok)

            #expect(try await api.call(.get, "/v1/members?card=ROLE-0001", token: api.marketer).status == .ok)
            #expect(try await api.call(.get, "/v1/members/\(memberID)/balances", token: api.marketer).status == .ok)
            try await api.call(.get, "/v1/members/\(memberID)/ledger", token: api.marketer).expectProblem(.forbidden, "forbidden")
            try await api.call(.patch, "/v1/members/\(memberID)", token: api.marketer, json: #"{"given_name": "X"}"#)
                .expectProblem(.forbidden, "forbidden")

            let supportErase = try await api.call(.post, "/v1/members/\(memberID)/erase", token: api.support)
            #expect(supportErase.expectProblem(.forbidden, "forbidden")["detail"]?.string?.contains("support") == true)
            try await api.call(.get, "/v1/audit", token: api.support).expectProblem(.forbidden, "forbidden")
            try await api.call(.post, "/v1/members", token: api.support, json: "{}").expectProblem(.forbidden, "forbidden")
            #expect(try await api.call(.post, "/v1/members/\(memberID)/block", token: api.support).status == .ok)
            // The member is still there: the refused erase changed nothing.
            let member = try await api.call(.get, "/v1/members/\(memberID)", token: api.support).json
            #expect(member["card_number"]?.string == "ROLE-0001")
        }
    }

    @Test("authentication runs before the body is looked at")
    func authenticationFirst() async throws {
        try await AdminHarness.run { api in
            let oversized = String(repeating: "x", count: 70_000)
            try await api.call(.post, "/v1/members", token: nil, json: oversized).expectProblem(.unauthorized, "unauthenticated")
            try await api.call(.post, "/v1/members", token: api.readonly, json: oversized).expectProblem(.forbidden, "forbidden")
        }
    }

    @Test("last_used_at is written on first use and not again within a minute")
    func lastUsedAt() async throws {
        try await AdminHarness.run { api in
            let token = try await api.makeToken(role: .readonly)
            func lastUsed() async throws -> Date? {
                let rows = try await api.postgres.query(
                    "SELECT last_used_at FROM admin_tokens WHERE token_id = \(token.id)", logger: TestServices.logger)
                for try await value in rows.decode(Date?.self) { return value }
                return nil
            }
            #expect(try await lastUsed() == nil)
            #expect(try await api.call(.get, "/v1/members?card=NONE", token: token.text).status == .ok)
            let first = try #require(try await lastUsed())
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await api.call(.get, "/v1/members?card=NONE", token: token.text).status == .ok)
            #expect(try await lastUsed() == first)
        }
    }

    @Test("a safe X-Request-Id is echoed; an unsafe or overlong one is replaced")
    func requestIDs() async throws {
        try await AdminHarness.run { api in
            let header = RequestIDMiddleware.headerName
            let echoed = try await api.call(.get, "/health", token: nil, headers: [header: "client-id_1.2:3"])
            #expect(echoed.headers[header] == "client-id_1.2:3")

            for unsafe in ["has space", String(repeating: "a", count: 65), "semi;colon"] {
                let response = try await api.call(.get, "/health", token: nil, headers: [header: unsafe])
                let id = try #require(response.headers[header])
                #expect(id != unsafe && RequestIDMiddleware.accepted(id) == id)
            }
            let generated = try await api.call(.get, "/v1/members/1", token: nil)
            let problem = generated.expectProblem(.unauthorized, "unauthenticated")
            #expect(problem["request_id"]?.string?.count == 32)
        }
    }

    @Test("unknown routes answer a not_found problem")
    func unknownRoute() async throws {
        try await AdminHarness.run { api in
            try await api.call(.get, "/v1/nothing-here", token: api.admin).expectProblem(.notFound, "not_found")
        }
    }

    @Test("tokens are lyt_ + base64url of 32 bytes; parsing accepts exactly that shape")
    func tokenFormat() throws {
        let secret = AdminTokenSecret.generate()
        #expect(secret.text.hasPrefix("lyt_") && secret.text.utf8.count == 47)
        #expect(!secret.text.contains("=") && !secret.text.contains("+") && !secret.text.contains("/"))
        let parsed = try #require(AdminTokenSecret(parsing: secret.text))
        #expect(parsed.hash == secret.hash && secret.hash.count == 32)
        #expect(AdminTokenSecret.generate().hash != secret.hash)
        var lastBitsSet = secret.text
        lastBitsSet.removeLast()
        // 43 characters carry 258 bits: a last character with its low bits set is not a canonical encoding.
        for refused in [lastBitsSet + "_", "LYT_" + secret.text.dropFirst(4), secret.text + "A", String(secret.text.dropLast()), "lyt_" + String(repeating: "!", count: 43)] {
            if refused == secret.text { continue }
            #expect(AdminTokenSecret(parsing: refused) == nil, "\(refused)")
        }
    }

    @Test("over real HTTP: a token, a JSON write and a problem answer")
    func liveServer() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        try await TestServices.withMigratedDatabase { _, postgres in
            let token = try await AdminTokenStore(client: postgres, logger: TestServices.logger)
                .create(name: "live", role: .admin, expiresInDays: 1).secret.text
            let app = AdminApplication.build(
                host: "127.0.0.1", port: 0,
                probe: ReadinessProbe(postgres: postgres, redis: redis, databaseTarget: "test", timeoutMs: 3_000),
                logger: TestServices.logger, postgres: postgres, openAPIPath: AdminHarness.openAPIPath)
            try await app.test(.live) { client in
                let created = try await client.execute(
                    uri: "/v1/members", method: .post,
                    headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                    body: ByteBuffer(string: #"{"card_number": "LIVE-0001"}"#))
                #expect(created.status == .created)
                let missing = try await client.execute(uri: "/v1/members/424242", method: .get, headers: [.authorization: "Bearer \(token)"])
                missing.expectProblem(.notFound, "not_found")
            }
        }
    }

    @Test("a body without Content-Length is read only up to the limit, then refused as payload_too_large")
    func streamedBodyLimit() async throws {
        let oversized = ByteBuffer(repeating: UInt8(ascii: "x"), count: JSONRequestBody.maximumBytes + 1)
        let request = Request(
            head: HTTPRequest(method: .post, scheme: "http", authority: "localhost", path: "/v1/members",
                              headerFields: [.contentType: "application/json"]),
            body: RequestBody(buffer: oversized))
        await #expect {
            _ = try await JSONRequestBody.object(request)
        } throws: { error in
            ProblemMiddleware.problem(for: error).code == .payloadTooLarge
        }
    }
}

@Suite("Admin token cache")
struct AdminTokenCacheTests {
    let record = AdminTokenRecord(actor: AdminActor(tokenID: 1, name: "t", role: .admin), isRevoked: false, isExpired: false,
                                  isLastUseStale: false)

    @Test("an accepted token is served for one second, then looked up again; the cache never holds more than its bound")
    func timeToLiveAndBound() {
        let cache = AdminTokenCache()
        let start = ContinuousClock.now
        cache.keep(record, hash: [1], now: start)
        #expect(cache.record(hash: [1], now: start + .milliseconds(999)) == record)
        #expect(cache.record(hash: [1], now: start + AdminTokenCache.timeToLive) == nil)
        #expect(cache.record(hash: [2], now: start) == nil)
        for index in 0..<(AdminTokenCache.maximumEntries + 10) {
            cache.keep(record, hash: [UInt8(index & 0xFF), UInt8(index >> 8)], now: start)
            #expect(cache.count <= AdminTokenCache.maximumEntries)
        }
    }
}
