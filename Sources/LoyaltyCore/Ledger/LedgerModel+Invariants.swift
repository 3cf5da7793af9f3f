/// The ledger's invariants, recomputed from the journal rather than trusted from the running balances.
extension LedgerModel {
    /// Every broken invariant, described; empty when the ledger is consistent. Checks:
    /// - every entry's postings sum to zero per unit;
    /// - every member balance and system balance equals the sum of its postings;
    /// - no member balance is negative, and system plus member balances sum to zero per unit;
    /// - per member and unit: pending lots' remainders sum to the pending balance, available lots' remainders sum
    ///   to available + held, active holds sum to held;
    /// - every lot's remainder is within 0...originalAmount, and an expired lot is empty;
    /// - no entry is reversed beyond its amount.
    public func checkInvariants() -> [String] {
        var problems: [String] = []
        func add(_ left: Int64, _ right: Int64, _ what: @autoclosure () -> String) -> Int64 {
            let (sum, overflow) = left.addingReportingOverflow(right)
            if overflow { problems.append("\(what()) overflows") }
            return sum
        }

        // Sums are kept in arrays indexed by (member, unit) slot: this runs after every operation in tests.
        let slotOfMember = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($0.element, $0.offset) })
        func slot(_ member: Int64, _ unit: LedgerUnit) -> Int? {
            guard let memberSlot = slotOfMember[member] else { return nil }
            return memberSlot * 2 + (unit == .points ? 0 : 1)
        }
        let slotCount = slotOfMember.count * 2
        var memberSums = [LedgerBalances](repeating: .zero, count: slotCount)
        var systemSums = [Int64](repeating: 0, count: 2 * LedgerBucket.allCases.count)
        func systemSlot(_ bucket: LedgerBucket, _ unit: LedgerUnit) -> Int {
            let bucketIndex = switch bucket {
            case .available: 0
            case .pending: 1
            case .held: 2
            case .issued: 3
            case .redeemed: 4
            case .expired: 5
            case .adjustment: 6
            }
            return bucketIndex * 2 + (unit == .points ? 0 : 1)
        }
        for entry in entries {
            var entrySum: Int64 = 0
            var delta = LedgerBalances.zero
            for posting in entry.postings {
                if posting.unit != entry.unit { problems.append("entry \(entry.id): posting in another unit") }
                if posting.amount == 0 { problems.append("entry \(entry.id): zero posting") }
                entrySum = add(entrySum, posting.amount, "entry \(entry.id) postings")
                if posting.bucket.isMemberBucket {
                    delta[posting.bucket] = add(delta[posting.bucket], posting.amount, "entry \(entry.id) postings")
                } else {
                    let index = systemSlot(posting.bucket, posting.unit)
                    systemSums[index] = add(systemSums[index], posting.amount, "\(posting.bucket) postings")
                }
            }
            if entrySum != 0 { problems.append("entry \(entry.id): postings sum to \(entrySum), not zero") }
            if entry.postings.isEmpty && !(entry.kind == .reversal && entry.unrecoveredAmount > 0) {
                problems.append("entry \(entry.id): no postings")
            }
            guard delta != .zero else { continue }
            guard let index = slot(entry.member, entry.unit) else {
                problems.append("entry \(entry.id): member \(entry.member) is not registered")
                continue
            }
            var sums = memberSums[index]
            sums.available = add(sums.available, delta.available, "member \(entry.member) available postings")
            sums.pending = add(sums.pending, delta.pending, "member \(entry.member) pending postings")
            sums.held = add(sums.held, delta.held, "member \(entry.member) held postings")
            memberSums[index] = sums
        }

        var pendingLots = [Int64](repeating: 0, count: slotCount)
        var availableLots = [Int64](repeating: 0, count: slotCount)
        for lot in allLots {
            if lot.remaining < 0 || lot.remaining > lot.originalAmount {
                problems.append("lot \(lot.id): remaining \(lot.remaining) outside 0...\(lot.originalAmount)")
            }
            if lot.state == .expired && lot.remaining != 0 {
                problems.append("lot \(lot.id): expired but \(lot.remaining) remain")
            }
            guard let index = slot(lot.member, lot.unit) else {
                problems.append("lot \(lot.id): member \(lot.member) is not registered")
                continue
            }
            switch lot.state {
            case .pending: pendingLots[index] = add(pendingLots[index], lot.remaining, "lots of member \(lot.member)")
            case .available:
                availableLots[index] = add(availableLots[index], lot.remaining, "lots of member \(lot.member)")
            case .expired: break
            }
        }
        var heldSums = [Int64](repeating: 0, count: slotCount)
        for hold in holds where hold.state == .active {
            guard let index = slot(hold.member, hold.unit) else { continue }
            heldSums[index] = add(heldSums[index], hold.amount, "active holds of member \(hold.member)")
        }

        for unit in LedgerUnit.allCases {
            var total: Int64 = 0
            for bucket in LedgerBucket.allCases where !bucket.isMemberBucket {
                let derived = systemSums[systemSlot(bucket, unit)]
                let kept = systemBalance(bucket: bucket, unit: unit)
                if derived != kept {
                    problems.append("\(bucket) \(unit.rawValue): balance \(kept) but postings sum to \(derived)")
                }
                total = add(total, derived, "system balances in \(unit.rawValue)")
            }
            for member in members {
                let index = slot(member, unit)!
                let kept = balances(member: member, unit: unit)
                let derived = memberSums[index]
                let name = "member \(member) \(unit.rawValue)"
                if kept != derived { problems.append("\(name): balances \(kept) but postings sum to \(derived)") }
                for bucket in LedgerBucket.allCases where bucket.isMemberBucket {
                    if kept[bucket] < 0 { problems.append("\(name): \(bucket) is negative (\(kept[bucket]))") }
                    total = add(total, kept[bucket], "balances in \(unit.rawValue)")
                }
                if pendingLots[index] != kept.pending {
                    problems.append("\(name): pending lots hold \(pendingLots[index]) but pending is \(kept.pending)")
                }
                let availableAndHeld = add(kept.available, kept.held, "\(name) available + held")
                if availableLots[index] != availableAndHeld {
                    problems.append("\(name): available lots hold \(availableLots[index]) but available + held is "
                        + "\(availableAndHeld)")
                }
                if heldSums[index] != kept.held {
                    problems.append("\(name): active holds sum to \(heldSums[index]) but held is \(kept.held)")
                }
            }
            if total != 0 { problems.append("\(unit.rawValue): system and member balances sum to \(total), not 0") }
        }
        for (entryID, reversed) in reversedAmounts {
            let amount = entry(id: entryID)?.amount ?? 0
            if reversed < 0 || reversed > amount {
                problems.append("entry \(entryID): reversed \(reversed) outside 0...\(amount)")
            }
        }
        return problems
    }
}
