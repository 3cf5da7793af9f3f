import Foundation
import Synchronization

/// One write a till sent, as its journal keeps it: the idempotency key is chosen (and, on a real till, persisted)
/// before the first send, and every resend uses the same key and the same body.
struct ChaosOperation: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case hold, commit, cancel, refund
    }

    enum Outcome: Sendable {
        /// No final answer before the run's hard stop: its effect cannot be checked.
        case unresolved
        case acknowledged(ChaosAck)
        /// A final (non-retryable) status: the server promises nothing was applied.
        case refused(String)
    }

    let kind: Kind
    let terminalID: String
    /// pos_transaction_id, or refund_id for a refund.
    let id: String
    let memberID: Int64
    var outcome = Outcome.unresolved
    /// Requests sent for this operation (1 = answered at the first try).
    var attempts = 0
    /// When the first request went out and the final answer came (wall clock, to line up with the fault log).
    var sentAt = Date()
    var answeredAt: Date?

    /// For violation reports: "lt-3 commit:<id> (2 requests, 22:44:28.120 → 22:44:30.007)".
    var trace: String {
        let format = Date.ISO8601FormatStyle(includingFractionalSeconds: true).time(includingFractionalSeconds: true)
        let answered = answeredAt.map { $0.formatted(format) } ?? "unanswered"
        return "\(terminalID) \(idempotencyKey) (\(attempts) requests, \(sentAt.formatted(format)) → \(answered))"
    }

    /// The server's idempotency key for this operation (scope is "pos:" + terminal id).
    var idempotencyKey: String { "\(kind.rawValue):\(id)" }

    var ack: ChaosAck? {
        if case .acknowledged(let ack) = outcome { return ack }
        return nil
    }
}

/// The figures of an acknowledged answer the model and the checks need (zero where a method has none).
struct ChaosAck: Sendable {
    var replayed = false
    /// Unit of the award figures ("points" or "cashback_minor").
    var unit = "points"
    var awarded: Int64 = 0
    var redeemed: Int64 = 0
    var accrualEntryID: Int64 = 0
    var redemptionEntryID: Int64 = 0
    var holdID: Int64 = 0
    var holdPoints: Int64 = 0
    var awardReversed: Int64 = 0
    var awardUnrecovered: Int64 = 0
    var pointsRestored: Int64 = 0
    /// Cancel: "commit" (voided) or "hold" (released).
    var cancelled = ""
    /// Refund and cancel: the purchase they act on.
    var originalID = ""
}

/// What the till expects per member and unit, built from acknowledged answers only (the server's own figures).
struct ChaosModel {
    struct Key: Hashable {
        let memberID: Int64
        let unit: String
    }

    /// Expected change of available + pending + held since the run started.
    private(set) var delta: [Key: Int64] = [:]

    mutating func apply(_ operation: ChaosOperation) {
        guard let ack = operation.ack else { return }
        let member = operation.memberID
        switch operation.kind {
        case .hold:
            break  // available → held: the total does not move
        case .commit:
            delta[Key(memberID: member, unit: ack.unit), default: 0] += ack.awarded
            delta[Key(memberID: member, unit: "points"), default: 0] -= ack.redeemed
        case .refund, .cancel:
            // A void answers no award_unrecovered: its award is still pending (inside the return window), so it
            // comes back from its own lot in full; the balance check catches it if that ever stops being true.
            delta[Key(memberID: member, unit: ack.unit), default: 0] -= ack.awardReversed - ack.awardUnrecovered
            delta[Key(memberID: member, unit: "points"), default: 0] += ack.pointsRestored
        }
    }
}

/// Counters shared by all tills, for progress lines and the summary.
final class ChaosCounters: Sendable {
    let operationsSent = Atomic<Int>(0)
    let acknowledged = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
    /// Operations that needed at least one resend.
    let retriedOperations = Atomic<Int>(0)
    /// Requests sent again with the same key (all resends of all operations).
    let resends = Atomic<Int>(0)
    /// Acknowledged answers with replayed = true: the first send had been applied but its answer was lost.
    let replayedAnswers = Atomic<Int>(0)
    let reconnects = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let readsSent = Atomic<Int>(0)
    /// Tills now waiting for the answer to a resent request.
    let tillsRetrying = Atomic<Int>(0)
}

extension Atomic where Value == Int {
    func bump(_ amount: Int = 1) { add(amount, ordering: .relaxed) }
    var current: Int { load(ordering: .relaxed) }
}
