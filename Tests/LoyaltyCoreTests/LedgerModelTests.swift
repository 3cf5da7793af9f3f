import Foundation
import LoyaltyCore
import Testing

/// Dates and small builders shared by the ledger tests.
enum LedgerFixture {
    static let start = Date(timeIntervalSince1970: 1_700_000_000)

    static func day(_ days: Double) -> Date { start.addingTimeInterval(days * 86_400) }

    /// A model with members 1, 2 and 3 registered.
    static func model() -> LedgerModel {
        var model = LedgerModel()
        for member in Int64(1)...3 { model.addMember(id: member) }
        return model
    }

    static func posting(_ bucket: LedgerBucket, _ amount: Int64, _ unit: LedgerUnit = .points) -> LedgerPosting {
        LedgerPosting(bucket: bucket, unit: unit, amount: amount)
    }

    static func piece(_ lotID: Int64, _ amount: Int64) -> LotConsumption { LotConsumption(lotID: lotID, amount: amount) }

    /// Accrues points available at `day(0)` (now), expiring at `expiresDay` (nil: never).
    @discardableResult
    static func earn(_ model: inout LedgerModel, member: Int64 = 1, _ amount: Int64, expiresDay: Double?,
                     unit: LedgerUnit = .points) throws -> LedgerEntry {
        try model.accrue(member: member, unit: unit, amount: amount, availableAt: day(0),
                         expiresAt: expiresDay.map(day), now: day(0))
    }
}

@Suite("Ledger model: worked examples")
struct LedgerModelTests {
    typealias F = LedgerFixture

    @Test func bucketsAndKindsUseTheStoredWords() {
        #expect(LedgerBucket.allCases.filter(\.isMemberBucket) == [.available, .pending, .held])
        #expect(LedgerBucket.allCases.map(\.rawValue)
            == ["available", "pending", "held", "issued", "redeemed", "expired", "adjustment"])
        #expect(LedgerEntryKind.allCases.map(\.rawValue)
            == ["accrual", "activation", "hold", "release", "redemption", "reversal", "expiry", "adjustment"])
    }

    @Test func addMemberIsIdempotent() {
        var model = LedgerModel()
        let added = model.addMember(id: 7)
        let once = model
        let addedAgain = model.addMember(id: 7)
        #expect(added && !addedAgain)
        #expect(model == once)
        #expect(model.members == [7])
        #expect(model.balances(member: 7, unit: .points) == .zero)
    }

    @Test func accrualAvailableNowCreatesAnAvailableLot() throws {
        var model = F.model()
        let entry = try model.accrue(member: 1, unit: .points, amount: 120, availableAt: F.day(0),
                                     expiresAt: F.day(365), now: F.day(0))
        #expect(entry.id == 1 && entry.kind == .accrual && entry.lotID == 1 && entry.amount == 120)
        #expect(entry.postings == [F.posting(.issued, -120), F.posting(.available, 120)])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 120))
        #expect(model.systemBalance(bucket: .issued, unit: .points) == -120)
        #expect(model.systemBalance(bucket: .available, unit: .points) == 120)
        #expect(model.balances(member: 1, unit: .cashbackMinor) == .zero)
        let lot = try #require(model.lot(id: 1))
        #expect(lot.state == .available && lot.remaining == 120 && lot.originalAmount == 120)
        #expect(lot.entryID == 1 && lot.expiresAt == F.day(365))
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func futureAccrualIsPendingUntilActivated() throws {
        var model = F.model()
        let entry = try model.accrue(member: 2, unit: .cashbackMinor, amount: 250, availableAt: F.day(14),
                                     expiresAt: nil, now: F.day(0))
        #expect(entry.postings == [F.posting(.issued, -250, .cashbackMinor), F.posting(.pending, 250, .cashbackMinor)])
        #expect(model.balances(member: 2, unit: .cashbackMinor) == LedgerBalances(pending: 250))
        #expect(model.activateDue(now: F.day(13)).isEmpty)
        let activations = model.activateDue(now: F.day(14))
        #expect(activations.count == 1)
        #expect(activations[0].kind == .activation && activations[0].lotID == 1 && activations[0].amount == 250)
        #expect(activations[0].postings == [F.posting(.pending, -250, .cashbackMinor),
                                            F.posting(.available, 250, .cashbackMinor)])
        #expect(model.balances(member: 2, unit: .cashbackMinor) == LedgerBalances(available: 250))
        #expect(model.lot(id: 1)?.state == .available)
        #expect(model.activateDue(now: F.day(30)).isEmpty)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func activationGoesInLotIdOrderAndSkipsEmptiedLots() throws {
        var model = F.model()
        try model.accrue(member: 3, unit: .points, amount: 10, availableAt: F.day(2), expiresAt: nil, now: F.day(0))
        try model.accrue(member: 1, unit: .points, amount: 20, availableAt: F.day(1), expiresAt: nil, now: F.day(0))
        let emptied = try model.accrue(member: 2, unit: .points, amount: 30, availableAt: F.day(1), expiresAt: nil,
                                       now: F.day(0))
        try model.reverseAccrual(entryID: emptied.id, amount: 30)
        let activations = model.activateDue(now: F.day(5))
        #expect(activations.map(\.lotID) == [1, 2])
        #expect(activations.map(\.id) == [5, 6])
        #expect(model.lot(id: 3)?.state == .available && model.lot(id: 3)?.remaining == 0)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func holdAndReleaseMoveBalancesButNotLots() throws {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: nil)
        let hold = try model.hold(member: 1, unit: .points, amount: 40, expiresAt: F.day(1))
        #expect(hold.kind == .hold && hold.holdID == 1 && hold.amount == 40)
        #expect(hold.postings == [F.posting(.available, -40), F.posting(.held, 40)])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 60, held: 40))
        #expect(model.lot(id: 1)?.remaining == 100)
        #expect(model.hold(id: 1)?.state == .active)
        let release = try model.release(holdID: 1)
        #expect(release.kind == .release && release.holdID == 1)
        #expect(release.postings == [F.posting(.held, -40), F.posting(.available, 40)])
        #expect(model.hold(id: 1)?.state == .released)
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 100))
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func redemptionSpendsSoonestExpiryFirstNeverExpiringLast() throws {
        var model = F.model()
        try F.earn(&model, 50, expiresDay: nil)  // lot 1
        try F.earn(&model, 30, expiresDay: 90)   // lot 2
        try F.earn(&model, 20, expiresDay: 30)   // lot 3
        try F.earn(&model, 10, expiresDay: 30)   // lot 4: same expiry as lot 3, higher id
        let entry = try model.redeem(member: 1, unit: .points, amount: 75)
        #expect(entry.kind == .redemption && entry.amount == 75 && entry.holdID == nil)
        #expect(entry.postings == [F.posting(.available, -75), F.posting(.redeemed, 75)])
        #expect(entry.consumption == [F.piece(3, 20), F.piece(4, 10), F.piece(2, 30), F.piece(1, 15)])
        #expect(model.lots(member: 1).map(\.remaining) == [35, 0, 0, 0])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 35))
        #expect(model.systemBalance(bucket: .redeemed, unit: .points) == 75)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func redemptionOfPartOfAHoldReturnsTheRest() throws {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: 10)
        try model.hold(member: 1, unit: .points, amount: 60, expiresAt: F.day(1))
        let entry = try model.redeem(member: 1, unit: .points, amount: 45, holdID: 1)
        #expect(entry.holdID == 1)
        #expect(entry.postings == [F.posting(.held, -60), F.posting(.available, 15), F.posting(.redeemed, 45)])
        #expect(entry.consumption == [F.piece(1, 45)])
        #expect(model.hold(id: 1)?.state == .committed)
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 55))
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func redemptionOfAWholeHoldHasNoZeroPosting() throws {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: nil)
        try model.hold(member: 1, unit: .points, amount: 60, expiresAt: F.day(1))
        let entry = try model.redeem(member: 1, unit: .points, amount: 60, holdID: 1)
        #expect(entry.postings == [F.posting(.held, -60), F.posting(.redeemed, 60)])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 40))
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func expiryTakesDueLotsButNotHeldPoints() throws {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: 10)  // lot 1
        try F.earn(&model, 50, expiresDay: 20)   // lot 2
        try model.hold(member: 1, unit: .points, amount: 130, expiresAt: F.day(30))
        #expect(try model.expireDue(now: F.day(9)).isEmpty)
        // Only 20 are available: lot 1 gives those 20, the 80 held stay.
        let first = try model.expireDue(now: F.day(10))
        #expect(first.count == 1)
        #expect(first[0].kind == .expiry && first[0].lotID == 1 && first[0].amount == 20)
        #expect(first[0].postings == [F.posting(.available, -20), F.posting(.expired, 20)])
        #expect(model.lot(id: 1)?.remaining == 80 && model.lot(id: 1)?.state == .available)
        try model.release(holdID: 1)
        let second = try model.expireDue(now: F.day(25))
        #expect(second.map(\.lotID) == [1, 2])
        #expect(second.map(\.amount) == [80, 50])
        #expect(model.lots(member: 1).map(\.state) == [.expired, .expired])
        #expect(model.balances(member: 1, unit: .points) == .zero)
        #expect(model.systemBalance(bucket: .expired, unit: .points) == 150)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func expiryGoesMemberByMemberInSpendingOrder() throws {
        var model = F.model()
        try F.earn(&model, member: 2, 5, expiresDay: 3)                       // lot 1
        try F.earn(&model, member: 1, 7, expiresDay: 4)                       // lot 2
        try F.earn(&model, member: 1, 9, expiresDay: 2, unit: .cashbackMinor) // lot 3
        try F.earn(&model, member: 1, 4, expiresDay: 2)                       // lot 4
        try F.earn(&model, member: 1, 6, expiresDay: nil)                     // lot 5: never expires
        let expired = try model.expireDue(now: F.day(5))
        #expect(expired.map(\.lotID) == [3, 4, 2, 1])
        #expect(expired.map(\.member) == [1, 1, 1, 2])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 6))
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func positiveAdjustmentCreatesAnAvailableLot() throws {
        var model = F.model()
        let entry = try model.adjust(member: 1, unit: .points, delta: 500, reason: "goodwill", actor: "support:ann",
                                     now: F.day(3), expiresAt: F.day(100))
        #expect(entry.kind == .adjustment && entry.amount == 500 && entry.lotID == 1)
        #expect(entry.reason == "goodwill" && entry.actor == "support:ann")
        #expect(entry.postings == [F.posting(.adjustment, -500), F.posting(.available, 500)])
        let lot = try #require(model.lot(id: 1))
        #expect(lot.availableAt == F.day(3) && lot.expiresAt == F.day(100) && lot.state == .available)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func negativeAdjustmentSpendsLikeARedemption() throws {
        var model = F.model()
        try F.earn(&model, 30, expiresDay: nil)
        try F.earn(&model, 30, expiresDay: 5)
        let entry = try model.adjust(member: 1, unit: .points, delta: -40, reason: "duplicate", actor: "admin",
                                     now: F.day(1))
        #expect(entry.amount == 40 && entry.lotID == nil)
        #expect(entry.postings == [F.posting(.available, -40), F.posting(.adjustment, 40)])
        #expect(entry.consumption == [F.piece(2, 30), F.piece(1, 10)])
        #expect(model.systemBalance(bucket: .adjustment, unit: .points) == 40)
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 20))
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func idsAreSequentialPerKindOfRecord() throws {
        var model = F.model()
        try F.earn(&model, 10, expiresDay: nil)
        try model.hold(member: 1, unit: .points, amount: 5, expiresAt: F.day(1))
        try F.earn(&model, member: 2, 10, expiresDay: nil)
        try model.hold(member: 2, unit: .points, amount: 5, expiresAt: F.day(1))
        #expect(model.entries.map(\.id) == [1, 2, 3, 4])
        #expect(model.allLots.map(\.id) == [1, 2])
        #expect(model.holds.map(\.id) == [1, 2])
        #expect(model.entry(id: 3)?.lotID == 2)
        #expect(model.entry(id: 5) == nil && model.lot(id: 0) == nil && model.hold(id: 3) == nil)
    }

    @Test func unitsAreKeptApart() throws {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: nil, unit: .points)
        try F.earn(&model, 999, expiresDay: nil, unit: .cashbackMinor)
        let entry = try model.redeem(member: 1, unit: .cashbackMinor, amount: 900)
        #expect(entry.consumption == [F.piece(2, 900)])
        #expect(model.balances(member: 1, unit: .points) == LedgerBalances(available: 100))
        #expect(model.balances(member: 1, unit: .cashbackMinor) == LedgerBalances(available: 99))
        #expect(model.systemBalance(bucket: .redeemed, unit: .points) == 0)
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func spendingOrderPutsNeverExpiringLast() {
        func lot(_ id: Int64, _ expires: Double?) -> (expiresAt: Date?, id: Int64) { (expires.map(F.day), id) }
        #expect(LedgerLot.spendsBefore(left: lot(9, 1), right: lot(1, 2)))
        #expect(LedgerLot.spendsBefore(left: lot(1, 2), right: lot(2, 2)))
        #expect(LedgerLot.spendsBefore(left: lot(9, 100), right: lot(1, nil)))
        #expect(!LedgerLot.spendsBefore(left: lot(1, nil), right: lot(9, 100)))
        #expect(LedgerLot.spendsBefore(left: lot(1, nil), right: lot(2, nil)))
    }
}
