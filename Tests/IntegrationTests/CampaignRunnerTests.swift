import Foundation
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Campaign runner")
struct CampaignRunnerTests {
    private static func number(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
        let rows = try await client.query(query, logger: TestServices.logger)
        for try await value in rows.decode(Int64.self) { return value }
        return -1
    }

    @Test("a blast whose batches keep failing is retried after the idle wait, not in a tight loop")
    func failingBatchesWait() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await client.query(
                """
                INSERT INTO members (card_number, tags, tier_id)
                SELECT 'RUN-' || g, ARRAY['run'], (SELECT min(tier_id) FROM tiers) FROM generate_series(1, 3) g
                """, logger: TestServices.logger)
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let segment = try await store.createSegment(name: "Run", definition: SegmentDefinition(tagsAny: ["run"]))
            let campaign = try await store.createBonus(
                name: "Blast", segmentID: segment.id, bonusPoints: 10, expiresDays: 30, budgetPoints: nil, createdBy: "test")
            _ = try await store.trigger(campaign)
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
}
