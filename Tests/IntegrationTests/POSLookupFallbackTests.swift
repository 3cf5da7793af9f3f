import Foundation
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import POSProtocol
import PostgresNIO
import Testing

/// Lookups that Redis cannot answer go to PostgreSQL on connections of their own (`MemberSnapshotReader`), one
/// prepared statement each, within the request's deadline.
@Suite("POS lookups without Redis")
struct POSLookupFallbackTests {
    /// Backends of the test database running `pg_sleep`, counted from a client of its own.
    private static func sleepingBackends(_ url: DatabaseURL) async throws -> Int64 {
        try await TestServices.withClient(url) { client in
            let rows = try await client.query("""
                SELECT count(*)::int8 FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'
                """)
            for try await count in rows.decode(Int64.self) { return count }
            return 0
        }
    }

    @Test("Redis down and the shared postgres-nio pool busy: a card lookup still answers from PostgreSQL at once")
    func lookupDoesNotQueueBehindTheSharedPool() async throws {
        // Nothing listens on this port: every cache lookup answers unavailable and falls back.
        let deadRedis = RedisURL(host: "127.0.0.1", port: try freePort())
        try await POSHarness.with(redisURL: deadRedis) { harness in
            let members = MemberStore(client: harness.client, logger: TestServices.logger)
            let member = try await members.create(NewMember(cardNumber: "FALLBACK-1"))
            let pos = try await harness.authenticated()

            // Every connection of the shared pool (8 in tests) busy far longer than the lookup may take; they are
            // cancelled once it answered (no more of them, or a queued one would start after the cancel).
            let sleepers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 {
                        group.addTask { _ = try? await harness.client.query("SELECT pg_sleep(60)") }
                    }
                }
            }
            let busyBy = ContinuousClock.now + .seconds(20)
            while try await Self.sleepingBackends(harness.url) < 8, ContinuousClock.now < busyBy {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await Self.sleepingBackends(harness.url) >= 8)

            let started = ContinuousClock.now
            let response = try await pos.call(.lookup, lookup(card: "FALLBACK-1"), deadlineMs: 20_000)
            let elapsed = ContinuousClock.now - started
            #expect(response.status == .ok)
            #expect(try response.decode(Loyalty_Pos_V1_MemberSummary.self).memberID == member)
            #expect(try response.decode(Loyalty_Pos_V1_MemberSummary.self).fromCache == false)
            // Behind the pool it would have waited for a sleeper to end (60 s).
            #expect(elapsed < .seconds(20), "the lookup took \(elapsed) behind the busy pool")
            try await TestServices.withClient(harness.url) { client in
                _ = try await client.query("""
                    SELECT pg_cancel_backend(pid) FROM pg_stat_activity
                    WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()
                    """)
            }
            await pos.close()
            await sleepers.value
        }
    }

    @Test("a lookup whose deadline passed before it was sent is not sent and answers deadline exceeded")
    func readerKeepsTheDeadline() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            let member = try await MemberStore(client: client, logger: TestServices.logger).create(NewMember(cardNumber: "DL-1"))
            let reader = try await MemberSnapshotReader.connect(url: url, connections: 1, logger: TestServices.logger)
            await #expect(throws: MemberSnapshotReader.Failure.deadlineExceeded) {
                _ = try await reader.snapshot(.card("DL-1"), deadline: .now - .milliseconds(1))
            }
            // The same statement, prepared once on the connection, answers by card, phone-less and by id.
            let byCard = try await reader.snapshot(.card("DL-1"), deadline: .now + .seconds(5))
            let byID = try await reader.snapshot(.memberID(member), deadline: .now + .seconds(5))
            #expect(byCard != nil && byCard == byID)
            #expect(try await reader.snapshot(.card("DL-2"), deadline: .now + .seconds(5)) == nil)
            #expect(try await reader.snapshot(.phone("+4900"), deadline: .now + .seconds(5)) == nil)
            await reader.close()
        }
    }
}

@Suite("POS lookups from the cache")
struct POSLookupOnLoopTests {
    @Test("a cached member is answered on the connection's event loop; a miss still fills the cache")
    func cacheHitsOnTheEventLoop() async throws {
        // A namespace of its own: member ids restart in every test database, the shared namespace may hold others.
        let namespace = "pos-loop-" + UUID().uuidString.prefix(8).lowercased()
        // The epoch is re-read every refresh interval, and the lookup that does it goes async: a long interval keeps
        // a slow run's 20 lookups within one epoch read.
        try await POSHarness.with(redisURL: try TestServices.redisURL(), cacheNamespace: namespace,
                                  epochRefreshInterval: .seconds(600)) { harness in
            let members = MemberStore(client: harness.client, logger: TestServices.logger)
            let card = "LOOP-" + UUID().uuidString.prefix(8)
            let member = try await members.create(NewMember(cardNumber: card))
            let pos = try await harness.authenticated()

            // The first lookup misses (or the cache is not settled yet) and fills the cache from PostgreSQL.
            // A long deadline: on a loaded machine the read path's connections may still be starting.
            let first = try await pos.call(.lookup, lookup(card: card), deadlineMs: 30_000).decode(Loyalty_Pos_V1_MemberSummary.self)
            #expect(first.memberID == member)
            let before = harness.service.lookupsAnsweredOnLoop.load(ordering: .relaxed)
            for _ in 0..<20 {
                let summary = try await pos.call(.lookup, lookup(card: card)).decode(Loyalty_Pos_V1_MemberSummary.self)
                #expect(summary.memberID == member && summary.fromCache)
            }
            #expect(harness.service.lookupsAnsweredOnLoop.load(ordering: .relaxed) - before == 20)
            // An unknown card misses on the loop and is answered by PostgreSQL in a task.
            #expect(try await pos.call(.lookup, lookup(card: "LOOP-NONE")).status == .notFound)
            await pos.close()
        }
    }
}

@Suite("POS lookups from the local member cache")
struct POSLookupLocalCacheTests {
    @Test("a member held locally is answered on the event loop without Redis; the till's own commit is seen at once")
    func localHitsAndOwnWrites() async throws {
        let namespace = "pos-local-" + UUID().uuidString.prefix(8).lowercased()
        try await POSHarness.with(
            redisURL: try TestServices.redisURL(), cacheNamespace: namespace, epochRefreshInterval: .seconds(600),
            localCacheBytes: 1 << 20
        ) { harness in
            let cache = try #require(harness.cache)
            try #require(await MemberCacheLocalTests.waitUntil("the invalidation connection is live") { cache.statistics.localLive })
            let card = "LOCAL-" + UUID().uuidString.prefix(8)
            let memberID = try await harness.member(card: card, points: 1_000)
            let pos = try await harness.authenticated()
            defer { Task { await pos.close() } }

            let first = try await pos.call(.lookup, lookup(card: card), deadlineMs: 30_000).decode(Loyalty_Pos_V1_MemberSummary.self)
            #expect(first.memberID == memberID && first.points.available == 1_000)
            // Once the fill's own invalidation went by, lookups come from this server's memory, on the event loop.
            try #require(try await MemberCacheLocalTests.waitUntil("lookups are answered from local memory") {
                let localHits = cache.statistics.localHits
                let onLoop = harness.service.lookupsAnsweredOnLoop.load(ordering: .relaxed)
                let summary = try await pos.call(.lookup, lookup(card: card)).decode(Loyalty_Pos_V1_MemberSummary.self)
                #expect(summary.memberID == memberID && summary.fromCache && summary.points.available == 1_000)
                return cache.statistics.localHits == localHits + 1
                    && harness.service.lookupsAnsweredOnLoop.load(ordering: .relaxed) == onLoop + 1
            })

            // The commit's answer reaches the till after the cache holds the new snapshot: no lookup after it shows
            // the old balance, from either level.
            let commit = try #require(try await pos.send(
                .commit, commitRequest("T-LOCAL-1", member: memberID), as: Loyalty_Pos_V1_CommitResponse.self).value)
            #expect(commit.awarded > 0)
            for _ in 0..<20 {
                let summary = try await pos.call(.lookup, lookup(card: card)).decode(Loyalty_Pos_V1_MemberSummary.self)
                #expect(summary.points.available + summary.points.pending == 1_000 + commit.awarded,
                        "a lookup after the commit showed \(summary.points)")
            }
        }
    }
}
