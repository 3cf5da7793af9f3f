import Foundation

/// Earning, activating, holding, spending, expiring and adjusting. Each operation checks everything (in the order
/// its errors are listed) before it writes anything, so a thrown error leaves the model unchanged.
extension LedgerModel {
    /// Earns `amount` into a new lot: pending until `availableAt` (when that is after `now`), else available.
    /// Postings: issued −amount, pending (or available) +amount.
    /// Errors: `nonPositiveAmount`, `unknownMember`, `invalidDates` (expiresAt not after availableAt), `overflow`.
    @discardableResult
    public mutating func accrue(
        member: Int64, unit: LedgerUnit, amount: Int64, availableAt: Date, expiresAt: Date?, now: Date
    ) throws(LedgerError) -> LedgerEntry {
        guard amount > 0 else { throw .nonPositiveAmount(amount) }
        try requireMember(member)
        if let expiresAt, expiresAt <= availableAt {
            throw .invalidDates("expiresAt \(expiresAt) is not after availableAt \(availableAt)")
        }
        let state: LotState = availableAt > now ? .pending : .available
        let lotID = Int64(allLots.count) + 1
        let entry = LedgerEntry(
            id: nextEntryID, kind: .accrual, member: member, unit: unit, amount: amount,
            postings: Self.postings(unit, [(.issued, -amount), (state == .pending ? .pending : .available, amount)]),
            lotID: lotID)
        let staged = try stage([entry])
        allLots.append(LedgerLot(
            id: lotID, member: member, unit: unit, entryID: entry.id, originalAmount: amount, remaining: amount,
            availableAt: availableAt, expiresAt: expiresAt, state: state))
        lotIDsByMember[member, default: []].append(lotID)
        commit(staged, entries: [entry])
        return entry
    }

    /// Makes every pending lot with `availableAt <= now` available, in lot id order, with one activation entry
    /// (pending −remaining, available +remaining) per lot that still has points. Cannot fail: points only move
    /// between one member's buckets.
    @discardableResult
    public mutating func activateDue(now: Date) -> [LedgerEntry] {
        let due = allLots.filter { $0.state == .pending && $0.availableAt <= now }
        var newEntries: [LedgerEntry] = []
        for lot in due where lot.remaining > 0 {
            newEntries.append(LedgerEntry(
                id: nextEntryID + Int64(newEntries.count), kind: .activation, member: lot.member, unit: lot.unit,
                amount: lot.remaining, postings: Self.postings(lot.unit, [(.pending, -lot.remaining),
                                                                          (.available, lot.remaining)]),
                lotID: lot.id))
        }
        let staged: StagedBalances
        do { staged = try stage(newEntries) } catch { preconditionFailure("activation cannot overflow: \(error)") }
        for lot in due { allLots[Self.index(lot.id)].state = .available }
        commit(staged, entries: newEntries)
        return newEntries
    }

    /// Reserves `amount` of the available balance for a checkout: available −amount, held +amount.
    /// The points stay in their lots until the hold is redeemed.
    /// Errors: `nonPositiveAmount`, `unknownMember`, `insufficientBalance`.
    @discardableResult
    public mutating func hold(member: Int64, unit: LedgerUnit, amount: Int64, expiresAt: Date)
        throws(LedgerError) -> LedgerEntry
    {
        guard amount > 0 else { throw .nonPositiveAmount(amount) }
        try requireMember(member)
        let available = balances(member: member, unit: unit).available
        guard amount <= available else { throw .insufficientBalance(requested: amount, available: available) }
        let holdID = Int64(holds.count) + 1
        let entry = LedgerEntry(
            id: nextEntryID, kind: .hold, member: member, unit: unit, amount: amount,
            postings: Self.postings(unit, [(.available, -amount), (.held, amount)]), holdID: holdID)
        let staged = try stage([entry])
        holds.append(LedgerHold(
            id: holdID, member: member, unit: unit, amount: amount, state: .active, expiresAt: expiresAt,
            entryID: entry.id))
        commit(staged, entries: [entry])
        return entry
    }

    /// Gives an active hold's points back: held −amount, available +amount; the hold becomes released.
    /// Errors: `unknownHold`, `holdNotActive`.
    @discardableResult
    public mutating func release(holdID: Int64) throws(LedgerError) -> LedgerEntry {
        guard let hold = hold(id: holdID) else { throw .unknownHold(holdID) }
        guard hold.state == .active else { throw .holdNotActive(holdID: holdID, state: hold.state.rawValue) }
        let entry = LedgerEntry(
            id: nextEntryID, kind: .release, member: hold.member, unit: hold.unit, amount: hold.amount,
            postings: Self.postings(hold.unit, [(.held, -hold.amount), (.available, hold.amount)]), holdID: holdID)
        let staged = try stage([entry])
        holds[Self.index(holdID)].state = .released
        commit(staged, entries: [entry])
        return entry
    }

    /// Spends `amount`, from the available balance or from an active hold of the same member and unit.
    /// Without a hold: available −amount, redeemed +amount. With a hold: held −hold.amount,
    /// available +(hold.amount − amount) (left out when zero), redeemed +amount; the hold becomes committed.
    /// Either way `amount` is taken from the member's lots in spending order and recorded as the consumption.
    /// Errors: `nonPositiveAmount`, `unknownMember`, then without a hold `insufficientBalance`; with a hold
    /// `unknownHold`, `holdMismatch`, `holdNotActive`, `holdExceeded`.
    @discardableResult
    public mutating func redeem(member: Int64, unit: LedgerUnit, amount: Int64, holdID: Int64? = nil)
        throws(LedgerError) -> LedgerEntry
    {
        guard amount > 0 else { throw .nonPositiveAmount(amount) }
        try requireMember(member)
        let moves: [(LedgerBucket, Int64)]
        if let holdID {
            guard let hold = hold(id: holdID) else { throw .unknownHold(holdID) }
            guard hold.member == member, hold.unit == unit else { throw .holdMismatch(holdID: holdID) }
            guard hold.state == .active else { throw .holdNotActive(holdID: holdID, state: hold.state.rawValue) }
            guard amount <= hold.amount else { throw .holdExceeded(requested: amount, held: hold.amount) }
            moves = [(.held, -hold.amount), (.available, hold.amount - amount), (.redeemed, amount)]
        } else {
            let available = balances(member: member, unit: unit).available
            guard amount <= available else { throw .insufficientBalance(requested: amount, available: available) }
            moves = [(.available, -amount), (.redeemed, amount)]
        }
        // Available lots hold available + held points, so they always cover the amount.
        let pieces = planConsumption(member: member, unit: unit, amount: amount)
        precondition(Self.sum(pieces) == amount, "lots do not cover a redemption of \(amount)")
        let entry = LedgerEntry(
            id: nextEntryID, kind: .redemption, member: member, unit: unit, amount: amount,
            postings: Self.postings(unit, moves), holdID: holdID, consumption: pieces)
        let staged = try stage([entry])
        take(pieces)
        if let holdID { holds[Self.index(holdID)].state = .committed }
        commit(staged, entries: [entry])
        return entry
    }

    /// Expires the remaining points of available lots with `expiresAt <= now`: member by member (ascending), each
    /// member's lots in spending order, one expiry entry per lot (available −x, expired +x) where x is the lot's
    /// remainder but at most what is still available (held points are not expired). A lot emptied this way
    /// becomes expired. Errors: `overflow` (of the expired bucket).
    @discardableResult
    public mutating func expireDue(now: Date) throws(LedgerError) -> [LedgerEntry] {
        var newEntries: [LedgerEntry] = []
        for member in members {
            var availableLeft: [LedgerUnit: Int64] = [:]
            let due = lots(member: member)
                .filter { lot in
                    guard let expiresAt = lot.expiresAt else { return false }
                    return lot.state == .available && lot.remaining > 0 && expiresAt <= now
                }
                .sorted(by: LedgerLot.spendsBefore)
            for lot in due {
                let left = availableLeft[lot.unit] ?? balances(member: member, unit: lot.unit).available
                let expiring = min(lot.remaining, left)
                guard expiring > 0 else { continue }
                availableLeft[lot.unit] = left - expiring
                newEntries.append(LedgerEntry(
                    id: nextEntryID + Int64(newEntries.count), kind: .expiry, member: member, unit: lot.unit,
                    amount: expiring, postings: Self.postings(lot.unit, [(.available, -expiring), (.expired, expiring)]),
                    lotID: lot.id, consumption: [LotConsumption(lotID: lot.id, amount: expiring)]))
            }
        }
        let staged = try stage(newEntries)
        for entry in newEntries {
            take(entry.consumption)
            let index = Self.index(entry.consumption[0].lotID)
            if allLots[index].remaining == 0 { allLots[index].state = .expired }
        }
        commit(staged, entries: newEntries)
        return newEntries
    }

    /// A manual correction with a reason and an actor. Positive `delta`: a new available lot
    /// (availableAt = now, optional `expiresAt`), postings adjustment −delta, available +delta. Negative `delta`:
    /// taken from the available lots like a redemption, postings available +delta, adjustment −delta.
    /// Errors: `nonPositiveAmount` (zero delta), `unknownMember`, `invalidDates` (expiresAt not after now),
    /// `insufficientBalance`, `overflow` (including a delta of `Int64.min`, whose magnitude does not fit).
    @discardableResult
    public mutating func adjust(
        member: Int64, unit: LedgerUnit, delta: Int64, reason: String, actor: String, now: Date,
        expiresAt: Date? = nil
    ) throws(LedgerError) -> LedgerEntry {
        guard delta != 0 else { throw .nonPositiveAmount(delta) }
        try requireMember(member)
        if delta > 0 {
            if let expiresAt, expiresAt <= now {
                throw .invalidDates("expiresAt \(expiresAt) is not after now \(now)")
            }
            let lotID = Int64(allLots.count) + 1
            let entry = LedgerEntry(
                id: nextEntryID, kind: .adjustment, member: member, unit: unit, amount: delta,
                postings: Self.postings(unit, [(.adjustment, -delta), (.available, delta)]), lotID: lotID,
                reason: reason, actor: actor)
            let staged = try stage([entry])
            allLots.append(LedgerLot(
                id: lotID, member: member, unit: unit, entryID: entry.id, originalAmount: delta, remaining: delta,
                availableAt: now, expiresAt: expiresAt, state: .available))
            lotIDsByMember[member, default: []].append(lotID)
            commit(staged, entries: [entry])
            return entry
        }
        guard delta != .min else { throw .overflow }
        let amount = -delta
        let available = balances(member: member, unit: unit).available
        guard amount <= available else { throw .insufficientBalance(requested: amount, available: available) }
        let pieces = planConsumption(member: member, unit: unit, amount: amount)
        precondition(Self.sum(pieces) == amount, "lots do not cover an adjustment of \(delta)")
        let entry = LedgerEntry(
            id: nextEntryID, kind: .adjustment, member: member, unit: unit, amount: amount,
            postings: Self.postings(unit, [(.available, delta), (.adjustment, amount)]), consumption: pieces,
            reason: reason, actor: actor)
        let staged = try stage([entry])
        take(pieces)
        commit(staged, entries: [entry])
        return entry
    }
}
