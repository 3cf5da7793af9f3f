import Foundation
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

@Suite("Tiers in PostgreSQL")
struct TierStoreTests {
    func ladder(_ client: PostgresClient) async throws -> TierStore {
        let tiers = TierStore(client: client, logger: TestServices.logger)
        _ = try await tiers.upsert(Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 10_000, qualificationWindowDays: 365))
        _ = try await tiers.upsert(Tier(code: "gold", name: "Gold", rank: 2, qualificationSpendMinor: 50_000, qualificationWindowDays: 365))
        return tiers
    }

    func purchase(_ f: LedgerFixture, _ member: Int64, spendMinor: Int64) async throws -> LedgerReceipt {
        let now = Date()
        return try await f.ledger.accrue(
            AccrualRequest(memberID: member, unit: .points, amount: max(spendMinor / 100, 1), availableAt: now, expiresAt: nil,
                           occurredAt: now, actor: "till-1", spendMinor: spendMinor),
            key: f.key())
    }

    @Test("the purchase that crosses a threshold upgrades the member at once, and the change is recorded")
    func upgradeOnPurchase() async throws {
        try await withLedger { f in
            let tiers = try await ladder(f.client)
            let member = try await f.newMember()
            let first = try await purchase(f, member, spendMinor: 6_000)
            #expect(first.tierChange == nil)
            #expect(try await tiers.tierCode(memberID: member) == "base")
            let crossing = try await purchase(f, member, spendMinor: 5_000)
            #expect(crossing.tierChange?.from == "base")
            #expect(crossing.tierChange?.to == "silver")
            #expect(try await tiers.tierCode(memberID: member) == "silver")
            // A big purchase can jump straight to the highest qualifying tier.
            let jump = try await purchase(f, member, spendMinor: 40_000)
            #expect(jump.tierChange?.to == "gold")
            #expect(try await f.count("tier_changes") == 2)
        }
    }

    @Test("a member below threshold keeps the tier until the review, then drops one rank; a recent change is spared")
    func downgradeAtReviewOneRank() async throws {
        try await withLedger { f in
            let tiers = try await ladder(f.client)
            let lapsed = try await f.newMember()
            let recent = try await f.newMember()
            for member in [lapsed, recent] {
                try await f.client.query(
                    "UPDATE members SET tier_id = (SELECT tier_id FROM tiers WHERE code = 'gold') WHERE member_id = \(member)")
            }
            try await f.client.query(
                "UPDATE members SET tier_changed_at = now() - interval '90 days', tier_reviewed_at = now() - interval '40 days' WHERE member_id = \(lapsed)")
            try await f.client.query(
                "UPDATE members SET tier_changed_at = now() - interval '5 days', tier_reviewed_at = now() - interval '40 days' WHERE member_id = \(recent)")
            // Small purchases do not downgrade anybody.
            _ = try await purchase(f, lapsed, spendMinor: 1_000)
            #expect(try await tiers.tierCode(memberID: lapsed) == "gold")

            let versionBefore = try await f.ledgerVersion(lapsed)
            let result = try await tiers.reviewBatch(batchSize: 100, reviewDays: 30, graceDays: 30)
            #expect(result.reviewed == 2)
            #expect(result.downgraded == 1)
            // The changed member is named with its raised version, so the server can mark cached snapshots old.
            #expect(result.changed.map(\.memberID) == [lapsed])
            #expect(result.changed.first?.ledgerVersion == versionBefore + 1)
            #expect(try await f.ledgerVersion(lapsed) == versionBefore + 1)
            #expect(try await tiers.tierCode(memberID: lapsed) == "silver")  // one rank, not straight to base
            #expect(try await tiers.tierCode(memberID: recent) == "gold")
            // Reviewed members are not reviewed again until the next period.
            #expect(try await tiers.reviewBatch(batchSize: 100, reviewDays: 30, graceDays: 30).reviewed == 0)
        }
    }

    @Test("the review preview shows each due member's decision as of now or a later instant, changes nothing, and the review then does just that")
    func reviewPreview() async throws {
        try await withLedger { f in
            let tiers = try await ladder(f.client)
            let lapsed = try await f.newMember()
            let recent = try await f.newMember()
            let climber = try await f.newMember()
            let notDue = try await f.newMember()
            for member in [lapsed, recent] {
                try await f.client.query(
                    "UPDATE members SET tier_id = (SELECT tier_id FROM tiers WHERE code = 'gold') WHERE member_id = \(member)")
            }
            try await f.client.query(
                "UPDATE members SET tier_changed_at = now() - interval '90 days', tier_reviewed_at = now() - interval '40 days' WHERE member_id = \(lapsed)")
            try await f.client.query(
                "UPDATE members SET tier_changed_at = now() - interval '5 days', tier_reviewed_at = now() - interval '40 days' WHERE member_id = \(recent)")
            _ = try await purchase(f, climber, spendMinor: 12_000)  // upgraded to silver at once...
            // ...and set back by hand, so the review has an upgrade to make.
            try await f.client.query(
                "UPDATE members SET tier_id = (SELECT tier_id FROM tiers WHERE code = 'base'), tier_reviewed_at = now() - interval '40 days' WHERE member_id = \(climber)")
            let changesBefore = try await f.count("tier_changes")

            let now = try await tiers.reviewPreview(reviewDays: 30, graceDays: 30, asOf: Date(), after: nil, limit: 100)
            #expect(now.nextCursor == nil)
            #expect(now.decisions.map(\.memberID) == [lapsed, recent, climber])  // member id order; notDue absent
            let byMember = Dictionary(uniqueKeysWithValues: now.decisions.map { ($0.memberID, $0) })
            #expect(byMember[lapsed].map { [$0.action, $0.currentTier, $0.newTier] } == ["downgrade", "gold", "silver"])
            #expect(byMember[lapsed]?.qualifyingSpendMinor == 0)
            #expect(byMember[lapsed]?.reason.contains("down one rank after 30 grace days") == true)
            #expect(byMember[recent].map { [$0.action, $0.currentTier, $0.newTier] } == ["keep", "gold", "gold"])
            #expect(byMember[recent]?.reason.contains("grace days") == true)
            #expect(byMember[climber].map { [$0.action, $0.currentTier, $0.newTier] } == ["upgrade", "base", "silver"])
            #expect(byMember[climber]?.qualifyingSpendMinor == 12_000)

            // Nothing changed: tiers, history and review times are as before.
            #expect(try await f.count("tier_changes") == changesBefore)
            #expect(try await tiers.tierCode(memberID: lapsed) == "gold")
            #expect(try await tiers.tierCode(memberID: climber) == "base")

            // Thirty days on, the member reviewed today is due, and the recent change is past its grace.
            let later = try await tiers.reviewPreview(
                reviewDays: 30, graceDays: 30, asOf: Date().addingTimeInterval(31 * 86_400), after: nil, limit: 2)
            #expect(later.decisions.map(\.memberID) == [lapsed, recent])
            #expect(later.decisions.last?.action == "downgrade")
            let rest = try await tiers.reviewPreview(
                reviewDays: 30, graceDays: 30, asOf: Date().addingTimeInterval(31 * 86_400), after: later.nextCursor, limit: 2)
            #expect(rest.decisions.map(\.memberID) == [climber, notDue])
            #expect(rest.decisions.last.map { [$0.action, $0.currentTier, $0.newTier] } == ["keep", "base", "base"])

            // The review does what the preview said.
            let result = try await tiers.reviewBatch(batchSize: 100, reviewDays: 30, graceDays: 30)
            #expect(result.reviewed == 3 && result.upgraded == 1 && result.downgraded == 1)
            for decision in now.decisions {
                #expect(try await tiers.tierCode(memberID: decision.memberID) == decision.newTier)
            }
            #expect(try await tiers.reviewPreview(reviewDays: 30, graceDays: 30, asOf: Date(), after: nil, limit: 100).decisions.isEmpty)
        }
    }

    @Test("returns lower qualifying spend")
    func refundsCount() async throws {
        try await withLedger { f in
            let tiers = try await ladder(f.client)
            let member = try await f.newMember()
            let big = try await purchase(f, member, spendMinor: 9_000)
            _ = try await f.ledger.reverse(
                ReversalRequest(originalEntryID: big.entryId, amount: 40, occurredAt: Date(), actor: "till-1", refundedSpendMinor: 4_000),
                key: f.key())
            let next = try await purchase(f, member, spendMinor: 2_000)  // 9,000 − 4,000 + 2,000 = 7,000 < 10,000
            #expect(next.tierChange == nil)
            #expect(try await tiers.tierCode(memberID: member) == "base")
        }
    }

    @Test("thresholds must rise with rank, the lowest tier needs no spend, and a tier in use cannot go")
    func ladderValidated() async throws {
        try await withLedger { f in
            let tiers = try await ladder(f.client)
            await #expect(throws: TierError.thresholdsNotIncreasing(lower: "gold", higher: "platinum")) {
                try await tiers.upsert(Tier(code: "platinum", name: "Platinum", rank: 3, qualificationSpendMinor: 10_000, qualificationWindowDays: 365))
            }
            await #expect(throws: TierError.self) {
                try await tiers.upsert(Tier(code: "base", name: "Member", rank: 0, qualificationSpendMinor: 1, qualificationWindowDays: 365))
            }
            await #expect(throws: TierError.self) {
                try await tiers.upsert(Tier(code: "Bad Code", name: "x", rank: 5, qualificationSpendMinor: 90_000, qualificationWindowDays: 365))
            }
            _ = try await f.newMember()
            await #expect(throws: TierError.inUse("base", members: 1)) { try await tiers.delete(code: "base") }
            try await tiers.delete(code: "gold")
            #expect(try await tiers.list().map(\.code) == ["base", "silver"])
        }
    }
}
