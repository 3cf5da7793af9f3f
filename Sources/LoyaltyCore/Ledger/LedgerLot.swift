import Foundation

/// Where a lot is in its life. Raw values are the lower-case words stored by the database.
public enum LotState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Still in its return window: counted in the member's pending balance.
    case pending
    /// Counted in the member's available (or held) balance.
    case available
    /// Emptied by expiry; a redemption reversal can make it available again.
    case expired
}

/// Points earned together (one accrual or positive adjustment), tracked so that redemptions spend the soonest
/// expiring points first and reversals can put them back with their original expiry.
///
/// Guarantees: `0 <= remaining <= originalAmount`; `expiresAt`, when set, is after `availableAt`.
public struct LedgerLot: Sendable, Hashable, Codable {
    public let id: Int64
    public let member: Int64
    public let unit: LedgerUnit
    /// The entry that created this lot.
    public let entryID: Int64
    public let originalAmount: Int64
    public internal(set) var remaining: Int64
    public let availableAt: Date
    /// `nil`: never expires.
    public let expiresAt: Date?
    public internal(set) var state: LotState

    /// The order in which lots are spent: soonest expiry first, never-expiring last, then lower lot id first.
    public static func spendsBefore(_ left: LedgerLot, _ right: LedgerLot) -> Bool {
        spendsBefore(left: (left.expiresAt, left.id), right: (right.expiresAt, right.id))
    }

    /// `spendsBefore` on (expiresAt, lotID) pairs, for checking recorded consumption lists.
    public static func spendsBefore(left: (expiresAt: Date?, id: Int64), right: (expiresAt: Date?, id: Int64)) -> Bool {
        switch (left.expiresAt, right.expiresAt) {
        case let (l?, r?) where l != r: l < r
        case (nil, _?): false
        case (_?, nil): true
        default: left.id < right.id
        }
    }
}

/// Where a hold is in its life. Raw values are the lower-case words stored by the database.
public enum HoldState: String, Sendable, Hashable, CaseIterable, Codable {
    case active
    case released
    case committed
}

/// Points reserved during a checkout: moved from available to held; the lots keep them until the redemption.
/// Guarantees: `amount > 0`; only an active hold counts in the member's held balance.
public struct LedgerHold: Sendable, Hashable, Codable {
    public let id: Int64
    public let member: Int64
    public let unit: LedgerUnit
    public let amount: Int64
    public internal(set) var state: HoldState
    public let expiresAt: Date
    /// The entry that placed the hold.
    public let entryID: Int64
}

/// A member's balances in one unit. Guarantees (in a `LedgerModel`): none is negative and their sum fits in
/// an `Int64`.
public struct LedgerBalances: Sendable, Hashable, Codable {
    public var available: Int64
    public var pending: Int64
    public var held: Int64

    public init(available: Int64 = 0, pending: Int64 = 0, held: Int64 = 0) {
        self.available = available
        self.pending = pending
        self.held = held
    }

    public static let zero = LedgerBalances()

    /// The balance of a member bucket; zero for a system bucket.
    public subscript(bucket: LedgerBucket) -> Int64 {
        get {
            switch bucket {
            case .available: available
            case .pending: pending
            case .held: held
            case .issued, .redeemed, .expired, .adjustment: 0
            }
        }
        set {
            switch bucket {
            case .available: available = newValue
            case .pending: pending = newValue
            case .held: held = newValue
            case .issued, .redeemed, .expired, .adjustment: preconditionFailure("\(bucket) is not a member bucket")
            }
        }
    }
}
