import Foundation

/// Typed errors of ledger operations. A failed operation wrote nothing.
public enum LedgerStoreError: Error, Equatable, CustomStringConvertible {
    case insufficientBalance(bucket: String, requested: Int64, available: Int64)
    case unknownMember(Int64)
    case memberNotActive(memberID: Int64, status: String)
    case unknownHold(Int64)
    case holdNotActive(holdID: Int64, state: String)
    case holdExceeded(holdID: Int64, requested: Int64, held: Int64)
    case holdMismatch(holdID: Int64)
    case unknownEntry(Int64)
    case notReversible(entryID: Int64, kind: String)
    case reversalExceedsRemaining(entryID: Int64, requested: Int64, remaining: Int64)
    case idempotencyConflict(scope: String, key: String)
    case invalidAmount(String)
    case invalidDates(String)
    case invariantViolated(String)
    case database(String)

    /// The stable reason code: the MESSAGE the ledger functions raise, and `LedgerError.code` for the same case.
    public var code: String {
        switch self {
        case .insufficientBalance: "insufficient_balance"
        case .unknownMember: "unknown_member"
        case .memberNotActive: "member_not_active"
        case .unknownHold: "unknown_hold"
        case .holdNotActive: "hold_not_active"
        case .holdExceeded: "hold_exceeded"
        case .holdMismatch: "hold_mismatch"
        case .unknownEntry: "unknown_entry"
        case .notReversible: "not_reversible"
        case .reversalExceedsRemaining: "reversal_exceeds_remaining"
        case .idempotencyConflict: "idempotency_conflict"
        case .invalidAmount: "invalid_amount"
        case .invalidDates: "invalid_dates"
        case .invariantViolated: "ledger_invariant"
        case .database: "database"
        }
    }

    public var description: String {
        switch self {
        case .insufficientBalance(let bucket, let requested, let available):
            "insufficient balance: \(requested) requested, \(available) \(bucket)"
        case .unknownMember(let id): "unknown member \(id)"
        case .memberNotActive(let id, let status): "member \(id) is \(status); unblock the member first"
        case .unknownHold(let id): "unknown hold \(id)"
        case .holdNotActive(let id, let state): "hold \(id) is \(state), not active"
        case .holdExceeded(let id, let requested, let held):
            "redeeming \(requested) is more than the \(held) held by hold \(id)"
        case .holdMismatch(let id): "hold \(id) belongs to another member or unit"
        case .unknownEntry(let id): "unknown ledger entry \(id)"
        case .notReversible(let id, let kind): "entry \(id) is a \(kind); only accruals and redemptions can be reversed"
        case .reversalExceedsRemaining(let id, let requested, let remaining):
            "reversing \(requested) of entry \(id) is more than the \(remaining) not yet reversed"
        case .idempotencyConflict(let scope, let key):
            "idempotency key '\(key)' of \(scope) was already used for a different request; use a new key"
        case .invalidAmount(let text): "invalid amount: \(text)"
        case .invalidDates(let text): "invalid dates: \(text)"
        case .invariantViolated(let text): "ledger invariant violated: \(text); run `loyalty audit`"
        case .database(let text): "database error: \(text)"
        }
    }

    /// Maps a server error raised by the ledger functions (SQLSTATE class LY, JSON detail) to its typed error.
    static func from(_ error: any Error) -> LedgerStoreError {
        if let known = error as? LedgerStoreError { return known }
        guard let state = PostgresErrorText.sqlState(error), state.hasPrefix("LY") else {
            return .database(PostgresErrorText.describe(error))
        }
        let detail = PostgresErrorText.detail(error).flatMap { text in
            try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        } ?? [:]
        func int(_ key: String) -> Int64 { (detail[key] as? NSNumber)?.int64Value ?? 0 }
        func string(_ key: String) -> String { detail[key].map { "\($0)" } ?? "" }
        switch state {
        case "LY001": return .insufficientBalance(bucket: string("bucket"), requested: int("requested"), available: int("available"))
        case "LY002": return .unknownMember(int("member_id"))
        case "LY003": return .memberNotActive(memberID: int("member_id"), status: string("status"))
        case "LY004": return .unknownHold(int("hold_id"))
        case "LY005": return .holdNotActive(holdID: int("hold_id"), state: string("state"))
        case "LY006": return .holdExceeded(holdID: int("hold_id"), requested: int("requested"), held: int("held"))
        case "LY007": return .unknownEntry(int("entry_id"))
        case "LY008": return .notReversible(entryID: int("entry_id"), kind: string("kind"))
        case "LY009": return .reversalExceedsRemaining(entryID: int("entry_id"), requested: int("requested"), remaining: int("remaining"))
        case "LY010": return .idempotencyConflict(scope: string("scope"), key: string("key"))
        case "LY011": return .invalidAmount(detail.isEmpty ? "must be positive" : detail.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))
        case "LY012": return .invalidDates(detail.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))
        case "LY013": return .holdMismatch(holdID: int("hold_id"))
        default: return .invariantViolated(PostgresErrorText.describe(error))
        }
    }
}
