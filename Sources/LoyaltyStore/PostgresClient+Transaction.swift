import Logging
import PostgresNIO

extension PostgresClient {
    /// `withTransaction`, but a failure inside the closure surfaces as the closure's own error (postgres-nio wraps
    /// it in `PostgresTransactionError`, which hides typed errors such as `TierError` from callers).
    func transaction<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, isolation: isolation, body)
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }
}
