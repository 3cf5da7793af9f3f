import Foundation

/// A ledger bucket. Member buckets (`available`, `pending`, `held`) belong to one member and never go below zero;
/// system buckets (`issued`, `redeemed`, `expired`, `adjustment`) are the other side of every movement and their
/// balances are derived from postings. For every bucket a positive posting increases its balance.
public enum LedgerBucket: String, Sendable, Hashable, CaseIterable, Codable {
    case available
    case pending
    case held
    case issued
    case redeemed
    case expired
    case adjustment

    /// True for the buckets a member owns (`available`, `pending`, `held`).
    public var isMemberBucket: Bool {
        switch self {
        case .available, .pending, .held: true
        case .issued, .redeemed, .expired, .adjustment: false
        }
    }
}

/// One signed amount moved into (positive) or out of (negative) a bucket. Postings of an entry sum to zero per unit.
public struct LedgerPosting: Sendable, Hashable, Codable, CustomStringConvertible {
    public let bucket: LedgerBucket
    public let unit: LedgerUnit
    public let amount: Int64

    public init(bucket: LedgerBucket, unit: LedgerUnit, amount: Int64) {
        self.bucket = bucket
        self.unit = unit
        self.amount = amount
    }

    public var description: String { "\(bucket.rawValue) \(amount > 0 ? "+" : "")\(amount) \(unit.rawValue)" }

    /// The sum of `postings` per unit; `nil` when a sum overflows. A balanced entry has only zeros here.
    public static func sums(_ postings: [LedgerPosting]) -> [LedgerUnit: Int64]? {
        var sums: [LedgerUnit: Int64] = [:]
        for posting in postings {
            let (sum, overflow) = sums[posting.unit, default: 0].addingReportingOverflow(posting.amount)
            if overflow { return nil }
            sums[posting.unit] = sum
        }
        return sums
    }
}

/// What an entry did. Raw values are the lower-case words stored by the database.
public enum LedgerEntryKind: String, Sendable, Hashable, CaseIterable, Codable {
    case accrual
    case activation
    case hold
    case release
    case redemption
    case reversal
    case expiry
    case adjustment
}

/// An amount taken from (redemption, negative adjustment, accrual reversal, expiry) or put back into
/// (redemption reversal) one lot.
public struct LotConsumption: Sendable, Hashable, Codable {
    public let lotID: Int64
    public let amount: Int64

    public init(lotID: Int64, amount: Int64) {
        self.lotID = lotID
        self.amount = amount
    }
}

/// One journal entry: an operation on one member in one unit, with its postings.
///
/// Guarantees (checked by `init`, a programming error otherwise): postings sum to zero per unit, no posting is
/// zero, and only a reversal that recovered nothing has no postings.
public struct LedgerEntry: Sendable, Hashable, Codable {
    public let id: Int64
    public let kind: LedgerEntryKind
    public let member: Int64
    public let unit: LedgerUnit
    /// The operation's own amount, never negative: accrued, held, released, redeemed, reversed, activated,
    /// expired, or the absolute value of an adjustment's delta.
    public let amount: Int64
    public let postings: [LedgerPosting]
    /// The lot this entry created (accrual, positive adjustment) or moved (activation, expiry).
    public let lotID: Int64?
    /// The hold this entry placed, released or committed.
    public let holdID: Int64?
    /// For a reversal: the accrual or redemption it reverses.
    public let reversedEntryID: Int64?
    /// Lots taken from, in the order taken; for a redemption reversal, lots restored, in the order restored.
    public let consumption: [LotConsumption]
    /// For an accrual reversal: points already spent that could not be taken back (still counted as reversed).
    public let unrecoveredAmount: Int64
    /// For an adjustment: why, and who made it.
    public let reason: String?
    public let actor: String?

    public init(
        id: Int64, kind: LedgerEntryKind, member: Int64, unit: LedgerUnit, amount: Int64, postings: [LedgerPosting],
        lotID: Int64? = nil, holdID: Int64? = nil, reversedEntryID: Int64? = nil, consumption: [LotConsumption] = [],
        unrecoveredAmount: Int64 = 0, reason: String? = nil, actor: String? = nil
    ) {
        // Double entry: an unbalanced entry would create or destroy points, so it is a bug, never data.
        guard let sums = LedgerPosting.sums(postings) else { preconditionFailure("entry \(id): postings overflow") }
        precondition(sums.values.allSatisfy { $0 == 0 }, "entry \(id): postings do not sum to zero: \(postings)")
        precondition(!postings.contains { $0.amount == 0 }, "entry \(id): zero posting in \(postings)")
        precondition(!postings.isEmpty || (kind == .reversal && unrecoveredAmount > 0),
                     "entry \(id): only a reversal that recovered nothing may have no postings")
        precondition(amount >= 0 && unrecoveredAmount >= 0, "entry \(id): negative amount")
        self.id = id
        self.kind = kind
        self.member = member
        self.unit = unit
        self.amount = amount
        self.postings = postings
        self.lotID = lotID
        self.holdID = holdID
        self.reversedEntryID = reversedEntryID
        self.consumption = consumption
        self.unrecoveredAmount = unrecoveredAmount
        self.reason = reason
        self.actor = actor
    }

    /// The signed amount this entry posts to `bucket` (zero when it does not touch it).
    public func posted(to bucket: LedgerBucket) -> Int64 {
        postings.filter { $0.bucket == bucket }.reduce(0) { $0 + $1.amount }
    }
}
