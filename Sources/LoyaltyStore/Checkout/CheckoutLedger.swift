import Foundation
import LoyaltyCore

/// The till's writes to the ledger: the one seam between the checkout's policy (pricing, redemption bounds, the
/// re-price on `tier_changed`, in the server) and where the points are booked.
///
/// Two implementations answer the same calls with the same answers and errors: `CheckoutWriter` (PostgreSQL, the
/// `checkout_*` functions; production) and `InMemoryCheckoutLedger` (the pure `LedgerModel`; unit tests of the
/// policy, and the oracle the SQL is compared with).
///
/// Guarantees every implementation keeps:
/// - Idempotent on the terminal's own ids: a commit, hold, cancel or refund sent again with the same id and the same
///   request answers the first answer with `replayed` true and books nothing; the same id with another request is
///   refused with `idempotencyConflict`. A refused request books nothing and stores no answer.
/// - A hold belongs to the checkout that took it (terminal and transaction id); a commit naming another's hold is
///   refused with `holdMismatch`.
/// - Errors are the `LedgerStoreError` cases the SQL functions raise, so their codes are what the till sees.
public protocol CheckoutLedger: Sendable {
    /// Most commits one `commitBatch` call takes.
    var maximumBatch: Int { get }

    /// Commits of many tills in one call. Each item succeeds or fails on its own; the answers are in the items'
    /// order. `items` holds 1...`maximumBatch` commits.
    func commitBatch(
        _ items: [(POSCommit, POSCommitPricing)], deadline: ContinuousClock.Instant?
    ) async -> [Result<CommitAnswer, LedgerStoreError>]

    /// Reserves points for a checkout, bound to its terminal and transaction id.
    func hold(
        _ request: POSHold, deadline: ContinuousClock.Instant?
    ) async throws(LedgerStoreError) -> (result: HoldResult, member: CheckoutMemberRow)

    /// Voids the purchase committed under the id on this terminal, or else releases the hold taken under it.
    func cancel(
        terminalID: String, posTransactionID: String, deadline: ContinuousClock.Instant?
    ) async throws(LedgerStoreError) -> (result: CancelResult, member: CheckoutMemberRow)

    /// The id of the hold taken under `posTransactionID` on this terminal; nil when no hold was taken under it.
    func heldID(terminalID: String, posTransactionID: String) async throws(LedgerStoreError) -> Int64?

    /// Returns lines of a purchase: the award they earned is taken back and redeemed points are paid back in
    /// proportion to the money refunded (`RefundPlan`).
    func refund(
        _ refund: POSRefund, deadline: ContinuousClock.Instant?
    ) async throws(LedgerStoreError) -> (result: RefundResult, member: CheckoutMemberRow)
}

extension CheckoutWriter: CheckoutLedger {
    public var maximumBatch: Int { Self.maximumBatch }
}
