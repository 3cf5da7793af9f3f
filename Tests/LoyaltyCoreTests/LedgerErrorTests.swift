import Foundation
import LoyaltyCore
import Testing

/// Runs `operation`, expects it to throw `expected`, and expects the model to be exactly as before.
func expectRefused(
    _ model: inout LedgerModel, _ expected: LedgerError, sourceLocation: SourceLocation = #_sourceLocation,
    _ operation: (inout LedgerModel) throws -> Void
) {
    let before = model
    do {
        try operation(&model)
        Issue.record("expected \(expected), but the operation succeeded", sourceLocation: sourceLocation)
    } catch {
        #expect(error as? LedgerError == expected, sourceLocation: sourceLocation)
    }
    #expect(model == before, "a refused operation changed the model", sourceLocation: sourceLocation)
}

@Suite("Ledger model: every error, and a refused operation changes nothing")
struct LedgerErrorTests {
    typealias F = LedgerFixture

    /// Member 1 with 100 available points (lot 1, entry 1) and 40 of them held (hold 1, entry 2).
    func funded() throws -> LedgerModel {
        var model = F.model()
        try F.earn(&model, 100, expiresDay: 30)
        try model.hold(member: 1, unit: .points, amount: 40, expiresAt: F.day(1))
        return model
    }

    @Test func nonPositiveAmounts() throws {
        var model = try funded()
        expectRefused(&model, .nonPositiveAmount(0)) {
            try $0.accrue(member: 1, unit: .points, amount: 0, availableAt: F.day(0), expiresAt: nil, now: F.day(0))
        }
        expectRefused(&model, .nonPositiveAmount(-5)) {
            try $0.accrue(member: 1, unit: .points, amount: -5, availableAt: F.day(0), expiresAt: nil, now: F.day(0))
        }
        expectRefused(&model, .nonPositiveAmount(0)) {
            try $0.hold(member: 1, unit: .points, amount: 0, expiresAt: F.day(1))
        }
        expectRefused(&model, .nonPositiveAmount(-1)) { try $0.redeem(member: 1, unit: .points, amount: -1) }
        expectRefused(&model, .nonPositiveAmount(0)) { try $0.redeem(member: 1, unit: .points, amount: 0, holdID: 1) }
        expectRefused(&model, .nonPositiveAmount(0)) { try $0.reverseAccrual(entryID: 1, amount: 0) }
        expectRefused(&model, .nonPositiveAmount(-3)) { try $0.reverseRedemption(entryID: 1, amount: -3) }
        expectRefused(&model, .nonPositiveAmount(0)) {
            try $0.adjust(member: 1, unit: .points, delta: 0, reason: "r", actor: "a", now: F.day(0))
        }
    }

    @Test func overflowIsRefusedNotWrapped() throws {
        var model = F.model()
        try F.earn(&model, .max, expiresDay: nil)
        // The member's available balance would pass Int64.max.
        expectRefused(&model, .overflow) { try F.earn(&$0, 1, expiresDay: nil) }
        // So would its total over buckets (available + pending).
        expectRefused(&model, .overflow) {
            try $0.accrue(member: 1, unit: .points, amount: 1, availableAt: F.day(9), expiresAt: nil, now: F.day(0))
        }
        expectRefused(&model, .overflow) {
            try $0.adjust(member: 1, unit: .points, delta: 1, reason: "r", actor: "a", now: F.day(0))
        }
        // The issued system bucket is at -Int64.max; one more point reaches Int64.min, a second would pass it.
        try F.earn(&model, member: 2, 1, expiresDay: nil)
        #expect(model.systemBalance(bucket: .issued, unit: .points) == .min)
        expectRefused(&model, .overflow) { try F.earn(&$0, member: 3, 1, expiresDay: nil) }
        // The magnitude of Int64.min does not fit in an Int64.
        expectRefused(&model, .overflow) {
            try $0.adjust(member: 1, unit: .points, delta: .min, reason: "r", actor: "a", now: F.day(0))
        }
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func expiryOverflowOfTheExpiredBucketIsRefused() throws {
        var model = F.model()
        try F.earn(&model, member: 1, .max, expiresDay: 1)
        try model.expireDue(now: F.day(2))
        try model.adjust(member: 2, unit: .points, delta: 1, reason: "r", actor: "a", now: F.day(0),
                         expiresAt: F.day(1))
        expectRefused(&model, .overflow) { _ = try $0.expireDue(now: F.day(2)) }
    }

    @Test func unknownMembers() throws {
        var model = try funded()
        expectRefused(&model, .unknownMember(9)) {
            try $0.accrue(member: 9, unit: .points, amount: 1, availableAt: F.day(0), expiresAt: nil, now: F.day(0))
        }
        expectRefused(&model, .unknownMember(9)) { try $0.hold(member: 9, unit: .points, amount: 1, expiresAt: F.day(1)) }
        expectRefused(&model, .unknownMember(9)) { try $0.redeem(member: 9, unit: .points, amount: 1) }
        expectRefused(&model, .unknownMember(9)) {
            try $0.adjust(member: 9, unit: .points, delta: 1, reason: "r", actor: "a", now: F.day(0))
        }
    }

    @Test func insufficientBalanceCountsOnlyAvailablePoints() throws {
        var model = try funded()
        try model.accrue(member: 1, unit: .points, amount: 500, availableAt: F.day(9), expiresAt: nil, now: F.day(0))
        // 100 earned, 40 held, 500 pending: 60 can be spent.
        expectRefused(&model, .insufficientBalance(requested: 61, available: 60)) {
            try $0.hold(member: 1, unit: .points, amount: 61, expiresAt: F.day(1))
        }
        expectRefused(&model, .insufficientBalance(requested: 61, available: 60)) {
            try $0.redeem(member: 1, unit: .points, amount: 61)
        }
        expectRefused(&model, .insufficientBalance(requested: 61, available: 60)) {
            try $0.adjust(member: 1, unit: .points, delta: -61, reason: "r", actor: "a", now: F.day(0))
        }
        expectRefused(&model, .insufficientBalance(requested: 1, available: 0)) {
            try $0.redeem(member: 1, unit: .cashbackMinor, amount: 1)
        }
    }

    @Test func holdErrors() throws {
        var model = try funded()
        try F.earn(&model, member: 2, 10, expiresDay: nil)
        expectRefused(&model, .unknownHold(7)) { try $0.release(holdID: 7) }
        expectRefused(&model, .unknownHold(0)) { try $0.redeem(member: 1, unit: .points, amount: 1, holdID: 0) }
        expectRefused(&model, .holdMismatch(holdID: 1)) { try $0.redeem(member: 2, unit: .points, amount: 1, holdID: 1) }
        expectRefused(&model, .holdMismatch(holdID: 1)) {
            try $0.redeem(member: 1, unit: .cashbackMinor, amount: 1, holdID: 1)
        }
        expectRefused(&model, .holdExceeded(requested: 41, held: 40)) {
            try $0.redeem(member: 1, unit: .points, amount: 41, holdID: 1)
        }
        try model.release(holdID: 1)
        expectRefused(&model, .holdNotActive(holdID: 1, state: "released")) { try $0.release(holdID: 1) }
        expectRefused(&model, .holdNotActive(holdID: 1, state: "released")) {
            try $0.redeem(member: 1, unit: .points, amount: 1, holdID: 1)
        }
        try model.hold(member: 1, unit: .points, amount: 10, expiresAt: F.day(1))
        try model.redeem(member: 1, unit: .points, amount: 10, holdID: 2)
        expectRefused(&model, .holdNotActive(holdID: 2, state: "committed")) { try $0.release(holdID: 2) }
    }

    @Test func reversalErrors() throws {
        var model = try funded()
        let redemption = try model.redeem(member: 1, unit: .points, amount: 20)
        expectRefused(&model, .unknownEntry(99)) { try $0.reverseAccrual(entryID: 99, amount: 1) }
        expectRefused(&model, .unknownEntry(99)) { try $0.reverseRedemption(entryID: 99, amount: 1) }
        expectRefused(&model, .notReversible(entryID: redemption.id, kind: "redemption")) {
            try $0.reverseAccrual(entryID: redemption.id, amount: 1)
        }
        expectRefused(&model, .notReversible(entryID: 1, kind: "accrual")) {
            try $0.reverseRedemption(entryID: 1, amount: 1)
        }
        expectRefused(&model, .notReversible(entryID: 2, kind: "hold")) { try $0.reverseAccrual(entryID: 2, amount: 1) }
        try model.reverseAccrual(entryID: 1, amount: 70)
        expectRefused(&model, .reversalExceedsRemaining(requested: 31, remaining: 30)) {
            try $0.reverseAccrual(entryID: 1, amount: 31)
        }
        try model.reverseRedemption(entryID: redemption.id, amount: 15)
        expectRefused(&model, .reversalExceedsRemaining(requested: 6, remaining: 5)) {
            try $0.reverseRedemption(entryID: redemption.id, amount: 6)
        }
        #expect(model.checkInvariants().isEmpty)
    }

    @Test func invalidDates() throws {
        var model = try funded()
        expectRefused(&model, .invalidDates("expiresAt \(F.day(5)) is not after availableAt \(F.day(5))")) {
            try $0.accrue(member: 1, unit: .points, amount: 1, availableAt: F.day(5), expiresAt: F.day(5), now: F.day(0))
        }
        expectRefused(&model, .invalidDates("expiresAt \(F.day(1)) is not after now \(F.day(2))")) {
            try $0.adjust(member: 1, unit: .points, delta: 5, reason: "r", actor: "a", now: F.day(2),
                          expiresAt: F.day(1))
        }
    }

    @Test func errorsComeInTheDocumentedOrder() throws {
        var model = try funded()
        // Amount before member, member before balance, hold lookup before hold state.
        expectRefused(&model, .nonPositiveAmount(0)) { try $0.redeem(member: 9, unit: .points, amount: 0, holdID: 99) }
        expectRefused(&model, .unknownMember(9)) { try $0.redeem(member: 9, unit: .points, amount: 1_000, holdID: 99) }
        expectRefused(&model, .unknownHold(99)) { try $0.redeem(member: 1, unit: .points, amount: 1_000, holdID: 99) }
        expectRefused(&model, .nonPositiveAmount(0)) { try $0.reverseAccrual(entryID: 99, amount: 0) }
    }

    @Test func descriptionsSayWhatToDo() {
        let errors: [LedgerError] = [
            .nonPositiveAmount(0), .overflow, .unknownMember(1), .insufficientBalance(requested: 2, available: 1),
            .unknownHold(1), .holdMismatch(holdID: 1), .holdNotActive(holdID: 1, state: "released"),
            .holdExceeded(requested: 2, held: 1), .unknownEntry(1), .notReversible(entryID: 1, kind: "hold"),
            .reversalExceedsRemaining(requested: 2, remaining: 1), .invalidDates("x"),
        ]
        #expect(Set(errors.map(\.description)).count == errors.count)
        for error in errors {
            // Every message has a what-to-do part after a colon or semicolon.
            #expect(error.description.contains(":") || error.description.contains(";"), "\(error)")
        }
        #expect(LedgerError.insufficientBalance(requested: 61, available: 60).description.contains("at most 60"))
    }
}
