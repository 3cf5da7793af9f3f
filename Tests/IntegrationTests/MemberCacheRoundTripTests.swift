import Foundation
import LoyaltyCache
import LoyaltyTestSupport
import NIOPosix
import Testing

/// Round trips of the member cache, counted with `RedisClient.commandCount` (one command is one request and one
/// reply): a write after a ledger change and a till lookup each cost one.
@Suite("Member cache round trips against a real Redis")
struct MemberCacheRoundTripTests {
    private static func member(
        _ id: Int64, version: Int64, card: String? = nil, phone: String? = nil, points: Int64 = 100
    ) -> CachedMember {
        CachedMember(
            memberID: id, tierCode: "BASE", tierName: "Base", status: "active", cardNumber: card, phone: phone,
            points: .init(available: points), cashbackMinor: .init(available: 0), ledgerVersion: version)
    }

    private static func makeCache(_ redis: RedisClient, namespace: String = "rt-" + UUID().uuidString.prefix(12).lowercased())
        throws -> MemberCache
    {
        var configuration = MemberCache.Configuration()
        configuration.namespace = namespace
        return try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
    }

    /// The index keys (card and phone) of the cache's current epoch.
    private static func indexKeys(_ redis: RedisClient, namespace: String, epoch: Int64) async throws -> [String] {
        let keys = try await redis.send(["KEYS", "\(namespace):b2:e\(epoch):*"]).elements?.compactMap(\.string) ?? []
        return keys.filter { $0.contains(":card:") || $0.contains(":phone:") }
    }

    /// Reads the epoch and loads both scripts, so the counts below are of steady-state calls only.
    private static func warmUp(_ cache: MemberCache) async throws {
        _ = try await cache.epoch().get()
        try await cache.put(member(1, version: 1, card: "warm-card"))
        _ = await cache.member(card: "warm-card")
    }

    /// What `body` answered and how many commands it sent.
    private static func counted<T>(_ redis: RedisClient, _ body: () async throws -> T) async rethrows -> (T, commands: Int) {
        let before = redis.commandCount
        let value = try await body()
        return (value, redis.commandCount - before)
    }

    @Test("a put with card and phone is one command; a card, phone or id lookup is one command, hit or miss")
    func oneCommandEach() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try Self.makeCache(redis)
        try await Self.warmUp(cache)
        let stored = Self.member(42, version: 3, card: "RT-42", phone: "+4942")

        let put = try await Self.counted(redis) { try await cache.put(stored) }
        #expect(put.0 == .stored && put.commands == 1)
        let byCard = await Self.counted(redis) { await cache.member(card: "RT-42") }
        #expect(byCard.0 == .hit(stored.withoutIdentifiers) && byCard.commands == 1)
        let byPhone = await Self.counted(redis) { await cache.member(phone: "+4942") }
        #expect(byPhone.0 == .hit(stored.withoutIdentifiers) && byPhone.commands == 1)
        let byID = await Self.counted(redis) { await cache.member(id: 42) }
        #expect(byID.0 == .hit(stored.withoutIdentifiers) && byID.commands == 1)
        let unknown = await Self.counted(redis) { await cache.member(card: "RT-unknown") }
        #expect(unknown.0 == .miss && unknown.commands == 1)
        // A stale put is one command too, and points no index at its (older) card.
        let stale = try await Self.counted(redis) { try await cache.put(Self.member(42, version: 2, card: "RT-old")) }
        #expect(stale.0 == .skippedStale && stale.commands == 1)
        #expect(await cache.member(card: "RT-old") == .miss)
        #expect(await cache.member(card: "RT-42") == .hit(stored.withoutIdentifiers))
    }

    @Test("concurrent puts of one member with a card per version: the newest blob wins and only its card finds it")
    func concurrentPutsKeepVersionAndIndexes() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let cache = try Self.makeCache(redis)
        let versions = Array(Set((0..<40).map { _ in Int64.random(in: 1...1_000_000) }))

        try await withThrowingTaskGroup(of: Void.self) { group in
            for version in versions {
                group.addTask { try await cache.put(Self.member(77, version: version, card: "RT-v\(version)", points: version)) }
            }
            try await group.waitForAll()
        }

        let newest = versions.max()!
        let expected = Self.member(77, version: newest, points: newest).withoutIdentifiers
        #expect(await cache.member(id: 77) == .hit(expected))
        #expect(await cache.member(card: "RT-v\(newest)") == .hit(expected))
        for version in versions where version != newest {
            #expect(await cache.member(card: "RT-v\(version)") == .miss, "card of version \(version)")
        }
    }

    @Test("an erasure is one command: the member's index keys are gone and its blob too")
    func erasureInOneCommand() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let namespace = "rt-" + UUID().uuidString.prefix(12).lowercased()
        let cache = try Self.makeCache(redis, namespace: namespace)
        try await Self.warmUp(cache)
        try await cache.put(Self.member(9, version: 4, card: "RT-9", phone: "+499"))
        let epoch = try await cache.epoch().get()
        #expect(try await Self.indexKeys(redis, namespace: namespace, epoch: epoch).count == 3)  // warm-card, RT-9, +499

        let erased = try await Self.counted(redis) {
            try await cache.erase(memberID: 9, ledgerVersion: 5, cardNumber: "RT-9", phone: "+499")
        }
        #expect(erased.0 == .stored && erased.commands == 1)
        #expect(try await Self.indexKeys(redis, namespace: namespace, epoch: epoch).count == 1)  // warm-card only
        let memberKey = "\(namespace):b2:e\(epoch):{m9}:member"
        #expect(try await redis.send(["HEXISTS", memberKey, "b"]).integer == 0)
        #expect(await cache.member(card: "RT-9") == .miss)
        #expect(await cache.member(phone: "+499") == .miss)
        #expect(await cache.member(id: 9) == .miss)
        // A put of the snapshot from before the erasure is refused and points no index back at the member.
        #expect(try await cache.put(Self.member(9, version: 4, card: "RT-9", phone: "+499")) == .skippedStale)
        #expect(try await Self.indexKeys(redis, namespace: namespace, epoch: epoch).count == 1)
    }

    @Test("a put at the cached version restores an index key that was lost alone")
    func equalVersionRestoresIndex() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        let namespace = "rt-" + UUID().uuidString.prefix(12).lowercased()
        let cache = try Self.makeCache(redis, namespace: namespace)
        let stored = Self.member(12, version: 2, card: "RT-12")
        try await cache.put(stored)
        let epoch = try await cache.epoch().get()
        let cardKeys = try await Self.indexKeys(redis, namespace: namespace, epoch: epoch)
        #expect(cardKeys.count == 1)
        _ = try await redis.send(["DEL"] + cardKeys)  // as an eviction under maxmemory would
        #expect(await cache.member(card: "RT-12") == .miss)

        // The fill after that miss has the same version: the blob stays, the index comes back.
        #expect(try await cache.put(stored) == .skippedStale)
        #expect(await cache.member(card: "RT-12") == .hit(stored.withoutIdentifiers))
    }
}

@Suite("Member cache lookups on the event loop")
struct MemberCacheOnLoopTests {
    @Test("once the epoch is read and the script loaded, lookups answer from futures: hit, miss, one command each")
    func lookupsOnLoop() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        var configuration = MemberCache.Configuration()
        configuration.namespace = "loop-" + UUID().uuidString.prefix(12).lowercased()
        let cache = try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        // Nothing read yet: the async lookups must go first.
        #expect(cache.memberOnLoop(card: "L-1", eventLoop: eventLoop) == nil)

        let stored = CachedMember(
            memberID: 31, tierCode: "BASE", tierName: "Base", status: "active", cardNumber: "L-1", phone: "+4931",
            points: .init(available: 5), cashbackMinor: .init(available: 0), ledgerVersion: 2)
        #expect(try await cache.put(stored) == .stored)
        #expect(await cache.member(card: "L-1") == .hit(stored.withoutIdentifiers))  // loads the lookup script

        let before = redis.commandCount
        let byCard = try #require(cache.memberOnLoop(card: "L-1", eventLoop: eventLoop))
        #expect(try await byCard.get() == .hit(stored.withoutIdentifiers))
        let byPhone = try #require(cache.memberOnLoop(phone: "+4931", eventLoop: eventLoop))
        #expect(try await byPhone.get() == .hit(stored.withoutIdentifiers))
        let byID = try #require(cache.memberOnLoop(id: 31, eventLoop: eventLoop))
        #expect(try await byID.get() == .hit(stored.withoutIdentifiers))
        let unknown = try #require(cache.memberOnLoop(card: "L-2", eventLoop: eventLoop))
        #expect(try await unknown.get() == .miss)
        #expect(redis.commandCount - before == 4)
    }
}
