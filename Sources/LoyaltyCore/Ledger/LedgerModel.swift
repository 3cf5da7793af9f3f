import Foundation

/// An in-memory double-entry ledger of members' points and cashback: the reference model of the ledger's
/// semantics (the PostgreSQL ledger is tested against it).
///
/// Guarantees:
/// - Every entry's postings sum to zero per unit; member balances and system balances are the sums of postings.
/// - No member balance goes below zero and no amount wraps: overflow is `LedgerError.overflow`.
/// - A refused operation (one that throws) changes nothing: everything is checked before anything is written.
/// - Entry, lot and hold ids are assigned sequentially from 1, each sequence on its own.
/// - Lots are spent soonest expiry first (never-expiring last), then lowest lot id first.
/// - `checkInvariants()` is empty after every operation.
///
/// It is a value type: copy it to keep a snapshot, compare snapshots with `==`.
public struct LedgerModel: Sendable, Equatable {
    struct BalanceKey: Hashable, Sendable {
        var member: Int64
        var unit: LedgerUnit
    }

    struct BucketKey: Hashable, Sendable {
        var bucket: LedgerBucket
        var unit: LedgerUnit
    }

    /// All entries, in id order (entry id n is at index n - 1).
    public internal(set) var entries: [LedgerEntry] = []
    /// All lots, in id order (lot id n is at index n - 1).
    public internal(set) var allLots: [LedgerLot] = []
    /// All holds, in id order (hold id n is at index n - 1).
    public internal(set) var holds: [LedgerHold] = []

    var memberIDs: Set<Int64> = []
    var balanceTable: [BalanceKey: LedgerBalances] = [:]
    /// Per system bucket and unit, the sum of all postings (kept so queries need not rescan the journal).
    var postingTotals: [BucketKey: Int64] = [:]
    var lotIDsByMember: [Int64: [Int64]] = [:]
    /// Per accrual or redemption entry id: how much of it reversals have taken back so far.
    var reversedAmounts: [Int64: Int64] = [:]

    public init() {}

    // MARK: Members and queries

    /// Registers a member; operations on unregistered members fail with `unknownMember`.
    /// Returns false (and changes nothing) when the member is already registered.
    @discardableResult
    public mutating func addMember(id: Int64) -> Bool {
        guard memberIDs.insert(id).inserted else { return false }
        for unit in LedgerUnit.allCases {
            balanceTable[BalanceKey(member: id, unit: unit)] = .zero
        }
        return true
    }

    /// Registered members, ascending.
    public var members: [Int64] { memberIDs.sorted() }

    /// The member's balances in `unit`; zero for an unregistered member.
    public func balances(member: Int64, unit: LedgerUnit) -> LedgerBalances {
        balanceTable[BalanceKey(member: member, unit: unit)] ?? .zero
    }

    /// The sum of all postings to `bucket` in `unit`. For a member bucket: the total over all members (a
    /// programming error if that total does not fit in an `Int64`; only system totals are bounded by operations).
    public func systemBalance(bucket: LedgerBucket, unit: LedgerUnit) -> Int64 {
        guard bucket.isMemberBucket else { return postingTotals[BucketKey(bucket: bucket, unit: unit)] ?? 0 }
        return balanceTable.filter { $0.key.unit == unit }.reduce(0) { total, element in
            let (sum, overflow) = total.addingReportingOverflow(element.value[bucket])
            precondition(!overflow, "the total of \(bucket) over all members overflows")
            return sum
        }
    }

    /// The member's lots in both units, in id order.
    public func lots(member: Int64) -> [LedgerLot] {
        (lotIDsByMember[member] ?? []).map { allLots[Self.index($0)] }
    }

    public func lot(id: Int64) -> LedgerLot? {
        id >= 1 && id <= allLots.count ? allLots[Self.index(id)] : nil
    }

    public func hold(id: Int64) -> LedgerHold? {
        id >= 1 && id <= holds.count ? holds[Self.index(id)] : nil
    }

    public func entry(id: Int64) -> LedgerEntry? {
        id >= 1 && id <= entries.count ? entries[Self.index(id)] : nil
    }

    /// How much of an accrual or redemption has been reversed so far (zero for any other entry).
    public func reversedAmount(entryID: Int64) -> Int64 {
        reversedAmounts[entryID] ?? 0
    }

    // MARK: Building blocks of the operations (check first, then write)

    static func index(_ id: Int64) -> Int { Int(id - 1) }

    var nextEntryID: Int64 { Int64(entries.count) + 1 }

    func requireMember(_ member: Int64) throws(LedgerError) {
        guard memberIDs.contains(member) else { throw .unknownMember(member) }
    }

    static func checkedAdd(_ left: Int64, _ right: Int64) throws(LedgerError) -> Int64 {
        let (sum, overflow) = left.addingReportingOverflow(right)
        guard !overflow else { throw .overflow }
        return sum
    }

    /// Balances after some new entries: computed with checked arithmetic, not yet written.
    struct StagedBalances {
        var members: [BalanceKey: LedgerBalances] = [:]
        var totals: [BucketKey: Int64] = [:]
    }

    /// Applies the new entries' postings to copies of the balances they touch. Throws `overflow` (before anything
    /// is written) when a system balance, a member balance, or a member's total over its buckets would not fit
    /// in an `Int64`.
    func stage(_ newEntries: [LedgerEntry]) throws(LedgerError) -> StagedBalances {
        var staged = StagedBalances()
        for entry in newEntries {
            let key = BalanceKey(member: entry.member, unit: entry.unit)
            for posting in entry.postings {
                precondition(posting.unit == entry.unit, "entry \(entry.id) posts in another unit")
                guard posting.bucket.isMemberBucket else {
                    let bucketKey = BucketKey(bucket: posting.bucket, unit: posting.unit)
                    let total = staged.totals[bucketKey] ?? systemBalance(bucket: posting.bucket, unit: posting.unit)
                    staged.totals[bucketKey] = try Self.checkedAdd(total, posting.amount)
                    continue
                }
                var memberBalances = staged.members[key] ?? balances(member: entry.member, unit: entry.unit)
                memberBalances[posting.bucket] = try Self.checkedAdd(memberBalances[posting.bucket], posting.amount)
                // Operations check balances before building postings, so this is a bug, not a user error.
                precondition(memberBalances[posting.bucket] >= 0, "entry \(entry.id) overdraws \(posting.bucket)")
                staged.members[key] = memberBalances
            }
            // Lot remainders of a member add up to its total, so the total must fit too.
            if let memberBalances = staged.members[key] {
                _ = try Self.checkedAdd(try Self.checkedAdd(memberBalances.available, memberBalances.pending),
                                        memberBalances.held)
            }
        }
        return staged
    }

    /// Writes staged balances and appends the entries. Cannot fail.
    mutating func commit(_ staged: StagedBalances, entries newEntries: [LedgerEntry]) {
        for (key, value) in staged.members { balanceTable[key] = value }
        for (key, value) in staged.totals { postingTotals[key] = value }
        entries.append(contentsOf: newEntries)
    }

    /// The member's lots that can be spent now (available, not empty), in spending order.
    func spendableLots(member: Int64, unit: LedgerUnit, excluding excludedLot: Int64? = nil) -> [LedgerLot] {
        lots(member: member)
            .filter { $0.unit == unit && $0.state == .available && $0.remaining > 0 && $0.id != excludedLot }
            .sorted(by: LedgerLot.spendsBefore)
    }

    /// Plans taking up to `amount` from the member's spendable lots, in spending order. Writes nothing.
    func planConsumption(member: Int64, unit: LedgerUnit, amount: Int64, excluding excludedLot: Int64? = nil)
        -> [LotConsumption]
    {
        var left = amount
        var pieces: [LotConsumption] = []
        for lot in spendableLots(member: member, unit: unit, excluding: excludedLot) where left > 0 {
            let take = min(left, lot.remaining)
            pieces.append(LotConsumption(lotID: lot.id, amount: take))
            left -= take
        }
        return pieces
    }

    /// Takes planned pieces out of their lots.
    mutating func take(_ pieces: [LotConsumption]) {
        for piece in pieces {
            allLots[Self.index(piece.lotID)].remaining -= piece.amount
            precondition(allLots[Self.index(piece.lotID)].remaining >= 0, "lot \(piece.lotID) overdrawn")
        }
    }

    static func sum(_ pieces: [LotConsumption]) -> Int64 {
        pieces.reduce(0) { $0 + $1.amount } // pieces never exceed one balance, so this cannot overflow
    }

    /// Postings with the zero amounts left out.
    static func postings(_ unit: LedgerUnit, _ moves: [(LedgerBucket, Int64)]) -> [LedgerPosting] {
        moves.filter { $0.1 != 0 }.map { LedgerPosting(bucket: $0.0, unit: unit, amount: $0.1) }
    }
}
