import Foundation
import Logging
import LoyaltyCache
import LoyaltyCore
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import NIOCore
import POSProtocol
import SwiftProtobuf
import Synchronization
import Testing

/// The members of a checkout over the in-memory ledger: the system of record is the ledger; the "cache" remembers
/// the tier each member had when a write last answered, so it goes stale when the tier moves behind its back.
final class LedgerBackedMembers: CheckoutMembers {
    let ledger: InMemoryCheckoutLedger
    private let cachedTiers = Mutex<[Int64: String]>([:])
    /// Snapshots read from the system of record (not the cache).
    let storedReads = Atomic<Int>(0)
    /// Nil: every read reports the tier it really has. Set: the system of record lags (a tier that keeps moving).
    let staleTierAlways = Mutex<String?>(nil)

    init(ledger: InMemoryCheckoutLedger) { self.ledger = ledger }

    func cache(memberID: Int64, tierCode: String) { cachedTiers.withLock { $0[memberID] = tierCode } }

    func pricingSnapshot(memberID: Int64, cacheFirst: Bool, fillCache: Bool) async throws(LedgerStoreError) -> CachedMember? {
        guard let row = ledger.member(memberID) else { return nil }
        if let stale = staleTierAlways.withLock({ $0 }) { return Self.snapshot(row, tierCode: stale) }
        if cacheFirst, let cached = cachedTiers.withLock({ $0[memberID] }) { return Self.snapshot(row, tierCode: cached) }
        storedReads.add(1, ordering: .relaxed)
        if fillCache { cache(memberID: memberID, tierCode: row.tierCode) }
        return Self.snapshot(row, tierCode: row.tierCode)
    }

    func refresh(row: CheckoutMemberRow, facts: (tierCode: String, facts: CachedMember.PricingFacts)?) async {
        cache(memberID: row.memberID, tierCode: row.tierCode)
    }

    static func snapshot(_ row: CheckoutMemberRow, tierCode: String) -> CachedMember {
        CachedMember(
            memberID: row.memberID, tierCode: tierCode, tierName: tierCode, status: row.status,
            points: .init(available: row.points.available, pending: row.points.pending, held: row.points.held),
            cashbackMinor: .init(available: row.cashbackMinor.available, pending: row.cashbackMinor.pending, held: row.cashbackMinor.held),
            ledgerVersion: row.ledgerVersion,
            pricing: .init(tierRateOverrideBp: nil, campaignSegments: [], campaignsVersion: 0))
    }
}

/// The checkout's policy on the in-memory ledger: no PostgreSQL, no Redis, no sockets.
@Suite("Checkout policy on the in-memory ledger")
struct CheckoutPolicyTests {
    static let tiers: [InMemoryCheckoutLedger.Tier] = [
        .base,
        .init(code: "silver", name: "Silver", rank: 1, qualificationSpendMinor: 1_000_000, qualificationWindowDays: 365),
    ]

    struct Fixture {
        let ledger = InMemoryCheckoutLedger(tiers: CheckoutPolicyTests.tiers)
        let members: LedgerBackedMembers
        let checkout: Checkout
        let deadline = ContinuousClock.now + .seconds(30)

        init() throws {
            members = LedgerBackedMembers(ledger: ledger)
            checkout = Checkout(
                ledger: ledger, members: members,
                rules: try CurrentRules(directory: TestServices.packageRoot.appendingPathComponent("rules"), logger: TestServices.logger),
                campaigns: ActiveCampaigns(store: nil, logger: TestServices.logger), logger: TestServices.logger)
        }

        func member(_ id: Int64, points: Int64 = 0) throws {
            ledger.addMember(id: id)
            if points > 0 { try ledger.adjust(memberID: id, delta: points, expiresAt: nil) }
        }

        func commit(_ request: Loyalty_Pos_V1_CommitRequest, terminal: String = "till-1") async -> POSOutcome {
            await checkout.commit(request, terminalID: terminal, deadline: deadline)
        }
    }

    /// "ok", or "status/code" of a refusal.
    static func outcome(_ outcome: POSOutcome) -> String {
        guard outcome.status != .ok else { return "ok" }
        let detail = try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: outcome.payload))
        return "\(outcome.status)/\(detail?.code ?? "")"
    }

    static func decoded<Message: SwiftProtobuf.Message>(_ outcome: POSOutcome, as: Message.Type) throws -> Message {
        try #require(outcome.status == .ok, "refused: \(Self.outcome(outcome))")
        return try Message(serializedBytes: Array(buffer: outcome.payload))
    }

    @Test("a stale cached tier costs one re-price from the system of record, and the commit is priced at the new tier")
    func repricesOnceOnTierChange() async throws {
        let f = try Fixture()
        try f.member(1)
        f.members.cache(memberID: 1, tierCode: "base")
        f.ledger.setTier(memberID: 1, code: "silver")

        let committed = try Self.decoded(await f.commit(commitRequest("T1", member: 1)), as: Loyalty_Pos_V1_CommitResponse.self)
        #expect(f.members.storedReads.load(ordering: .relaxed) == 1)
        #expect(committed.tierCode == "silver")
        // The quote (from the cache the commit refreshed) prices at silver too: the commit was not priced at base.
        let quote = try Self.decoded(await f.checkout.quote(.with { $0.memberID = 1; $0.basket = sampleBasket }),
                                     as: Loyalty_Pos_V1_QuoteResponse.self)
        #expect(committed.awarded == quote.totalAward)
        #expect(committed.awarded == 100)  // silver earns 1.25 points per EUR: 25 + 2 × 37.5 floored per line
    }

    @Test("a tier that keeps moving is priced at most pricingAttempts times, then ABORTED tier_changed with nothing booked")
    func tierThatKeepsMovingAborts() async throws {
        let f = try Fixture()
        try f.member(1)
        f.ledger.setTier(memberID: 1, code: "silver")
        f.members.staleTierAlways.withLock { $0 = "base" }

        #expect(Self.outcome(await f.commit(commitRequest("T1", member: 1))) == "aborted/tier_changed")
        #expect(f.ledger.member(1)?.points == MemberBalances(available: 0, pending: 0, held: 0))
    }

    @Test("redemption bounds: under the minimum or over the basket's cap is refused before the ledger; over the balance by the ledger")
    func redemptionBounds() async throws {
        let f = try Fixture()
        try f.member(1, points: 3_000)
        try f.member(2, points: 600)
        // sampleBasket: 50.00 EUR redeemable (the tobacco line is not), at most half of it in points: 2,500.
        #expect(Self.outcome(await f.commit(commitRequest("low", member: 1, redeem: 499))) == "failedPrecondition/redemption_not_allowed")
        #expect(Self.outcome(await f.commit(commitRequest("high", member: 1, redeem: 2_501))) == "failedPrecondition/redemption_not_allowed")
        #expect(f.ledger.member(1)?.points.available == 3_000)
        #expect(Self.outcome(await f.commit(commitRequest("poor", member: 2, redeem: 700))) == "failedPrecondition/insufficient_balance")
        #expect(f.ledger.member(2)?.points.available == 600)

        let paid = try Self.decoded(await f.commit(commitRequest("max", member: 1, redeem: 2_500)), as: Loyalty_Pos_V1_CommitResponse.self)
        #expect(paid.redeemed == 2_500)
        #expect(paid.points.available == 500)
        #expect(paid.points.pending == 80)
    }

    @Test("a commit sent again is answered from its booking; the same id with another basket is ALREADY_EXISTS")
    func replay() async throws {
        let f = try Fixture()
        try f.member(1, points: 1_000)
        let first = try Self.decoded(await f.commit(commitRequest("T1", member: 1, redeem: 500)), as: Loyalty_Pos_V1_CommitResponse.self)
        let again = try Self.decoded(await f.commit(commitRequest("T1", member: 1, redeem: 500)), as: Loyalty_Pos_V1_CommitResponse.self)
        #expect(!first.replayed && again.replayed)
        #expect(again.awarded == first.awarded && again.redeemed == first.redeemed && again.points == first.points)
        #expect(f.ledger.member(1)?.points == MemberBalances(available: 500, pending: 80, held: 0))

        var other = sampleBasket
        other.lines.removeLast()
        #expect(Self.outcome(await f.commit(commitRequest("T1", member: 1, redeem: 500, basket: other))) == "alreadyExists/idempotency_conflict")
        // Another terminal's T1 is another purchase.
        #expect(Self.outcome(await f.commit(commitRequest("T1", member: 1), terminal: "till-2")) == "ok")
    }

    @Test("a hold is redeemed only by its own checkout; cancel releases it once")
    func holdBinding() async throws {
        let f = try Fixture()
        try f.member(1, points: 2_000)
        let held = try Self.decoded(
            await f.checkout.hold(.with { $0.posTransactionID = "H1"; $0.memberID = 1; $0.points = 1_000 }, terminalID: "till-1", deadline: f.deadline),
            as: Loyalty_Pos_V1_HoldResponse.self)
        #expect(held.points.held == 1_000 && held.points.available == 1_000)
        #expect(Self.outcome(await f.commit(commitRequest("H2", member: 1, holdID: held.holdID, redeem: 500))) == "invalidArgument/hold_mismatch")
        #expect(Self.outcome(await f.commit(commitRequest("H1", member: 1, holdID: held.holdID, redeem: 500), terminal: "till-2"))
            == "invalidArgument/hold_mismatch")
        var cancel = cancelRequest("H1")
        cancel.holdID = held.holdID + 1
        #expect(Self.outcome(await f.checkout.cancel(cancel, terminalID: "till-1", deadline: f.deadline)) == "invalidArgument/hold_mismatch")
        cancel.holdID = held.holdID
        let released = try Self.decoded(await f.checkout.cancel(cancel, terminalID: "till-1", deadline: f.deadline), as: Loyalty_Pos_V1_CancelResponse.self)
        #expect(released.cancelled == "hold" && released.points.available == 2_000 && released.points.held == 0)
        #expect(Self.outcome(await f.commit(commitRequest("H1", member: 1, holdID: held.holdID, redeem: 500))) == "failedPrecondition/hold_not_active")
    }

    @Test("a partial refund takes back what the returned lines earned and pays back redeemed points in proportion")
    func partialRefund() async throws {
        let f = try Fixture()
        try f.member(1, points: 1_000)
        _ = try Self.decoded(await f.commit(commitRequest("T1", member: 1, redeem: 600)), as: Loyalty_Pos_V1_CommitResponse.self)
        let refunded = try Self.decoded(
            await f.checkout.refund(refundRequest("R1", of: "T1", [("B", 1)]), terminalID: "till-1", deadline: f.deadline),
            as: Loyalty_Pos_V1_RefundResponse.self)
        // B paid 30.00 of 60.00 and earned 60 (own brand, x2): half the redemption comes back.
        #expect(refunded.awardReversed == 60 && refunded.pointsRestored == 300 && refunded.refundedMinor == 3_000)
        #expect(refunded.points.available == 700 && refunded.points.pending == 20)
        #expect(Self.outcome(await f.checkout.refund(refundRequest("R2", of: "T1", [("B", 1)]), terminalID: "till-1", deadline: f.deadline))
            == "invalidArgument/refund_exceeds_purchase")
    }
}
