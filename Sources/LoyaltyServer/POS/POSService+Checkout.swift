import Foundation
import Logging
import LoyaltyCache
import LoyaltyCore
import LoyaltyRules
import LoyaltyStore
import Metrics
import POSProtocol

/// Counters of the POS path, exported by the metrics backend the process bootstraps (none in tests).
struct POSMetrics: Sendable {
    let cacheHits = Counter(label: "loyalty_pos_member_cache_total", dimensions: [("result", "hit")])
    let cacheMisses = Counter(label: "loyalty_pos_member_cache_total", dimensions: [("result", "miss")])
    let cacheFallbacks = Counter(label: "loyalty_pos_member_cache_total", dimensions: [("result", "unavailable")])

    /// One answered request: a count per method and status, and its latency per method.
    static func record(method: UInt16, status: POSStatus, elapsed: Duration) {
        let name = Loyalty_Pos_V1_Method(rawValue: Int(method)).map { "\($0)" } ?? "unknown"
        Counter(label: "loyalty_pos_requests_total", dimensions: [("method", name), ("status", "\(status)")]).increment()
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        Metrics.Timer(label: "loyalty_pos_request_duration", dimensions: [("method", name)]).recordNanoseconds(nanoseconds)
    }
}

extension POSService {
    // The checkout methods: policy in `Checkout`, over the ledger seam.

    func quote(_ request: Loyalty_Pos_V1_QuoteRequest) async -> POSOutcome {
        await checkout.quote(request)
    }

    func hold(_ request: Loyalty_Pos_V1_HoldRequest, session: POSSession, deadline: ContinuousClock.Instant) async -> POSOutcome {
        await checkout.hold(request, terminalID: session.terminalID, deadline: deadline)
    }

    func commit(_ request: Loyalty_Pos_V1_CommitRequest, session: POSSession, deadline: ContinuousClock.Instant) async -> POSOutcome {
        await checkout.commit(request, terminalID: session.terminalID, deadline: deadline)
    }

    func cancel(_ request: Loyalty_Pos_V1_CancelRequest, session: POSSession, deadline: ContinuousClock.Instant) async -> POSOutcome {
        await checkout.cancel(request, terminalID: session.terminalID, deadline: deadline)
    }

    func refund(_ request: Loyalty_Pos_V1_RefundRequest, session: POSSession, deadline: ContinuousClock.Instant) async -> POSOutcome {
        await checkout.refund(request, terminalID: session.terminalID, deadline: deadline)
    }
}

/// An early answer carried through `Result`.
struct POSOutcomeError: Error {
    let outcome: POSOutcome
    init(_ outcome: POSOutcome) { self.outcome = outcome }
}
