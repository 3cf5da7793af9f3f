import Foundation
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

/// A purchase as the server books it: lines (id, category, paid, award); spend is the paid total.
private func purchase(
    _ txn: String, member: Int64, _ lines: [(id: String, category: String, paidMinor: Int64, award: Int64)]
) -> (POSCommit, POSCommitPricing) {
    // Whole milliseconds, as the server stamps a purchase: a time rounded up past the database's now() would fall
    // outside the member's spend window in its own transaction.
    let now = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1_000).rounded(.down) / 1_000)
    let commit = POSCommit(
        terminalID: "till-s", posTransactionID: txn, memberID: member,
        basket: Basket(currency: "EUR", lines: lines.map {
            BasketLine(lineID: $0.id, sku: $0.id, category: $0.category, quantity: 1, unitPriceMinor: $0.paidMinor)
        }),
        holdID: nil, redeemPoints: 0, purchasedAtMs: 0, purchasedAt: now)
    let paidMinor = lines.reduce(0) { $0 + $1.paidMinor }
    let pricing = POSCommitPricing(
        pricedAtTier: nil, unit: .points, award: lines.reduce(0) { $0 + $1.award },
        availableAt: now.addingTimeInterval(14 * 86_400), expiresAt: now.addingTimeInterval(730 * 86_400),
        rulesVersion: "test", explanationJSON: "{\"test\":true}", spendMinor: paidMinor, paidTotalMinor: paidMinor,
        lines: lines.map { CheckoutLine(lineID: $0.id, quantity: 1, paidMinor: $0.paidMinor, award: $0.award) })
    return (commit, pricing)
}

private func number(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
    let rows = try await client.query(query, logger: TestServices.logger)
    for try await value in rows.decode(Int64.self) { return value }
    return -1
}

private func spendMinor(_ client: PostgresClient, _ member: Int64) async throws -> Int64 {
    try await number(client, "SELECT member_spend_minor(\(member), 365, now())")
}

@Suite("Spend from every paid purchase and every return")
struct PurchaseSpendTests {
    @Test("a purchase that earns nothing counts toward tier spend (and upgrades) and as a welcome campaign's first purchase, alone and in a set-based batch")
    func zeroEarningPurchaseCounts() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            _ = try await TierStore(client: client, logger: TestServices.logger)
                .upsert(Tier(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 1_500, qualificationWindowDays: 365))
            let members = MemberStore(client: client, logger: TestServices.logger)
            let alone = try await members.create(NewMember(cardNumber: "SPEND-1"))
            let batchedHigh = try await members.create(NewMember(cardNumber: "SPEND-2"))
            let batchedLow = try await members.create(NewMember(cardNumber: "SPEND-3"))
            let campaigns = CampaignStore(client: client, logger: TestServices.logger)
            let welcome = try await campaigns.createOccasion(
                kind: "welcome", name: "Welcome", segmentID: nil, bonusPoints: 50, expiresDays: 30, budgetPoints: nil,
                startsAt: Date().addingTimeInterval(-3_600), endsAt: Date().addingTimeInterval(86_400), createdBy: "test")
            _ = try await campaigns.occasionBatch(welcome, batchSize: 100, actor: "test-runner")

            let writer = try await CheckoutWriter.connect(url: url, connections: 1, logger: TestServices.logger)
            // One commit goes one at a time; two commits of different members go through the set-based pass.
            let single = await writer.commitBatch([purchase("Z-1", member: alone, [("T", "tobacco", 2_000, 0)])])
            let batch = await writer.commitBatch([
                purchase("Z-2", member: batchedHigh, [("T", "tobacco", 2_000, 0)]),
                purchase("Z-3", member: batchedLow, [("T", "tobacco", 1_000, 0)]),
            ])
            await writer.close()
            for answer in single + batch {
                let result = try answer.get().result
                #expect(result.awarded == 0)
            }
            #expect(try single[0].get().result.tierChange?.to == "silver")
            #expect(try batch[0].get().result.tierChange?.to == "silver")
            #expect(try batch[1].get().result.tierChange == nil)
            #expect(try await spendMinor(client, alone) == 2_000)
            #expect(try await spendMinor(client, batchedHigh) == 2_000)
            #expect(try await spendMinor(client, batchedLow) == 1_000)
            let tiers = TierStore(client: client, logger: TestServices.logger)
            #expect(try await tiers.tierCode(memberID: alone) == "silver")
            #expect(try await tiers.tierCode(memberID: batchedLow) == "base")

            // First purchases for the welcome campaign. A payment waits for older writing transactions of the
            // server (other suites' included) to end: poll with a deadline.
            let all = [alone, batchedHigh, batchedLow]
            let deadline = ContinuousClock.now + .seconds(30)
            var awarded: Int64 = 0
            while awarded < 3 && ContinuousClock.now < deadline {
                _ = try await campaigns.occasionBatch(welcome, batchSize: 100, actor: "test-runner")
                awarded = try await number(client, "SELECT count(*) FROM campaign_awards WHERE campaign_id = \(welcome) AND member_id = ANY(\(all))")
                if awarded < 3 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(awarded == 3)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }

    @Test("a refund of lines that earned nothing lowers tier spend, whether or not the purchase earned elsewhere")
    func zeroEarningRefundLowersSpend() async throws {
        try await TestServices.withMigratedDatabase { url, client in
            let members = MemberStore(client: client, logger: TestServices.logger)
            let mixed = try await members.create(NewMember(cardNumber: "REFUND-1"))
            let excluded = try await members.create(NewMember(cardNumber: "REFUND-2"))
            let writer = try await CheckoutWriter.connect(url: url, connections: 1, logger: TestServices.logger)
            for answer in await writer.commitBatch([
                purchase("M-1", member: mixed, [("G", "grocery", 1_000, 10), ("T", "tobacco", 2_000, 0)]),
                purchase("X-1", member: excluded, [("T", "tobacco", 2_500, 0)]),
            ]) {
                _ = try answer.get()
            }
            #expect(try await spendMinor(client, mixed) == 3_000)
            #expect(try await spendMinor(client, excluded) == 2_500)

            let tobacco = try await writer.refund(POSRefund(
                terminalID: "till-s", refundID: "R-1", originalTerminalID: "till-s", originalPOSTransactionID: "M-1",
                returning: ["T": 1]))
            #expect(tobacco.result.awardReversed == 0 && tobacco.result.refundedMinor == 2_000)
            #expect(try await spendMinor(client, mixed) == 1_000)

            let all = try await writer.refund(POSRefund(
                terminalID: "till-s", refundID: "R-2", originalTerminalID: "till-s", originalPOSTransactionID: "X-1",
                returning: ["T": 1]))
            #expect(all.result.refundedMinor == 2_500)
            #expect(try await spendMinor(client, excluded) == 0)
            await writer.close()
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }
}
