@testable import LoyaltyCache
import Testing

/// The bounded store and the local level's insert rules, without Redis: pure memory.
@Suite("Local member cache: CLOCK eviction, byte accounting, insert rules")
struct LocalMemberCacheStoreTests {
    private static func entryBytes(_ key: String, _ valueBytes: Int) -> Int {
        ClockCache<Int>.accountedBytes(key: key, valueBytes: valueBytes)
    }

    @Test("bytes are the sum of the entries' accounted bytes through inserts, replacements and removals")
    func byteAccounting() {
        var cache = ClockCache<Int>(capacityBytes: 1 << 20)
        var expected: [String: Int] = [:]
        for index in 0..<500 {
            let key = "k\(index)"
            cache.insert(index, forKey: key, valueBytes: index % 37)
            expected[key] = Self.entryBytes(key, index % 37)
        }
        #expect(cache.bytes == expected.values.reduce(0, +))
        for index in stride(from: 0, to: 500, by: 3) {
            let key = "k\(index)"
            cache.insert(-index, forKey: key, valueBytes: 100)
            expected[key] = Self.entryBytes(key, 100)
        }
        #expect(cache.bytes == expected.values.reduce(0, +))
        #expect(cache.peek("k3") == -3)
        for index in stride(from: 1, to: 500, by: 2) {
            let removed = cache.remove("k\(index)")
            #expect(removed)
            expected["k\(index)"] = nil
        }
        let removedTwice = cache.remove("k1")
        #expect(!removedTwice)
        #expect(cache.bytes == expected.values.reduce(0, +))
        #expect(cache.count == expected.count)
        cache.removeAll()
        #expect(cache.bytes == 0 && cache.count == 0)
    }

    @Test("CLOCK gives an entry read since the hand passed it a second chance; new entries start unreferenced")
    func clockSecondChance() {
        let one = Self.entryBytes("a", 10)
        var cache = ClockCache<String>(capacityBytes: 3 * one)
        for key in ["a", "b", "c"] { cache.insert(key, forKey: key, valueBytes: 10) }
        let readA = cache.value(forKey: "a")
        #expect(readA == "a")
        // The hand clears a's bit and evicts b, the first unreferenced entry.
        cache.insert("d", forKey: "d", valueBytes: 10)
        #expect(cache.peek("a") != nil && cache.peek("b") == nil && cache.peek("c") != nil)
        // Next comes c (never read), not a.
        cache.insert("e", forKey: "e", valueBytes: 10)
        #expect(cache.peek("a") != nil && cache.peek("c") == nil)
        // a's second chance is used up: not read again, it goes next.
        cache.insert("f", forKey: "f", valueBytes: 10)
        #expect(cache.peek("a") == nil)
        #expect(Set(["d", "e", "f"].filter { cache.peek($0) != nil }) == ["d", "e", "f"])
        #expect(cache.evictions == 3)
        #expect(cache.bytes == 3 * one)
    }

    @Test("a working set that is read survives a scan of keys read once")
    func workingSetSurvivesScan() {
        let one = Self.entryBytes("hot-0", 50)
        var cache = ClockCache<Int>(capacityBytes: 100 * one)
        for index in 0..<20 { cache.insert(index, forKey: "hot-\(index)", valueBytes: 50) }
        for round in 0..<1_000 {
            for index in 0..<20 { _ = cache.value(forKey: "hot-\(index)") }
            cache.insert(round, forKey: "cold-\(round)", valueBytes: 50)
        }
        #expect((0..<20).allSatisfy { cache.peek("hot-\($0)") != nil })
        #expect(cache.bytes <= cache.capacityBytes)
    }

    @Test("an entry larger than the whole bound is refused and removes the key's older value")
    func oversizedRefused() {
        var cache = ClockCache<Int>(capacityBytes: 1_000)
        let fitted = cache.insert(1, forKey: "k", valueBytes: 10)
        #expect(fitted)
        let oversized = cache.insert(2, forKey: "k", valueBytes: 1_000)
        #expect(!oversized)
        #expect(cache.peek("k") == nil && cache.bytes == 0)
    }

    @Test("a replacement that grows evicts other entries, never itself")
    func growingReplacement() {
        let small = Self.entryBytes("k0", 10)
        var cache = ClockCache<Int>(capacityBytes: 4 * small)
        for index in 0..<4 { cache.insert(index, forKey: "k\(index)", valueBytes: 10) }
        let grown = cache.insert(99, forKey: "k2", valueBytes: 10 + 2 * small)
        #expect(grown)
        #expect(cache.peek("k2") == 99)
        #expect(cache.bytes <= cache.capacityBytes)
        #expect(cache.count == 2)
    }

    @Test("the byte bound holds over 1,000,000 distinct inserts")
    func millionInserts() {
        let capacity = 4 << 20
        var cache = ClockCache<Int>(capacityBytes: capacity)
        var overBound = 0
        var generator = SystemRandomNumberGenerator()
        for index in 0..<1_000_000 {
            cache.insert(index, forKey: "loyalty:b2:e1:{m\(index)}:member", valueBytes: Int.random(in: 8...300, using: &generator))
            // Every tenth read again, as a working set would be.
            if index % 10 == 0 { _ = cache.value(forKey: "loyalty:b2:e1:{m\(index / 2)}:member") }
            if cache.bytes > capacity { overBound += 1 }
        }
        #expect(overBound == 0)
        #expect(cache.bytes > capacity - 512)
        #expect(cache.count + cache.evictions == 1_000_000)
    }

    private static func blob(_ id: Int64, version: Int64) -> CachedMember.Blob {
        CachedMember.Blob(
            member: CachedMember(
                memberID: id, tierCode: "GOLD", tierName: "Gold", status: "active", points: .init(available: version),
                cashbackMinor: .init(available: 0), ledgerVersion: version),
            cardDigest: nil, phoneDigest: nil)
    }

    @Test("fills: only while live, refused after a drop or an invalidation of the key that came after the read began")
    func fillRules() throws {
        let local = LocalMemberCache(capacityBytes: 1 << 20)
        #expect(local.startSequence() == nil)
        #expect(!local.fill(memberKey: "m1", blob: Self.blob(1, version: 1), startedAt: 0))
        local.drop(live: true)
        let start = try #require(local.startSequence())
        // An invalidation of the key after the read began: the read's answer may be older than that write.
        local.invalidate(["m1"])
        #expect(!local.fill(memberKey: "m1", blob: Self.blob(1, version: 1), startedAt: start))
        #expect(local.member(key: "m1") == nil)
        // Another key's invalidation does not refuse it (unless the two share a stripe).
        let second = try #require(local.startSequence())
        let other = (0..<10_000).map { "other-\($0)" }.first { LocalMemberCache.stripe($0) != LocalMemberCache.stripe("m1") }!
        local.invalidate([other])
        #expect(local.fill(memberKey: "m1", blob: Self.blob(1, version: 2), indexKeys: ["c1"], startedAt: second))
        #expect(local.member(key: "m1")?.member.ledgerVersion == 2)
        #expect(local.member(indexKey: "c1") { _ in "m1" }?.member.memberID == 1)
        // An older version never replaces a newer one.
        #expect(!local.fill(memberKey: "m1", blob: Self.blob(1, version: 1), startedAt: try #require(local.startSequence())))
        #expect(local.member(key: "m1")?.member.ledgerVersion == 2)
        // A drop empties it and refuses fills that began before.
        let beforeDrop = try #require(local.startSequence())
        local.drop()
        #expect(local.usage.entries == 0 && local.usage.bytes == 0)
        #expect(!local.fill(memberKey: "m2", blob: Self.blob(2, version: 1), startedAt: beforeDrop))
        // Not live: nothing is answered or taken.
        local.drop(live: false)
        #expect(local.startSequence() == nil)
    }
}
