import Foundation
import LoyaltyCore

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
    /// The member's tier changed after the basket was priced; price it again.
    case tierChanged(memberID: Int64, pricedAt: String, now: String)
    /// The campaigns changed after the basket was priced (campaigns versions); reload them and price again.
    case campaignsChanged(pricedAt: Int64, now: Int64)
    /// Another refund of the same purchase landed first; recompute from the new state and send again.
    case refundConflict(posTransactionID: String)
    case unknownTransaction(terminalID: String, posTransactionID: String)
    case transactionVoided(posTransactionID: String)
    case refundExceedsPurchase(paidTotalMinor: Int64, refundedBeforeMinor: Int64, refundingMinor: Int64)
    /// The returned lines do not fit the purchase (unknown line, more than bought, a quantity below one).
    case invalidRefund(ProportionalReversalError)
    /// Campaign runs (migration 0008).
    case unknownCampaign(Int64)
    case notABonusCampaign(campaignID: Int64, kind: String)
    case campaignEnded(campaignID: Int64, state: String)
    case campaignAlreadyRunning(Int64)
    case campaignHasNoSegment(Int64)
    /// A token's adjustments of this UTC day (|delta| summed per unit) would pass its daily limit.
    case dailyAdjustmentLimitReached(DailyAdjustmentUsage)
    /// PostgreSQL could not be reached or answered with something other than a ledger error.
    case database(String)
    /// No answer from PostgreSQL (connection refused, pool timeout): nothing is known to be written.
    case unavailable(String)

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
        case .tierChanged: "tier_changed"
        case .campaignsChanged: "campaigns_changed"
        case .refundConflict: "refund_conflict"
        case .unknownTransaction: "unknown_transaction"
        case .transactionVoided: "transaction_voided"
        case .refundExceedsPurchase: "refund_exceeds_purchase"
        case .invalidRefund(let error): Self.refundCode(error)
        case .unknownCampaign: "unknown_campaign"
        case .notABonusCampaign: "not_a_bonus_campaign"
        case .campaignEnded: "campaign_ended"
        case .campaignAlreadyRunning: "campaign_already_running"
        case .campaignHasNoSegment: "campaign_has_no_segment"
        case .dailyAdjustmentLimitReached: "daily_adjustment_limit_reached"
        case .database: "database"
        case .unavailable: "store_unavailable"
        }
    }

    public var description: String {
        switch self {
        case .insufficientBalance(let bucket, let requested, let available):
            "insufficient balance: \(requested) requested, \(available) \(bucket)"
        case .unknownMember(let id): "unknown member \(id)"
        case .memberNotActive(let id, let status):
            status == "erased"
                ? "member \(id) was erased and cannot receive adjustments or any other ledger entry; its history and balances stay readable"
                : "member \(id) is \(status); unblock the member first"
        case .unknownHold(let id): "unknown hold \(id)"
        case .holdNotActive(let id, let state): "hold \(id) is \(state), not active"
        case .holdExceeded(let id, let requested, let held):
            "redeeming \(requested) is more than the \(held) held by hold \(id)"
        case .holdMismatch(let id): "hold \(id) belongs to another member, terminal or transaction: a Commit names the hold its own Hold took, with the same pos_transaction_id"
        case .unknownEntry(let id): "unknown ledger entry \(id)"
        case .notReversible(let id, let kind): "entry \(id) is a \(kind); only accruals and redemptions can be reversed"
        case .reversalExceedsRemaining(let id, let requested, let remaining):
            "reversing \(requested) of entry \(id) is more than the \(remaining) not yet reversed"
        case .idempotencyConflict(let scope, let key):
            "idempotency key '\(key)' of \(scope) was already used for a different request; use a new key"
        case .invalidAmount(let text): "invalid amount: \(text)"
        case .invalidDates(let text): "invalid dates: \(text)"
        case .invariantViolated(let text): "ledger invariant violated: \(text); run `loyalty audit`"
        case .tierChanged(let id, let pricedAt, let now):
            "member \(id) moved from tier \(pricedAt) to \(now) after the basket was priced; price it again"
        case .campaignsChanged(let pricedAt, let now):
            "the campaigns changed (version \(pricedAt) → \(now)) after the basket was priced; price it again"
        case .refundConflict(let id): "another refund of \(id) landed first; recompute and send again"
        case .unknownTransaction(let terminal, let id): "no purchase or hold \(id) on terminal \(terminal)"
        case .transactionVoided(let id): "purchase \(id) was voided; nothing is left to refund"
        case .refundExceedsPurchase(let paid, let before, let now):
            "refunding \(now) more after \(before) is more than the \(paid) paid"
        case .invalidRefund(let error): "refund does not fit the purchase: \(error)"
        case .unknownCampaign(let id): "unknown campaign \(id)"
        case .notABonusCampaign(let id, let kind): "campaign \(id) is a \(kind) campaign; only bonus campaigns are triggered"
        case .campaignEnded(let id, let state): "campaign \(id) is \(state); create a new campaign to pay again"
        case .campaignAlreadyRunning(let id): "campaign \(id) is already running; follow its progress instead"
        case .campaignHasNoSegment(let id): "campaign \(id) has no segment; give it one before triggering"
        case .dailyAdjustmentLimitReached(let usage):
            "this token may adjust at most \(usage.limit) \(usage.unit.rawValue) per UTC day (|delta| summed); "
                + "\(usage.usedBefore) used today, so \(usage.requested) more is refused; the limit resets at \(usage.resetsAt); ask an admin"
        case .database(let text): "database error: \(text)"
        case .unavailable(let text): "PostgreSQL unavailable: \(text); retry with the same key"
        }
    }

    static func refundCode(_ error: ProportionalReversalError) -> String {
        switch error {
        case .line(_, let inner): refundCode(inner)
        case .exceedsQuantity: "refund_exceeds_purchase"
        case .unknownLine: "unknown_line"
        default: "invalid_refund"
        }
    }

    /// Maps a server error raised by the ledger functions (SQLSTATE class LY, JSON detail) to its typed error.
    static func from(_ error: any Error) -> LedgerStoreError {
        if let known = error as? LedgerStoreError { return known }
        guard let state = PostgresErrorText.sqlState(error) else {
            return .unavailable(PostgresErrorText.describe(error))
        }
        return from(state: state, detail: PostgresErrorText.detail(error), description: PostgresErrorText.describe(error))
    }

    /// admin_shutdown, crash_shutdown, cannot_connect_now.
    static let sessionEndedStates: Set<String> = ["57P01", "57P02", "57P03"]

    /// Maps (SQLSTATE, DETAIL) of a server error to its typed error; also used for errors a batch function caught
    /// per item and returned as data.
    static func from(state: String, detail detailText: String?, description: String) -> LedgerStoreError {
        // The server ended the session (shutdown, restart, crash recovery) or the link broke: the statement's
        // transaction rolled back, so the till may retry with the same key instead of giving the sale up.
        if state.hasPrefix("08") || Self.sessionEndedStates.contains(state) { return .unavailable(description) }
        // Rolled back and worth retrying: serialization failure or deadlock (40), statement timeout or lock not
        // available (57014, 55P03), the server out of resources (53).
        if state.hasPrefix("40") || state.hasPrefix("53") || state == "57014" || state == "55P03" {
            return .unavailable(description + "; nothing was written, retry with the same id")
        }
        guard state.hasPrefix("LY") else { return .database(description) }
        let detail = detailText.flatMap { text in
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
        case "LY014": return .tierChanged(memberID: int("member_id"), pricedAt: string("priced_at"), now: string("now"))
        case "LY024": return .campaignsChanged(pricedAt: int("priced_at"), now: int("now"))
        case "LY015": return .refundConflict(posTransactionID: string("pos_transaction_id"))
        case "LY016": return .unknownTransaction(terminalID: string("terminal_id"), posTransactionID: string("pos_transaction_id"))
        case "LY017": return .transactionVoided(posTransactionID: string("pos_transaction_id"))
        case "LY019": return .unknownCampaign(int("campaign_id"))
        case "LY020": return .notABonusCampaign(campaignID: int("campaign_id"), kind: string("kind"))
        case "LY021": return .campaignEnded(campaignID: int("campaign_id"), state: string("state"))
        case "LY022": return .campaignAlreadyRunning(int("campaign_id"))
        case "LY023": return .campaignHasNoSegment(int("campaign_id"))
        case "LY018": return .refundExceedsPurchase(
            paidTotalMinor: int("paid_total_minor"), refundedBeforeMinor: int("refunded_before"), refundingMinor: int("refunding"))
        default: return .invariantViolated(description)
        }
    }
}
