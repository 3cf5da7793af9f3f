import Foundation
@testable import LoyaltyServer
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Prometheus
import Testing

@Suite("Campaign runner")
struct CampaignRunnerTests {
    private static func number(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
        let rows = try await client.query(query, logger: TestServices.logger)
        for try await value in rows.decode(Int64.self) { return value }
        return -1
    }

    /// Three members tagged `tag` (card numbers `PREFIX-1`…), their ids in order.
    @discardableResult
    private static func taggedMembers(_ client: PostgresClient, prefix: String, tag: String) async throws -> [Int64] {
        let rows = try await client.query(
            """
            INSERT INTO members (card_number, tags, tier_id)
            SELECT \(prefix) || '-' || g, ARRAY[\(tag)], (SELECT min(tier_id) FROM tiers) FROM generate_series(1, 3) g
            RETURNING member_id
            """, logger: TestServices.logger)
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids.sorted()
    }

    /// A triggered bonus blast of 10 points over the three members tagged `tag`.
    private static func triggeredBlast(_ store: CampaignStore, tag: String) async throws -> (campaign: Int64, progress: CampaignProgress) {
        let segment = try await store.createSegment(name: "Segment \(tag)", definition: SegmentDefinition(tagsAny: [tag]))
        let campaign = try await store.createBonus(
            name: "Blast", segmentID: segment.id, bonusPoints: 10, expiresDays: 30, budgetPoints: nil, createdBy: "test")
        return (campaign, try await store.trigger(campaign))
    }

    @Test("a blast whose batches keep failing is retried after the idle wait, not in a tight loop")
    func failingBatchesWait() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await Self.taggedMembers(client, prefix: "RUN", tag: "run")
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let campaign = try await Self.triggeredBlast(store, tag: "run").campaign
            // Every batch fails (and counts its attempt in a sequence, which a rollback does not undo).
            try await client.query("CREATE SEQUENCE award_attempts", logger: TestServices.logger)
            try await client.query(
                """
                CREATE FUNCTION refuse_award() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM nextval('award_attempts');
                    RAISE EXCEPTION 'refused for the test';
                END $$
                """, logger: TestServices.logger)
            try await client.query(
                "CREATE TRIGGER refuse_award BEFORE INSERT ON campaign_awards FOR EACH ROW EXECUTE FUNCTION refuse_award()",
                logger: TestServices.logger)

            let runner = CampaignRunner(store: store, logger: TestServices.logger, idlePoll: .seconds(30), occasionPoll: .seconds(3_600))
            // No batch got through: nothing was done, so the service loop must wait before the next try.
            #expect(await runner.runOnce() == false)

            let loop = Task { try await runner.run() }
            try await Task.sleep(for: .milliseconds(1_500))
            loop.cancel()
            _ = try? await loop.value
            let attempts = try await Self.number(client, "SELECT last_value FROM award_attempts")
            #expect(attempts <= 3, "\(attempts) batch attempts in 1.5 s with a 30 s idle wait")
            #expect(try await store.progress(campaign)?.state == "running")
        }
    }

    @Test("a multiplier campaign whose window ended is marked finished by the runner's pass; a live one stays")
    func endedMultiplierFinishes() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let now = Date()
            func create(_ name: String, endsIn seconds: TimeInterval) async throws -> Int64 {
                try await store.createMultiplier(try CampaignMultiplier(
                    campaignID: 0, name: name, startsAt: now.addingTimeInterval(-7_200), endsAt: now.addingTimeInterval(seconds),
                    effect: .multiplier(bp: 20_000)), createdBy: "test")
            }
            let ended = try await create("Ended", endsIn: -60)
            let live = try await create("Live", endsIn: 3_600)
            let runner = CampaignRunner(store: store, logger: TestServices.logger)
            await runner.runOccasionsOnce()
            func state(_ id: Int64) async throws -> String {
                let rows = try await client.query("SELECT state || '/' || coalesce(finish_reason, '') FROM campaigns WHERE campaign_id = \(id)", logger: TestServices.logger)
                for try await value in rows.decode(String.self) { return value }
                return "missing"
            }
            #expect(try await state(ended) == "finished/window ended")
            #expect(try await state(live) == "scheduled/")
            // Finished, it still prices offline purchases made while it ran.
            #expect(try await store.multipliers(lookbackDays: 30).map(\.campaignID).contains(ended))
        }
    }

    @Test("a campaign's metric series are there while it runs and removed once it ends")
    func metricSeriesRemovedAtTheEnd() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await Self.taggedMembers(client, prefix: "MET", tag: "met")
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let (campaign, running) = try await Self.triggeredBlast(store, tag: "met")
            let registry = PrometheusCollectorRegistry()
            let factory = PrometheusMetricsFactory(registry: registry)
            func exposition() -> String {
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                return String(decoding: buffer, as: UTF8.self)
            }
            JobMetrics.recordCampaign(campaign, kind: "bonus", running, factory: factory)
            #expect(exposition().contains("campaign=\"\(campaign)\""))

            let runner = CampaignRunner(store: store, logger: TestServices.logger, metricsFactory: factory)
            await runner.runOnce()
            #expect(try await store.progress(campaign)?.state == "finished")
            #expect(!exposition().contains("campaign=\"\(campaign)\""), "\(exposition())")
        }
    }

    @Test("a segment refresh while a payment holds the segment's members waits for it instead of deadlocking")
    func segmentRefreshWaitsForPayment() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let ids = try await Self.taggedMembers(client, prefix: "DL", tag: "dl")
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let definition = SegmentDefinition(tagsAny: ["dl"])
            let segment = try await store.createSegment(name: "Deadlock", definition: definition)
            #expect(segment.members == 3)
            // Rewrite the two lowest members so a scan of the table meets them last (highest id first).
            for id in [ids[1], ids[0]] {
                try await client.query("UPDATE members SET updated_at = now() WHERE member_id = \(id)", logger: TestServices.logger)
            }
            // A payment locks members FOR UPDATE in member order (campaign_pay): the lowest first, then, while the
            // refresh waits, the highest.
            let (firstLocked, firstLockedSignal) = AsyncStream<Void>.makeStream()
            let payment = Task {
                try await client.withTransaction(logger: TestServices.logger) { connection in
                    try await connection.query("SELECT 1 FROM members WHERE member_id = \(ids[0]) FOR UPDATE", logger: TestServices.logger)
                    firstLockedSignal.yield()
                    try await eventually(within: .seconds(10)) { (try? await client.backendsWaitingOnLocks()) ?? 0 > 0 }
                    try await connection.query("SELECT 1 FROM members WHERE member_id = \(ids[2]) FOR UPDATE", logger: TestServices.logger)
                }
            }
            for await _ in firstLocked { break }
            let refresh = Task { try await store.refreshSegment(segment.id, definition: definition) }
            try await payment.value  // deadlock_detected here when the refresh locked the highest member first
            #expect(try await refresh.value == 3)
        }
    }
}
