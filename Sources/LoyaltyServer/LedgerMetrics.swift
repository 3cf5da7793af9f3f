import LoyaltyStore
import Metrics

/// Ledger operations as the POS and admin layers make them, for `/metrics`: a count per operation and outcome
/// (`ok` or the ledger's stable error code), latency per operation, and how many are under way now. PostgresClient
/// exposes no pool statistics, so the in-flight meter is the view of how much of the pool the ledger path holds.
enum LedgerMetrics {
    static let inFlight = Meter(label: "loyalty_ledger_operations_in_flight")

    /// Runs `body` as ledger operation `operation` (`pos_hold`, `admin_adjust`, `job_expire`, ...).
    static func measure<Value, Failure: Error>(
        _ operation: String, _ body: () async throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        inFlight.increment()
        let started = ContinuousClock.now
        defer {
            inFlight.decrement()
            let elapsed = ContinuousClock.now - started
            let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
            Metrics.Timer(label: "loyalty_ledger_operation_duration", dimensions: [("operation", operation)])
                .recordNanoseconds(nanoseconds)
        }
        do {
            let value = try await body()
            record(operation, outcome: "ok")
            return value
        } catch {
            record(operation, outcome: (error as? LedgerStoreError)?.code ?? "error")
            throw error
        }
    }

    /// `measure` with the outcome as a value, for callers that answer some failures their own way.
    static func measureResult<Value>(
        _ operation: String, _ body: () async throws(LedgerStoreError) -> Value
    ) async -> Result<Value, LedgerStoreError> {
        do throws(LedgerStoreError) {
            return .success(try await measure(operation, body))
        } catch {
            return .failure(error)
        }
    }

    static func record(_ operation: String, outcome: String) {
        Counter(label: "loyalty_ledger_operations_total", dimensions: [("operation", operation), ("outcome", outcome)]).increment()
    }
}
