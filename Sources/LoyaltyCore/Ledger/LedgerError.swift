/// Why a ledger operation was refused. A refused operation changes nothing.
/// Descriptions say what went wrong and what the caller can do about it.
public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    case nonPositiveAmount(Int64)
    case overflow
    case unknownMember(Int64)
    case insufficientBalance(requested: Int64, available: Int64)
    case unknownHold(Int64)
    /// The hold belongs to another member or unit than the redemption names.
    case holdMismatch(holdID: Int64)
    case holdNotActive(holdID: Int64, state: String)
    case holdExceeded(requested: Int64, held: Int64)
    case unknownEntry(Int64)
    case notReversible(entryID: Int64, kind: String)
    case reversalExceedsRemaining(requested: Int64, remaining: Int64)
    case invalidDates(String)

    /// The stable reason code, the same word the SQL ledger raises (and the POS protocol reports), so the model
    /// and the database can be compared, and clients can branch on it.
    public var code: String {
        switch self {
        case .nonPositiveAmount, .overflow: "invalid_amount"
        case .unknownMember: "unknown_member"
        case .insufficientBalance: "insufficient_balance"
        case .unknownHold: "unknown_hold"
        case .holdMismatch: "hold_mismatch"
        case .holdNotActive: "hold_not_active"
        case .holdExceeded: "hold_exceeded"
        case .unknownEntry: "unknown_entry"
        case .notReversible: "not_reversible"
        case .reversalExceedsRemaining: "reversal_exceeds_remaining"
        case .invalidDates: "invalid_dates"
        }
    }

    public var description: String {
        switch self {
        case .nonPositiveAmount(let amount):
            "amount \(amount) is not allowed: send an amount greater than zero (an adjustment's delta must not be zero)"
        case .overflow:
            "the operation would overflow a 64-bit balance: use a smaller amount"
        case .unknownMember(let member):
            "member \(member) is not registered: register the member before posting to it"
        case .insufficientBalance(let requested, let available):
            "requested \(requested) but only \(available) is available: ask for at most \(available)"
        case .unknownHold(let hold):
            "hold \(hold) does not exist: use the hold id returned when the hold was placed"
        case .holdMismatch(let hold):
            "hold \(hold) belongs to another member or unit: redeem it for the member and unit it was placed for"
        case .holdNotActive(let hold, let state):
            "hold \(hold) is \(state), not active: place a new hold"
        case .holdExceeded(let requested, let held):
            "requested \(requested) but the hold is for \(held): redeem at most \(held) or place a larger hold"
        case .unknownEntry(let entry):
            "ledger entry \(entry) does not exist: use the entry id returned by the accrual or redemption"
        case .notReversible(let entry, let kind):
            "ledger entry \(entry) is a \(kind): only accruals and redemptions can be reversed"
        case .reversalExceedsRemaining(let requested, let remaining):
            "requested a reversal of \(requested) but only \(remaining) is left to reverse: reverse at most \(remaining)"
        case .invalidDates(let detail):
            "invalid dates: \(detail); send an expiry date after the date the points become available"
        }
    }
}
