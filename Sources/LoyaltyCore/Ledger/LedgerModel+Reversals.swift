import Foundation

/// Taking back points of a returned purchase and paying back points of a refunded redemption.
/// Partial reversals add up: an entry can be reversed in several parts, never beyond its amount.
extension LedgerModel {
    /// Takes back `amount` of an accrual (a return). First from the accrual's own lot (from the pending balance
    /// while the lot is pending, else from the available balance), then from the member's other available lots in
    /// spending order; points taken from available never exceed the available balance (held points stay). What
    /// cannot be taken back, because it is already spent, is recorded as `unrecoveredAmount` and still counts as
    /// reversed. Postings: member bucket(s) −recovered, issued +recovered; none when nothing was recovered.
    /// Errors: `nonPositiveAmount`, `unknownEntry`, `notReversible`, `reversalExceedsRemaining`.
    @discardableResult
    public mutating func reverseAccrual(entryID: Int64, amount: Int64) throws(LedgerError) -> LedgerEntry {
        guard amount > 0 else { throw .nonPositiveAmount(amount) }
        let original = try reversible(entryID: entryID, kind: .accrual, amount: amount)
        guard let lotID = original.lotID, let lot = lot(id: lotID) else { preconditionFailure("accrual without lot") }
        let unit = original.unit
        var availableLeft = balances(member: original.member, unit: unit).available
        var fromPending: Int64 = 0
        var fromAvailable: Int64 = 0
        var pieces: [LotConsumption] = []
        switch lot.state {
        case .pending:
            fromPending = min(amount, lot.remaining)
            if fromPending > 0 { pieces.append(LotConsumption(lotID: lotID, amount: fromPending)) }
        case .available:
            fromAvailable = min(amount, lot.remaining, availableLeft)
            availableLeft -= fromAvailable
            if fromAvailable > 0 { pieces.append(LotConsumption(lotID: lotID, amount: fromAvailable)) }
        case .expired:
            break // an expired lot is empty
        }
        let stillWanted = amount - fromPending - fromAvailable
        if stillWanted > 0, availableLeft > 0 {
            let others = planConsumption(member: original.member, unit: unit, amount: min(stillWanted, availableLeft),
                                         excluding: lotID)
            fromAvailable += Self.sum(others)
            pieces += others
        }
        let recovered = fromPending + fromAvailable
        let entry = LedgerEntry(
            id: nextEntryID, kind: .reversal, member: original.member, unit: unit, amount: amount,
            postings: Self.postings(unit, [(.pending, -fromPending), (.available, -fromAvailable),
                                           (.issued, recovered)]),
            reversedEntryID: entryID, consumption: pieces, unrecoveredAmount: amount - recovered)
        let staged = try stage([entry])
        take(pieces)
        reversedAmounts[entryID] = reversedAmount(entryID: entryID) + amount
        commit(staged, entries: [entry])
        return entry
    }

    /// Pays back `amount` of a redemption (a refund): redeemed −amount, available +amount. The points go back
    /// into the lots the redemption took them from, last taken first, each at most what was taken from it (less
    /// what earlier reversals put back), with the lot's original expiry; an expired lot becomes available again.
    /// The entry's consumption lists the lots restored, in that order.
    /// Errors: `nonPositiveAmount`, `unknownEntry`, `notReversible`, `reversalExceedsRemaining`, `overflow`.
    @discardableResult
    public mutating func reverseRedemption(entryID: Int64, amount: Int64) throws(LedgerError) -> LedgerEntry {
        guard amount > 0 else { throw .nonPositiveAmount(amount) }
        let original = try reversible(entryID: entryID, kind: .redemption, amount: amount)
        // Restoring always goes last-taken first, so what earlier reversals restored is a prefix of that order.
        var alreadyRestored = reversedAmount(entryID: entryID)
        var left = amount
        var pieces: [LotConsumption] = []
        for taken in original.consumption.reversed() where left > 0 {
            let skipped = min(alreadyRestored, taken.amount)
            alreadyRestored -= skipped
            let restoring = min(left, taken.amount - skipped)
            guard restoring > 0 else { continue }
            pieces.append(LotConsumption(lotID: taken.lotID, amount: restoring))
            left -= restoring
        }
        precondition(left == 0, "consumption of entry \(entryID) does not cover its amount")
        let unit = original.unit
        let entry = LedgerEntry(
            id: nextEntryID, kind: .reversal, member: original.member, unit: unit, amount: amount,
            postings: Self.postings(unit, [(.redeemed, -amount), (.available, amount)]),
            reversedEntryID: entryID, consumption: pieces)
        let staged = try stage([entry])
        for piece in pieces {
            let index = Self.index(piece.lotID)
            allLots[index].remaining += piece.amount
            precondition(allLots[index].remaining <= allLots[index].originalAmount, "lot \(piece.lotID) overfilled")
            if allLots[index].state == .expired { allLots[index].state = .available }
        }
        reversedAmounts[entryID] = reversedAmount(entryID: entryID) + amount
        commit(staged, entries: [entry])
        return entry
    }

    /// The entry to reverse, after checking it exists, has the right kind and has `amount` left to reverse.
    private func reversible(entryID: Int64, kind: LedgerEntryKind, amount: Int64) throws(LedgerError) -> LedgerEntry {
        guard let original = entry(id: entryID) else { throw .unknownEntry(entryID) }
        guard original.kind == kind else { throw .notReversible(entryID: entryID, kind: original.kind.rawValue) }
        let remaining = original.amount - reversedAmount(entryID: entryID)
        guard amount <= remaining else { throw .reversalExceedsRemaining(requested: amount, remaining: remaining) }
        return original
    }
}
