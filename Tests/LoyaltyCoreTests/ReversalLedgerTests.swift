import Foundation
import LoyaltyCore
import Testing

@Suite("Ledger model: reversals of accruals and redemptions")
struct ReversalLedgerTests {
    typealias F = LedgerFixture

    @Test func accrualReversalTakesFromItsOwnAvailableLot() throws {
        var model = F.model()
        try F.earn(&model, 50, expiresDay: 5)                 // lot 1, spent first by redemptions
        let accrual = try F.earn(&model, 100, expiresDay: 60) // lot 2
        let reversal = try model.reverseAccrual(entryID: accrual.id, amount: 30)
        #expect(reversal.kind == .reversal && reversal.reversedEntryID == accrual.id && reversal.amount == 30)
        #expect(reversal.postings == [F.posting(.available, -30), F.posting(.issued, 30)])
        #expect(reversal.consumption == [F.piece(2, 30)] && reversal.unrecoveredAmount == 0)
        #expect(model.lots(member: 1).map(\.remaining) == [50, 70])
        #expect(model.reversedAmount(entryID: accrual.id) == 30)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func pendingAccrualReversalTakesFromPending() throws {
        var model = F.model()
        try F.earn(&model, 40, expiresDay: nil)
        let accrual = try model.accrue(member: 1, unit: .points, amount: 100, availableAt: F.day(14), expiresAt: nil,
                                       now: F.day(0))
        let reversal = try model.reverseAccrual(entryID: accrual.id, amount: 100)
        #expect(reversal.postings == [F.posting(.pending, -100), F.posting(.issued, 100)])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 40))
        #expect(model.lot(id: 2)?.remaining == 0 && model.lot(id: 2)?.state == .pending)
        #expect(model.activateDue(now: F.day(14)).isEmpty)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func partlySpentAccrualTakesFromOtherLotsThenRecordsTheRestAsUnrecovered() throws {
        var model = F.model()
        let accrual = try F.earn(&model, 100, expiresDay: 10) // lot 1
        try model.redeem(member: 1, unit: .points, amount: 80) // 20 left in lot 1
        try F.earn(&model, 30, expiresDay: nil)               // lot 2
        try F.earn(&model, 25, expiresDay: 20)                // lot 3
        // 20 from its own lot, then lot 3 (sooner expiry) and lot 2; 75 available in all, so 25 are unrecovered.
        let reversal = try model.reverseAccrual(entryID: accrual.id, amount: 100)
        #expect(reversal.consumption == [F.piece(1, 20), F.piece(3, 25), F.piece(2, 30)])
        #expect(reversal.postings == [F.posting(.available, -75), F.posting(.issued, 75)])
        #expect(reversal.unrecoveredAmount == 25)
        #expect(model.reversedAmount(entryID: accrual.id) == 100)
        #expect(model.balances(member: 1, unit: .points) == .zero)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func heldPointsAreNotTakenBack() throws {
        var model = F.model()
        let accrual = try F.earn(&model, 100, expiresDay: nil)
        try model.hold(member: 1, unit: .points, amount: 70, expiresAt: F.day(1))
        let reversal = try model.reverseAccrual(entryID: accrual.id, amount: 100)
        #expect(reversal.postings == [F.posting(.available, -30), F.posting(.issued, 30)])
        #expect(reversal.unrecoveredAmount == 70)
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(held: 70))
        #expect(model.lot(id: 1)?.remaining == 70)
        // The checkout can still go through with the held points.
        try model.redeem(member: 1, unit: .points, amount: 70, holdID: 1)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func aFullySpentAccrualReversalHasNoPostings() throws {
        var model = F.model()
        let accrual = try F.earn(&model, 100, expiresDay: nil)
        try model.redeem(member: 1, unit: .points, amount: 100)
        let reversal = try model.reverseAccrual(entryID: accrual.id, amount: 60)
        #expect(reversal.postings.isEmpty && reversal.consumption.isEmpty)
        #expect(reversal.unrecoveredAmount == 60)
        expectRefused(&model, .reversalExceedsRemaining(requested: 41, remaining: 40)) {
            try $0.reverseAccrual(entryID: accrual.id, amount: 41)
        }
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func expiredAccrualLotIsSkipped() throws {
        var model = F.model()
        let accrual = try F.earn(&model, 10, expiresDay: 1) // lot 1
        try F.earn(&model, 50, expiresDay: nil)            // lot 2
        try model.expireDue(now: F.day(2))
        let reversal = try model.reverseAccrual(entryID: accrual.id, amount: 10)
        #expect(reversal.consumption == [F.piece(2, 10)])
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func redemptionReversalRestoresLastConsumedFirst() throws {
        var model = F.model()
        try F.earn(&model, 30, expiresDay: 10) // lot 1
        try F.earn(&model, 30, expiresDay: 20) // lot 2
        try F.earn(&model, 30, expiresDay: 30) // lot 3
        let redemption = try model.redeem(member: 1, unit: .points, amount: 80)
        #expect(redemption.consumption == [F.piece(1, 30), F.piece(2, 30), F.piece(3, 20)])
        let first = try model.reverseRedemption(entryID: redemption.id, amount: 25)
        #expect(first.postings == [F.posting(.redeemed, -25), F.posting(.available, 25)])
        #expect(first.consumption == [F.piece(3, 20), F.piece(2, 5)] && first.reversedEntryID == redemption.id)
        // The next part continues where the first stopped.
        let second = try model.reverseRedemption(entryID: redemption.id, amount: 40)
        #expect(second.consumption == [F.piece(2, 25), F.piece(1, 15)])
        #expect(model.lots(member: 1).map(\.remaining) == [15, 30, 30])
        let last = try model.reverseRedemption(entryID: redemption.id, amount: 15)
        #expect(last.consumption == [F.piece(1, 15)])
        #expect(model.lots(member: 1).map(\.remaining) == [30, 30, 30])
        #expect(model.systemBalance(bucket: .redeemed, unit: .points) == 0)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func restoredPointsKeepTheirExpiryAndAnExpiredLotComesBack() throws {
        var model = F.model()
        try F.earn(&model, 40, expiresDay: 10) // lot 1
        let redemption = try model.redeem(member: 1, unit: .points, amount: 40)
        try model.adjust(member: 1, unit: .points, delta: 5, reason: "r", actor: "a", now: F.day(0),
                         expiresAt: F.day(10))  // lot 2, expires with lot 1
        try model.expireDue(now: F.day(11))
        #expect(model.lot(id: 2)?.state == .expired)
        try model.reverseRedemption(entryID: redemption.id, amount: 40)
        let lot = try #require(model.lot(id: 1))
        #expect(lot.state == .available && lot.remaining == 40 && lot.expiresAt == F.day(10))
        // Past its date, it expires at the next run.
        let expired = try model.expireDue(now: F.day(11))
        #expect(expired.map(\.lotID) == [1] && expired.map(\.amount) == [40])
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func reversingARedemptionThroughAHoldPaysBackToAvailable() throws {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: nil)
        try model.hold(member: 1, unit: .points, amount: 50, expiresAt: F.day(1))
        let redemption = try model.redeem(member: 1, unit: .points, amount: 50, holdID: 1)
        try model.reverseRedemption(entryID: redemption.id, amount: 50)
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 100))
        #expect(model.lot(id: 1)?.remaining == 100)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func tenProportionalReturnsReverseTheWholeAccrual() throws {
        var model = F.model()
        let accrual = try F.earn(&model, 1_003, expiresDay: nil)
        var returned: Int64 = 0
        for _ in 0..<10 {
            let points = try ProportionalReversal.pointsToReverse(
                linePoints: 1_003, lineQuantity: 10, returnedQuantityBefore: returned, returningNow: 1)
            try model.reverseAccrual(entryID: accrual.id, amount: points)
            returned += 1
        }
        #expect(model.reversedAmount(entryID: accrual.id) == 1_003)
        #expect(model.balances(member: 1, unit: .points) == .zero)
        #expect(model.checkInvariants().isEmpty)
    }
}
