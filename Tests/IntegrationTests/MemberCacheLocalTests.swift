import Foundation
import LoyaltyCache
import LoyaltyTestSupport
import Testing

/// The process-local level against a real Redis: two caches with their own Redis clients stand for two servers.
@Suite("Member cache local level against a real Redis")
struct MemberCacheLocalTests {
    static func member(
        _ id: Int64, version: Int64, status: String = "active", card: String? = nil, phone: String? = nil
    ) -> CachedMember {
        CachedMember(
            memberID: id, tierCode: "GOLD", tierName: "Gold", status: status, cardNumber: card, phone: phone,
            points: .init(available: 100 * version), cashbackMinor: .init(available: 0), ledgerVersion: version)
    }

    /// A cache with the local level on and its own Redis client; close it and shut the client down afterwards.
    static func makeCache(
        _ url: RedisURL? = nil, namespace: String, localCacheBytes: Int = 8 << 20,
        epochRefreshInterval: Duration = .seconds(5)
    ) throws -> (MemberCache, RedisClient) {
        let redis = try TestServices.redisClient(url)
        var configuration = MemberCache.Configuration()
        configuration.namespace = namespace
        configuration.localCacheBytes = localCacheBytes
        configuration.invalidationHeartbeatMs = 200
        configuration.epochRefreshInterval = epochRefreshInterval
        return (try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger), redis)
    }

    static func uniqueNamespace() -> String {
        "test-local-" + UUID().uuidString.prefix(12).lowercased()
    }

    /// Polls `condition` until it holds or `seconds` pass; records an issue on timeout.
    @discardableResult
    static func waitUntil(
        _ what: String, seconds: Int = 10, sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () async throws -> Bool
    ) async rethrows -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        if try await condition() { return true }
        Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
        return false
    }

    /// Two caches ("servers") on one Redis namespace, each with its own client, both invalidation connections live.
    struct TwoServers {
        let a: MemberCache, b: MemberCache
        let redisA: RedisClient, redisB: RedisClient
        let namespace: String

        func close() async {
            await a.close(); await b.close(); await redisA.shutdown(); await redisB.shutdown()
        }
    }

    static func twoServers(_ url: RedisURL? = nil, epochRefreshInterval: Duration = .seconds(5)) async throws -> TwoServers {
        let namespace = uniqueNamespace()
        let (a, redisA) = try makeCache(url, namespace: namespace, epochRefreshInterval: epochRefreshInterval)
        let (b, redisB) = try makeCache(url, namespace: namespace, epochRefreshInterval: epochRefreshInterval)
        let servers = TwoServers(a: a, b: b, redisA: redisA, redisB: redisB, namespace: namespace)
        do { try await waitLive(a, b) } catch {
            await servers.close()
            throw error
        }
        return servers
    }

    static func waitLive(_ caches: MemberCache...) async throws {
        for cache in caches {
            _ = try await cache.epoch().get()
            try #require(await waitUntil("the invalidation connection is live") { cache.statistics.localLive })
        }
    }

    @Test("a write through A is seen by B's next lookup once the invalidation has arrived; B's hits need no Redis")
    func writeThroughOtherServer() async throws {
        let servers = try await Self.twoServers()
        let (a, b, redisB) = (servers.a, servers.b, servers.redisB)
        defer { Task { await servers.close() } }

        let first = Self.member(21, version: 1, card: "C-21", phone: "+4921")
        #expect(try await a.put(first) == .stored)
        #expect(await b.member(id: 21) == .hit(first.withoutIdentifiers))
        #expect(await b.member(card: "C-21") == .hit(first.withoutIdentifiers))
        // Then from B's own memory: no command reaches Redis. (A's write may still be on its way to B as an
        // invalidation, which removes what B copied before it arrived: hence the retries.)
        try #require(await Self.waitUntil("B answers member 21 from its memory") {
            _ = await b.member(id: 21)
            _ = await b.member(card: "C-21")
            let commands = redisB.commandCount
            let byID = await b.member(id: 21)
            let byCard = await b.member(card: "C-21")
            #expect(byID == .hit(first.withoutIdentifiers) && byCard == .hit(first.withoutIdentifiers))
            return redisB.commandCount == commands
        })
        #expect(b.statistics.localHits >= 2)

        let invalidationsBefore = b.statistics.localInvalidations
        let second = Self.member(21, version: 2, card: "C-21", phone: "+4921")
        #expect(try await a.put(second) == .stored)
        try #require(await Self.waitUntil("B handled the invalidation") { b.statistics.localInvalidations > invalidationsBefore })
        #expect(await b.member(id: 21) == .hit(second.withoutIdentifiers))
        #expect(await b.member(card: "C-21") == .hit(second.withoutIdentifiers))
        // The writer's own copy is the new one at once.
        #expect(await a.member(id: 21) == .hit(second.withoutIdentifiers))
    }

    /// The invalidation delay: from A's acknowledged write until B's lookup returns the new snapshot, B having
    /// held the previous one locally. Printed as p50/p99 over the rounds; docs/performance.md quotes it.
    @Test("invalidation delay, measured")
    func invalidationDelay() async throws {
        let servers = try await Self.twoServers()
        let (a, b) = (servers.a, servers.b)
        defer { Task { await servers.close() } }

        let rounds = 300
        var delaysUs: [Int64] = []
        var staleAfterDeadline = 0
        for version in Int64(1)...Int64(rounds) {
            #expect(try await a.put(Self.member(22, version: version, card: "C-22")) == .stored)
            let acknowledged = ContinuousClock.now
            var seen = false
            while ContinuousClock.now - acknowledged < .seconds(5) {
                if await b.member(card: "C-22").member?.ledgerVersion == version {
                    seen = true
                    break
                }
                await Task.yield()
            }
            guard seen else {
                staleAfterDeadline += 1
                continue
            }
            let elapsed = (ContinuousClock.now - acknowledged).components
            delaysUs.append(elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000)
            // B now holds this version locally, so the next round measures an invalidation, not a first fill.
            _ = await b.member(card: "C-22")
        }
        #expect(staleAfterDeadline == 0)
        #expect(b.statistics.localHits > 0, "B answered from its local level between writes")
        delaysUs.sort()
        func percentile(_ p: Double) -> Int64 { delaysUs[min(delaysUs.count - 1, Int(Double(delaysUs.count) * p))] }
        print("invalidation delay over \(delaysUs.count) writes: p50 \(percentile(0.5)) µs, p99 \(percentile(0.99)) µs, max \(delaysUs.last ?? 0) µs")
    }

    @Test("CLIENT KILL of the invalidation connection drops the local level; no stale answer afterwards")
    func killedInvalidationConnection() async throws {
        let servers = try await Self.twoServers()
        let (a, b) = (servers.a, servers.b)
        let admin = try TestServices.redisClient()
        defer { Task { await servers.close(); await admin.shutdown() } }

        #expect(try await a.put(Self.member(23, version: 1)) == .stored)
        try #require(await Self.waitUntil("B holds member 23") {
            _ = await b.member(id: 23)
            return b.statistics.localEntries == 1
        })
        let id = try #require(b.statistics.invalidationConnectionID)
        #expect(try await admin.send(["CLIENT", "KILL", "ID", String(id)]) == .integer(1))
        try #require(await Self.waitUntil("B's local level is dropped") { b.statistics.localEntries == 0 })
        // A write while B may be without invalidations: B must not answer the old version.
        #expect(try await a.put(Self.member(23, version: 2)) == .stored)
        #expect(await b.member(id: 23).member?.ledgerVersion == 2)
        // B reconnects and caches locally again.
        try #require(await Self.waitUntil("B is live again") {
            b.statistics.localLive && b.statistics.invalidationConnectionID != id
        })
        let hits = b.statistics.localHits
        try #require(await Self.waitUntil("B answers from its memory again") {
            #expect(await b.member(id: 23).member?.ledgerVersion == 2)
            return b.statistics.localHits > hits
        })
        #expect(try await a.put(Self.member(23, version: 3)) == .stored)
        #expect(await Self.waitUntil("B sees version 3") { await b.member(id: 23).member?.ledgerVersion == 3 })
    }

    @Test("the epoch moved by another server: local copies are dropped and not served")
    func epochMoved() async throws {
        let servers = try await Self.twoServers()
        let (a, b, namespace) = (servers.a, servers.b, servers.namespace)
        let admin = try TestServices.redisClient()
        defer { Task { await servers.close(); await admin.shutdown() } }

        #expect(try await a.put(Self.member(24, version: 1, card: "C-24")) == .stored)
        try #require(await Self.waitUntil("B holds member 24 and its card") {
            #expect(await b.member(card: "C-24").member != nil)
            return b.statistics.localEntries == 2
        })
        let before = try await b.epoch().get()
        _ = try await admin.send(["INCR", "\(namespace):cache-epoch"])
        try #require(await Self.waitUntil("B's local level is dropped") { b.statistics.localEntries == 0 })
        // B follows the new epoch at once (not at its next 5 s refresh): the new epoch holds nothing yet.
        #expect(await b.member(card: "C-24") == .miss)
        #expect(await b.member(id: 24) == .miss)
        #expect(try await b.epoch().get() > before)
    }

    @Test("Redis restarted empty, and a FLUSHALL: local copies are dropped, no stale answer afterwards")
    func redisRestartedEmpty() async throws {
        let port = try freePort()
        let first = try await RedisProcess.start(port: port)
        defer { first.stop() }
        let servers = try await Self.twoServers(first.url, epochRefreshInterval: .milliseconds(200))
        let (a, b) = (servers.a, servers.b)
        defer { Task { await servers.close() } }

        #expect(try await a.put(Self.member(25, version: 1)) == .stored)
        try #require(await Self.waitUntil("B holds member 25") {
            #expect(await b.member(id: 25).member?.ledgerVersion == 1)
            return b.statistics.localEntries == 1
        })

        first.stop()
        try #require(await Self.waitUntil("B's local level is dropped") { b.statistics.localEntries == 0 && !b.statistics.localLive })
        let second = try await RedisProcess.start(port: port)
        defer { second.stop() }
        // While Redis was gone the member changed (PostgreSQL only); now A writes it again.
        var stored = false
        for _ in 0..<100 where !stored {
            stored = (try await a.put(Self.member(25, version: 3))) == .stored
            if !stored { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(stored)
        // From here on B never answers version 1: unavailable while it reconnects, a miss (each server moved to a
        // new epoch after the failure it saw, and they agree again at their next epoch read), or the new version.
        var version: Int64 = 3
        try #require(await Self.waitUntil("B answers the new version") {
            let answer = await b.member(id: 25)
            #expect(answer.member?.ledgerVersion != 1)
            if answer.member?.ledgerVersion == version { return true }
            if answer == .miss {
                version += 1
                _ = try? await a.put(Self.member(25, version: version))
            }
            return false
        })
        try #require(await Self.waitUntil("B is live again and holds it locally") {
            _ = await b.member(id: 25)
            return b.statistics.localLive && b.statistics.localEntries > 0
        })

        // A flush is a null invalidation: everything goes.
        let admin = try TestServices.redisClient(second.url)
        defer { Task { await admin.shutdown() } }
        _ = try await admin.send(["FLUSHALL"])
        try #require(await Self.waitUntil("B's local level is dropped by the flush") { b.statistics.localEntries == 0 })
        let answer = await b.member(id: 25)
        #expect(answer.member == nil, "a flushed member must not be served: \(answer)")
    }

    @Test("a blocked or erased member is never served from either level after the change is acknowledged")
    func blockedAndErasedNotServed() async throws {
        let servers = try await Self.twoServers()
        let (a, b) = (servers.a, servers.b)
        defer { Task { await servers.close() } }

        // Both servers hold the active member locally, by id and by card.
        let active = Self.member(26, version: 1, card: "C-26", phone: "+4926")
        #expect(try await a.put(active) == .stored)
        for cache in [a, b] {
            #expect(await cache.member(id: 26).member?.status == "active")
            #expect(await cache.member(card: "C-26").member?.status == "active")
        }
        // Blocked on A (the admin path: a version marker). A's own lookups miss at once, before any invalidation.
        let invalidationsBefore = b.statistics.localInvalidations
        #expect(try await a.invalidate(memberID: 26, ledgerVersion: 2) == .stored)
        #expect(await a.member(id: 26) == .miss)
        #expect(await a.member(card: "C-26") == .miss)
        // B within the invalidation delay, and never again after.
        try #require(await Self.waitUntil("B handled the block's invalidation") { b.statistics.localInvalidations > invalidationsBefore })
        try #require(await Self.waitUntil("B misses") { await b.member(id: 26) == .miss })
        for _ in 0..<20 {
            #expect(await b.member(id: 26) == .miss)
            #expect(await b.member(card: "C-26") == .miss)
        }
        // The blocked snapshot is cached; an older active one can never come back, on either level.
        let blocked = Self.member(26, version: 2, status: "blocked", card: "C-26", phone: "+4926")
        #expect(try await b.put(blocked) == .stored)
        #expect(try await a.put(active) == .skippedStale)
        for cache in [a, b] {
            try #require(await Self.waitUntil("the blocked snapshot is served") { await cache.member(card: "C-26").member?.status == "blocked" })
            #expect(await cache.member(id: 26).member?.status == "blocked")
        }

        // Erased on B: its identifiers stop resolving everywhere.
        #expect(try await b.erase(memberID: 26, ledgerVersion: 3, cardNumber: "C-26", phone: "+4926") == .stored)
        #expect(await b.member(card: "C-26") == .miss)
        #expect(await b.member(phone: "+4926") == .miss)
        #expect(await b.member(id: 26) == .miss)
        try #require(await Self.waitUntil("A misses the erased member") { await a.member(card: "C-26") == .miss })
        for _ in 0..<20 {
            #expect(await a.member(card: "C-26") == .miss)
            #expect(await a.member(id: 26) == .miss)
        }
    }

    @Test("bad input never creates a local entry")
    func badInputCreatesNothing() async throws {
        let (cache, redis) = try Self.makeCache(namespace: Self.uniqueNamespace())
        defer { Task { await cache.close(); await redis.shutdown() } }
        try await Self.waitLive(cache)

        let tooLong = String(repeating: "9", count: MemberCache.Limits.maximumIdentifierBytes + 1)
        for card in ["4000-unknown", tooLong, "has space", "tab\tcard", "nul\u{0}", ""] {
            #expect(await cache.member(card: card) == .miss)
        }
        for phone in ["+490000000", tooLong, "+49 123", "+49\n1"] {
            #expect(await cache.member(phone: phone) == .miss)
        }
        for id: Int64 in [0, -1, Int64.min, 987_654_321] {
            #expect(await cache.member(id: id) == .miss)
        }
        let statistics = cache.statistics
        #expect(statistics.localEntries == 0 && statistics.localBytes == 0)
        #expect(statistics.localFills == 0)
    }

    @Test("the local level stays within its byte bound under many distinct lookups")
    func boundUnderDistinctLookups() async throws {
        let namespace = Self.uniqueNamespace()
        let bound = 64 * 1_024
        let (cache, redis) = try Self.makeCache(namespace: namespace, localCacheBytes: bound)
        defer { Task { await cache.close(); await redis.shutdown() } }
        try await Self.waitLive(cache)
        for id in Int64(1)...2_000 {
            #expect(try await cache.put(Self.member(id, version: 1, card: "C-\(id)")) == .stored)
            #expect(await cache.member(card: "C-\(id)").member?.memberID == id)
            #expect(cache.statistics.localBytes <= bound)
        }
        let statistics = cache.statistics
        #expect(statistics.localEvictions > 0)
        #expect(statistics.localBytes <= bound)
    }
}
