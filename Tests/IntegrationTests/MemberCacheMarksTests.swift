import Foundation
import LoyaltyCache
@testable import LoyaltyServer
import LoyaltyTestSupport
import Testing

@Suite("Member cache: marking a batch old")
struct MemberCacheMarksTests {
    private static func member(_ id: Int64, version: Int64) -> CachedMember {
        CachedMember(
            memberID: id, tierCode: "BASE", tierName: "Member", status: "active", cardNumber: nil, phone: nil,
            points: .init(available: 100, pending: 0, held: 0), cashbackMinor: .init(available: 0), ledgerVersion: version)
    }

    @Test("a paid batch of 500 members is marked old in one Redis call; a snapshot already newer stays, an older put is refused")
    func batchMarkIsOneCall() async throws {
        let redis = try TestServices.redisClient()
        defer { Task { await redis.shutdown() } }
        var configuration = MemberCache.Configuration()
        configuration.namespace = "test-" + UUID().uuidString.prefix(12).lowercased()
        let cache = try MemberCache(redis: redis, configuration: configuration, logger: TestServices.logger)
        for id in Int64(1)...500 { try await cache.put(Self.member(id, version: 1)) }
        try await cache.put(Self.member(501, version: 9))
        // The epoch is read and the script loaded once, before the batch.
        await cache.markOld([(memberID: 1_000, ledgerVersion: 1)], logger: TestServices.logger)

        let commandsBefore = redis.commandCount
        let batch = (Int64(1)...500).map { (memberID: $0, ledgerVersion: Int64(2)) } + [(memberID: 501, ledgerVersion: 3)]
        await cache.markOld(batch, logger: TestServices.logger)
        #expect(redis.commandCount - commandsBefore == 1)

        #expect(await cache.member(id: 1) == .miss)
        #expect(await cache.member(id: 500) == .miss)
        #expect(await cache.member(id: 501) == .hit(Self.member(501, version: 9)))
        #expect(try await cache.put(Self.member(1, version: 1)) == .skippedStale)
        #expect(try await cache.put(Self.member(1, version: 2)) == .stored)
        #expect(await cache.member(id: 1) == .hit(Self.member(1, version: 2)))
    }
}
