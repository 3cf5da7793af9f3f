import Foundation
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// One number from PostgreSQL. Retried: after the test kills a backend, the pool may hand out its dead connection
/// once before it notices.
private func count(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
    var attempt = 0
    while true {
        do {
            let rows = try await client.query(query)
            for try await value in rows.decode(Int64.self) { return value }
            return -1
        } catch {
            attempt += 1
            if attempt >= 3 { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

@Suite("Bonus campaigns and segments")
struct CampaignBonusTests {
    @Test("a bonus to a 10,000-member segment pays each member once: a run killed mid-batch, a second runner and a second trigger pay nobody twice")
    func blastPaysOnce() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            try await client.query("""
                INSERT INTO members (card_number, tags, tier_id)
                SELECT 'BL-' || lpad(i::text, 6, '0'), CASE WHEN i <= 10000 THEN ARRAY['vip'] ELSE '{}'::text[] END, (SELECT min(tier_id) FROM tiers)
                FROM generate_series(1, 10500) AS i
                """)
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let segment = try await store.createSegment(name: "VIPs", definition: SegmentDefinition(tagsAny: ["vip"]))
            #expect(segment.members == 10_000)
            let campaign = try await store.createBonus(
                name: "Spring bonus", segmentID: segment.id, bonusPoints: 100, expiresDays: 90, budgetPoints: nil, createdBy: "test")
            let started = try await store.trigger(campaign)
            #expect(started.state == "running" && started.targetMembers == 10_000)
            // Two marketers at once: the second is told it runs already.
            await #expect(throws: LedgerStoreError.campaignAlreadyRunning(campaign)) { try await store.trigger(campaign) }

            // A server dies in the middle of a big batch: its transaction is cut off, nothing of it stays. The batch
            // runs on a client of its own: a query whose connection is killed under it can wait forever inside
            // postgres-nio, so that client is abandoned afterwards rather than shut down, and the test waits for the
            // batch's answer for a bounded time only.
            let doomedClient = PostgresClient(
                configuration: url.clientConfiguration(maximumConnections: 1), backgroundLogger: TestServices.logger)
            let doomedRun = Task { await doomedClient.run() }
            defer { doomedRun.cancel() }
            let doomedStore = CampaignStore(client: doomedClient, logger: TestServices.logger)
            let doomed = Task { try await doomedStore.awardBatch(campaign, batchSize: 5_000, actor: "doomed") }
            try await Task.sleep(for: .milliseconds(150))
            _ = try await count(client, """
                SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE '%campaign_award_batch%' AND state = 'active'
                  AND pid <> pg_backend_pid()
                """)
            let killed = await answer(of: doomed, within: .seconds(30))
            let afterKill = try await count(client, "SELECT count(*)::int8 FROM campaign_awards")
            switch killed {
            case .success(let progress)?:
                // The batch finished before the kill landed: fine, it was committed whole.
                #expect(afterKill == Int64(progress.awardedMembers))
            case .failure?:
                #expect(afterKill == 0)
            case nil:
                // No answer at all: whatever happened, it happened to the whole batch or to none of it.
                #expect(afterKill == 0 || afterKill == 5_000)
            }

            // Two runners resume together, as a restarted server and a second one would.
            async let first: Void = runToEnd(store, campaign, actor: "runner-a")
            async let second: Void = runToEnd(store, campaign, actor: "runner-b")
            _ = try await (first, second)

            let done = try #require(try await store.progress(campaign))
            #expect(done.state == "finished" && done.finishReason == "everyone paid")
            #expect(done.awardedMembers == 10_000 && done.awardedPoints == 1_000_000)
            #expect(try await count(client, "SELECT count(*)::int8 FROM campaign_awards") == 10_000)
            #expect(try await count(client, "SELECT count(DISTINCT member_id)::int8 FROM journal_entries WHERE kind = 'campaign_bonus'") == 10_000)
            #expect(try await count(client, "SELECT count(*)::int8 FROM journal_entries WHERE kind = 'campaign_bonus'") == 10_000)
            #expect(try await count(client, """
                SELECT count(*)::int8 FROM accounts a JOIN members m USING (member_id)
                WHERE a.bucket = 'available' AND a.unit = 'points' AND a.balance <> CASE WHEN 'vip' = ANY(m.tags) THEN 100 ELSE 0 END
                """) == 0)
            await #expect(throws: LedgerStoreError.campaignEnded(campaignID: campaign, state: "finished")) { try await store.trigger(campaign) }
            #expect(try await store.awardBatch(campaign, batchSize: 500, actor: "late").paid == 0)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }

    @Test("a budget cap stops the award exactly at the cap")
    func budgetCap() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await client.query("""
                INSERT INTO members (card_number, tags, tier_id)
                SELECT 'BC-' || lpad(i::text, 6, '0'), ARRAY['all'], (SELECT min(tier_id) FROM tiers) FROM generate_series(1, 300) AS i
                """)
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let segment = try await store.createSegment(name: "All", definition: SegmentDefinition(tagsAny: ["all"]))
            let campaign = try await store.createBonus(
                name: "Capped", segmentID: segment.id, bonusPoints: 100, expiresDays: 30, budgetPoints: 25_050, createdBy: "test")
            _ = try await store.trigger(campaign)
            try await runToEnd(store, campaign, actor: "runner", batchSize: 64)
            let done = try #require(try await store.progress(campaign))
            #expect(done.awardedMembers == 250 && done.awardedPoints == 25_000)
            #expect(done.finishReason == "budget" && done.state == "finished")
            #expect(try await count(client, "SELECT coalesce(sum(points), 0)::int8 FROM campaign_awards") == 25_000)
        }
    }

    @Test("segment definitions: unknown fields and bad values are refused by name; conditions select the right members")
    func segmentDefinitions() async throws {
        #expect(throws: SegmentError.invalid(field: "teirs", message: "unknown segment field; use one of birthday_month, consent, last_purchase_after, last_purchase_before, purchases, tags_any, tiers")) {
            try SegmentDefinition.parse(Data(#"{"teirs": ["gold"]}"#.utf8))
        }
        #expect(throws: SegmentError.invalid(field: "birthday_month", message: "1-12")) {
            try SegmentDefinition.parse(Data(#"{"birthday_month": 13}"#.utf8))
        }
        #expect(throws: SegmentError.invalid(field: "purchases.window", message: "unknown field; use window_days, min_count, min_spend_minor")) {
            try SegmentDefinition.parse(Data(#"{"purchases": {"window": 30}}"#.utf8))
        }
        #expect(throws: SegmentError.self) { try SegmentDefinition.parse(Data(#"{"consent": "fax"}"#.utf8)) }
        #expect(throws: SegmentError.self) { try SegmentDefinition.parse(Data(#"{"tiers": "gold"}"#.utf8)) }

        try await TestServices.withMigratedDatabase { _, client in
            try await client.query("""
                INSERT INTO members (card_number, birth_date, consents, tags, tier_id)
                SELECT 'SG-' || lpad(i::text, 6, '0'), make_date(1980, 1 + i % 12, 1), jsonb_build_object('email', i % 2 = 0), ARRAY['t' || (i % 3)],
                       (SELECT min(tier_id) FROM tiers)
                FROM generate_series(1, 120) AS i
                """)
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            for member in Int64(1)...10 {
                let now = Date()
                _ = try await ledger.accrue(
                    AccrualRequest(memberID: member, unit: .points, amount: 10, availableAt: now, expiresAt: nil, occurredAt: now,
                                   actor: "t", spendMinor: member * 1_000),
                    key: IdempotencyKey(scope: "t", key: "buy-\(member)"))
            }
            let store = CampaignStore(client: client, logger: TestServices.logger)
            #expect(try await store.previewCount(SegmentDefinition()) == 120)
            #expect(try await store.previewCount(SegmentDefinition(consent: "email")) == 60)
            #expect(try await store.previewCount(SegmentDefinition(tagsAny: ["t0", "t1"])) == 80)
            #expect(try await store.previewCount(SegmentDefinition(birthdayMonth: 3)) == 10)
            #expect(try await store.previewCount(SegmentDefinition(purchases: .init(windowDays: 30, minCount: 1))) == 10)
            #expect(try await store.previewCount(SegmentDefinition(purchases: .init(windowDays: 30, minSpendMinor: 5_000))) == 6)
            #expect(try await store.previewCount(SegmentDefinition(lastPurchaseAfter: Date().addingTimeInterval(-3_600))) == 10)
            #expect(try await store.previewCount(SegmentDefinition(lastPurchaseBefore: Date().addingTimeInterval(-3_600))) == 110)
            #expect(try await store.previewCount(SegmentDefinition(tiers: ["base"], consent: "email", birthdayMonth: 3)) == 10)
            #expect(try await store.previewCount(SegmentDefinition(tiers: ["gold"])) == 0)
            // A value that looks like SQL is only ever a bound value.
            #expect(try await store.previewCount(SegmentDefinition(tagsAny: ["x'); DROP TABLE members; --"])) == 0)
            #expect(try await store.previewCount(SegmentDefinition()) == 120)
        }
    }
}

/// Runs batches until the run is over, retrying a batch whose connection died (as the server's runner does).
/// The task's result, or nil if it has none within `limit` (the task is then left behind, not awaited).
private func answer<Success: Sendable>(of task: Task<Success, any Error>, within limit: Duration) async -> Result<Success, any Error>? {
    let (stream, continuation) = AsyncStream.makeStream(of: Result<Success, any Error>?.self)
    let waiter = Task { continuation.yield(await task.result) }
    let timer = Task {
        try? await Task.sleep(for: limit)
        continuation.yield(nil)
    }
    var iterator = stream.makeAsyncIterator()
    let first = await iterator.next() ?? nil
    continuation.finish()
    timer.cancel()
    _ = waiter
    return first
}

private func runToEnd(_ store: CampaignStore, _ campaign: Int64, actor: String, batchSize: Int = 700) async throws {
    var failures = 0
    while true {
        do {
            let progress = try await store.awardBatch(campaign, batchSize: batchSize, actor: actor)
            if progress.done == true { return }
        } catch .unavailable(let reason) {
            failures += 1
            guard failures < 5 else { throw LedgerStoreError.unavailable(reason) }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
