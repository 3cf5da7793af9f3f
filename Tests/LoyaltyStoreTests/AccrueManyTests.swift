import Foundation
import LoyaltyCore
@testable import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// The ledger's accrual for many members at once (`ledger_accrue_many`), which campaign payments book through.
@Suite("Accrual for many members")
struct AccrueManyTests {
    private static func number(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
        let rows = try await client.query(query, logger: TestServices.logger)
        for try await value in rows.decode(Int64.self) { return value }
        return -1
    }

    /// The code a failing call is refused with (`LedgerStoreError.code`), or nil when it went through.
    private static func refusal(_ client: PostgresClient, _ query: PostgresQuery) async -> String? {
        do {
            _ = try await client.query(query, logger: TestServices.logger).collect()
            return nil
        } catch {
            return LedgerStoreError.from(error).code
        }
    }

    @Test("1,000 members accrue in one call: one entry, lot and balanced pair of postings each, versions moved, audit clean; a bad set writes nothing")
    func accruesManyInOneCall() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await client.query("""
                INSERT INTO members (card_number, tier_id)
                SELECT 'AM-' || lpad(i::text, 6, '0'), (SELECT min(tier_id) FROM tiers) FROM generate_series(1, 1002) AS i
                """)
            let first = try await Self.number(client, "SELECT min(member_id) FROM members")
            let blocked = first + 1_001
            try await client.query("UPDATE members SET status = 'blocked' WHERE member_id = \(blocked)")
            let members = (first..<(first + 1_000)).map { $0 }
            let amounts = members.map { 10 + $0 % 7 }

            let accrued = try await Self.number(client, """
                SELECT cardinality(ledger_accrue_many('campaign_bonus', \(Array(members.reversed())), 'points', \(Array(amounts.reversed())),
                    now(), now() + interval '30 days', now(), 'test', 'many', NULL, '{"why": "test"}'::jsonb))::int8
                """)
            #expect(accrued == 1_000)
            #expect(try await Self.number(client, "SELECT count(*)::int8 FROM journal_entries WHERE kind = 'campaign_bonus' AND reason = 'many'") == 1_000)
            #expect(try await Self.number(client, "SELECT count(*)::int8 FROM lots WHERE state = 'available' AND remaining_amount = original_amount") == 1_000)
            #expect(try await Self.number(client, "SELECT count(*)::int8 FROM postings") == 2_000)
            #expect(try await Self.number(client, """
                SELECT count(*)::int8 FROM accounts a JOIN members m USING (member_id)
                WHERE a.bucket = 'available' AND a.unit = 'points' AND m.member_id < \(first + 1_000)
                  AND (a.balance <> 10 + m.member_id % 7 OR m.ledger_version <> 1)
                """) == 0)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)

            // Refused as a whole: nothing of the set is written.
            let before = try await Self.number(client, "SELECT count(*)::int8 FROM journal_entries")
            #expect(await Self.refusal(client, "SELECT ledger_accrue_many('accrual', \([first, blocked]), 'points', \([5, 5] as [Int64]), now(), NULL, now(), 'test', NULL, NULL, NULL)") == "member_not_active")
            #expect(await Self.refusal(client, "SELECT ledger_accrue_many('accrual', \([first, 999_999_999] as [Int64]), 'points', \([5, 5] as [Int64]), now(), NULL, now(), 'test', NULL, NULL, NULL)") == "unknown_member")
            #expect(await Self.refusal(client, "SELECT ledger_accrue_many('accrual', \([first, first]), 'points', \([5, 5] as [Int64]), now(), NULL, now(), 'test', NULL, NULL, NULL)") == "invalid_amount")
            #expect(await Self.refusal(client, "SELECT ledger_accrue_many('accrual', \([first]), 'points', \([0] as [Int64]), now(), NULL, now(), 'test', NULL, NULL, NULL)") == "invalid_amount")
            #expect(await Self.refusal(client, "SELECT ledger_accrue_many('accrual', \([first]), 'points', \([5] as [Int64]), now(), now() - interval '1 day', now(), 'test', NULL, NULL, NULL)") == "invalid_dates")
            #expect(try await Self.number(client, "SELECT count(*)::int8 FROM journal_entries") == before)
            #expect(try await Self.number(client, "SELECT ledger_version FROM members WHERE member_id = \(first)") == 1)
        }
    }

    @Test("a campaign bonus and a purchase's award book the same way: entry, lot, postings from issued, balance")
    func bonusBooksLikeAnAccrual() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            try await client.query("""
                INSERT INTO members (card_number, tags, tier_id)
                SELECT 'SB-' || i, ARRAY['same'], (SELECT min(tier_id) FROM tiers) FROM generate_series(1, 2) AS i
                """)
            let first = try await Self.number(client, "SELECT min(member_id) FROM members")
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            _ = try await ledger.accrue(AccrualRequest(
                memberID: first + 1, unit: .points, amount: 100, availableAt: Date(), expiresAt: Date().addingTimeInterval(86_400 * 30),
                occurredAt: Date(), actor: "till"), key: try IdempotencyKey(scope: "test", key: "same-1"))
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let segment = try await store.createSegment(name: "Same", definition: SegmentDefinition(tagsAny: ["same"]))
            let campaign = try await store.createBonus(
                name: "Same", segmentID: segment.id, bonusPoints: 100, expiresDays: 30, budgetPoints: nil, createdBy: "test")
            _ = try await store.trigger(campaign)
            #expect(try await store.awardBatch(campaign, batchSize: 10, actor: "runner").paid == 2)
            // Per entry: its lot, and postings of +amount to the member and -amount from issued (nothing else).
            #expect(try await Self.number(client, """
                SELECT count(*)::int8 FROM journal_entries e
                WHERE e.kind IN ('accrual', 'campaign_bonus')
                  AND (SELECT count(*) FROM lots l WHERE l.entry_id = e.entry_id AND l.original_amount = e.amount) = 1
                  AND (SELECT array_agg(a.bucket || ':' || p.amount ORDER BY p.amount) FROM postings p
                       JOIN accounts a USING (account_id) WHERE p.entry_id = e.entry_id) = ARRAY['issued:-100', 'available:100']
                """) == 3)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }
}
