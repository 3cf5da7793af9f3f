import Foundation
import LoyaltyCache
import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import Testing

@Suite("Ledger jobs inside the server")
struct LedgerJobsTests {
    @Test("one pass activates due pending lots, expires due lots and releases abandoned holds; two at once do each once")
    func jobsRunOnceEvenConcurrently() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            let members = MemberStore(client: client, logger: TestServices.logger)
            var memberIDs: [Int64] = []
            // Written an hour ahead, then moved into the past in SQL: under a loaded machine a call can take longer
            // than any short window, and the ledger rightly refuses a hold or an expiry that has already passed.
            let later = Date().addingTimeInterval(3_600)
            for index in 0..<30 {
                let now = Date()
                let member = try await members.create(NewMember())
                memberIDs.append(member)
                let key = try IdempotencyKey(scope: "test", key: "a\(index)")
                _ = try await ledger.accrue(
                    AccrualRequest(memberID: member, unit: .points, amount: 100, availableAt: later,
                                   expiresAt: nil, occurredAt: now, actor: "t"), key: key)
                _ = try await ledger.accrue(
                    AccrualRequest(memberID: member, unit: .points, amount: 50, availableAt: now,
                                   expiresAt: later, occurredAt: now, actor: "t"),
                    key: try IdempotencyKey(scope: "test", key: "b\(index)"))
                _ = try await ledger.hold(
                    HoldRequest(memberID: member, unit: .points, amount: 10, expiresAt: later, actor: "t"),
                    key: try IdempotencyKey(scope: "test", key: "h\(index)"))
            }
            try await client.query("UPDATE lots SET available_at = now() - interval '1 second' WHERE state = 'pending'")
            try await client.query("""
                UPDATE lots SET available_at = available_at - interval '2 hours', expires_at = now() - interval '1 second'
                WHERE expires_at IS NOT NULL
                """)
            try await client.query("UPDATE holds SET expires_at = now() - interval '1 second' WHERE state = 'active'")
            var jobs = LedgerJobsService(ledger: ledger, batchSize: 7, logger: TestServices.logger)
            jobs.maximumBatchesPerRun = 50
            let service = jobs
            async let first = service.runOnce()
            async let second = service.runOnce()
            let (a, b) = await (first, second)
            // Which runner did what depends on timing, and lots whose points were still held when expiry ran are
            // finished by the next pass; across the passes every amount is applied exactly once.
            let c = await service.runOnce()
            func total(_ job: LedgerJob, _ value: (JobBatchResult) -> Int64) -> Int64 {
                [a, b, c].reduce(0) { $0 + ($1[job].map(value) ?? 0) }
            }
            #expect(total(.activatePending) { $0.amount ?? 0 } == 30 * 100)
            #expect(total(.expireHolds) { Int64($0.holds ?? 0) } == 30)
            #expect(total(.expireLots) { $0.amount ?? 0 } == 30 * 50)
            for member in memberIDs {
                #expect(try await ledger.balances(memberID: member, unit: .points) == MemberBalances(available: 100, pending: 0, held: 0))
            }
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }

    @Test("a job that changes a member's balances marks the till's cached copy as old")
    func jobsMarkCachedBalancesOld() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            let member = try await MemberStore(client: client, logger: TestServices.logger).create(NewMember())
            let untouched = try await MemberStore(client: client, logger: TestServices.logger).create(NewMember())
            let now = Date()
            let receipt = try await ledger.accrue(
                AccrualRequest(memberID: member, unit: .points, amount: 100, availableAt: now.addingTimeInterval(3_600),
                               expiresAt: nil, occurredAt: now, actor: "t"),
                key: try IdempotencyKey(scope: "test", key: "pending"))
            // Made due in SQL rather than by waiting: a loaded machine can take longer than any short window.
            try await client.query("UPDATE lots SET available_at = now() - interval '1 second' WHERE state = 'pending'")
            var configuration = MemberCache.Configuration()
            configuration.namespace = "test-jobs-\(UUID().uuidString.prefix(8))"
            let cache = try MemberCache(redis: try TestServices.redisClient(), configuration: configuration, logger: TestServices.logger)
            func snapshot(_ id: Int64, version: Int64) -> CachedMember {
                CachedMember(
                    memberID: id, tierCode: "base", tierName: "Member", status: "active", cardNumber: nil,
                    points: .init(available: 0, pending: 100), cashbackMinor: .init(available: 0), ledgerVersion: version)
            }
            #expect(try await cache.put(snapshot(member, version: receipt.ledgerVersion)) == .stored)
            #expect(try await cache.put(snapshot(untouched, version: 0)) == .stored)

            let jobs = LedgerJobsService(ledger: ledger, cache: cache, logger: TestServices.logger)
            #expect(await jobs.runOnce()[.activatePending]?.amount == 100)
            #expect(await cache.member(id: member) == .miss)
            #expect(await cache.member(id: untouched) == .hit(snapshot(untouched, version: 0)))
        }
    }

    @Test("a tier review that changes a member's tier marks the member's cached snapshot old; an unchanged one stays")
    func tierReviewMarksCacheOld() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            let members = MemberStore(client: client, logger: TestServices.logger)
            let tiers = TierStore(client: client, logger: TestServices.logger)
            _ = try await tiers.upsert(Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 10_000, qualificationWindowDays: 365))
            let lapsed = try await members.create(NewMember())
            let steady = try await members.create(NewMember())
            try await client.query("""
                UPDATE members SET tier_id = (SELECT tier_id FROM tiers WHERE code = 'silver'),
                    tier_changed_at = now() - interval '90 days', tier_reviewed_at = now() - interval '40 days'
                WHERE member_id = \(lapsed)
                """)
            try await client.query("UPDATE members SET tier_reviewed_at = now() - interval '40 days' WHERE member_id = \(steady)")

            var configuration = MemberCache.Configuration()
            configuration.namespace = "test-review-\(UUID().uuidString.prefix(8))"
            let cache = try MemberCache(redis: try TestServices.redisClient(), configuration: configuration, logger: TestServices.logger)
            func snapshot(_ id: Int64, tier: String) -> CachedMember {
                CachedMember(memberID: id, tierCode: tier, tierName: tier, status: "active", cardNumber: nil,
                             points: .init(available: 0), cashbackMinor: .init(available: 0), ledgerVersion: 0)
            }
            #expect(try await cache.put(snapshot(lapsed, tier: "silver")) == .stored)
            #expect(try await cache.put(snapshot(steady, tier: "base")) == .stored)

            let rules = try CurrentRules(directory: TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger)
            let jobs = LedgerJobsService(ledger: ledger, tiers: tiers, rules: rules, cache: cache, logger: TestServices.logger)
            await jobs.runOnce()
            #expect(try await tiers.tierCode(memberID: lapsed) == "base")
            #expect(await cache.member(id: lapsed) == .miss)
            #expect(await cache.member(id: steady) == .hit(snapshot(steady, tier: "base")))
        }
    }
}
