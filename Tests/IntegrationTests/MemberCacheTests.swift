import Foundation
import LoyaltyCache
import LoyaltyTestSupport
import Testing

/// Each test has its own key namespace, so tests never share an epoch even on the same Redis.
private func uniqueNamespace() -> String {
    "test-" + UUID().uuidString.prefix(12).lowercased()
}

private func sampleMember(
    _ id: Int64, version: Int64, card: String? = nil, phone: String? = nil, points: Int64 = 1_000
) -> CachedMember {
    CachedMember(
        memberID: id, tierCode: "GOLD", tierName: "Gold", status: "active", cardNumber: card, phone: phone,
        points: .init(available: points, pending: 50, held: 10), cashbackMinor: .init(available: 1_250),
        ledgerVersion: version)
}

private func makeCache(
    _ redis: RedisClient, namespace: String = uniqueNamespace(), timeToLive: Duration = .seconds(3_600),
    epochRefreshInterval: Duration = .seconds(5), recoverySignal: RedisRecoverySignal? = nil
) throws -> MemberCache {
    var configuration = MemberCache.Configuration()
    configuration.namespace = namespace
    configuration.timeToLive = timeToLive
    configuration.epochRefreshInterval = epochRefreshInterval
    return try MemberCache(
        redis: redis, configuration: configuration, recoverySignal: recoverySignal, logger: TestServices.logger)
}

private func isUnavailable(_ lookup: MemberCache.Lookup) -> Bool {
    if case .unavailable = lookup { return true }
    return false
}

private func currentEpoch(_ cache: MemberCache) async throws -> Int64 {
    try await cache.epoch().get()
}

/// Waits until the cache answers something other than unavailable (the breaker lets a probe through).
private func firstAnswer(_ cache: MemberCache, id: Int64) async throws -> MemberCache.Lookup {
    let deadline = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < deadline {
        let lookup = await cache.member(id: id)
        if !isUnavailable(lookup) { return lookup }
        try await Task.sleep(for: .milliseconds(50))
    }
    return await cache.member(id: id)
}

/// Pings until the client has a live connection again (its old one died with the server).
/// The first write to a freshly started scratch server can meet a connection still coming up on a loaded test
/// machine; these tests are about what happens after it, so retry it a few times.
private func putWarmingUp(_ cache: MemberCache, _ member: CachedMember) async throws -> MemberCache.WriteOutcome {
    var outcome = try await cache.put(member)
    for _ in 0..<20 where !outcome.didStore {
        try await Task.sleep(for: .milliseconds(100))
        outcome = try await cache.put(member)
    }
    return outcome
}

private func waitForPing(_ redis: RedisClient) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while (try? await redis.ping()) == nil, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(50))
    }
}

@Suite("Member cache against a real Redis")
struct MemberCacheTests {
    @Test("a member put is found by id, card and phone; unknown ones miss")
    func putAndGet() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)
        let member = sampleMember(42, version: 7, card: "6001-0042", phone: "+4915112345678")

        #expect(try await cache.put(member) == .stored)
        #expect(await cache.member(id: 42) == .hit(member.withoutIdentifiers))
        #expect(await cache.member(card: "6001-0042") == .hit(member.withoutIdentifiers))
        #expect(await cache.member(phone: "+4915112345678") == .hit(member.withoutIdentifiers))
        #expect(await cache.member(id: 43) == .miss)
        #expect(await cache.member(card: "6001-0043") == .miss)
        #expect(await cache.member(phone: "+490000") == .miss)
        #expect(await cache.member(card: "has space") == .miss)

        let statistics = cache.statistics
        #expect(statistics.hits == 3)
        #expect(statistics.misses == 4)
        #expect(statistics.writes == 1)
        #expect(statistics.unavailable == 0)
    }

    @Test("an index that points at a member who no longer has that card or phone is a miss")
    func movedIdentifierMisses() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)

        try await cache.put(sampleMember(1, version: 1, card: "C-1", phone: "+491"))
        let changed = sampleMember(1, version: 2, card: "C-2", phone: "+492")
        #expect(try await cache.put(changed) == .stored)
        #expect(await cache.member(card: "C-1") == .miss)
        #expect(await cache.member(phone: "+491") == .miss)
        #expect(await cache.member(card: "C-2") == .hit(changed.withoutIdentifiers))

        // The old card goes to another member: its index follows.
        let other = sampleMember(2, version: 1, card: "C-1")
        try await cache.put(other)
        #expect(await cache.member(card: "C-1") == .hit(other.withoutIdentifiers))
    }

    @Test("an older ledger version never replaces a newer one")
    func olderVersionNeverWins() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)
        let newer = sampleMember(7, version: 5, card: "C-new", points: 500)

        #expect(try await cache.put(newer) == .stored)
        #expect(try await cache.put(sampleMember(7, version: 3, card: "C-old", points: 300)) == .skippedStale)
        #expect(try await cache.put(sampleMember(7, version: 5, points: 999)) == .skippedStale)
        #expect(await cache.member(id: 7) == .hit(newer.withoutIdentifiers))
        // The skipped writer's card was not indexed.
        #expect(await cache.member(card: "C-old") == .miss)

        let newest = sampleMember(7, version: 6, points: 600)
        #expect(try await cache.put(newest) == .stored)
        #expect(await cache.member(id: 7) == .hit(newest.withoutIdentifiers))
        #expect(cache.statistics.staleWriteSkips == 2)
        #expect(cache.statistics.writes == 2)
    }

    @Test("50 concurrent puts of random versions: the highest version wins")
    func concurrentPutsHighestWins() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)
        let versions = (0..<50).map { _ in Int64.random(in: 1...1_000_000) }

        let outcomes = try await withThrowingTaskGroup(of: MemberCache.WriteOutcome.self) { group in
            for version in versions {
                group.addTask { try await cache.put(sampleMember(99, version: version, points: version)) }
            }
            return try await group.reduce(into: [MemberCache.WriteOutcome]()) { $0.append($1) }
        }

        let highest = versions.max()!
        #expect(await cache.member(id: 99) == .hit(sampleMember(99, version: highest, points: highest).withoutIdentifiers))
        #expect(outcomes.allSatisfy { $0 == .stored || $0 == .skippedStale })
        let statistics = cache.statistics
        #expect(statistics.writes + statistics.staleWriteSkips == 50)
        #expect(statistics.writeFailures == 0)
    }

    @Test("every key the cache writes has a TTL no longer than the configured one")
    func everyKeyHasTTL() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let namespace = uniqueNamespace()
        let cache = try makeCache(redis, namespace: namespace, timeToLive: .seconds(120))
        try await cache.put(sampleMember(5, version: 1, card: "C-5", phone: "+495"))
        try await cache.invalidate(memberID: 6, ledgerVersion: 3)
        let epoch = try await currentEpoch(cache)

        // Two blobs and two index keys, named by digests: no key carries the card or the phone.
        let keys = try await redis.send(["KEYS", "\(namespace):b2:e\(epoch):*"]).elements?.compactMap(\.string) ?? []
        #expect(keys.count == 4, "\(keys)")
        #expect(keys.contains("\(namespace):b2:e\(epoch):{m5}:member") && keys.contains("\(namespace):b2:e\(epoch):{m6}:member"))
        #expect(keys.filter { $0.contains(":card:") || $0.contains(":phone:") }.count == 2)
        #expect(!keys.contains { $0.contains("C-5") || $0.contains("+495") })
        for key in keys {
            let ttl = try await redis.send(["PTTL", key]).integer
            #expect(ttl.map { $0 > 110_000 && $0 <= 120_000 } == true, "PTTL of \(key) is \(String(describing: ttl))")
        }
    }

    @Test("invalidate is a version marker: older snapshots are refused, the new version fills it")
    func invalidateIsAVersionMarker() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)
        try await cache.put(sampleMember(8, version: 4, card: "C-8"))

        #expect(try await cache.invalidate(memberID: 8, ledgerVersion: 5) == .stored)
        #expect(await cache.member(id: 8) == .miss)
        #expect(await cache.member(card: "C-8") == .miss)
        // A slow reader that read version 4 from PostgreSQL before the change cannot put it back.
        #expect(try await cache.put(sampleMember(8, version: 4, card: "C-8")) == .skippedStale)
        #expect(try await cache.invalidate(memberID: 8, ledgerVersion: 5) == .skippedStale)
        let current = sampleMember(8, version: 5, card: "C-8")
        #expect(try await cache.put(current) == .stored)
        #expect(await cache.member(card: "C-8") == .hit(current.withoutIdentifiers))
        // A marker at the version already cached changes nothing.
        #expect(try await cache.invalidate(memberID: 8, ledgerVersion: 5) == .skippedStale)
        #expect(await cache.member(id: 8) == .hit(current.withoutIdentifiers))
    }

    @Test("values outside the limits are refused before anything is sent")
    func limitsAreEnforced() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)

        var oversized = sampleMember(9, version: 1)
        oversized.tierName = String(repeating: "x", count: MemberCache.Limits.maximumBlobBytes)
        await #expect(throws: CacheError.self) { try await cache.put(oversized) }
        #expect(await cache.member(id: 9) == .miss)

        let longCard = String(repeating: "1", count: MemberCache.Limits.maximumIdentifierBytes + 1)
        await #expect(throws: CacheError.self) { try await cache.put(sampleMember(9, version: 1, card: longCard)) }
        await #expect(throws: CacheError.self) { try await cache.put(sampleMember(9, version: 1, phone: "+49 1")) }
        await #expect(throws: CacheError.self) { try await cache.put(sampleMember(0, version: 1)) }
        await #expect(throws: CacheError.self) { try await cache.put(sampleMember(9, version: -1)) }
        await #expect(throws: CacheError.self) {
            try await cache.put(sampleMember(9, version: MemberCache.Limits.maximumLedgerVersion + 1))
        }
        #expect(cache.statistics.writes == 0)

        #expect(throws: CacheError.self) { try makeCache(redis, timeToLive: .milliseconds(500)) }
        #expect(throws: CacheError.self) { try makeCache(redis, timeToLive: .seconds(8 * 24 * 3_600)) }
        #expect(throws: CacheError.self) { try makeCache(redis, epochRefreshInterval: .milliseconds(1)) }
        #expect(throws: CacheError.self) { try makeCache(redis, namespace: "a{b}") }
    }

    @Test("caches on the same namespace agree on the epoch; a bump reaches the others within the refresh interval")
    func epochIsSharedAndRefreshed() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let namespace = uniqueNamespace()
        let signal = RedisRecoverySignal()
        let bumper = try makeCache(redis, namespace: namespace, recoverySignal: signal)
        let other = try makeCache(redis, namespace: namespace, epochRefreshInterval: .seconds(1))

        let first = try await currentEpoch(bumper)
        #expect(try await currentEpoch(other) == first)
        #expect(try await bumper.put(sampleMember(3, version: 1)) == .stored)
        #expect(await other.member(id: 3).member != nil)

        signal.fire()
        let second = try await currentEpoch(bumper)
        #expect(second == first + 1)
        // One bump created the counter in this new namespace, the other followed the signal.
        #expect(bumper.statistics.epochBumps == 2)
        #expect(await bumper.member(id: 3) == .miss)
        // The documented window: the other server still reads the old epoch until its next refresh.
        #expect(try await currentEpoch(other) == first)
        try await Task.sleep(for: .milliseconds(1_100))
        #expect(try await currentEpoch(other) == second)
        #expect(await other.member(id: 3) == .miss)
        #expect(other.statistics.epochBumps == 0)
    }

    @Test("Redis stopped: lookups answer unavailable within the command timeout; restarted: a new epoch, nothing old")
    func stoppedThenRestarted() async throws {
        let scratch = try await ScratchRedis.start()
        defer { scratch.stop() }
        // A command already on its way over a connection that dies unanswered ends at the command timeout;
        // everything after fails at once (refused connection, then the open breaker).
        var configuration = RedisClient.Configuration(url: scratch.url)
        configuration.connectTimeoutMs = 1_000
        configuration.commandTimeoutMs = 1_000
        configuration.breakerCooldownMs = 50
        let redis = RedisClient(configuration: configuration, logger: TestServices.logger)
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)
        let member = sampleMember(11, version: 1, card: "C-11")
        #expect(try await putWarmingUp(cache, member) == .stored)
        let before = try await currentEpoch(cache)

        scratch.stop()
        let started = ContinuousClock.now
        var fastLookups = 0
        for index in 0..<40 {
            let lookupStarted = ContinuousClock.now
            let lookup = index.isMultiple(of: 2) ? await cache.member(id: 11) : await cache.member(card: "C-11")
            let elapsed = ContinuousClock.now - lookupStarted
            #expect(isUnavailable(lookup))
            // Bounds with room for a loaded test machine: the point is "no hang", not a latency figure.
            #expect(elapsed < .milliseconds(2_500))
            if elapsed < .milliseconds(250) { fastLookups += 1 }
        }
        #expect(fastLookups >= 20)
        #expect(ContinuousClock.now - started < .seconds(15))
        #expect(cache.statistics.unavailable == 40)
        if case .unavailable = try await cache.put(sampleMember(11, version: 2)) {} else {
            Issue.record("a put while Redis is down must answer unavailable")
        }

        let restarted = try await RedisProcess.start(port: scratch.port)
        defer { restarted.stop() }
        #expect(try await firstAnswer(cache, id: 11) == .miss)
        #expect(try await currentEpoch(cache) > before)
        #expect(cache.statistics.epochBumps >= 1)
        #expect(try await putWarmingUp(cache, member) == .stored)
        #expect(await cache.member(card: "C-11") == .hit(member.withoutIdentifiers))
    }

    @Test("Redis back from a snapshot holding old values: they are not served, on a server that saw the outage or not")
    func restartFromSnapshot() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try freePort()
        let first = try await RedisProcess.start(port: port, directory: directory.path)
        defer { first.stop() }

        let busyClient = try TestServices.redisClient(first.url)
        let idleClient = try TestServices.redisClient(first.url)
        let admin = try TestServices.redisClient(first.url)
        defer { Task { await busyClient.shutdown(); await idleClient.shutdown(); await admin.shutdown() } }
        let namespace = uniqueNamespace()
        let busy = try makeCache(busyClient, namespace: namespace)
        let idle = try makeCache(idleClient, namespace: namespace, epochRefreshInterval: .milliseconds(200))

        #expect(try await busy.put(sampleMember(12, version: 1)) == .stored)
        #expect(await idle.member(id: 12).member != nil)
        let before = try await currentEpoch(busy)
        _ = try await admin.send(["SAVE"])

        first.stop()
        #expect(isUnavailable(await busy.member(id: 12)))
        let second = try await RedisProcess.start(port: port, directory: directory.path)
        defer { second.stop() }
        try await waitForPing(admin)
        // The snapshot brought back the old blob and the old epoch counter.
        #expect(try await admin.send(["EXISTS", "\(namespace):b2:e\(before):{m12}:member"]) == .integer(1))
        #expect(try await admin.send(["GET", "\(namespace):cache-epoch"]).string == String(before))

        // The idle server saw no failure: the changed run_id at its next refresh moves it on.
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await firstAnswer(idle, id: 12) == .miss)
        #expect(try await currentEpoch(idle) > before)
        // The busy server saw the failure (or a timeout, and then the new run_id) and moves on at once.
        #expect(try await firstAnswer(busy, id: 12) == .miss)
        #expect(try await currentEpoch(busy) > before)
    }

    @Test("a recovery of the client seen only by other callers still moves the cache to a new epoch")
    func recoverySignalBumpsEpoch() async throws {
        let scratch = try await ScratchRedis.start()
        defer { scratch.stop() }
        var configuration = RedisClient.Configuration(url: scratch.url)
        // Three timed-out pings (3 × 1 s) must fit inside the pause; 1 s also keeps a loaded machine from timing out
        // the healthy commands before it.
        configuration.commandTimeoutMs = 1_000
        configuration.breakerCooldownMs = 50
        let signal = RedisRecoverySignal()
        let redis = RedisClient(
            configuration: configuration, logger: TestServices.logger, onRecovery: { signal.fire() })
        let admin = try TestServices.redisClient(scratch.url)
        defer { Task { await redis.shutdown(); await admin.shutdown() } }
        let namespace = uniqueNamespace()
        let cache = try makeCache(redis, namespace: namespace, recoverySignal: signal)
        #expect(try await putWarmingUp(cache, sampleMember(13, version: 1)) == .stored)
        let before = try await currentEpoch(cache)

        // Redis stops answering for a while (the data stays); only health checks notice and trip the breaker.
        _ = try await admin.send(["CLIENT", "PAUSE", "4000", "ALL"])
        for _ in 0..<3 { _ = try? await redis.ping() }
        #expect(redis.isCircuitOpen)
        try await Task.sleep(for: .milliseconds(1_200))
        try await waitForPing(redis)

        #expect(await cache.member(id: 13) == .miss)
        #expect(try await currentEpoch(cache) == before + 1)
        #expect(try await admin.send(["EXISTS", "\(namespace):b2:e\(before):{m13}:member"]) == .integer(1))
    }

    @Test("a lone lookup timeout re-checks the epoch but keeps the cache when Redis did not restart")
    func timeoutKeepsEpoch() async throws {
        let scratch = try await ScratchRedis.start()
        defer { scratch.stop() }
        var configuration = RedisClient.Configuration(url: scratch.url)
        // A timeout long enough that a loaded test machine does not trip it by accident, and a pause longer still.
        configuration.commandTimeoutMs = 1_000
        configuration.breakerFailureThreshold = 100
        let redis = RedisClient(configuration: configuration, logger: TestServices.logger)
        let admin = try TestServices.redisClient(scratch.url)
        defer { Task { await redis.shutdown(); await admin.shutdown() } }
        let cache = try makeCache(redis)
        let member = sampleMember(15, version: 1)
        #expect(try await putWarmingUp(cache, member) == .stored)
        let before = try await currentEpoch(cache)
        let bumps = cache.statistics.epochBumps

        _ = try await admin.send(["CLIENT", "PAUSE", "2500", "ALL"])
        #expect(await cache.member(id: 15) == .unavailable(.timeout(target: redis.target, timeoutMs: 1_000)))
        try await Task.sleep(for: .milliseconds(2_700))
        #expect(try await firstAnswer(cache, id: 15) == .hit(member.withoutIdentifiers))
        #expect(try await currentEpoch(cache) == before)
        #expect(cache.statistics.epochBumps == bumps)
    }

    @Test("a server that forgot the script (SCRIPT FLUSH) still takes versioned writes")
    func scriptFlushFallsBackToEval() async throws {
        let scratch = try await ScratchRedis.start()
        defer { scratch.stop() }
        let redis = try TestServices.redisClient(scratch.url)
        defer { Task { await redis.shutdown() } }
        let cache = try makeCache(redis)
        #expect(try await cache.put(sampleMember(14, version: 1)) == .stored)
        _ = try await redis.send(["SCRIPT", "FLUSH"])
        #expect(try await cache.put(sampleMember(14, version: 2)) == .stored)
        #expect(try await cache.put(sampleMember(14, version: 1)) == .skippedStale)
        #expect(await cache.member(id: 14).member?.ledgerVersion == 2)
        #expect(cache.statistics.writeFailures == 0)
    }
}
